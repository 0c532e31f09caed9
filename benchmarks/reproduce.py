"""Same seed, same numbers: re-run committed benchmark records, at the current code and at a baseline
commit (default: the last commit before the package was grouped by capability), on this machine, and
compare every test metric to the last digit. Results to benchmarks/results/reproduce.{json,md};
resumable (a finished run is skipped; an interrupted one resumes from its checkpoint).

    .venv/bin/python benchmarks/reproduce.py        # promoter cnn seed 0 on prom_core_all, DREAM legnet seed 0
    .venv/bin/python benchmarks/reproduce.py --baseline REV --checks promoter

Each run trains exactly as its benchmark does (same recipe, overrides and data). The baseline runs the
benchmark script of a `git worktree` of REV (under benchmarks/work/reproduce/), so it is that commit's
code end to end. Float results depend on the CPU's kernels (AVX-512 and AMX, or not), so a record made
on another kind of CPU is compared too but can differ; code against code on one machine must not.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import dream  # noqa: E402
import promoter  # noqa: E402
from common import RESULTS, append_record, data_overrides, load_records, provenance, run_script, write_report  # noqa: E402

from helixlab.apply.dream import DreamTest  # noqa: E402
from helixlab.config import load_config  # noqa: E402
from helixlab.paths import CONFIG, data_root  # noqa: E402
from helixlab.run.records import environment  # noqa: E402
from helixlab.train import fit  # noqa: E402

OUT_JSON = RESULTS / "reproduce.json"
OUT_MD = RESULTS / "reproduce.md"
BASELINE = "2e00516"  # the last commit before the package was grouped by capability (issue 13)
WORK = ROOT / "benchmarks" / "work" / "reproduce"
PROMOTER_METRICS = ("accuracy", "precision", "recall", "f1", "mcc", "auroc", "auprc", "valid_accuracy")
DREAM_METRICS = ("pearson", "spearman", "valid_pearson", "all_pearson", "high_pearson", "low_pearson",
                 "SNVs_pearson", "dream_pearson_score_partial")
# check -> (committed results file, the record's identifying fields, metrics compared)
CHECKS: dict[str, tuple[Path, dict[str, Any], tuple[str, ...]]] = {
    "promoter": (promoter.OUT_JSON, {"dataset": "prom_core_all", "model": "cnn", "seed": 0}, PROMOTER_METRICS),
    "dream": (dream.OUT_JSON, {"model": "legnet", "seed": 0}, DREAM_METRICS),
}
TITLES = {"promoter": "promoter prom_core_all cnn seed 0", "dream": "DREAM dev_split legnet seed 0"}


def matching(records: list[dict[str, Any]], fields: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in records if all(r.get(k) == v for k, v in fields.items())]


def committed(check: str) -> dict[str, Any]:
    """The committed record of a check (the first one: later duplicates are re-runs of it)."""
    path, fields, _ = CHECKS[check]
    found = matching(load_records(path), fields)
    if not found:
        raise SystemExit(f"no record with {fields} in {path}")
    return found[0]


def current_run(check: str, env: dict[str, Any]) -> dict[str, Any]:
    """The check's record trained at the current code, as its benchmark does."""
    work = WORK / f"current-{env['commit']}"
    if check == "promoter":
        promoter.WORK = work / "promoter"
        paths = promoter.prepared("prom_core_all")
        overrides = data_overrides(paths)
        run_dir = work / "promoter" / "prom_core_all" / "cnn" / "seed0"
        res = fit(load_config(ROOT / promoter.RECIPES["cnn"], [*overrides, "train.seed=0", "train.progress=false"]),
                  run_dir, resume=(run_dir / CONFIG).exists())
        test = res["splits"]["test"]
        return {**{k: test[k] for k in PROMOTER_METRICS if k in test},
                "valid_accuracy": res["splits"]["valid"]["accuracy"], "train_seconds": res["train_seconds"]}
    recipe, overrides = dream.MODELS["legnet"]
    run_dir = work / "dream" / "legnet" / "seed0"
    cfg = load_config(ROOT / recipe, [*overrides, "train.seed=0", "train.progress=false"])
    res = fit(cfg, run_dir, resume=(run_dir / CONFIG).exists())
    return dream.record_of(res, run_dir, DreamTest.load(data_root() / "dream2022_yeast"), {}, env)


