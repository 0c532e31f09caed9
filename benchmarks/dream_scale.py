"""DREAM 2022 at full scale: `helixlab prepare` on a 6.7 M-row training file and the batch loader.

The real training file (train_sequences.txt) is not available here, so the benchmark writes a
synthetic one of the same size and shape once (benchmarks/work/dream_scale/train_synthetic.txt):
6,739,258 lines `sequence<TAB>expression`, 110 bp sequences with the constant flanks (1 % of 108-109
bp, 0.5 % with an N), expression 0..17 with up to 3 decimals.

Measured, each in a fresh process (peak resident memory = ru_maxrss of that process):
  prepare      the file -> prepared arrays (variable length), rows/s and peak memory
  prepare_s4   the same with the S4 options (drop N, keep 110 bp, crop to the 80 bp random region)
  prepare_legnet  with LegNet's padding to 150 bp with the plasmid context
  loader       shuffled batches of 1,024 rows (codes + labels + RC augmentation) from the prepared
               arrays, rows/s, against the model's training throughput

    .venv/bin/python benchmarks/dream_scale.py             # all; finished measurements are kept
    .venv/bin/python benchmarks/dream_scale.py --rows 1000000   # a smaller file (a separate record)
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import RESULTS, append_record, load_records, provenance, run_script, write_report  # noqa: E402

WORK = ROOT / "benchmarks" / "work" / "dream_scale"
OUT_JSON = RESULTS / "dream_scale.json"
OUT_MD = RESULTS / "dream_scale.md"
FULL_ROWS = 6_739_258
LEFT, RIGHT = "TGCATTTTTTTCACATC", "GGTTACGGCTGTT"
OPTIONS = {"prepare": {}, "prepare_s4": {"drop_n": True, "lengths": (110,), "crop": (17, -13)},
           "prepare_legnet": {"pad_to": 150, "pad_context": "pTpA"}}


def synthetic_file(rows: int) -> Path:
    """Write the synthetic DREAM-format file once (seeded)."""
    import numpy as np

    path = WORK / f"train_synthetic_{rows}.txt"
    if path.exists():
        return path
    WORK.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    tmp = path.with_suffix(".tmp")
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)
    with open(tmp, "w") as fh:
        for start in range(0, rows, 200_000):
            n = min(200_000, rows - start)
            core = letters[rng.integers(0, 4, (n, 80))]
            core[rng.random(n) < 0.005, rng.integers(0, 80)] = ord("N")
            lines = []
            cut = rng.random(n)
            values = np.where(rng.random(n) < 0.5, rng.integers(0, 18, n), np.round(rng.uniform(0, 17, n), 3))
            for i in range(n):
                seq = LEFT + core[i].tobytes().decode() + RIGHT
                if cut[i] < 0.01:
                    seq = seq[: 108 + int(cut[i] * 200)]
                lines.append(f"{seq}\t{values[i]:g}\n")
            fh.write("".join(lines))
    tmp.rename(path)
    return path


def measure_prepare(path: Path, options: dict[str, Any], out: Path) -> dict[str, Any]:
    from helixlab.data.shards import Shard, prepare
    from helixlab.seq.transforms import SeqOptions

    if out.exists():
        shutil.rmtree(out)
    t0 = time.perf_counter()
    prepare([path], out, fmt="dream", options=SeqOptions(**options), progress=False)
    seconds = time.perf_counter() - t0
    meta = Shard.open(out).meta
    return {"rows_in": int(meta["records"]) + int(meta["dropped"]), "rows_out": meta["records"],
            "dropped": meta["dropped"], "length": meta["length"], "seconds": round(seconds, 2),
            "rows_per_s": round((int(meta["records"]) + int(meta["dropped"])) / seconds),
            "file_mb": round(path.stat().st_size / 2**20), "prepared_mb": round(sum(
                f.stat().st_size for f in out.iterdir()) / 2**20)}


def measure_loader(prepared: Path, batch_size: int = 1024, batches: int = 2000) -> dict[str, Any]:
    from helixlab.data.batches import load_batch, rc_augment, train_batches
    from helixlab.data.shards import Shard

    shard = Shard.open(prepared)
    t0 = time.perf_counter()
    n = 0
    for b, idx in train_batches(shard, batch_size=batch_size, seed=0, epoch=0):
        x, y = load_batch(shard, idx)
        x, _ = rc_augment(x, 0, 0, b)
        n += len(idx)
        if b + 1 >= batches:
            break
    seconds = time.perf_counter() - t0
    return {"rows": n, "batch_size": batch_size, "seconds": round(seconds, 2), "rows_per_s": round(n / seconds),
            "length": shard.length, "variable_length": shard.length is None}


def child(kind: str, rows: int) -> None:
    """One measurement in this (fresh) process; prints its JSON."""
    path = synthetic_file(rows)
    if kind.startswith("prepare"):
        result = measure_prepare(path, OPTIONS[kind], WORK / f"prepared_{kind}_{rows}")
    else:
        prepared = WORK / f"prepared_{kind.split(':')[1]}_{rows}"
        result = measure_loader(prepared)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print("RESULT " + json.dumps(result), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=FULL_ROWS)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.rows)
        return
    from helixlab.run.records import environment

    env = environment()
    t0 = time.perf_counter()
    path = synthetic_file(args.rows)
    print(f"synthetic file {path} ({path.stat().st_size / 2**20:.0f} MB, {time.perf_counter() - t0:.0f} s)", flush=True)
    kinds = [*OPTIONS, "loader:prepare", "loader:prepare_legnet"]
    for kind in kinds:
        if any(r["measure"] == kind and r["rows"] == args.rows for r in load_records(OUT_JSON)):
            continue
        proc = subprocess.run([sys.executable, __file__, "--child", kind, "--rows", str(args.rows)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{kind} failed:\n{proc.stderr}")
        result = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))[7:])
        record = {"measure": kind, "rows": args.rows, **result, **provenance(env)}
        append_record(OUT_JSON, record)
        print(kind, result, flush=True)
    write_summary()


def write_summary() -> None:
    records = load_records(OUT_JSON)
    if not records:
        return
    env = records[-1]
    lines = ["| measure | rows | options | rows/s | seconds | peak memory (MB) | output |",
             "|---|---|---|---|---|---|---|"]
    for r in records:
        if r["measure"].startswith("prepare"):
            opts = ", ".join(f"{k}={v}" for k, v in OPTIONS[r["measure"]].items()) or "as is"
            out = f"{r['rows_out']:,} rows ({r['dropped']:,} dropped), {r['prepared_mb']} MB from {r['file_mb']} MB"
        else:
            opts = f"batch {r['batch_size']}, shuffled, RC augmentation"
            out = f"{r['rows']:,} rows, length {r['length'] or 'variable'}"
        lines.append(f"| {r['measure']} | {r['rows']:,} | {opts} | {r['rows_per_s']:,} | {r['seconds']} | "
                     f"{r['peak_rss_mb']:,} | {out} |")
    lines += ["", "Targets: prepare >= 1,000,000 rows/s with peak memory <= 2 GB; the loader faster than the model "
              "trains (LegNet-class here: 230-290 sequences/s on 2 CPU cores; see dream.md).", ""]
    print(write_report(OUT_MD, "DREAM 2022 at scale: prepare and loader",
                       "A synthetic training file of the real one's size and shape (see `benchmarks/dream_scale.py`), "
                       "each measurement in a fresh process; peak memory is that process's maximum resident set.",
                       env, lines))


if __name__ == "__main__":
    run_script(main, write_summary)
