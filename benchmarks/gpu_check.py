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
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import RESULTS, provenance  # noqa: E402
from dream_scale import synthetic_file  # noqa: E402

WORK = ROOT / "benchmarks" / "work" / "gpu_check"


def peak_memory(device: str) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None


def reset_peak(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def stage_throughput(device: str, small: bool) -> list[dict[str, Any]]:
    from throughput import measure

    rows = ["cnn_s5"] if small else ["legnet_full", "legnet", "cnn_s5_200", "cnn_promoter_best", "cnn_gru",
                                     "cnn_lstm", "bert_6mer_tiny", "mlp_s5"]
    out = []
    for name in rows:
        reset_peak(device)
        out.append({"stage": "throughput", **measure(name, 0.5 if small else 3.0, False, device),
                    "peak_gpu_gib": peak_memory(device)})
        print(out[-1], flush=True)
    return out


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
    over = [f"data.train={str(train)!r}", "data.test=''", "data.holdout=0.001", f"train.budget='{steps} steps'",
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


def main() -> None:
    import torch

    from helixlab.run.records import environment

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--rows", type=int, default=6_739_258, help="rows of the synthetic DREAM training file")
    ap.add_argument("--steps", type=int, default=300, help="training steps of each training stage")
    ap.add_argument("--small", action="store_true", help="tiny models (a dry run of the script on a CPU)")
    ap.add_argument("--results", type=Path, default=RESULTS / "gpu.json")
    args = ap.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here: run on the GPU machine, or --device cpu --small for a dry run")
    WORK.mkdir(parents=True, exist_ok=True)
    env = environment()
    records = [*stage_throughput(args.device, args.small), stage_legnet(args.device, args.rows, args.steps, args.small),
               stage_bert(args.device, max(args.steps // 3, 2), args.small)]
    gpu = torch.cuda.get_device_name() if args.device.startswith("cuda") else None
    out = {"gpu": gpu, "device": args.device, "small": args.small, **provenance(env), "records": records}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
