"""Time and peak memory of counting the two-sided contexts of hg19 chrX 0-50 Mb (the context_count
model's fit), in memory and by the bucketed path; resumable; results to
benchmarks/results/context_counting.{json,md}.

Each configuration counts in a fresh process (`--one`), so its peak resident memory is its own.
The bucketed path is what a genome too large for memory uses (`max_memory_gb`); here it runs on the
same 50 Mb with a 1 GB limit, to time it and to check it gives the same keys.

    .venv/bin/python benchmarks/context_counting.py            # every configuration not yet recorded
    .venv/bin/python benchmarks/context_counting.py --summary  # rewrite the summary only
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import RESULTS, append_record, load_records, provenance, run_script, write_report  # noqa: E402

OUT_JSON = RESULTS / "context_counting.json"
OUT_MD = RESULTS / "context_counting.md"
ALL = ("interleaved", "left", "right")
# name -> (k, strands, orders, max memory GB)
CONFIGS = {"k16_interleaved": (16, "both", ("interleaved",), 3.0),
           "k16_interleaved_bucketed": (16, "both", ("interleaved",), 1.0),
           "k16_3orders": (16, "both", ALL, 3.0),
           "k16_interleaved_forward": (16, "forward", ("interleaved",), 3.0)}


def one(name: str) -> dict[str, object]:
    """Fit one configuration's model in this process as the trainer does (one order sorted at a time into
    the model's arrays); its time, peak memory and a digest of the first order's keys."""
    import numpy as np

    from context import genome  # the benchmark's prepared genome

    from helixlab.data.contexts import sorted_contexts
    from helixlab.data.genome import parse_regions
    from helixlab.data.shards import Shard
    from helixlab.models import build_model

    k, strands, orders, memory = CONFIGS[name]
    shard = Shard.open(genome())
    regions = parse_regions(["chrX:0-50000000"], shard, "benchmark")
    model = build_model("context_count", {"k": k, "strands": strands, "orders": list(orders)}, 2 * k + 1, 4)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    with tempfile.TemporaryDirectory(dir=ROOT / "benchmarks" / "work") as tmp:
        t0 = time.perf_counter()
        per_order = (sorted_contexts(shard, regions, k, np.arange(4), both_strands=strands == "both", order=o,
                                     max_memory=memory * 1e9, work_dir=Path(tmp) / o) for o in orders)
        model.fit_counts((per_order, np.array([3, 2, 1, 0])))
        seconds = time.perf_counter() - t0
    keys = model.keys[0].numpy()
    digest = hashlib.sha1(keys[:: max(1, len(keys) // 100_000)].tobytes()).hexdigest()[:12]
    n = int(model.keys.shape[1])
    return {"config": name, "k": k, "strands": strands, "orders": list(orders), "max_memory_gb": memory, "keys": n,
            "seconds": round(seconds, 1),
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2),
            "rss_before_gb": round(base, 2), "keys_digest": digest}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--one", choices=list(CONFIGS), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one)))
        return
    from helixlab.run.records import environment

    env = environment()
    for name in CONFIGS:
        if name in {r["config"] for r in load_records(OUT_JSON)}:
            continue
        print(f"== {name}", flush=True)
        out = subprocess.run([sys.executable, __file__, "--one", name], check=True, capture_output=True, text=True)
        record = {**json.loads(out.stdout.strip().splitlines()[-1]), **provenance(env)}
        append_record(OUT_JSON, record)
        print(record, flush=True)
        write_summary()
    write_summary()


def write_summary() -> None:
    records = load_records(OUT_JSON)
    if not records:
        return
    lines = ["| configuration | k each side | strands | orders | memory limit GB | keys per order | seconds | "
             "peak memory GB | keys digest |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['config']} | {r['k']} | {r['strands']} | {len(r['orders'])} | {r['max_memory_gb']:g} | "
              f"{r['keys']:,} | "
              f"{r['seconds']:.0f} | {r['peak_rss_gb']:.2f} | `{r['keys_digest']}` |" for r in records]
    write_report(OUT_MD, "Counting two-sided contexts (context_count fit)",
                 "hg19 chrX 0-50 Mb: every position with k clean bases each side (and its reverse complement with "
                 "both strands) as one sorted 64-bit key and a class per order of the context bases, by "
                 "`helixlab.data.contexts.sorted_contexts`, into a context_count model (`fit_counts`, as the trainer "
                 "does). Seconds: the whole fit. "
                 "Peak memory is the resident maximum of a fresh process (the genome is memory-mapped; about 0.1 GB "
                 "of it is Python and numpy). The bucketed path (256 bucket files on disk, each sorted alone into a "
                 "memory-mapped output) is what runs above `max_memory_gb`; equal digests mean equal keys. "
                 "Generated by `benchmarks/context_counting.py`.", records[-1], ["\n".join(lines), ""])
    print("\n".join(lines))


if __name__ == "__main__":
    run_script(main, write_summary)
