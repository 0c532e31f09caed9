"""Same seed, same numbers: re-run committed benchmark records at the current code and compare every
test metric to the last digit. Results to benchmarks/results/reproduce.{json,md}; resumable (a finished
check is skipped; an interrupted run resumes from its checkpoint).

    .venv/bin/python benchmarks/reproduce.py            # promoter cnn seed 0 on prom_core_all, DREAM legnet seed 0

Each check trains exactly as its benchmark does (same recipe, overrides and data), in its own run
directory under benchmarks/work/reproduce/<commit>/.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import dream  # noqa: E402
import promoter  # noqa: E402
from common import RESULTS, append_record, load_records, provenance, run_script, write_report  # noqa: E402

from helixlab.apply.dream import DreamTest  # noqa: E402
from helixlab.config import load_config  # noqa: E402
from helixlab.paths import CONFIG, data_root  # noqa: E402
from helixlab.run.records import environment  # noqa: E402
from helixlab.train import fit  # noqa: E402

OUT_JSON = RESULTS / "reproduce.json"
OUT_MD = RESULTS / "reproduce.md"
PROMOTER_METRICS = ("accuracy", "precision", "recall", "f1", "mcc", "auroc", "auprc", "valid_accuracy")
DREAM_METRICS = ("pearson", "spearman", "valid_pearson", "all_pearson", "high_pearson", "low_pearson",
                 "SNVs_pearson", "dream_pearson_score_partial")
CHECKS = {  # name -> (committed results file, the record's identifying fields, metrics compared)
    "promoter prom_core_all cnn seed 0": (promoter.OUT_JSON, {"dataset": "prom_core_all", "model": "cnn", "seed": 0},
                                          PROMOTER_METRICS),
    "DREAM dev_split legnet seed 0": (dream.OUT_JSON, {"model": "legnet", "seed": 0}, DREAM_METRICS),
}


def committed(path: Path, fields: dict[str, Any]) -> dict[str, Any]:
    """The committed record with these fields (the first one: later duplicates are re-runs of it)."""
    for r in load_records(path):
        if all(r.get(k) == v for k, v in fields.items()):
            return r
    raise SystemExit(f"no record with {fields} in {path}")


def rerun(name: str, work: Path, env: dict[str, Any]) -> dict[str, Any]:
    """Train the check's run at the current code, as its benchmark does; its record."""
    if name.startswith("promoter"):
        dataset, model, seed = "prom_core_all", "cnn", 0
        promoter.WORK = work / "promoter"
        paths = promoter.prepared(dataset)
        overrides = [f"data.{k}={v!r}".replace("'", '"') for k, v in paths.items()]
        overrides += [f"train.seed={seed}", "train.progress=false"]
        run_dir = work / "promoter" / dataset / model / f"seed{seed}"
        res = fit(load_config(ROOT / promoter.RECIPES[model], overrides), run_dir,
                  resume=(run_dir / CONFIG).exists())
        test = res["splits"]["test"]
        return {**{k: test[k] for k in PROMOTER_METRICS if k in test},
                "valid_accuracy": res["splits"]["valid"]["accuracy"], "train_seconds": res["train_seconds"]}
    recipe, overrides = dream.MODELS["legnet"]
    run_dir = work / "dream" / "legnet" / "seed0"
    cfg = load_config(ROOT / recipe, [*overrides, "train.seed=0", "train.progress=false"])
    res = fit(cfg, run_dir, resume=(run_dir / CONFIG).exists())
    test = DreamTest.load(data_root() / "dream2022_yeast")
    record = dream.record_of(res, run_dir, test, {}, env)
    return {**{k: record[k] for k in DREAM_METRICS}, "train_seconds": record["train_seconds"]}


def main() -> None:
    env = environment()
    work = ROOT / "benchmarks" / "work" / "reproduce" / str(env["commit"])
    for name, (path, fields, metrics) in CHECKS.items():
        if any(r["check"] == name and r["commit"] == env["commit"] for r in load_records(OUT_JSON)):
            continue
        old = committed(path, fields)
        new = rerun(name, work, env)
        diffs = {k: (old[k], new[k]) for k in metrics if old.get(k) != new.get(k) and not (old.get(k) != old.get(k))}
        record = {"check": name, "identical": not diffs, "differences": diffs,
                  "metrics": {k: new[k] for k in metrics}, "committed_commit": old["commit"],
                  "train_seconds": new["train_seconds"], "committed_train_seconds": old["train_seconds"],
                  **provenance(env)}
        append_record(OUT_JSON, record)
        print(f"{name}: {'identical' if not diffs else 'DIFFERENT ' + str(diffs)}", flush=True)
        write_summary()
    write_summary()


def write_summary() -> None:
    records = load_records(OUT_JSON)
    if not records:
        return
    lines = ["| check | code commit | record's commit | identical | metrics compared (new run) | train s (record) |",
             "|---|---|---|---|---|---|"]
    for r in records:
        shown = ", ".join(f"{k} {v!r}" for k, v in r["metrics"].items())
        lines.append(f"| {r['check']} | {r['commit']} | {r['committed_commit']} | "
                     f"{'yes' if r['identical'] else 'no: ' + str(r['differences'])} | {shown} | "
                     f"{r['train_seconds']:.0f} ({r['committed_train_seconds']:.0f}) |")
    text = write_report(OUT_MD, "Reproduction: same seed, same numbers",
                        "Committed benchmark records re-run at the code commit named in each row, every "
                        "listed metric compared with `==` (full float precision). Generated by "
                        "`benchmarks/reproduce.py`.", records[-1], lines)
    print(text)


if __name__ == "__main__":
    run_script(main, write_summary)
