"""S1 promoter benchmark: every recipe x data set x seed; resumable; results to benchmarks/results/promoter.*

Protocol (see README): prom_300_all: train = reconstructed train positives + negatives made with
`helixlab negatives --mode random --seed 0` (12 of 20 chunks replaced by random bases, which is what
the GUE dev/test negatives contain; with --keep-last for recipes that train on prom_300_all_train_kl.csv),
valid = official dev, test = official test. prom_core_all and
prom_300_tata: the official train/dev/test. The best checkpoint (valid AUROC) is scored on test.

    .venv/bin/python benchmarks/promoter.py                     # everything, 3 seeds
    .venv/bin/python benchmarks/promoter.py --datasets prom_300_all --models cnn_gru --seeds 0

A finished (dataset, model, seed) is skipped on restart; an interrupted one resumes from its checkpoint.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import (  # noqa: E402
    RESULTS, averages, data_overrides, fit_and_record, load_records, run_script, summary_table, write_report)

from helixlab.paths import data_root  # noqa: E402
from helixlab.run.records import environment  # noqa: E402

RECIPES = {
    "cnn": "configs/s1_cnn.toml",
    "gru": "configs/s1_gru.toml",
    "cnn_gru": "configs/s1_cnn_gru.toml",
    "window_gru": "configs/s1_window_gru.toml",
    "kmer_linear": "configs/promoter_kmer_linear.toml",
    "best": "configs/promoter_best.toml",
    "budget": "configs/promoter_budget.toml",
    "flatten": "configs/promoter_flatten.toml",
    "flatten_300": "configs/promoter_300_flatten.toml",
    "flatten_300_kl": "configs/promoter_300_flatten_kl.toml",
}
# prom_300_all train files a recipe may name (data.train, as `make promoter-data` writes them) -> how
# `helixlab negatives` makes them from the reconstructed positives
PROM_300_TRAIN = {"prom_300_all_train.csv": {}, "prom_300_all_train_kl.csv": {"keep_last": True}}
DEFAULT_TRAIN = "prom_300_all_train.csv"
DATASETS = ("prom_300_all", "prom_core_all", "prom_300_tata")
WORK = ROOT / "benchmarks" / "work"
OUT_JSON = RESULTS / "promoter.json"
OUT_MD = RESULTS / "promoter.md"
COLUMNS = ("accuracy", "precision", "recall", "f1", "mcc", "mcc_at_threshold", "auroc", "params", "epochs",
           "train_seconds", "train_seq_per_s")
ENSEMBLE_COLUMNS = ("accuracy", "precision", "recall", "f1", "mcc", "mcc_at_threshold", "auroc", "params")


def train_file(recipe: str) -> str:
    """The prom_300_all train file `recipe` names (one of PROM_300_TRAIN; the first for recipes of other data)."""
    name = Path(tomllib.loads((ROOT / recipe).read_text())["data"]["train"]).name
    return name if name in PROM_300_TRAIN else DEFAULT_TRAIN


def data_paths(dataset: str, train_name: str = DEFAULT_TRAIN) -> dict[str, str]:
    gue = data_root() / "promoter_gue_human" / dataset
    if dataset == "prom_300_all":
        train = WORK / "data" / train_name
        if not train.exists():
            from helixlab.data.negatives import write_negatives

            train.parent.mkdir(parents=True, exist_ok=True)
            write_negatives(gue / "train_positives_reconstructed.csv.gz", train, seed=0, mode="random",
                            include_positives=True, **PROM_300_TRAIN[train_name])
        return {"train": str(train), "valid": str(gue / "dev.csv.gz"), "test": str(gue / "test.csv.gz")}
    return {split: str(gue / f"{name}.csv.gz") for split, name in
            (("train", "train"), ("valid", "dev"), ("test", "test"))}


def prepared(dataset: str, train_name: str = DEFAULT_TRAIN) -> dict[str, str]:
    """Prepare each source file once and share it between runs: one prepared directory per file, named by
    it (prom_300_all has one train per train file)."""
    from helixlab.data.shards import prepare

    out = {}
    for split, path in data_paths(dataset, train_name).items():
        d = WORK / "prepared" / dataset / Path(path).name.split(".")[0]
        if not (d / "meta.json").exists():
            prepare([path], d, overwrite=True, unique_ids=False, progress=False)
        out[split] = str(d)
    return out


def main() -> None:
    global WORK, OUT_JSON, OUT_MD
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS))
    ap.add_argument("--models", nargs="+", default=list(RECIPES))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--set", nargs="*", default=[], dest="overrides", help="extra key=value overrides")
    ap.add_argument("--results", type=Path, default=OUT_JSON, help="results file (the .md is written beside it)")
    ap.add_argument("--work", type=Path, default=WORK, help="directory for prepared data and runs")
    ap.add_argument("--ensemble", action="store_true", help="also score each (dataset, model) whose seeds are all "
                    "finished as an ensemble of them (its own rows)")
    args = ap.parse_args()
    WORK, OUT_JSON, OUT_MD = args.work, args.results, args.results.with_suffix(".md")
    env = environment()
    paths = {(d, m): prepared(d, train_file(RECIPES[m])) for d in args.datasets for m in args.models}
    # seed-major order: an early stop of the benchmark still leaves every recipe measured
    for seed in args.seeds:
        for dataset in args.datasets:
            for model in args.models:
                done = {(r["dataset"], r["model"], r["seed"]) for r in load_records(OUT_JSON)
                        if r.get("kind") != "ensemble"}  # an ensemble's seed is the list of its members
                if (dataset, model, seed) in done:
                    continue
                run_dir = WORK / "runs" / dataset / model / f"seed{seed}"
                overrides = data_overrides(paths[dataset, model])
                overrides += [f"train.seed={seed}", "train.progress=false", *args.overrides]
                fit_and_record(ROOT / RECIPES[model], overrides, run_dir, OUT_JSON, f"{dataset} {model} seed {seed}",
                               {"dataset": dataset, "model": model, "recipe": RECIPES[model], "seed": seed}, env)
                write_summary()
    if args.ensemble:
        for dataset in args.datasets:
            for model in args.models:
                record_ensemble(dataset, model, args.seeds, env)
    write_summary()


def record_ensemble(dataset: str, model: str, seeds: list[int], env: dict) -> None:
    """The finished seeds of (dataset, model) as one ensemble, scored on the same test split; its own record."""
    from common import append_record, provenance

    from helixlab.paths import read_json_object
    from helixlab.run.ensemble import build_ensemble

    label = f"{model} (ensemble of {len(seeds)})"
    if any(r["dataset"] == dataset and r["model"] == label for r in load_records(OUT_JSON)):
        return
    runs = [WORK / "runs" / dataset / model / f"seed{s}" for s in seeds]
    if not all((r / "results.json").exists() for r in runs):
        return
    out = WORK / "ensembles" / dataset / f"{model}_seeds{'-'.join(map(str, seeds))}"
    res = build_ensemble(runs, out) if not (out / "results.json").exists() else read_json_object(out / "results.json")
    test = res["splits"]["test"]
    append_record(OUT_JSON, {"dataset": dataset, "model": label, "kind": "ensemble", "seed": seeds,
                             "members": [str(r) for r in runs], "params": res["params"],
                             **{k: test.get(k) for k in ENSEMBLE_COLUMNS if k != "params"}, **provenance(env)})


def write_summary() -> None:
    """Rewrite promoter.md from promoter.json (safe to run at any time)."""
    records = load_records(OUT_JSON)
    if not records:
        return
    env = records[-1]
    singles = [r for r in records if r.get("kind") != "ensemble"]
    ensembles = [r for r in records if r.get("kind") == "ensemble"]
    table = summary_table(singles, ("dataset", "model"), COLUMNS, fmt=averages("train_seconds", "train_seq_per_s"))
    if ensembles:
        table += ("\n\nEnsembles (the mean of the seeds' probabilities; not single models):\n\n"
                  + summary_table(ensembles, ("dataset", "model"), ENSEMBLE_COLUMNS, fmt=averages()))
    write_report(OUT_MD, "S1 promoter benchmark",
                 "Test-set metrics of the best-validation checkpoint, mean ± sd over seeds. "
                 "prom_300_all train = reconstructed positives + `helixlab negatives --mode random --seed 0`; "
                 "dev/test official. Generated by `benchmarks/promoter.py`.", env, [
                     table, "",
                     "Published numbers to beat (prom_300_all test): S1 CNN+GRU accuracy 0.876; DNABERT-2 accuracy "
                     "0.935 / MCC 0.870; NT-v2-500M 0.974 / 0.948. prom_core_all MCC: DNABERT 0.709, best "
                     "re-benchmark 0.740.", ""])
    print(table)


if __name__ == "__main__":
    run_script(main, write_summary)