def baseline_run(check: str, rev: str) -> dict[str, Any]:
    """The check's record trained by the benchmark script of commit `rev` (a git worktree of it)."""
    tree = WORK / f"baseline-{rev}"
    if not tree.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), rev], cwd=ROOT, check=True)
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "HELIXLAB_DATA": str(data_root())}
    python = sys.executable
    if check == "promoter":
        out = tree / "reproduce_promoter.json"
        subprocess.run([python, "benchmarks/promoter.py", "--datasets", "prom_core_all", "--models", "cnn",
                        "--seeds", "0", "--results", str(out), "--work", str(tree / "work")], cwd=tree, env=env,
                       check=True)
        return matching(load_records(out), CHECKS[check][1])[-1]
    results = tree / "benchmarks" / "results" / "dream.json"  # the worktree's own copy: its record is re-made
    kept = [r for r in load_records(results) if not matching([r], CHECKS[check][1])]
    results.write_text(json.dumps(kept, indent=1) + "\n")  # dream.py skips a recorded run; a started one resumes
    subprocess.run([python, "benchmarks/dream.py", "--models", "legnet", "--seeds", "0"], cwd=tree, env=env,
                   check=True)
    return matching(load_records(results), CHECKS[check][1])[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", default=BASELINE, help="the commit to compare the current code with")
    ap.add_argument("--checks", nargs="+", choices=list(CHECKS), default=list(CHECKS))
    args = ap.parse_args()
    env = environment()
    for check in args.checks:
        for code, rev in (("current", env["commit"]), ("baseline", args.baseline)):
            if any(r["check"] == check and r["code"] == code and r["rev"] == rev for r in load_records(OUT_JSON)):
                continue
            print(f"== {TITLES[check]}: {code} code ({rev})", flush=True)
            record = current_run(check, env) if code == "current" else baseline_run(check, rev)
            metrics = CHECKS[check][2]
            append_record(OUT_JSON, {"check": check, "code": code, "rev": rev,
                                     "metrics": {k: record[k] for k in metrics},
                                     "train_seconds": record["train_seconds"], **provenance(env)})
            write_summary()
    write_summary()


def _same(a: dict[str, Any], b: dict[str, Any]) -> str:
    """'yes', or the metrics that differ (NaN equals NaN)."""
    diffs = [k for k in a if a[k] != b.get(k) and not (a[k] != a[k] and b.get(k) != b.get(k))]
    return "yes" if not diffs else "no (" + ", ".join(diffs) + ")"


def write_summary() -> None:
    records = load_records(OUT_JSON)
    if not records:
        return
    lines = ["| check | code | commit | metrics (this machine) | = baseline code, this machine | = committed record |",
             "|---|---|---|---|---|---|"]
    for check in CHECKS:
        old = committed(check)
        rows = [r for r in records if r["check"] == check]
        base = next((r for r in rows if r["code"] == "baseline"), None)
        for r in rows:
            shown = ", ".join(f"{k} {v!r}" for k, v in r["metrics"].items())
            vs_base = _same(r["metrics"], base["metrics"]) if base is not None and r is not base else "—"
            lines.append(f"| {TITLES[check]} | {r['code']} | {r['rev']} | {shown} | {vs_base} | "
                         f"{_same(r['metrics'], {k: old.get(k) for k in r['metrics']})} (record made at "
                         f"{old['commit']}) |")
    write_report(OUT_MD, "Reproduction: same seed, same numbers",
                 "Committed benchmark records re-run on this machine by the current code and by the baseline "
                 "commit's code; every metric compared with `==` (full float precision). Generated by "
                 "`benchmarks/reproduce.py`.", records[-1], lines)
    print("\n".join(lines))


if __name__ == "__main__":
    run_script(main, write_summary)
