"""Building blocks shared by the model families: dense stacks, conv stacks, sequence pooling."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}


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


class PositionalAttention(nn.Module):
    """Transformer encoder layers (pre-norm, GELU) over a fixed-length conv map (N, C, L) -> (N, C, L),
    with a learned embedding per position: lets a conv model relate features by where they sit."""

    def __init__(self, channels: int, length: int, layers: int, heads: int, dropout: float) -> None:
        super().__init__()
        if heads < 1:
            raise ValueError(f"attention heads must be a positive number, got {heads}")
        if channels % heads:
            raise ValueError(f"attention heads ({heads}) must divide the channels ({channels})")
        self.positions = nn.Parameter(0.02 * torch.randn(1, channels, length))
        layer = nn.TransformerEncoderLayer(channels, heads, dim_feedforward=2 * channels, dropout=dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.encoder((h + self.positions).transpose(1, 2)).transpose(1, 2)


# each global pooling as the parts it concatenates, in this order: the flattened map (every position), the
# per-channel max, the per-channel mean
POOLING_PARTS = {"max": ("max",), "mean": ("mean",), "maxmean": ("max", "mean"), "flatten": ("flatten",),
                 "flatten_maxmean": ("flatten", "max", "mean")}
POOLINGS = tuple(POOLING_PARTS)
FIXED_LENGTH_POOLINGS = tuple(k for k, parts in POOLING_PARTS.items() if "flatten" in parts)


def pool_sequence(h: torch.Tensor, how: str) -> torch.Tensor:
    """h: (N, C, L) -> (N, C') by 'max', 'mean', 'maxmean' (C' = 2C), 'flatten' (C' = C*L) or
    'flatten_maxmean' (both: where each feature is and its strongest and mean values, C' = C*L + 2C)."""
    if how not in POOLING_PARTS:
        raise ValueError(f"unknown pooling {how!r}; expected one of {', '.join(POOLINGS)}")
    parts = [h.flatten(1) if part == "flatten" else h.amax(-1) if part == "max" else h.mean(-1)
             for part in POOLING_PARTS[how]]
    return parts[0] if len(parts) == 1 else torch.cat(parts, 1)


def pooled_dim(channels: int, length: int, how: str) -> int:
    return sum(channels * length if part == "flatten" else channels for part in POOLING_PARTS[how])
