"""Variant-effect benchmark on the DREAM 2022 test set: predicted vs measured expression differences of
sequence pairs one base apart, through `helixlab score-variants` (pairs table -> alt - ref effects).
Resumable; results to benchmarks/results/variants.{json,md}.

Pairs: every test pair at Hamming distance 1 (`test_set_hamming1_pairs.tsv.gz`, 53,483) and the 4,670
public-leaderboard SNV pairs. The models are the DREAM benchmark's runs (trained on dev_split == train
of the same test set, see benchmarks/dream.py; trained here first if missing), so pairs are reported
both over all pairs and over the pairs whose two sequences are both in dev_split == test (unseen).

    .venv/bin/python benchmarks/variants.py                 # legnet and cnn_lstm, seed 0
    .venv/bin/python benchmarks/variants.py --summary
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import RESULTS, append_record, load_records, provenance, run_script, write_report  # noqa: E402

from helixlab.config import load_config  # noqa: E402
from helixlab.paths import data_root  # noqa: E402
from helixlab.run.records import environment  # noqa: E402

WORK = ROOT / "benchmarks" / "work" / "variants"
RUNS = ROOT / "benchmarks" / "work" / "dream"  # benchmarks/dream.py's run directories
OUT_JSON = RESULTS / "variants.json"
OUT_MD = RESULTS / "variants.md"


def model_run(model: str, seed: int) -> Path:
    """The DREAM benchmark's finished run, trained now if it is missing."""
    from dream import MODELS

    from helixlab.train import fit

    rd = RUNS / model / f"seed{seed}"
    if not (rd / "results.json").exists():
        recipe, overrides = MODELS[model]
        fit(load_config(ROOT / recipe, [*overrides, f"train.seed={seed}", "train.progress=false"]), rd,
            resume=(rd / "config.json").exists())
    return rd


def pair_sets() -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray, np.ndarray]:
    """{name: (idx_a, idx_b)}, sequences, expression and dev_split of the test set."""
    import pandas as pd

    from helixlab.apply.dream import TEST_FILE, DreamTest

    d = data_root() / "dream2022_yeast"
    table = pd.read_csv(d / TEST_FILE, sep="\t", usecols=["sequence", "expression", "dev_split"])
    hamming = pd.read_csv(d / "test_set_hamming1_pairs.tsv.gz", sep="\t")
    public = DreamTest.load(d, snv="public").pairs["SNVs"]
    sets = {"hamming1": (hamming["idx_a"].to_numpy(), hamming["idx_b"].to_numpy()), "public_snv": public}
    return sets, table["sequence"].to_numpy(), table["expression"].to_numpy(), table["dev_split"].to_numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["legnet", "cnn_lstm"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    args = ap.parse_args()
    import helixlab
    from helixlab.apply.variants import read_variants, score_variants
    from helixlab.tasks.metrics import pearson, spearman

    env = environment()
    sets, seqs, expr, split = pair_sets()
    WORK.mkdir(parents=True, exist_ok=True)
    for model_name in args.models:
        for seed in args.seeds:
            if (model_name, seed) in {(r["model"], r["seed"]) for r in load_records(OUT_JSON)}:
                continue
            model = helixlab.load(model_run(model_name, seed), device="auto")
            for name, (a, b) in sets.items():
                table = WORK / f"{name}_pairs.tsv"  # the CLI's input: score-variants RUN table.tsv
                if not table.exists():
                    table.write_text("id\tref_sequence\talt_sequence\n"
                                     + "".join(f"{i}-{j}\t{seqs[i]}\t{seqs[j]}\n" for i, j in zip(a, b)))
                t0 = time.perf_counter()
                ref, alt = score_variants(model, read_variants(table))
                seconds = time.perf_counter() - t0
                effect, measured = (alt - ref)[:, 0], expr[b] - expr[a]
                unseen = (split[a] == "test") & (split[b] == "test")
                for subset, rows in (("all pairs", np.ones(len(a), bool)), ("both unseen (dev-test)", unseen)):
                    record = {"model": model_name, "seed": seed, "pairs": name, "subset": subset,
                              "n_pairs": int(rows.sum()), "pearson": pearson(effect[rows], measured[rows]),
                              "spearman": spearman(effect[rows], measured[rows]),
                              "sign_agreement": float(np.mean(np.sign(effect[rows]) == np.sign(measured[rows]))),
                              "score_seconds": round(seconds, 1), "sequences_scored": 2 * len(a),
                              "run": str(model.run.run_dir.relative_to(ROOT)), **provenance(env)}
                    append_record(OUT_JSON, record)
                    print({k: record[k] for k in ("model", "pairs", "subset", "n_pairs", "pearson", "spearman")},
                          flush=True)
            write_summary()
    write_summary()


def write_summary() -> None:
    records = load_records(OUT_JSON)
    if not records:
        return
    lines = ["| model | seed | pairs | subset | n pairs | Pearson | Spearman | sign agreement | scoring s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        lines.append(f"| {r['model']} | {r['seed']} | {r['pairs']} | {r['subset']} | {r['n_pairs']:,} | "
                     f"{r['pearson']:.3f} | {r['spearman']:.3f} | {r['sign_agreement']:.3f} | {r['score_seconds']} |")
    table = "\n".join(lines)
    write_report(OUT_MD, "Variant effects: DREAM 2022 test pairs one base apart",
                 "Predicted (alt - ref, `helixlab score-variants` on a table of sequence pairs) against measured "
                 "expression differences. Models: the DREAM benchmark runs (trained on dev_split == train of the "
                 "test set), so 'both unseen' (both sequences in dev_split == test) is the fair figure. "
                 "Generated by `benchmarks/variants.py`.", records[-1],
                 [table, "", "Published: the winning team's (LegNet, all 6.7 M training rows) SNV part of the "
                  "official score, Pearson r 0.728 over the official SNV pairs.", ""])
    print(table)


if __name__ == "__main__":
    run_script(main, write_summary)
