"""The CUDA path end to end, timed: run by benchmarks/gpu_check.sh on a lent GPU (about 5-8 minutes on one
H200-class GPU); nothing is installed or downloaded. Records sequences/s and peak GPU memory per stage to
benchmarks/results/gpu.json.

Stages (each a record):
  throughput   benchmarks/throughput.py rows on the GPU, fp32 vs bf16: the full-size LegNet recipe, the S5
               CNN at its published width (200 filters), the recurrent and BERT recipes
  legnet_full  configs/dream_legnet_full.toml (stem 256, 150 bp with the pTpA context) trained for `--steps`
               steps in bf16 on a synthetic DREAM-sized file (6,739,258 rows; `--rows`), then evaluate,
               predict (strand-averaged) on 100,000 rows, ISM of 64 sequences and ONNX export, on the GPU
  bert_base    masked-language-model pretraining steps of a BERT-base (12 x 768) 6-mer encoder on 300 bp
               sequences, bf16

    bash benchmarks/gpu_check.sh                                   # on the GPU machine
    .venv/bin/python benchmarks/gpu_check.py --device cpu --rows 20000 --steps 4 --small   # a CPU dry run
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import RESULTS, data_overrides, provenance, write_report  # noqa: E402
from dream_scale import synthetic_file  # noqa: E402

WORK = ROOT / "benchmarks" / "work" / "gpu_check"
STAGES = ("throughput", "batch_scan", "legnet_full", "bert_base")


def peak_memory(device: str) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None


def reset_peak(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def measure_rows(stage: str, rows: list[tuple[str, tuple[str, ...], str]], seconds: float,
                 device: str) -> list[dict[str, Any]]:
    """throughput.measure for each (ROWS name, extra overrides, label); a row that fails is recorded with its
    error and the other rows still run."""
    from throughput import measure

    out = []
    for name, overrides, label in rows:
        reset_peak(device)
        try:
            out.append({"stage": stage, **measure(name, seconds, False, device, overrides, label),
                        "peak_gpu_gib": peak_memory(device)})
        except Exception as exc:  # noqa: BLE001 - recorded with its error, not hidden
            traceback.print_exc()
            out.append({"stage": stage, "row": label, "error": f"{type(exc).__name__}: {exc}"})
        print(out[-1], flush=True)
    return out


def stage_throughput(device: str, small: bool) -> list[dict[str, Any]]:
    names = ["cnn_s5"] if small else ["legnet_full", "legnet", "cnn_s5_200", "cnn_promoter_best", "cnn_gru",
                                      "cnn_lstm", "bert_6mer_tiny", "mlp_s5"]
    return measure_rows("throughput", [(n, (), n) for n in names], 0.5 if small else 3.0, device)


def stage_batch_scan(device: str, small: bool) -> list[dict[str, Any]]:
    """fp32 against bf16 at a larger batch than the recipes' (a GPU is launch-bound at small ones), and a
    BERT-base encoder: what `precision = "auto"` should pick on a GPU."""
    if small:
        return measure_rows("batch_scan", [("cnn_s5", (), "cnn_s5")], 0.5, device)
    names = ("legnet", "cnn_s5_200", "cnn_promoter_best", "cnn_gru", "cnn_lstm", "bert_6mer_tiny", "mlp_s5")
    rows = [(n, ("train.batch_size=1024",), f"{n}_b1024") for n in names] \
        + [("bert_6mer_tiny", ("model.params.size='base'",), "bert_6mer_base_b64"),
           ("bert_6mer_tiny", ("model.params.size='base'", "train.batch_size=256"), "bert_6mer_base_b256")]
    return measure_rows("batch_scan", rows, 2.0, device)


def stage_legnet(device: str, rows: int, steps: int, small: bool) -> dict[str, Any]:
    import numpy as np

    from helixlab.apply.evaluate import evaluate_run
    from helixlab.apply.export import export_onnx
    from helixlab.apply.predict import model_inputs, predict_file
    from helixlab.config import load_config
    from helixlab.interpret.ism import ism
    from helixlab.run.loaded import load_run
    from helixlab.train import fit

    train = synthetic_file(rows)
    held = WORK / "heldout.txt"  # the first rows again, for evaluate and predict throughput
    with open(train) as fh:
        lines = list(itertools.islice(fh, 2_000 if small else 100_000))
    held.write_text("".join(lines))
    run = WORK / "legnet_full"
    shutil.rmtree(run, ignore_errors=True)
    over = [*data_overrides({"train": train}), "data.test=''", "data.holdout=0.001", f"train.budget='{steps} steps'",
            "train.precision='bf16'", f"train.device={device!r}", "train.progress=false"]
    if small:
        over += ["model.params={stem=16,channels=[16,16],expand=2,hidden=[16]}", "train.batch_size=64",
                 "train.eval_batch_size=256"]
    cfg = load_config(ROOT / "configs" / "dream_legnet_full.toml", over)
    cfg.data.test = None
    reset_peak(device)
    t0 = time.perf_counter()
    res = fit(cfg, run)
    record: dict[str, Any] = {"stage": "legnet_full", "rows": rows, "steps": steps, "params": res["params"],
                              "batch": cfg.train.batch_size, "fit_seconds": time.perf_counter() - t0,
                              "train_seq_per_s": res["train_seq_per_s"], "train_peak_gpu_gib": peak_memory(device),
                              "valid_pearson": res["splits"]["valid"]["pearson"]}
    loaded = load_run(run, device=device)
    reset_peak(device)
    t0 = time.perf_counter()
    evaluate_run(loaded, held, device=device, progress=False)
    record["evaluate_seq_per_s"] = len(lines) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    predict_file(loaded, held, WORK / "pred.csv", rc_average=True, device=device, overwrite=True)
    record["predict_seq_per_s"] = len(lines) / (time.perf_counter() - t0)
    record["inference_peak_gpu_gib"] = peak_memory(device)
    x = np.random.default_rng(0).integers(0, 4, (8 if small else 64, 110)).astype(np.uint8)
    x = model_inputs(loaded, x.ravel(), np.full(len(x), 110), path="<random>", lines=np.arange(len(x)))
    t0 = time.perf_counter()
    ism(loaded.model, x, device=device, precision="bf16")
    record["ism_mutants_per_s"] = x.shape[0] * x.shape[1] * 3 / (time.perf_counter() - t0)
    spec = export_onnx(load_run(run), WORK / "legnet_full.onnx", overwrite=True)
    record["onnx_max_abs_diff"] = spec["parity"]["max_abs_diff"]
    print(record, flush=True)
    return record


def stage_bert(device: str, steps: int, small: bool) -> dict[str, Any]:
    import numpy as np

    from helixlab.config import config_from_dict
    from helixlab.seq import alphabet
    from helixlab.train import fit

    fasta = WORK / "mlm.fa"
    rng = np.random.default_rng(0)
    n = 2_000 if small else 50_000
    fasta.write_text("".join(f">s{i}\n{alphabet.decode(rng.integers(0, 4, 300).astype(np.uint8))}\n"
                             for i in range(n)))
    run = WORK / "bert_base"
    shutil.rmtree(run, ignore_errors=True)
    cfg = config_from_dict({
        "data": {"train": str(fasta)},
        "model": {"name": "bert", "params": {"tokenizer": "kmer", "k": 6, "size": "mini" if small else "base"}},
        "task": {"kind": "mlm"},
        "train": {"budget": f"{steps} steps", "batch_size": 16 if small else 128, "lr": 1e-4, "precision": "bf16",
                  "device": device, "progress": False}}, "gpu_check")
    reset_peak(device)
    t0 = time.perf_counter()
    res = fit(cfg, run)
    record = {"stage": "bert_base", "steps": steps, "params": res["params"], "batch": cfg.train.batch_size,
              "fit_seconds": time.perf_counter() - t0, "train_seq_per_s": res["train_seq_per_s"],
              "peak_gpu_gib": peak_memory(device)}
    print(record, flush=True)
    return record


def write_summary(results: Path) -> None:
    """benchmarks/results/gpu.md from gpu.json: throughput rows (recipe batch, then a larger one), the
    full-size LegNet and BERT-base stages."""
    data = json.loads(results.read_text())

    def f(v: Any, digits: int = 0) -> str:
        return "—" if v is None else f"{v:,.{digits}f}"

    rows = ["| row | model | params | length | batch | train fp32 | train bf16 | bf16 / fp32 | infer fp32 | "
            "infer bf16 | peak GPU GiB | auto |", "|" + "---|" * 12]
    for r in data["records"]:
        if r["stage"] in ("throughput", "batch_scan") and "error" not in r:
            rows.append(f"| {r['row']} | {r['model']} | {r['params']:,} | {r['length']} | {r['batch']} | "
                        f"{f(r['train_fp32'])} | {f(r['train_bf16'])} | {r['train_bf16'] / r['train_fp32']:.2f} | "
                        f"{f(r['infer_fp32'])} | {f(r['infer_bf16'])} | {f(r['peak_gpu_gib'], 1)} | {r['auto']} |")
    body = ["Sequences per second; `auto` is what `precision = \"auto\"` picked at that commit (before the "
            "per-family GPU rule these figures led to: bf16 only for LegNet and BERT).", "", *rows, ""]
    for r in data["records"]:
        if r["stage"] == "legnet_full" and "error" not in r:
            body += [f"Full-size LegNet (`configs/dream_legnet_full.toml`, {r['params']:,} params, batch {r['batch']}, "
                     f"bf16) on a synthetic DREAM-sized file ({r['rows']:,} rows): {r['steps']} training steps at "
                     f"{f(r['train_seq_per_s'])} sequences/s (peak {f(r['train_peak_gpu_gib'], 1)} GiB; "
                     f"{r['fit_seconds']:.0f} s including reading the file); evaluate {f(r['evaluate_seq_per_s'])} "
                     f"and strand-averaged predict {f(r['predict_seq_per_s'])} sequences/s (from a file, parsing "
                     f"included; peak {f(r['inference_peak_gpu_gib'], 1)} GiB), ISM {f(r['ism_mutants_per_s'])} "
                     f"mutants/s, ONNX export parity max |diff| {r['onnx_max_abs_diff']:.1e}.", ""]
        if r["stage"] == "bert_base" and "error" not in r:
            body += [f"BERT-base 6-mer masked-language-model pretraining ({r['params']:,} params, 300 bp, batch "
                     f"{r['batch']}, bf16): {r['steps']} steps at {f(r['train_seq_per_s'])} sequences/s, peak "
                     f"{f(r['peak_gpu_gib'], 1)} GiB.", ""]
        if "error" in r:
            body += [f"Stage {r['stage']} {r.get('row', '')} failed: {r['error']}", ""]
    commands = sorted({r.get("command", data["command"]) for r in data["records"]})
    body += ["Commands: " + "; ".join(f"`{c}`" for c in commands) + "."]
    env = {**data, "gpu": f"{data['gpu']} (CUDA {data['torch_cuda']})"}
    write_report(results.with_suffix(".md"), "The CUDA path on a lent GPU",
                 "`benchmarks/gpu_check.sh`: training and inference throughput per model family, fp32 against bf16, "
                 "and the full CUDA path (train, evaluate, predict, ISM, ONNX export) of the full-size LegNet recipe "
                 "and BERT-base pretraining steps.", env, body)


def gpu_parser(doc: str, results: Path | None) -> argparse.ArgumentParser:
    """The options every GPU script shares: --device, --small (a CPU dry run), --results, --summary."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--small", action="store_true", help="tiny models (a dry run of the script on a CPU)")
    ap.add_argument("--results", type=Path, default=results)
    ap.add_argument("--summary", action="store_true", help="only rewrite the markdown from --results")
    return ap


