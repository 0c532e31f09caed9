"""The model contract and the building blocks shared by the model families.

Every model maps x: (N, L) uint8 base codes -> (N, n_outputs) raw values, as
`head(features(x))`; `features` is the representation before the head (used for embeddings).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}


class SequenceModel(nn.Module):
    """Base class: subclasses define `features` and set `self.head` and `self.feature_dim`."""

    head: nn.Module
    feature_dim: int
    uses_run_dir = False  # True: the constructor reads files saved in the run directory (a tokenizer)
    takes_strand = False  # True: forward(x, reverse) reads a strand flag per sequence (a strand channel)
    one_hot_input = True  # True: forward also takes float one-hot (N, 4, L) input (gradient attributions)

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def call_model(net: nn.Module, x: torch.Tensor, reverse: torch.Tensor | None = None) -> torch.Tensor:
    """net(x), passing the per-sequence strand flag (True = reverse-complemented) to models that read
    it. `net` may be a DDP wrapper."""
    if getattr(getattr(net, "module", net), "takes_strand", False):
        return net(x, reverse)
    return net(x)


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, *, dropout: float = 0.0,
        activation: str = "relu") -> nn.Sequential:
    """Linear layers with activation and dropout between them; the last layer is plain linear."""
    layers: list[nn.Module] = []
    dim = in_dim
    for width in hidden:
        layers += [nn.Linear(dim, width), ACTIVATIONS[activation]()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        dim = width
    layers.append(nn.Linear(dim, out_dim))
    return nn.Sequential(*layers)


class ConvStack(nn.Module):
    """1-d conv layers (conv -> batch norm -> activation -> optional pool -> dropout), 'same' padding."""

    def __init__(self, in_channels: int, channels: Sequence[int], kernels: Sequence[int],
                 pools: Sequence[int], *, dropout: float = 0.0, activation: str = "relu",
                 batch_norm: bool = True, residual: bool = False, dilations: Sequence[int] | None = None) -> None:
        super().__init__()
        if not (len(channels) == len(kernels) == len(pools)):
            raise ValueError("conv channels, kernels and pools must have the same length")
        dilations = dilations or [1] * len(channels)
        self.residual = residual
        self.blocks = nn.ModuleList()
        self.pools = nn.ModuleList()
        dim = in_channels
        for ch, k, p, d in zip(channels, kernels, pools, dilations):
            block: list[nn.Module] = [nn.Conv1d(dim, ch, k, padding="same", dilation=d, bias=not batch_norm)]
            if batch_norm:
                block.append(nn.BatchNorm1d(ch))
            block.append(ACTIVATIONS[activation]())
            if dropout > 0:
                block.append(nn.Dropout(dropout))
            self.blocks.append(nn.Sequential(*block))
            self.pools.append(nn.MaxPool1d(p, p) if p > 1 else nn.Identity())
            dim = ch
        self.out_channels = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block, pool in zip(self.blocks, self.pools):
            y = block(x)
            x = pool(y + x if self.residual and y.shape == x.shape else y)
        return x

    def out_length(self, length: int) -> int:
        for pool in self.pools:
            if isinstance(pool, nn.MaxPool1d):
                length = length // int(pool.kernel_size)  # type: ignore[arg-type]
        return length


def pool_sequence(h: torch.Tensor, how: str) -> torch.Tensor:
    """h: (N, C, L) -> (N, C') by 'max', 'mean', 'maxmean' (C' = 2C) or 'flatten' (C' = C*L)."""
    if how == "max":
        return h.amax(-1)
    if how == "mean":
        return h.mean(-1)
    if how == "maxmean":
        return torch.cat([h.amax(-1), h.mean(-1)], 1)
    if how == "flatten":
        return h.flatten(1)
    raise ValueError(f"unknown pooling {how!r}; expected max, mean, maxmean or flatten")


def pooled_dim(channels: int, length: int, how: str) -> int:
    return {"max": channels, "mean": channels, "maxmean": 2 * channels, "flatten": channels * length}[how]
