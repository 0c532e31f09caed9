"""A LegNet-class convolutional model, written for helixlab.

The design that won DREAM 2022 (Penzar et al. 2023): a stem convolution, then stages of
EfficientNet-style inverted-bottleneck blocks (1x1 expansion, depthwise convolution, squeeze-and-
excitation, 1x1 projection, residual), each followed by a convolution that changes the width;
global average pooling and a small head. With `strand_channel`, a fifth input channel says
whether the sequence is the forward strand (0) or its reverse complement (1); the training loop's
RC augmentation and prediction-time strand averaging fill it in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from helixlab.models.base import SequenceModel
from helixlab.models.layers import ACTIVATIONS, mlp
from helixlab.models.registry import register
from helixlab.seq.alphabet import one_hot


@dataclass
class LegNetConfig:
    """channels: width after each stage; pools: max-pool size after each stage (default none: full
    resolution throughout, as LegNet; pooling trades a little accuracy for speed on a CPU);
    expand: inverted-bottleneck ratio; se_reduction: squeeze-excitation bottleneck (of the block's
    input width)."""

    stem: int = 128
    stem_kernel: int = 7
    channels: list[int] = field(default_factory=lambda: [128, 128, 64, 64, 64, 64])
    pools: list[int] | None = None
    kernel: int = 7
    expand: int = 4
    se_reduction: int = 4
    hidden: list[int] = field(default_factory=lambda: [64])
    dropout: float = 0.1
    activation: str = "silu"
    strand_channel: bool = True


def conv_bn(c_in: int, c_out: int, k: int, activation: str, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(c_in, c_out, k, padding="same", groups=groups, bias=False),
                         nn.BatchNorm1d(c_out), ACTIVATIONS[activation]())


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, bottleneck: int, activation: str) -> None:
        super().__init__()
        self.gate = nn.Sequential(nn.Linear(channels, bottleneck), ACTIVATIONS[activation](),
                                  nn.Linear(bottleneck, channels), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x.mean(-1)).unsqueeze(-1)


class InvertedBottleneck(nn.Module):
    """x + project(SE(depthwise(expand(x))))."""

    def __init__(self, channels: int, cfg: LegNetConfig) -> None:
        super().__init__()
        wide = channels * cfg.expand
        self.body = nn.Sequential(
            conv_bn(channels, wide, 1, cfg.activation),
            conv_bn(wide, wide, cfg.kernel, cfg.activation, groups=wide),
            SqueezeExcite(wide, max(channels // cfg.se_reduction, 4), cfg.activation),
            nn.Conv1d(wide, channels, 1, bias=False), nn.BatchNorm1d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


@register("legnet", LegNetConfig)
class LegNet(SequenceModel):
    bf16_on_gpu = True  # H200, training at the recipes' batch 128: 1.5x (110 bp), 3.0x (stem 256, 150 bp)

    def __init__(self, cfg: LegNetConfig, seq_len: int | None, n_outputs: int) -> None:
        super().__init__()
        if not cfg.channels:
            raise ValueError("legnet needs at least one stage in channels")
        pools = cfg.pools or [1] * len(cfg.channels)
        if len(pools) != len(cfg.channels):
            raise ValueError("legnet pools must have one entry per stage in channels")
        self.reads_strand = cfg.strand_channel
        self.stem = conv_bn(4 + int(cfg.strand_channel), cfg.stem, cfg.stem_kernel, cfg.activation)
        stages: list[nn.Module] = []
        width = cfg.stem
        for c, p in zip(cfg.channels, pools):
            stages += [InvertedBottleneck(width, cfg), conv_bn(width, c, cfg.kernel, cfg.activation)]
            if p > 1:
                stages.append(nn.MaxPool1d(p, p))
            width = c
        self.stages = nn.Sequential(*stages)
        self.feature_dim = width
        self.head = mlp(width, cfg.hidden, n_outputs, dropout=cfg.dropout, activation=cfg.activation)

    def features(self, x: torch.Tensor, strand: torch.Tensor | None = None) -> torch.Tensor:
        h = one_hot(x)
        if self.reads_strand:
            # (new_zeros of x.shape[0] keeps the batch size dynamic when the model is traced for ONNX)
            flag = x.new_zeros(x.shape[0], dtype=torch.float32) if strand is None else strand.to(x.device,
                                                                                                  torch.float32)
            h = torch.cat([h, flag[:, None, None].expand(-1, 1, h.shape[-1])], 1)
        return self.stages(self.stem(h)).mean(-1)

    def outputs(self, x: torch.Tensor, strand: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.features(x, strand))
