"""Multi-layer perceptron over the flattened one-hot sequence (fixed length)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from helixlab.models.base import SequenceModel
from helixlab.models.layers import ACTIVATIONS, mlp
from helixlab.models.registry import register
from helixlab.seq.alphabet import one_hot


@dataclass
class MLPConfig:
    """Defaults: the S5 MLP (3 layers of 300 units with dropout)."""

    hidden: list[int] = field(default_factory=lambda: [300, 300, 300])
    dropout: float = 0.2
    activation: str = "relu"


@register("mlp", MLPConfig)
class MLP(SequenceModel):
    def __init__(self, cfg: MLPConfig, seq_len: int | None, n_outputs: int) -> None:
        super().__init__()
        if seq_len is None:
            raise ValueError("the mlp model needs fixed-length sequences")
        if not cfg.hidden:
            raise ValueError("mlp needs at least one hidden layer")
        self.body = mlp(4 * seq_len, cfg.hidden[:-1], cfg.hidden[-1], dropout=cfg.dropout, activation=cfg.activation)
        self.body.append(ACTIVATIONS[cfg.activation]())
        if cfg.dropout > 0:
            self.body.append(nn.Dropout(cfg.dropout))
        self.feature_dim = cfg.hidden[-1]
        self.head = nn.Linear(self.feature_dim, n_outputs)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(one_hot(x).flatten(1))
