"""Token ids from uint8 base codes, vectorised in torch (no per-sequence Python loops).

`kmer_ids` covers both overlapping k-mers (stride 1, DNABERT style) and non-overlapping
windows (stride k). Ids: 0..4^k-1 for k-mers over ACGT; `4**k` for any k-mer containing N.
"""

from __future__ import annotations

import torch


def kmer_ids(x: torch.Tensor, k: int, stride: int = 1) -> torch.Tensor:
    """x: (N, L) uint8 codes -> (N, (L - k) // stride + 1) int64 k-mer ids; N-containing -> 4**k."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if x.shape[1] < k:
        raise ValueError(f"sequence length {x.shape[1]} is shorter than k={k}")
    codes = x.long()
    windows = codes.unfold(1, k, stride)  # (N, W, k)
    weights = 4 ** torch.arange(k - 1, -1, -1, device=x.device)
    ids = (windows.clamp(max=3) * weights).sum(-1)
    has_n = (windows == 4).any(-1)
    return torch.where(has_n, torch.full_like(ids, 4**k), ids)


def kmer_vocab_size(k: int) -> int:
    """Number of distinct ids `kmer_ids` can return (4^k plus the N id)."""
    return 4**k + 1
