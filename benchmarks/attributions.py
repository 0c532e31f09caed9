"""Attributions on the real promoter model: where the S1 CNN looks in GUE prom_300_all test promoters,
and how long each method takes on 2 cores. Results to benchmarks/results/attributions.{json,md} and
promoter_metaplot.png. Resumable (one record per finished method).

The model is the promoter benchmark's `cnn` run, seed 0 (benchmarks/promoter.py; trained here first if
missing). Inputs: the 1,000 first positive (promoter) sequences of the GUE prom_300_all test set,
300 bp from -249 to +50 around the TSS. Every method runs on the same 1,000 sequences (ISM: all
900 substitutions of each).

    .venv/bin/python benchmarks/attributions.py
    .venv/bin/python benchmarks/attributions.py --summary
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import RESULTS, append_record, data_overrides, load_records, provenance, run_script, write_report  # noqa: E402

from helixlab.config import load_config  # noqa: E402
from helixlab.paths import data_root  # noqa: E402
from helixlab.run.records import environment  # noqa: E402

RUN = ROOT / "benchmarks" / "work" / "runs" / "prom_300_all" / "cnn" / "seed0"
WORK = ROOT / "benchmarks" / "work" / "attributions"
OUT_JSON = RESULTS / "attributions.json"
OUT_MD = RESULTS / "attributions.md"
TSS = 249  # GUE prom_300: positions -249..+50
N_SEQS = 1000
METHODS = ("ism", "deeplift", "deepliftshap", "gradient_x_input", "integrated_gradients")


def model_run() -> Path:
    from promoter import RECIPES, prepared

    from helixlab.train import fit

    if not (RUN / "results.json").exists():
        overrides = data_overrides(prepared("prom_300_all"))
        fit(load_config(ROOT / RECIPES["cnn"], [*overrides, "train.seed=0", "train.progress=false"]), RUN,
            resume=(RUN / "config.json").exists())
    return RUN


def promoters(n: int = N_SEQS) -> list[str]:
    """The first n promoters (label 1) of the GUE prom_300_all test set."""
    import pandas as pd

    table = pd.read_csv(data_root() / "promoter_gue_human" / "prom_300_all" / "test.csv.gz")
    return table.loc[table["label"] == 1, "sequence"].head(n).tolist()


def main() -> None:
    import helixlab
    from helixlab.interpret.attributions import attribute, position_scores

    env = environment()
    model = helixlab.load(model_run(), device="cpu")
    X = model.inputs(promoters())
    WORK.mkdir(parents=True, exist_ok=True)
    for method in METHODS:
        if method in {r["method"] for r in load_records(OUT_JSON)}:
            continue
        print(f"== {method} on {len(X):,} x {X.shape[1]} bp", flush=True)
        t0 = time.perf_counter()
        attr = attribute(model.run.model, X, method, **({"progress": True} if method == "ism" else {}))
        seconds = time.perf_counter() - t0
        scores = position_scores(attr, X, method)
        np.save(WORK / f"{method}_scores.npy", scores)
        mean_abs = np.abs(scores).mean(0)
        top = (np.argsort(mean_abs)[::-1][:5] - TSS).tolist()
        append_record(OUT_JSON, {"method": method, "sequences": len(X), "length": int(X.shape[1]),
                                 "seconds": round(seconds, 1), "sequences_per_s": round(len(X) / seconds, 1),
                                 "mutants_per_s": round(3 * X.size / seconds) if method == "ism" else None,
                                 "top_positions_vs_tss": top, "run": str(RUN.relative_to(ROOT)),
                                 **provenance(env)})
        print(f"{seconds:.1f} s; top positions (vs TSS) {top}", flush=True)
    write_summary()


def write_summary() -> None:
    records = load_records(OUT_JSON)
    if not records:
        return
    from helixlab.interpret.attributions import plot_metaplot

    lines = ["| method | sequences x bp | seconds | sequences/s | top 5 positions by mean abs(score), vs TSS |",
             "|---|---|---|---|---|"]
    for r in records:
        lines.append(f"| {r['method']} | {r['sequences']:,} x {r['length']} | {r['seconds']} | "
                     f"{r['sequences_per_s']} | {r['top_positions_vs_tss']} |")
    figures = []
    for method in ("deeplift", "ism"):
        path = WORK / f"{method}_scores.npy"
        if path.exists():
            out = RESULTS / f"promoter_metaplot_{method}.png"
            plot_metaplot(np.load(path), out, f"S1 CNN on GUE prom_300_all test promoters, {method}", origin=TSS,
                          marks={"TATA (-30)": -30, "TSS": 0})
            figures += [f"![{method} metaplot]({out.name})", ""]
    table = "\n".join(lines)
    write_report(OUT_MD, "Attributions of the promoter model",
                 f"The promoter benchmark's S1 CNN (prom_300_all, seed 0) on the first {records[0]['sequences']:,} "
                 "promoters of the GUE prom_300_all test set (-249..+50 around the TSS); one score per position "
                 "(the observed base's attribution; ISM: minus the mean effect of its 3 substitutions). "
                 "Generated by `benchmarks/attributions.py`.", records[-1], [table, "", *figures])
    print(table)


if __name__ == "__main__":
    run_script(main, write_summary)