def gpu_header(args: argparse.Namespace) -> dict[str, Any]:
    """The results file's header (GPU, CUDA, provenance); an error where no GPU is there to measure."""
    import torch

    from helixlab.run.records import environment

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here: run on the GPU machine, or --device cpu --small for a dry run")
    gpu = torch.cuda.get_device_name() if args.device.startswith("cuda") else None
    return {"gpu": gpu, "device": args.device, "small": args.small, "torch_cuda": torch.version.cuda,
            **provenance(environment()), "records": []}


def save(out: dict[str, Any], results: Path) -> None:
    """Rewrite the results file atomically (after each stage: a run cut off at its limit keeps what it has)."""
    from helixlab.paths import write_json

    results.parent.mkdir(parents=True, exist_ok=True)
    write_json(results, out, indent=1)


def main() -> None:
    ap = gpu_parser(__doc__, RESULTS / "gpu.json")
    ap.add_argument("--rows", type=int, default=6_739_258, help="rows of the synthetic DREAM training file")
    ap.add_argument("--steps", type=int, default=300, help="training steps of each training stage")
    ap.add_argument("--stages", nargs="+", default=list(STAGES), choices=list(STAGES),
                    help="stages to run; records of the others already in --results are kept")
    args = ap.parse_args()
    if args.summary:
        return write_summary(args.results)
    out = gpu_header(args)
    WORK.mkdir(parents=True, exist_ok=True)
    kept = json.loads(args.results.read_text())["records"] if args.results.exists() else []
    out["records"] = [r for r in kept if r["stage"] not in args.stages]
    stages = {"throughput": lambda: stage_throughput(args.device, args.small),
              "batch_scan": lambda: stage_batch_scan(args.device, args.small),
              "legnet_full": lambda: [stage_legnet(args.device, args.rows, args.steps, args.small)],
              "bert_base": lambda: [stage_bert(args.device, max(args.steps // 3, 2), args.small)]}
    stages = {name: stages[name] for name in args.stages}
    env_command = out["command"]  # each record keeps the command (and so the stages) that made it
    # Time on a lent GPU is short: a stage that fails is recorded with its error and the others still run.
    for name, stage in stages.items():
        t0 = time.perf_counter()
        try:
            out["records"] += [{**r, "command": env_command} for r in stage()]
        except Exception as exc:  # noqa: BLE001 - recorded, not hidden: the record names the stage and error
            traceback.print_exc()
            out["records"].append({"stage": name, "error": f"{type(exc).__name__}: {exc}"})
            print(f"stage {name} failed: {type(exc).__name__}: {exc}", flush=True)
        print(f"stage {name}: {time.perf_counter() - t0:.1f} s", flush=True)
        save(out, args.results)
    write_summary(args.results)
    print(f"wrote {args.results} and {args.results.with_suffix('.md')}")


if __name__ == "__main__":
    main()
