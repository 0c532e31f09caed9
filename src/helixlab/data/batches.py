"""Batches from prepared data: a seeded, resumable order; rank sharding for DDP; RC and shift augmentation.

The order of epoch e is a permutation drawn from (seed, e) alone, so a run resumed at batch b of
epoch e sees exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from helixlab.data.shards import Shard
from helixlab.seq.alphabet import N_CODE, reverse_complement


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The permutation of rows for one epoch, a function of (seed, epoch) only."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def batches_per_epoch(n: int, batch_size: int) -> int:
    return (n + batch_size - 1) // batch_size


def train_batches(shard: Shard, *, batch_size: int, seed: int, epoch: int, start: int = 0,
                  rank: int = 0, world: int = 1) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (batch number, row indices) for this rank from batch `start` of `epoch`.

    `batch_size` is the global batch; each of `world` ranks takes every world-th row of it.
    """
    order = epoch_order(len(shard), seed, epoch)
    for b in range(start, batches_per_epoch(len(shard), batch_size)):
        idx = order[b * batch_size : (b + 1) * batch_size][rank::world]
        yield b, np.sort(idx)


def load_batch(shard: Shard, idx: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    """Rows `idx` as ((n, L) uint8 tensor, (n, T) float32 labels); T = 0 for unlabelled data."""
    x = torch.from_numpy(shard.codes(idx))
    if shard.labels is None:
        return x, np.zeros((len(idx), 0), dtype=np.float32)
    return x, np.asarray(shard.labels[idx])


def rc_augment(x: torch.Tensor, seed: int, epoch: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Reverse-complement a random half of the batch; the choice depends on (seed, epoch, batch) only.
    Returns (x, reverse): which rows were flipped, for models with a strand channel."""
    flip = np.random.default_rng([seed, epoch, batch, 7]).random(len(x)) < 0.5
    reverse = torch.from_numpy(flip)
    if not flip.any():
        return x, reverse
    x = x.clone()
    rows = torch.from_numpy(np.flatnonzero(flip))
    x[rows] = reverse_complement(x[rows])  # type: ignore[assignment]
    return x, reverse


def shift_augment(x: torch.Tensor, max_shift: int, seed: int, epoch: int, batch: int) -> torch.Tensor:
    """Move each row of (n, L) codes by its own offset in [-max_shift, max_shift] (a function of (seed,
    epoch, batch) only); the bases pushed past an end are dropped and the vacated end is N."""
    n, length = x.shape
    offset = np.random.default_rng([seed, epoch, batch, 11]).integers(-max_shift, max_shift + 1, n)
    source = torch.arange(length)[None, :] - torch.from_numpy(offset)[:, None]
    inside = (source >= 0) & (source < length)
    moved = torch.gather(x, 1, source.clamp(0, length - 1).to(x.device))
    return torch.where(inside.to(x.device), moved, torch.full_like(moved, N_CODE))


def mask_augment(x: torch.Tensor, fraction: float, seed: int, epoch: int, batch: int) -> torch.Tensor:
    """Replace each base of (n, L) codes by N with probability `fraction` (a function of (seed, epoch,
    batch) only); the other bases stay where they are."""
    hide = np.random.default_rng([seed, epoch, batch, 13]).random(tuple(x.shape)) < fraction
    return torch.where(torch.from_numpy(hide).to(x.device), torch.full_like(x, N_CODE), x)


def eval_batches(n: int, batch_size: int) -> Iterator[np.ndarray]:
    for start in range(0, n, batch_size):
        yield np.arange(start, min(start + batch_size, n))
