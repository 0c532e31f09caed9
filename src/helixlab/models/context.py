"""A variable-order two-sided context model of the centre base, fitted by counting (like kmer_count).

Every training position's context of `k` bases each side is one uint64 key per order of its bases
(`helixlab.seq.context_keys`: interleaved nearest first, left first, right first), sorted once by the
trainer (`helixlab.data.contexts.sorted_contexts`), with the class of its centre; both strands by
default. The class counts of a window's context at every depth d = 1..2k (its first d bases in an
order) are then two binary searches each, on prefix sums of the classes in sorted order. Prediction
per order: interpolated back-off from the class frequencies (depth 0) up through the depths,
p_d = (n_d + a p_(d-1)) / (N_d + a), with concentration a (chosen on the validation split when 0);
depths past a window's first N keep the last prediction. With several orders the model predicts
their normalised geometric mean (a product of experts: each order breaks at a different mismatch).
`depth_features` gives the per-depth counts of every order to a network that learns how far to trust
them (`fused` with `count_hidden`).

Stored: the sorted keys (as int64 bits) and classes, 9 bytes per position, strand and order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from helixlab.models.base import SequenceModel
from helixlab.models.registry import register
from helixlab.seq.context_keys import MAX_K, ORDERS, pack, prefix_range, same_prefix, window_digits

CONCENTRATIONS = (4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0)
STRANDS = ("both", "forward")
ARRAYS = ("keys", "classes", "complement", "concentration")


@dataclass
class ContextCountConfig:
    """k: bases each side (1-16; data.flank >= k); concentration: the back-off concentration a (0: the
    best of CONCENTRATIONS by validation cross-entropy, recorded in the weights); strands: 'both' counts
    each window's reverse complement too; orders: the orders of the context bases counted, each one
    sorted array (ORDERS: interleaved, left, right); max_memory_gb: above this the counting sort runs in
    buckets on disk (`helixlab.data.contexts`)."""

    k: int = 16
    concentration: float = 0.0
    strands: str = "both"
    orders: list[str] = field(default_factory=lambda: ["interleaved"])
    max_memory_gb: float = 3.0


def _one_row_per_order(name: str, t: torch.Tensor) -> torch.Tensor:
    """Keys and classes as (orders, N); runs counted before orders existed stored one order as (N,)."""
    return t.unsqueeze(0) if name in ("keys", "classes") and t.ndim == 1 else t


@register("context_count", ContextCountConfig)
class ContextCount(SequenceModel):
    """Outputs are log-probabilities. persistent=False: the arrays are not part of the state dict (a
    fused model keeps them in its run directory instead of in every checkpoint)."""

    fitted_by_counting = "contexts"
    bf16_on_cpu = False  # binary searches, no matrix work
    reads_one_hot = False

    def __init__(self, cfg: ContextCountConfig, seq_len: int | None, n_outputs: int, *,
                 persistent: bool = True) -> None:
        super().__init__()
        if not 1 <= cfg.k <= MAX_K:
            raise ValueError(f"context_count k must be in 1..{MAX_K} (bases each side), got {cfg.k}")
        if seq_len is None or seq_len % 2 == 0 or seq_len < 2 * cfg.k + 1:
            raise ValueError(f"context_count k = {cfg.k} needs centred windows with at least {cfg.k} bases each "
                             f"side (data.flank >= {cfg.k}), got windows of length {seq_len}")
        if cfg.strands not in STRANDS:
            raise ValueError(f"context_count strands must be one of {', '.join(STRANDS)}, got {cfg.strands!r}")
        if not cfg.orders or len(set(cfg.orders)) != len(cfg.orders) or not set(cfg.orders) <= set(ORDERS):
            raise ValueError(f"context_count orders must be distinct names of {', '.join(ORDERS)}, got {cfg.orders}")
        if cfg.concentration < 0 or cfg.max_memory_gb <= 0:
            raise ValueError("context_count concentration must be >= 0 (0: chosen on valid) and max_memory_gb > 0")
        self.cfg, self.k, self.n_classes = cfg, cfg.k, n_outputs
        self.orders = list(cfg.orders)
        self.register_buffer("keys", torch.zeros(len(self.orders), 0, dtype=torch.int64), persistent)  # (orders, N)
        self.register_buffer("classes", torch.zeros(len(self.orders), 0, dtype=torch.uint8), persistent)
        self.register_buffer("complement", torch.arange(n_outputs), persistent)
        self.register_buffer("concentration", torch.tensor(cfg.concentration or 32.0, dtype=torch.float64),
                             persistent)
        self.feature_dim = n_outputs
        self.depth_feature_dim = len(self.orders) * 2 * cfg.k * (1 + 2 * n_outputs)
        self.head = nn.Identity()
        self._cache: tuple[Any, ...] | None = None

    # ---- fitting and storage
    def fit_counts(self, counts: Any) -> None:
        """counts: (the sorted uint64 keys and uint8 classes of each order in turn, as an iterable made
        lazily by the trainer so that one order is sorted at a time; the class of each class's complement)."""
        per_order, complement = counts
        keys = classes = None
        for i, (k, c) in enumerate(per_order):
            if keys is None or classes is None:
                keys = torch.empty((len(self.orders), len(k)), dtype=torch.int64)
                classes = torch.empty((len(self.orders), len(k)), dtype=torch.uint8)
            keys[i] = torch.from_numpy(np.asarray(k).view(np.int64))
            classes[i] = torch.from_numpy(np.asarray(c))
            del k, c
        assert keys is not None and classes is not None
        self.keys, self.classes = keys, classes
        self.complement = torch.as_tensor(np.asarray(complement), dtype=torch.int64)
        self._cache = None

    def arrays(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name) for name in ARRAYS}

    def load_arrays(self, tensors: dict[str, torch.Tensor]) -> None:
        """Set the fitted arrays (a state dict, or a fused run's counts file)."""
        for name in ARRAYS:
            if name not in tensors:
                raise ValueError(f"the context counts have no {name!r} array")
            setattr(self, name, _one_row_per_order(name, tensors[name]))
        if self.complement.shape != (self.n_classes,):
            raise ValueError(f"the context counts have {len(self.complement)} classes, this task {self.n_classes}")
        if self.keys.ndim != 2 or len(self.keys) != len(self.orders):
            raise ValueError(f"the context counts have {len(self.keys)} orders, this model {len(self.orders)}")
        self._cache = None

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        for name in ("keys", "classes"):  # fitted arrays have their own size: take it
            t = state_dict.get(prefix + name)
            if t is not None and name not in self._non_persistent_buffers_set:
                state_dict[prefix + name] = t = _one_row_per_order(name, t)
                setattr(self, name, torch.empty_like(t))
        self._cache = None
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _tables(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Of order i: (sorted uint64 keys, prefix sums of classes 0..K-2 in sorted order), on the CPU,
        cached. Not fitted yet: no keys, every count zero (the prediction is uniform)."""
        tag = (self.keys.data_ptr(), self.keys.shape, self.classes.data_ptr(), self.keys._version)
        if self._cache is None or self._cache[0] != tag:
            self._cache = (tag, {})
        tables = self._cache[1]
        if i not in tables:
            keys = self.keys[i].cpu().numpy().view(np.uint64)
            cls = self.classes[i].cpu().numpy()
            dtype = np.int32 if len(cls) < 2**31 else np.int64
            cum = np.zeros((len(cls) + 1, self.n_classes - 1), dtype)
            for j in range(self.n_classes - 1):
                np.cumsum(cls == j, out=cum[1:, j])
            tables[i] = (keys, cum)
        return tables[i]

    # ---- counts and predictions
    def depth_counts(self, x: torch.Tensor, target: torch.Tensor | None = None,
                     strand: torch.Tensor | None = None) -> np.ndarray:
        """(N, orders, 2k + 1, K) class counts of each window's context at depths 0..2k of each order (0:
        all positions); zero past a window's first N. target (training): each window's class; its own
        counts (both strands' where both were counted) are left out, so that a training position is
        predicted as if it had not been seen (-1: a window that was not counted)."""
        xs = x.cpu().numpy()
        return np.stack([self._order_counts(i, xs, target, strand) for i in range(len(self.orders))], 1)

    def _order_counts(self, i: int, xs: np.ndarray, target: torch.Tensor | None,
                      strand: torch.Tensor | None) -> np.ndarray:
        keys, cum = self._tables(i)
        fwd, rev, usable = window_digits(xs, self.k, self.orders[i])
        q = pack(fwd)
        order = np.argsort(q)
        out = np.zeros((len(xs), 2 * self.k + 1, self.n_classes), np.int64)
        for d in range(2 * self.k + 1):
            lo, hi = prefix_range(keys, q[order], d)
            c = (cum[hi] - cum[lo]).astype(np.int64)
            out[order, d, :-1] = c
            out[order, d, -1] = (hi - lo) - c.sum(1)
        out[np.arange(2 * self.k + 1)[None, :] > usable[:, None]] = 0
        if target is not None:
            t = target.cpu().numpy().astype(np.int64)
            forward_only = self.cfg.strands == "forward"
            counted = (t >= 0) & (usable == 2 * self.k)
            if forward_only and strand is not None:
                counted &= ~strand.cpu().numpy().astype(bool)  # reverse windows were not counted
            rows = np.flatnonzero(counted)
            out[rows, :, t[rows]] -= 1
            if not forward_only:  # its reverse strand, where that shares the window's context
                rq = pack(rev)[rows]
                comp = self.complement.cpu().numpy()[t[rows]]
                for d in range(2 * self.k + 1):
                    shared = same_prefix(q[rows], rq, d)
                    out[rows[shared], d, comp[shared]] -= 1
            np.clip(out, 0, None, out=out)
        return out

    def smooth(self, counts: np.ndarray, concentration: float | None = None) -> np.ndarray:
        """(..., depths, K) counts -> (..., depths, K) back-off probabilities after each depth (float64)."""
        a = float(self.concentration) if concentration is None else concentration
        n = counts.astype(np.float64)
        p = (n[..., 0, :] + 1.0) / (n[..., 0, :].sum(-1, keepdims=True) + self.n_classes)
        out = np.empty_like(n)
        out[..., 0, :] = p
        for d in range(1, n.shape[-2]):
            p = (n[..., d, :] + a * p) / (n[..., d, :].sum(-1, keepdims=True) + a)
            out[..., d, :] = p
        return out

    @staticmethod
    def combine(p: np.ndarray) -> np.ndarray:
        """(N, orders, K) per-order probabilities -> (N, K) log of their normalised geometric mean."""
        logp = np.log(p).mean(1)
        return logp - np.logaddexp.reduce(logp, axis=1, keepdims=True)

    def log_probs_of(self, x: torch.Tensor, target: torch.Tensor | None = None,
                     strand: torch.Tensor | None = None) -> torch.Tensor:
        """(N, K) log-probabilities (leave-one-out with a target, as in `depth_counts`)."""
        p = self.smooth(self.depth_counts(x, target, strand))[:, :, -1]
        return torch.from_numpy(self.combine(p)).float().to(x.device)

    def depth_features(self, x: torch.Tensor, target: torch.Tensor | None = None,
                       strand: torch.Tensor | None = None) -> torch.Tensor:
        """(N, depth_feature_dim) per depth 1..2k: log(1 + N_d), the class frequencies n_d / N_d and the
        back-off log-probabilities: what a network needs to learn how far to trust each depth."""
        n = self.depth_counts(x, target, strand)
        total = n.sum(-1, keepdims=True)
        freq = n / np.maximum(total, 1)
        logp = np.log(self.smooth(n))
        f = np.concatenate([np.log1p(total), freq, logp], -1)[:, :, 1:]
        return torch.from_numpy(f.reshape(len(x), -1)).float().to(x.device)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.log_probs_of(x)

    def train_outputs(self, x: torch.Tensor, strand: torch.Tensor | None, target: Any) -> torch.Tensor:
        """Inside a trained model (a mixture's expert): each training window as if it had not been counted."""
        return self.log_probs_of(x, target, strand)

    def tune(self, x: torch.Tensor, target: torch.Tensor) -> dict[str, Any]:
        """With concentration 0: choose it on validation windows by cross-entropy; record it."""
        if self.cfg.concentration:
            return {}
        n = self.depth_counts(x)
        t = target.cpu().numpy().astype(np.int64)
        scores = {a: float(-self.combine(self.smooth(n, a)[:, :, -1])[np.arange(len(t)), t].mean())
                  for a in CONCENTRATIONS}
        best = min(scores, key=lambda a: scores[a])
        self.concentration.fill_(best)
        return {"concentration": best, "valid_cross_entropy_by_concentration": scores}
