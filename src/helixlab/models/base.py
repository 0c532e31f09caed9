"""The model contract, and the inference primitives every caller shares.

Every model maps x: (N, L) uint8 base codes -> (N, n_outputs) raw values, as `head(features(x))`;
`features` is the representation before the head (used for embeddings). A model declares what else
it needs as attributes of this base class, and callers read the declarations (never `getattr`):

  reads_one_hot        features also take float one-hot (N, 4, L) input (gradient attributions)
  reads_strand         outputs read a per-sequence strand flag (a strand channel)
  fitted_by_counting   fitted by one counting pass over the training genome (`fit_counts`), not by steps:
                       which counts the trainer makes ('kmer': a dense k-mer table; 'contexts': sorted keys)
  keeps_run_files      the constructor reads files the model saved in its run directory (a tokenizer)
  bf16_on_cpu          precision 'auto' may choose bf16 on a CPU with bf16 units (False: no gain measured)
  bf16_on_gpu          precision 'auto' chooses bf16 on a GPU (only where a gain was measured: small models
                       are launch-bound there and bf16's casts slow them; benchmarks/results/gpu.md)

`forward(x, strand, target)` is the one entry point, so that a DDP wrapper sees every call: the task
passes `target` in the steps whose outputs may depend on it (context training steps; pretraining), and a model
whose training outputs differ from its predictions overrides `train_outputs` (the fused model leaves
each window's own count out; BERT pretraining returns the masked tokens' logits).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from helixlab.errors import HelixError
from helixlab.seq.alphabet import reverse_complement


@dataclass
class MaskedTokens:
    """The target of a pretraining step (masked-language modelling): token ids (N, T) with some masked,
    their attention mask (N, T) and labels (N, T): the original id where a token was chosen, else -100."""

    ids: torch.Tensor
    attention: torch.Tensor
    labels: torch.Tensor


class SequenceModel(nn.Module):
    """Base class: subclasses define `features` and set `self.head` and `self.feature_dim`."""

    head: nn.Module
    feature_dim: int
    reads_one_hot = True
    reads_strand = False
    fitted_by_counting = ""
    keeps_run_files = False
    bf16_on_cpu = True
    bf16_on_gpu = False

    @classmethod
    def prepare_run(cls, params: dict[str, Any], run_dir: Path, sequences: Callable[[], Iterator[str]]
                    ) -> dict[str, Any]:
        """Called once before a new run builds the model: save what the model needs beside the run
        (e.g. a tokenizer trained on `sequences()`) and return the params to record. Default: as is."""
        return params

    def check_length(self, max_length: int) -> None:
        """Raise ValueError if sequences of up to `max_length` bases cannot be read (before training)."""

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, L) uint8 -> (N, feature_dim)."""
        raise NotImplementedError

    def outputs(self, x: torch.Tensor, strand: torch.Tensor | None = None) -> torch.Tensor:
        """x: (N, L) uint8 -> (N, n_outputs) raw values. strand: (N,) bool, True = reverse-complemented
        (None: all forward); read only by models that declare `reads_strand`."""
        return self.head(self.features(x))

    def train_outputs(self, x: torch.Tensor, strand: torch.Tensor | None, target: Any) -> torch.Tensor:
        """The outputs of a training step given the task's `model_target` (the window classes of the
        context task; `MaskedTokens` in pretraining). Default: `outputs`."""
        return self.outputs(x, strand)

    def fit_counts(self, counts: np.ndarray) -> None:
        """Models `fitted_by_counting`: take the counts the trainer made over the training genome."""
        raise NotImplementedError(f"{type(self).__name__} is not fitted by counting")

    def tune(self, x: torch.Tensor, target: torch.Tensor) -> dict[str, Any]:
        """Models `fitted_by_counting`: choose smoothing on validation windows x with classes `target`
        after `fit_counts`; return what was chosen (recorded in the run's history). Default: nothing."""
        return {}

    def strand_average(self, x: torch.Tensor) -> torch.Tensor:
        """Raw outputs averaged over each sequence and its reverse complement (flagged as such for models
        that read the strand). An ensemble averages each member's strands before combining them."""
        reverse = torch.ones(len(x), dtype=torch.bool, device=x.device)
        return (self(x).float() + self(reverse_complement(x), reverse).float()) / 2

    def forward(self, x: torch.Tensor, strand: torch.Tensor | None = None, target: Any = None) -> torch.Tensor:
        if target is None:
            return self.outputs(x, strand)
        return self.train_outputs(x, strand, target)


