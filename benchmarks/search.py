"""Search: Optuna's TPE against random search with the same trial budget, 2 repetitions each, on the
genome-context MLP (configs/context_mlp.toml at a small budget: 100,000 positions per epoch, 2 epochs,
10,000 valid and 20,000 test positions, the prepared chrX genome of benchmarks/context.py). Space:
learning rate (log 1e-4..1e-2), dropout (0..0.5), hidden layers (4 choices), flank (10, 25, 50).
20 trials per study; TPE starts with 5 random trials. Ranked on valid accuracy only. Results to
benchmarks/results/search.{json,md,png}; each study is its
own resumable `helixlab search` directory in benchmarks/work/search (one record per finished study).

    .venv/bin/python benchmarks/search.py
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

from helixlab.run.records import environment  # noqa: E402

OUT_JSON = RESULTS / "search.json"
OUT_MD = RESULTS / "search.md"
WORK = ROOT / "benchmarks" / "work" / "search"
TRIALS = 20
STARTUP = 5  # TPE's random start-up trials (Optuna's default, 10, would make half the study random)
AT = (5, 10, 15, 20)
SPACE = ["train.lr=float:1e-4,1e-2,log", "model.params.dropout=float:0.0,0.5",
         "model.params.hidden=choice:[128],[300,300],[300,300,300],[512,256]", "data.flank=choice:10,25,50"]
BASE = ["train.epochs=2", "data.samples={train=100000,valid=10000,test=20000}", "train.progress=false",
        "train.checkpoint_every=0"]


def main() -> None:
    from context import genome as prepared_genome  # the chrX genome, prepared once

    from helixlab.train.search import parse_space, run_search

    env = environment()
    genome = prepared_genome()
    data = data_overrides(dict.fromkeys(("train", "valid", "test"), genome))
    done = {(r["sampler"], r["repeat"]) for r in load_records(OUT_JSON)}
    for repeat in (0, 1):
        for sampler in ("tpe", "random"):
            if (sampler, repeat) in done:
                continue
            print(f"== {sampler}, repetition {repeat}", flush=True)
            t0 = time.perf_counter()
            records = run_search(ROOT / "configs" / "context_mlp.toml", {}, WORK / f"{sampler}_{repeat}",
                                 overrides=[*data, *BASE], budget=TRIALS, seed=100 + repeat,
                                 space=parse_space(SPACE), sampler=sampler, startup=STARTUP)
            records.sort(key=lambda r: r["number"])
            values = [r["valid"] for r in records]
            append_record(OUT_JSON, {"sampler": sampler, "repeat": repeat, "trials": len(records),
                                     "valid": values, "best_so_far": np.maximum.accumulate(values).tolist(),
                                     "best_params": max(records, key=lambda r: r["valid"])["params"],
                                     "best_test": max(records, key=lambda r: r["valid"])["test"]["accuracy"],
                                     "seconds": round(time.perf_counter() - t0, 1), **provenance(env)})
    write_summary()


def write_summary() -> None:
    records = load_records(OUT_JSON)
    if not records:
        return
    from helixlab.plots import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    lines = ["| sampler | repetitions | " + " | ".join(f"best valid after {n} trials" for n in AT)
             + f" | mean valid of trials {STARTUP + 1}-{TRIALS} | test accuracy of the best | seconds per study |",
             "|---|---|" + "---|" * (len(AT) + 3)]
    for k, sampler in enumerate(("tpe", "random")):
        rows = [r for r in records if r["sampler"] == sampler]
        if not rows:
            continue
        for r in rows:
            ax.plot(range(1, len(r["best_so_far"]) + 1), r["best_so_far"], color=f"C{k}",
                    ls="-" if r["repeat"] == 0 else "--", label=f"{sampler}, repetition {r['repeat']}")
        at = [np.mean([r["best_so_far"][min(n, len(r["best_so_far"])) - 1] for r in rows]) for n in AT]
        later = np.mean([v for r in rows for v in r["valid"][STARTUP:]])
        lines.append(f"| {sampler} | {len(rows)} | " + " | ".join(f"{a:.4f}" for a in at) + f" | {later:.4f} | "
                     f"{np.mean([r['best_test'] for r in rows]):.4f} | {np.mean([r['seconds'] for r in rows]):.0f} |")
    ax.set(xlabel="trials", ylabel="best valid accuracy so far", title="context MLP: TPE against random search")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, RESULTS / "search.png")
    write_report(OUT_MD, "Search: TPE against random",
                 f"`helixlab search` (Optuna) on configs/context_mlp.toml at a small budget ({', '.join(BASE[:2])}); "
                 f"space {'; '.join(SPACE)}; {TRIALS} trials per study, 2 repetitions per sampler (seeds 100, 101); "
                 f"TPE starts with {STARTUP} random trials (`--startup`). "
                 "Trials ranked on valid accuracy only; the test accuracy of each study's best trial is reported "
                 "beside it. Generated by `benchmarks/search.py`.", records[-1],
                 ["\n".join(lines), "", "![best valid accuracy against trials](search.png)", ""])
    print("\n".join(lines))


if __name__ == "__main__":
    run_script(main, write_summary)
