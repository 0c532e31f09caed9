"""Convolutional classifier/regressor on one-hot input: conv stack -> optional 1x1 bottleneck conv -> optional
attention (transformer layers over the conv map) -> pooling -> dense head."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from helixlab.models.base import SequenceModel
from helixlab.models.layers import (FIXED_LENGTH_POOLINGS, POOLINGS, ConvStack, PositionalAttention, mlp,
                                    pool_sequence, pooled_dim)
from helixlab.models.registry import register
from helixlab.seq.alphabet import one_hot


@dataclass
class CNNConfig:
    """Defaults: the S1 'CNN only' model (the cnn_gru conv layers + one dense layer)."""

    channels: list[int] = field(default_factory=lambda: [128, 128])
    kernels: list[int] = field(default_factory=lambda: [9, 9])
    pools: list[int] = field(default_factory=lambda: [2, 2])
    dilations: list[int] | None = None
    residual: bool = False
    pooling: str = "maxmean"
    bottleneck: int = 0  # > 0: a 1x1 conv to this many channels before the pooling (a smaller flatten head)
    attention: int = 0  # > 0: this many transformer layers over the conv map, learned positions (fixed length)
    heads: int = 4  # attention heads (must divide the channels attention reads: the bottleneck's, else the last conv's)
    hidden: list[int] = field(default_factory=lambda: [128])
    dropout: float = 0.2
    activation: str = "relu"


@register("cnn", CNNConfig)
class CNN(SequenceModel):
    def __init__(self, cfg: CNNConfig, seq_len: int | None, n_outputs: int) -> None:
        super().__init__()
        self.convs = ConvStack(4, cfg.channels, cfg.kernels, cfg.pools, dropout=cfg.dropout,
                               activation=cfg.activation, residual=cfg.residual, dilations=cfg.dilations)
        if cfg.pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {cfg.pooling!r}; expected one of {', '.join(POOLINGS)}")
        if cfg.pooling in FIXED_LENGTH_POOLINGS and seq_len is None:
            raise ValueError(f"pooling={cfg.pooling!r} needs fixed-length sequences")
        if cfg.bottleneck < 0:
            raise ValueError(f"bottleneck must be 0 (none) or a channel count, not {cfg.bottleneck}")
        if cfg.attention < 0:
            raise ValueError(f"attention must be 0 (none) or a number of layers, not {cfg.attention}")
        if cfg.attention and seq_len is None:
            raise ValueError("attention needs fixed-length sequences (it learns an embedding per position)")
        out_len = self.convs.out_length(seq_len or 1)
        channels = cfg.bottleneck or self.convs.out_channels
        self.bottleneck = (ConvStack(self.convs.out_channels, [channels], [1], [1], dropout=cfg.dropout,
                                     activation=cfg.activation) if cfg.bottleneck else nn.Identity())
        self.attention = (PositionalAttention(channels, out_len, cfg.attention, cfg.heads, cfg.dropout)
                          if cfg.attention else nn.Identity())
        self.pooling = cfg.pooling
        self.feature_dim = pooled_dim(channels, out_len, cfg.pooling)
        self.head = mlp(self.feature_dim, cfg.hidden, n_outputs, dropout=cfg.dropout, activation=cfg.activation)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return pool_sequence(self.attention(self.bottleneck(self.convs(one_hot(x)))), self.pooling)
