"""Export a trained run for serving without helixlab: ONNX, with its input/output contract beside it.

The ONNX graph takes `codes`, (batch, L) uint8 base codes (A 0, C 1, G 2, T 3, N 4, after the run's
crop and padding; L is the model's input length, or a chosen one for variable-length models), and
returns `outputs`, (batch, n_outputs) float32 raw values. The contract file (OUT.json) says how to
encode, which activation turns the outputs into predictions, and what the outputs are.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from helixlab.apply.predict import check_predictable, output_names, predict
from helixlab.errors import HelixError
from helixlab.models.base import call
from helixlab.models.bert import Bert
from helixlab.models.fused import Fused
from helixlab.run.loaded import LoadedRun

FORMATS = ("onnx",)


class _Serving(nn.Module):
    """uint8 codes -> raw outputs (forward strand for models with a strand channel)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return call(self.model, codes).float()


def _subword(model: nn.Module) -> bool:
    """Whether the model (or a fused model's network) tokenizes with a subword model, which runs outside torch."""
    inner = model.net if isinstance(model, Fused) else model
    return isinstance(inner, Bert) and inner.tokenizer.kind == "subword"


def activation(run: LoadedRun) -> str:
    """How raw outputs become predictions, in words a serving engineer can implement."""
    task = run.task
    if task.kind == "binary":
        return "sigmoid"
    if task.kind in ("multiclass", "context"):
        return "softmax over the outputs"
    if task.cfg.bins:
        lo, hi = task.cfg.bin_range or (0.0, float(task.cfg.bins - 1))
        return (f"softmax over the {task.cfg.bins} outputs, then the expectation of {task.cfg.bins} equally "
                f"spaced values from {lo} to {hi}")
    return "identity"


def contract(run: LoadedRun, example_length: int) -> dict[str, Any]:
    d = run.config.data
    return {
        "format": "onnx", "run": str(run.run_dir), "model": run.config.model.name, "task": run.task.kind,
        "input": {"name": "codes", "dtype": "uint8", "shape": ["batch", example_length],
                  "encoding": {"A": 0, "C": 1, "G": 2, "T": 3, "N": 4, "other": "error or N (IUPAC codes)"},
                  "lowercase": "same codes as uppercase",
                  "transforms": {"crop": d.crop, "pad_to": d.pad_to, "pad_context": d.pad_context,
                                 "centre_hidden": run.task.kind == "context"},
                  "length": example_length,
                  "note": None if run.seq_len else "a variable-length model, exported at this length (--length)"},
        "output": {"name": "outputs", "dtype": "float32", "shape": ["batch", run.info["n_outputs"]],
                   "meaning": "raw model outputs", "activation": activation(run),
                   "prediction_names": output_names(run), "labels": run.info["labels"]},
        "rc_average": {"used_in_evaluation": run.config.train.rc_average,
                       "how": "also run the reverse complement (codes reversed, A<->T 0<->3, C<->G 1<->2; N stays "
                              "4) and average the raw outputs"},
    }


def export_onnx(run: LoadedRun, out: str | os.PathLike[str], *, length: int | None = None,
                overwrite: bool = False, tolerance: float = 1e-3) -> dict[str, Any]:
    """Write the ONNX model and OUT.json (its contract); return the contract. The graph is checked with
    onnxruntime against torch on random sequences before either file is written."""
    import tempfile

    out = Path(out)
    check_predictable(run)
    if _subword(run.model):
        raise HelixError("subword (BPE/WordPiece) tokenization runs outside torch and cannot be traced into ONNX; "
                         "export a model with nucleotide, k-mer or window tokens", path=str(run.run_dir))
    if out.exists() and not overwrite:
        raise HelixError("output file already exists; choose another name or remove it", path=str(out))
    example_length = run.seq_len or length or 300
    serving = _Serving(run.model.cpu().eval())
    example = torch.randint(0, 4, (2, example_length), dtype=torch.uint8)
    # the batch is dynamic, the length fixed: a traced graph of a variable-length model (token counts, slicing)
    # is exact only at the length it was traced with, so such a model is exported at `length`
    dynamic = {"codes": {0: "batch"}, "outputs": {0: "batch"}}
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp_dir:
        tmp = Path(tmp_dir) / out.name
        try:
            torch.onnx.export(serving, (example,), str(tmp), input_names=["codes"], output_names=["outputs"],
                              dynamic_axes=dynamic, dynamo=False, opset_version=17)
        except Exception as exc:  # an operator the exporter cannot express: say which model, keep nothing
            raise HelixError(f"cannot export model {run.config.model.name!r} to ONNX: {exc}",
                             path=str(run.run_dir)) from None
        check = np.random.default_rng(0).integers(0, 5, (64, example_length)).astype(np.uint8)
        diff = float(np.abs(onnx_outputs(tmp, check) - predict(run.model, check, precision="fp32").numpy()).max())
        if not diff <= tolerance:
            raise HelixError(f"the exported graph differs from the model by up to {diff:.3g} (tolerance "
                             f"{tolerance}); nothing was written", path=str(run.run_dir))
        spec = contract(run, example_length)
        spec["parity"] = {"sequences": len(check), "max_abs_diff": diff, "runtime": "onnxruntime CPU"}
        (Path(tmp_dir) / "contract.json").write_text(json.dumps(spec, indent=2) + "\n")
        os.replace(tmp, out)
        os.replace(Path(tmp_dir) / "contract.json", out.with_name(out.name + ".json"))
    return spec


def onnx_outputs(path: str | os.PathLike[str], codes: np.ndarray) -> np.ndarray:
    """Run an exported model with onnxruntime (CPU)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["outputs"], {"codes": np.asarray(codes, dtype=np.uint8)})[0]
