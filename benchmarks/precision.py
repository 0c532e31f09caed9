"""bf16 against fp32: test metrics of one recipe per model family trained both ways, same seeds, same machine.

`train.precision = "auto"` picks bf16 on a CPU with bf16 units for the families that train faster in it
(benchmarks/results/throughput_intel.md); this benchmark checks that it costs no quality. Each row is a
shipped recipe, shortened where a full run would not fit twice per seed in the session (the overrides are in
the table); the run evaluates in the precision it trained in. Resumable; results to
benchmarks/results/precision.{json,md}.

    .venv/bin/python benchmarks/precision.py                          # every row, seeds 0 1 2
    .venv/bin/python benchmarks/precision.py --rows legnet --seeds 0

A finished (row, precision, seed) is skipped on restart; an interrupted one resumes from its checkpoint.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import (  # noqa: E402
    RESULTS, append_record, data_overrides, fit_run, load_records, mean_sd, provenance, run_script, write_report)

from helixlab.run.records import environment  # noqa: E402

WORK = ROOT / "benchmarks" / "work" / "precision"
OUT_JSON = RESULTS / "precision.json"
OUT_MD = RESULTS / "precision.md"
PRECISIONS = ("fp32", "bf16")
# row -> (family, recipe, data, overrides, headline test metric). Data "prom_core_all": the official GUE
# splits in place of the recipe's; anything else names the recipe's own data.
CORE = "prom_core_all"
ROWS: dict[str, tuple[str, str, str, list[str], str]] = {
    "cnn": ("cnn", "configs/s1_cnn.toml", CORE, [], "mcc"),
    "cnn_gru": ("cnn_gru", "configs/s1_cnn_gru.toml", CORE, [], "mcc"),
    "mlp": ("mlp", "configs/context_mlp.toml", "S5 hg19 chrX", ["train.epochs=2"], "accuracy"),
    "bert_6mer": ("bert", "configs/s1_dnabert_2linear.toml", CORE, ["train.epochs=2"], "mcc"),
    "legnet": ("legnet", "configs/dream_legnet.toml", "DREAM dev_split", ["train.epochs=1"], "pearson"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = ap.parse_args()
    from promoter import prepared  # the promoter benchmark's shared prepared splits

    env = environment()
    core = None
    for seed in args.seeds:  # seed-major: an early stop still leaves every row paired fp32 / bf16
        for row in args.rows:
            family, recipe, data, extra, metric = ROWS[row]
            for precision in PRECISIONS:
                if any((r["row"], r["precision"], r["seed"]) == (row, precision, seed) for r in load_records(OUT_JSON)):
                    continue
                overrides = [f"train.seed={seed}", "train.progress=false", f"train.precision={precision}", *extra]
                if data == CORE:
                    core = core or prepared(CORE)
                    overrides += data_overrides(core)
                run_dir = WORK / row / precision / f"seed{seed}"
                res = fit_run(ROOT / recipe, overrides, run_dir, f"{row} {precision} seed {seed}")
                if res.get("precision") != precision:
                    raise SystemExit(f"{run_dir}: trained in {res.get('precision')}, asked for {precision}")
                test = res["splits"]["test"]
                append_record(OUT_JSON, {
                    "row": row, "family": family, "recipe": recipe, "overrides": extra,
                    "data": data, "precision": precision, "seed": seed,
                    "metric": metric, "value": test[metric], "test": test, "params": res["params"],
                    "epochs": res["epochs"], "train_seconds": res["train_seconds"],
                    "train_seq_per_s": res["train_seq_per_s"], **provenance(env)})
                print(f"{row} {precision} seed {seed}: test {metric} {test[metric]:.4f}, "
                      f"{res['train_seconds']:.0f} s", flush=True)
                write_summary()
    write_summary()


def table(records: list[dict[str, Any]]) -> str:
    """One line per row: each precision's mean ± sd over seeds, the paired bf16 - fp32 differences, speed."""
    lines = ["| row | family | recipe (overrides) | data | metric | seeds | fp32 | bf16 | bf16 - fp32 per seed "
             "| fp32 seed sd | train s fp32 | train s bf16 | speed-up |", "|" + "---|" * 13]
    for row in dict.fromkeys(r["row"] for r in records):
        rs = [r for r in records if r["row"] == row]
        by = {p: {r["seed"]: r for r in rs if r["precision"] == p} for p in PRECISIONS}
        paired = sorted(set(by["fp32"]) & set(by["bf16"]))
        diffs = [by["bf16"][s]["value"] - by["fp32"][s]["value"] for s in paired]
        fp32 = [r["value"] for r in by["fp32"].values()]
        secs = {p: statistics.mean(r["train_seconds"] for r in by[p].values()) if by[p] else None for p in PRECISIONS}
        first = rs[0]
        recipe = first["recipe"].removeprefix("configs/") + (f" ({' '.join(first['overrides'])})"
                                                             if first["overrides"] else "")
        lines.append("| " + " | ".join([
            row, first["family"], recipe, first["data"], first["metric"], str(len(paired)),
            mean_sd(fp32), mean_sd([r["value"] for r in by["bf16"].values()]),
            " / ".join(f"{d:+.3f}" for d in diffs) or "—",
            f"{statistics.stdev(fp32):.3f}" if len(fp32) > 1 else "—",
            *(f"{secs[p]:.0f}" if secs[p] is not None else "—" for p in PRECISIONS),
            f"{secs['fp32'] / secs['bf16']:.2f}x" if secs["fp32"] and secs["bf16"] else "—"]) + " |")
    return "\n".join(lines)


def write_summary() -> None:
    """Rewrite precision.md from precision.json (safe to run at any time)."""
    records = load_records(OUT_JSON)
    if not records:
        return
    text = table(records)
    write_report(OUT_MD, "bf16 against fp32: test metrics per family",
                 "Each recipe trained in fp32 and in bf16 autocast (`train.precision`) with the same seeds, on "
                 "one machine, one run at a time; test metric of the best-validation checkpoint, evaluated in "
                 "the precision it trained in. Generated by `benchmarks/precision.py`.", records[-1], [text, ""])
    print(text)


if __name__ == "__main__":
    run_script(main, write_summary)
