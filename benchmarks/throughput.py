"""Training and inference throughput per model family, fp32 against bf16 autocast (and torch.compile),
side by side in one process, on the shipped recipes' model shapes. Results: benchmarks/results/throughput.*

    .venv/bin/python benchmarks/throughput.py                  # every recipe below
    .venv/bin/python benchmarks/throughput.py --only legnet cnn_s5_200 --compile
    .venv/bin/python benchmarks/throughput.py --summary        # rewrite the markdown from the records

Each row: a training step (forward, loss, backward, AdamW step) at the recipe's batch size, and
inference (`helixlab.apply.predict.predict`, the path of `predict`/`evaluate`, with the recipe's strand
averaging) at its evaluation batch size, in sequences per second (on a CPU, 1,024 sequences per
measurement): the median of timed steps after a warm-up step, at least `--seconds` of each. Inputs
are random base codes of the recipe's input length. Finished rows of this machine and commit are
skipped on restart; `--fresh` measures again.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import RESULTS, append_record, load_records, provenance, run_script, write_report  # noqa: E402

OUT_JSON = RESULTS / "throughput.json"
OUT_MD = RESULTS / "throughput.md"

# name -> (recipe, overrides, input length, outputs): the shapes helixlab ships
S5_WIDE = "model.params.channels=[200,200,200,200,200,200]"
ROWS: dict[str, tuple[str, list[str], int, int]] = {
    "cnn_promoter_best": ("configs/promoter_best.toml", [], 300, 1),
    "cnn_s5": ("configs/context_cnn.toml", [], 100, 4),
    "cnn_s5_200": ("configs/context_cnn.toml", [S5_WIDE, "model.params.hidden=[200]"], 100, 4),
    "mlp_s5": ("configs/context_mlp.toml", [], 100, 4),
    "gru": ("configs/s1_gru.toml", [], 300, 1),
    "window_gru": ("configs/s1_window_gru.toml", [], 300, 1),
    "cnn_gru": ("configs/s1_cnn_gru.toml", [], 300, 1),
    "cnn_lstm": ("configs/dream_cnn_lstm.toml", [], 80, 1),
    "kmer_linear": ("configs/promoter_kmer_linear.toml", [], 300, 1),
    "legnet": ("configs/dream_legnet.toml", [], 110, 18),
    "legnet_full": ("configs/dream_legnet_full.toml", ["train.batch_size=128"], 150, 18),
    "bert_nucleotide_tiny": ("configs/dream_s2_bert.toml", [], 110, 1),
    "bert_6mer_tiny": ("configs/dream_s3_bert6.toml", [], 110, 1),
}


def seconds_per_call(fn: Callable[[], Any], min_seconds: float, max_calls: int = 200) -> float:
    """Median seconds of `fn` after a warm-up call, over at least `min_seconds` (and 2 calls)."""
    fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 2 or (time.perf_counter() - start < min_seconds and len(times) < max_calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(name: str, seconds: float, compile_: bool, device: str = "cpu", overrides: tuple[str, ...] = (),
            label: str | None = None) -> dict[str, Any]:
    """One row of ROWS (with extra config `overrides`, recorded under `label`), measured on `device`."""
    import torch

    from helixlab.apply.predict import predict
    from helixlab.config import load_config
    from helixlab.models import build_model, count_params
    from helixlab.models.base import autocast, resolve_precision

    recipe, recipe_overrides, length, n_out = ROWS[name]
    cfg = load_config(ROOT / recipe, [*recipe_overrides, *overrides])
    t = cfg.train
    torch.manual_seed(0)
    dev = torch.device(device)
    model = build_model(cfg.model.name, cfg.model.params, length, n_out).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randint(0, 4, (t.batch_size, length), dtype=torch.uint8, device=dev)
    n_eval = max(t.eval_batch_size, t.batch_size)
    n_eval = n_eval if dev.type == "cuda" else min(n_eval, 1024)
    x_eval = torch.randint(0, 4, (n_eval, length), dtype=torch.uint8)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def step(net: torch.nn.Module, precision: str) -> Callable[[], None]:
        def run() -> None:
            with autocast(dev, precision):
                loss = net(x).float().square().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sync()
        return run

    def infer(precision: str) -> Callable[[], None]:
        return lambda: predict(model, x_eval, batch_size=t.eval_batch_size, rc_average=t.rc_average,
                               precision=precision, device=dev)

    model.train()
    row: dict[str, Any] = {"row": label or name, "recipe": recipe, "overrides": [*recipe_overrides, *overrides],
                           "model": cfg.model.name, "params": count_params(model),
                           "length": length, "batch": t.batch_size, "eval_batch": t.eval_batch_size,
                           "rc_average": t.rc_average, "auto": resolve_precision("auto", dev, model),
                           "device": dev.type}
    for precision in ("fp32", "bf16"):
        row[f"train_{precision}"] = t.batch_size / seconds_per_call(step(model, precision), seconds)
    if compile_:
        compiled = torch.compile(model)
        t0 = time.perf_counter()
        step(compiled, "fp32")()
        row["compile_seconds"] = time.perf_counter() - t0
        row["train_fp32_compiled"] = t.batch_size / seconds_per_call(step(compiled, "fp32"), seconds)
    for precision in ("fp32", "bf16"):
        row[f"infer_{precision}"] = len(x_eval) / seconds_per_call(infer(precision), seconds, max_calls=50)
    return row


def write_summary() -> None:
    records = load_records(OUT_JSON)
    if not records:
        return
    env = {**records[-1], "processor": records[-1]["machine"], "torch_threads": records[-1]["threads"]}

    def f(v: Any) -> str:
        return "—" if v is None else f"{v:,.0f}"

    lines = ["| row | model | params | length | batch | train fp32 | train bf16 | bf16 / fp32 | train compiled "
             "| infer fp32 | infer bf16 | infer / train (fp32) | auto here |", "|" + "---|" * 13]
    for r in {r["row"]: r for r in records}.values():  # the latest record of each row
        lines.append(f"| {r['row']} | {r['model']} | {r['params']:,} | {r['length']} | {r['batch']} | "
                     f"{f(r['train_fp32'])} | {f(r['train_bf16'])} | {r['train_bf16'] / r['train_fp32']:.2f} | "
                     f"{f(r.get('train_fp32_compiled'))} | {f(r['infer_fp32'])} | {f(r['infer_bf16'])} | "
                     f"{r['infer_fp32'] / r['train_fp32']:.1f} | {r['auto']} |")
    cpu_bf16 = records[-1].get("cpu_bf16")
    write_report(OUT_MD, "Throughput: sequences per second per model family, fp32 vs bf16",
                 "Training step (forward + loss + backward + AdamW) at the recipe's batch size, and inference "
                 "(`predict`, with the recipe's strand averaging: two passes) at its evaluation batch size; "
                 "median over timed steps after warm-up, all rows in one process. `auto here` is what "
                 "`precision = \"auto\"` picks on this machine. Generated by `benchmarks/throughput.py`.",
                 env, [f"CPU bf16 units (AVX512-BF16 or AMX): {'yes' if cpu_bf16 else 'no'}.", "", *lines])


def main() -> None:
    global OUT_JSON, OUT_MD
    import torch

    from helixlab.models.base import cpu_has_bf16
    from helixlab.run.records import environment

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", default=list(ROWS), choices=list(ROWS))
    ap.add_argument("--seconds", type=float, default=3.0, help="timed seconds per measurement (at least 3 calls)")
    ap.add_argument("--compile", action="store_true", help="also time a torch.compile'd training step")
    ap.add_argument("--fresh", action="store_true", help="measure rows again even when recorded")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--results", type=Path, default=OUT_JSON, help="results file (the .md is written beside it)")
    args = ap.parse_args()
    OUT_JSON, OUT_MD = args.results, args.results.with_suffix(".md")
    env = environment()
    if not args.fresh:
        done = {r["row"] for r in load_records(OUT_JSON) if r["commit"] == env["commit"]
                and r.get("cpu_model") == env.get("cpu_model")}
    else:
        done = set()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU bf16 units: {cpu_has_bf16()}")
    for name in args.only:
        if name in done:
            continue
        row = {**measure(name, args.seconds, args.compile, args.device), "cpu_bf16": cpu_has_bf16(), **provenance(env)}
        append_record(OUT_JSON, row)
        print({k: (round(v) if isinstance(v, float) else v) for k, v in row.items()
               if k.startswith(("row", "train", "infer", "params"))}, flush=True)
    write_summary()
    print(OUT_MD.read_text())


if __name__ == "__main__":
    run_script(main, write_summary)