def unwrap(net: nn.Module) -> nn.Module:
    """The model inside a DDP wrapper (or the model itself)."""
    return net.module if isinstance(net, DistributedDataParallel) else net


def call(net: Callable[..., torch.Tensor], x: torch.Tensor, strand: torch.Tensor | None = None,
         target: Any = None) -> torch.Tensor:
    """Outputs of any model on x: a SequenceModel (or its DDP wrapper) is also given the strand flags and,
    in training, the targets; any other module or callable (a wrapper that explains one output) gets x alone."""
    if not isinstance(unwrap(net), SequenceModel):  # type: ignore[arg-type]
        return net(x)
    return net(x, strand, target if net.training else None)  # type: ignore[attr-defined]


def resolve_device(name: str) -> torch.device:
    """'auto' (the GPU when there is one), 'cpu', 'cuda' or 'cuda:N'; an error when CUDA is asked for and absent."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise HelixError(f"device {name!r} asked for but no CUDA GPU is available", record="train.device")
    try:
        return torch.device(name)
    except RuntimeError:
        raise HelixError(f"unknown device {name!r}; expected auto, cpu, cuda or cuda:N", record="device") from None


PRECISIONS = ("auto", "fp32", "bf16")


CPU_BF16_ENV = "HELIXLAB_CPU_BF16"


def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 matrix units (AVX512-BF16 or AMX). Without them bf16 autocast is emulated
    and about 10x slower than fp32 (benchmarks/results/throughput.md). HELIXLAB_CPU_BF16=0 (or 1) overrides
    the detection, so `auto` gives the same precision, and the same numbers, on every kind of CPU."""
    forced = os.environ.get(CPU_BF16_ENV)
    if forced is not None:
        if forced not in ("0", "1"):
            raise HelixError(f"{CPU_BF16_ENV} must be 0 or 1, not {forced!r}", record=CPU_BF16_ENV)
        return forced == "1"
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def resolve_precision(precision: str, device: torch.device, model: nn.Module | None = None) -> str:
    """'auto' | 'fp32' | 'bf16' -> 'fp32' or 'bf16'. auto: bf16 where the device has bf16 units and the model
    family gains from them there (`bf16_on_cpu`, `bf16_on_gpu`; with no model, wherever the device has them),
    else fp32."""
    if precision not in PRECISIONS:
        raise HelixError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}",
                         record="precision")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        gains = model is None or getattr(unwrap(model), "bf16_on_gpu", False)
        return "bf16" if gains and torch.cuda.is_bf16_supported() else "fp32"
    gains = model is None or getattr(unwrap(model), "bf16_on_cpu", True)
    return "bf16" if device.type == "cpu" and gains and cpu_has_bf16() else "fp32"


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on the device when `precision` (resolved) is 'bf16'; nothing for 'fp32'."""
    if precision == "bf16" and device.type in ("cuda", "cpu"):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def full_precision(x: torch.Tensor) -> contextlib.AbstractContextManager[Any]:
    """Inside a model: run the next layer in fp32 on the CPU even under bf16 autocast (oneDNN has no bf16
    LSTM/GRU on the CPU); on a GPU autocast stays as it is."""
    if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        return torch.autocast(device_type="cpu", enabled=False)
    return contextlib.nullcontext()


@torch.no_grad()
def model_outputs(model: nn.Module, x: torch.Tensor, *, rc_average: bool = False) -> torch.Tensor:
    """Raw outputs (N, n_outputs); with rc_average, the mean over the sequence and its reverse complement
    (`SequenceModel.strand_average`)."""
    inner = unwrap(model)
    if rc_average and isinstance(inner, SequenceModel):
        return inner.strand_average(x)
    out = call(model, x).float()
    if rc_average:  # any other callable: both strands, no strand flags
        out = (out + call(model, reverse_complement(x)).float()) / 2  # type: ignore[arg-type]
    return out
