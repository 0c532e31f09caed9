"""k-mer spectrum features -> linear layer (logistic regression for classification)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from helixlab.models.base import SequenceModel
from helixlab.models.registry import register
from helixlab.seq.alphabet import kmer_ids, kmer_vocab_size


@dataclass
class KmerLinearConfig:
    """Frequencies of every k-mer for each k in `ks` (overlapping), concatenated, then linear."""

    ks: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5, 6])
    log_counts: bool = True


@register("kmer_linear", KmerLinearConfig)
class KmerLinear(SequenceModel):
    reads_one_hot = False  # reads k-mer ids, not one-hot bases
    bf16_on_cpu = False  # counting k-mers dominates: bf16 0.94x fp32 (benchmarks/results/throughput_intel.md)

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
        h = self.spectrum(x)
        if self.training:
            return self.norm(h)
        # the same as self.norm in eval mode, written out: the ONNX exporter cannot size the batch norm
        return (h - self.norm.running_mean) / torch.sqrt(self.norm.running_var + self.norm.eps)

    def spectrum(self, x: torch.Tensor) -> torch.Tensor:
        """(N, sum 4^k) k-mer frequencies (log-scaled if configured), before normalisation."""
        parts = []
        for k in self.ks:
            ids = kmer_ids(x, k)
            counts = torch.zeros(x.shape[0], kmer_vocab_size(k), device=x.device)
            counts.scatter_add_(1, ids, torch.ones_like(ids, dtype=counts.dtype))
            freq = counts[:, : 4**k] * (1.0 / ids.shape[1])
            parts.append(torch.log1p(freq * 4**k) if self.log_counts else freq)
        return torch.cat(parts, 1)


@dataclass
class KmerCountConfig:
    """S5's k-mer counting model of the centre base: exact counts of (left k-mer, right k-mer, centre
    class) over every position of the training region (`k` bases each side: 4^(2k) contexts),
    prediction by the smoothed counts. smoothing 'pseudocount': p = (n + a) / (N + K a), a =
    `pseudocount`, K classes; 'backoff': each context's prior is the prediction of its (k-1)-base
    context, down to the class frequencies: p_k = (n + a K p_(k-1)) / (N + a K)."""

    k: int = 5
    pseudocount: float = 1.0
    smoothing: str = "pseudocount"


@register("kmer_count", KmerCountConfig)
class KmerCount(SequenceModel):
    """Fitted by counting (`fit_counts`, one pass over the training region), not by gradients. Its
    outputs are log-probabilities; a context with N gets the class frequencies."""

    fitted_by_counting = "kmer"
    bf16_on_cpu = False  # log-probabilities of counts: no matrix work to speed up
    reads_one_hot = False

    def __init__(self, cfg: KmerCountConfig, seq_len: int | None, n_outputs: int) -> None:
        super().__init__()
        if not 1 <= cfg.k <= 6:
            raise ValueError("kmer_count k must be in 1..6 (k = 6: 4^12 contexts, 268 MB of counts per class)")
        if seq_len is None or seq_len % 2 == 0 or seq_len < 2 * cfg.k + 1:
            raise ValueError(f"kmer_count reads centred windows of odd length >= 2k + 1 = {2 * cfg.k + 1} "
                             f"(the context task with data.flank >= k), got length {seq_len}")
        if cfg.smoothing not in ("pseudocount", "backoff") or cfg.pseudocount <= 0:
            raise ValueError("kmer_count smoothing must be pseudocount or backoff, with pseudocount > 0")
        self.cfg, self.k, self.centre = cfg, cfg.k, seq_len // 2
        self.counts = nn.Parameter(torch.zeros(4**cfg.k, 4**cfg.k, n_outputs), requires_grad=False)
        self.register_buffer("powers", 4 ** torch.arange(2 * cfg.k - 1, -1, -1), persistent=False)
        self.feature_dim = n_outputs
        self.head = nn.Identity()
        self._table: torch.Tensor | None = None
        self._table_key: tuple[object, ...] | None = None
        self._orders: list[torch.Tensor] = []
        self._prior = torch.empty(0)

    def fit_counts(self, counts: np.ndarray) -> None:
        """counts: (4^k, 4^k, classes) of (left k-mer, right k-mer, centre class) over the training
        region (`helixlab.data.genome.context_counts`, made by the trainer)."""
        self.counts.data = torch.from_numpy(counts).to(torch.float32)
        self._table = None

    def _tables(self) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The counts per order (back-off: j = 1..k nearest bases each side; pseudocount: k only) as
        (4^(2j), K), and the class prior; with the log-probability table, computed once from the counts
        and cached until they change (weights loaded)."""
        key = (self.counts._version, self.counts.data_ptr(), self.counts.device)
        if self._table is None or key != self._table_key:
            with torch.no_grad():
                n = self.counts.detach().float()  # float32 throughout: k = 6 stays near 1 GB
                K, a = n.shape[-1], self.cfg.pseudocount
                prior = (n.sum((0, 1), dtype=torch.float64) + a) / (float(n.sum(dtype=torch.float64)) + K * a)
                orders = [n] if self.cfg.smoothing == "pseudocount" else [  # sum out the farther bases each side
                    n.view(4 ** (self.k - j), 4**j, 4**j, 4 ** (self.k - j), K).sum((0, 3)) if j < self.k else n
                    for j in range(1, self.k + 1)]
                self._orders = [o.reshape(-1, K) for o in orders]
                self._prior = prior.float()
                p = self._smooth(self._orders, self._prior.expand(1, K), tables=True)
                self._table = torch.cat([p, self._prior.view(1, K)]).log_()
                self._table_key = key
        return self._orders, self._prior

    def _smooth(self, orders: list[torch.Tensor], prior: torch.Tensor, *, tables: bool) -> torch.Tensor:
        """Probabilities from counts: pseudocount, or back-off through the orders (each order's
        contexts take the next lower order's prediction as their prior). `orders`: whole tables
        (4^(2j), K) per context id (tables=True), or the (B, K) counts of B windows' own contexts."""
        K, a = prior.shape[-1], self.cfg.pseudocount
        if self.cfg.smoothing == "pseudocount":
            return (orders[-1] + a).div_(orders[-1].sum(-1, keepdim=True).add_(K * a))
        p = prior
        for j, nj in enumerate(orders, start=1):
            if tables and j > 1:  # each j-context's prior is its (j-1)-context's prediction (broadcast, no copy)
                m = 4 ** (j - 1)
                q = (nj.view(4, m, m, 4, K) + a * K * p.view(1, m, m, 1, K)).view(-1, K)
            else:
                q = nj + a * K * p
            p = q.div_(nj.sum(-1, keepdim=True).add_(a * K))
        return p

    def log_probs(self) -> torch.Tensor:
        """(4^(2k) + 1, K) log-probabilities per context id; the last row (contexts with N) the class prior."""
        self._tables()
        assert self._table is not None
        return self._table

    def _ids(self, x: torch.Tensor, j: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The order-j context id of each window (j nearest bases each side of the centre), and
        whether the context has an N (its id is then meaningless)."""
        c = self.centre
        ctx = torch.cat([x[:, c - j : c], x[:, c + 1 : c + 1 + j]], 1).long()
        return ((ctx % 4) * self.powers[-2 * j :]).sum(1), (ctx > 3).any(1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        ids, has_n = self._ids(x, self.k)
        return self.log_probs()[torch.where(has_n, 4 ** (2 * self.k), ids)]

    def train_outputs(self, x: torch.Tensor, strand: torch.Tensor | None, target: Any) -> torch.Tensor:
        """Inside a trained model (a mixture's expert): each training window as if it had not been counted
        (reverse-complemented windows were not counted: one strand)."""
        held = target if strand is None else torch.where(strand.to(target.device), -1, target)
        return self.held_out_log_probs(x, held)

    def held_out_log_probs(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """`features` of windows whose own centre was counted, with that one count taken out at every
        order (leave-one-out): what the model predicts at a training position as if it had not seen it.
        target: each window's class, or -1 for a window that was not counted (left as is). The prior
        keeps the count (one in millions)."""
        with torch.no_grad():
            orders, prior = self._tables()
            K = prior.shape[0]
            own = torch.nn.functional.one_hot(target.clamp(min=0), K).float() * (target >= 0).unsqueeze(1)
            first = 1 if self.cfg.smoothing == "backoff" else self.k
            ids = {j: self._ids(x, j) for j in range(first, self.k + 1)}
            rows = [(o[ids[j][0]] - own).clamp_(min=0) for j, o in zip(ids, orders)]
            p = self._smooth(rows, prior.expand(1, K), tables=False)
            return torch.where(ids[self.k][1].unsqueeze(1), prior, p).log()
