"""Genome intervals as data, from the CLI alone, on real data: the repeat-masked elements of hg19 chrX
0-70 Mb (the data set's RepeatMasker BED) against GC-matched genome windows.

1. positives: 6,000 RepeatMasker intervals of at least 300 bp (a seeded sample), as a BED;
2. `helixlab background GENOME --matched positives.bed --length 300`: as many GC-matched windows that
   overlap none of the positives;
3. `helixlab prepare --bed labelled.bed --genome GENOME --length 300 --label-col score` with a region split
   (the data hold one chromosome): chrX:50-60 Mb valid, chrX:60-70 Mb test, the rest train; windows across
   a region's edge are dropped;
4. `helixlab train configs/s1_cnn.toml` on those splits (test metrics on 60-70 Mb only);
5. `helixlab search` (Optuna TPE, 8 trials) over learning rate, dropout and channels, ranked on valid.

Each step is skipped when its output is there (training and search resume). Results to
benchmarks/results/intervals.{json,md}.

    .venv/bin/python benchmarks/intervals.py
"""

from __future__ import annotations

import gzip
import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import RESULTS, append_record, data_overrides, load_records, provenance, run_script, write_report  # noqa: E402

from helixlab.paths import data_root  # noqa: E402
from helixlab.run.records import environment  # noqa: E402

OUT_JSON = RESULTS / "intervals.json"
OUT_MD = RESULTS / "intervals.md"
WORK = ROOT / "benchmarks" / "work" / "intervals"
POSITIVES = 6000
SPLIT = ["--split", "chrX:50000000-60000000:valid", "--split", "chrX:60000000-70000000:test"]
TRAIN = ["--set", "train.epochs=3", "--set", "train.progress=false"]
SPACE = ["--space", "train.lr=float:3e-4,5e-3,log", "--space", "model.params.dropout=float:0.0,0.5",
         "--space", "model.params.channels=choice:[64,64],[128,128],[192,192]"]
TRIALS = 8


def helixlab(args: list[str], log: list[str]) -> None:
    shown = "helixlab " + " ".join(shlex.quote(a) for a in args)
    print(f"$ {shown}", flush=True)
    log.append(shown)
    subprocess.run([sys.executable, "-m", "helixlab", *args], check=True, cwd=ROOT)


def positives(rmsk: Path, out: Path) -> None:
    """A seeded sample of the RepeatMasker intervals of at least 300 bp, labelled 1 (score column)."""
    rows = [line.split("\t")[:3] for line in gzip.open(rmsk, "rt") if line.strip()]
    long = [r for r in rows if int(r[2]) - int(r[1]) >= 300]
    pick = np.sort(np.random.default_rng(0).choice(len(long), POSITIVES, replace=False))
    out.write_text("".join(f"{long[i][0]}\t{long[i][1]}\t{long[i][2].strip()}\trepeat{i}\t1\t+\n" for i in pick))


def main() -> None:
    env = environment()
    if load_records(OUT_JSON):  # measured: remove benchmarks/results/intervals.json to measure again
        write_summary()
        return
    chrx = data_root() / "genome_human_hg19_chrX_0-70Mb"
    genome = str(chrx / "hg19_chrX_0-69999930.softmasked.fa.gz")
    WORK.mkdir(parents=True, exist_ok=True)
    pos, bg, labelled = WORK / "positives.bed", WORK / "background.bed", WORK / "labelled.bed"
    data, run, search = WORK / "data", WORK / "run", WORK / "search"
    log: list[str] = []
    t0 = time.perf_counter()
    if not pos.exists():
        positives(chrx / "hg19_rmsk_chrX_0-69999930.bed.gz", pos)
    if not bg.exists():
        helixlab(["background", genome, "--matched", str(pos), "--length", "300", "--seed", "0", "-o", str(bg)], log)
    if not labelled.exists():
        labelled.write_text(pos.read_text() + bg.read_text())
    if not (data / "intervals.json").exists():
        helixlab(["prepare", "--bed", str(labelled), "--genome", genome, "--length", "300", "--label-col", "score",
                  *SPLIT, "-o", str(data)], log)
    splits = data_overrides({s: data / s for s in ("train", "valid", "test")})
    sets = [a for s in splits for a in ("--set", s)]
    if (run / "config.json").exists() and not (run / "results.json").exists():
        helixlab(["train", "--resume", str(run)], log)  # interrupted: resumed from its checkpoint
    elif not (run / "results.json").exists():
        helixlab(["train", "configs/s1_cnn.toml", *sets, *TRAIN, "-o", str(run)], log)
    helixlab(["search", "configs/s1_cnn.toml", *SPACE, "--trials", str(TRIALS), "--seed", "0", *sets, *TRAIN,
              "-o", str(search)], log)
    res = json.loads((run / "results.json").read_text())
    trials = json.loads((search / "search.json").read_text())
    best = max(trials, key=lambda r: r["valid"])
    report = json.loads((data / "intervals.json").read_text())
    shutil.copyfile(bg.with_suffix(".gc.png"), RESULTS / "intervals_gc.png")
    append_record(OUT_JSON, {"intervals": report, "train": {k: res["splits"][k] for k in ("valid", "test")},
                             "train_seconds": res["train_seconds"], "params": res["params"],
                             "search_best": {"params": best["params"], "valid": best["valid"], "test": best["test"]},
                             "search_trials": len(trials), "commands": log, "seconds": round(time.perf_counter() - t0),
                             **provenance(env)})
    write_summary()


def write_summary() -> None:
    records = load_records(OUT_JSON)
    if not records:
        return
    r = records[-1]
    data = str(data_root())
    commands = [c.replace(data, "$HELIXLAB_DATA").replace(f"{ROOT}/", "") for c in r["commands"]]
    parts = r["intervals"]["splits"]
    dropped = ", ".join(f"{v:,} {k.replace('_', ' ')}" for k, v in r["intervals"]["dropped"].items() if v)
    keys = ("accuracy", "mcc", "auroc", "auprc")
    lines = [f"Prepared: {r['intervals']['intervals']:,} intervals, {r['intervals']['kept']:,} kept (dropped: "
             f"{dropped or 'none'}); " + ", ".join(f"{k} {v['records']:,}" for k, v in parts.items()) + ".", "",
             "| model | split | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
    for split in ("valid", "test"):
        lines.append(f"| s1_cnn, 3 epochs ({r['params']:,} params, {r['train_seconds']:.0f} s) | {split} | "
                     + " | ".join(f"{r['train'][split][k]:.3f}" for k in keys) + " |")
    best = r["search_best"]
    lines += ["", f"Search: {r['search_trials']} Optuna TPE trials; best on valid {best['valid']:.4f} (MCC) with "
              + ", ".join(f"{k} = {v}" for k, v in best["params"].items())
              + f"; its test MCC {best['test']['mcc']:.3f}, AUROC {best['test']['auroc']:.3f}.", "",
              "Commands (the positives BED is a seeded sample of the RepeatMasker intervals >= 300 bp, "
              "score 1; labelled.bed is it followed by the background BED):", "", "```",
              *commands, "```", "", "![GC of positives and background](intervals_gc.png)", ""]
    write_report(OUT_MD, "Genome intervals: chrX repeats against GC-matched background",
                 "RepeatMasker elements of hg19 chrX 0-70 Mb (300 bp windows at their centres) against as many "
                 "GC-matched windows that overlap none of them, split by region: 50-60 Mb valid, 60-70 Mb test. "
                 "Generated by `benchmarks/intervals.py`.", r, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    run_script(main, write_summary)
