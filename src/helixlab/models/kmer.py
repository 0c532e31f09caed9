"""k-mer spectrum features -> linear layer (logistic regression for classification)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from helixlab.models.base import SequenceModel
from helixlab.tokenizers import kmer_ids, kmer_vocab_size


@dataclass
class KmerLinearConfig:
    """Frequencies of every k-mer for each k in `ks` (overlapping), concatenated, then linear."""

    ks: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5, 6])
    log_counts: bool = True


class KmerLinear(SequenceModel):
    def __init__(self, cfg: KmerLinearConfig, seq_len: int | None, n_outputs: int) -> None:
        super().__init__()
        if not cfg.ks or min(cfg.ks) < 1 or max(cfg.ks) > 8:
            raise ValueError("kmer_linear ks must be a non-empty list of k in 1..8")
        self.ks = list(cfg.ks)
        self.log_counts = cfg.log_counts
        self.feature_dim = sum(4**k for k in self.ks)
        self.norm = nn.BatchNorm1d(self.feature_dim, affine=False)
        self.head = nn.Linear(self.feature_dim, n_outputs)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        parts = []
        for k in self.ks:
            ids = kmer_ids(x, k)
            counts = torch.zeros(x.shape[0], kmer_vocab_size(k), device=x.device)
            counts.scatter_add_(1, ids, torch.ones_like(ids, dtype=counts.dtype))
            freq = counts[:, : 4**k] * (1.0 / ids.shape[1])
            parts.append(torch.log1p(freq * 4**k) if self.log_counts else freq)
        return self.norm(torch.cat(parts, 1))
