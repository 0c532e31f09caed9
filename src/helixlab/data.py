"""Batches from prepared shards: a seeded, resumable order; rank sharding for DDP; RC augmentation.

The order of epoch e is a permutation drawn from (seed, e) alone, so a run resumed at batch b of
epoch e sees exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from helixlab.alphabet import reverse_complement
from helixlab.errors import HelixError
from helixlab.shards import Shard, prepare
from helixlab.transforms import SeqOptions


def open_data(paths: str | list[str], cache_dir: Path | None, *, fmt: str = "auto", seq_col: str | None = None,
              label_cols: list[str] | None = None, iupac: str = "error", require_labels: bool = True,
              progress: bool = True, where: str | None = None, options: SeqOptions | None = None) -> Shard:
    """A prepared directory as is, or sequence files (one or a list) prepared once into `cache_dir`
    (`where` and `options` as in `shards.prepare`)."""
    files = [paths] if isinstance(paths, str) else list(paths)
    if len(files) == 1 and Path(files[0]).is_dir():
        return Shard.open(files[0])
    for f in files:
        if not Path(f).is_file():
            raise HelixError("data file not found" + (" (a prepared directory must be given alone)"
                                                      if Path(f).is_dir() else ""), path=f)
    if cache_dir is None:
        raise HelixError("raw data files need a directory to prepare into", path=files[0])
    if not (cache_dir / "meta.json").exists():
        prepare(files, cache_dir, fmt=fmt, seq_col=seq_col, label_cols=label_cols, iupac=iupac,  # type: ignore[arg-type]
                require_labels=require_labels, unique_ids=False, overwrite=cache_dir.exists(), progress=progress,
                where=where, options=options)
    return Shard.open(cache_dir)


def per_bin_rows(values: np.ndarray, per_bin: int, bins: int, seed: int = 0) -> np.ndarray:
    """Sorted row indices: at most `per_bin` rows drawn (seeded) from each of `bins` equal-width bins
    of `values` between their min and max: a near-uniform subset over the label range."""
    values = np.asarray(values, dtype=np.float64)
    lo, hi = float(values.min()), float(values.max())
    which = np.minimum(((values - lo) / max(hi - lo, 1e-12) * bins).astype(np.int64), bins - 1)
    rng = np.random.default_rng([seed, 17])
    picked = []
    for b in range(bins):
        members = np.flatnonzero(which == b)
        if len(members) > per_bin:
            members = rng.choice(members, per_bin, replace=False)
        picked.append(members)
    return np.sort(np.concatenate(picked))


def holdout_rows(n: int, fraction: float) -> np.ndarray:
    """Sorted indices of a fixed `fraction` of n rows (at least one): the validation rows held out of a
    training file. Fixed by n alone, not by the training seed, so every run holds out the same rows."""
    return np.sort(np.random.default_rng([n, 99]).permutation(n)[: max(1, round(fraction * n))])


class RowSubset:
    """Some rows of a shard, read like a shard (the per-bin training subset)."""

    def __init__(self, shard: Shard, rows: np.ndarray, note: dict[str, object]) -> None:
        self.shard, self.rows = shard, rows
        self.labels = np.asarray(shard.labels[rows]) if shard.labels is not None else None
        self.meta = {**shard.meta, "records": len(rows), "subset": {**note, "of_records": len(shard)}}
        self.length = shard.length

    def __len__(self) -> int:
        return len(self.rows)

    def codes(self, idx: np.ndarray, pad_to: int | None = None) -> np.ndarray:
        return self.shard.codes(self.rows[idx], pad_to)

    def ids(self) -> list[str]:
        every = self.shard.ids()
        return [every[i] for i in self.rows]


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


def eval_batches(n: int, batch_size: int) -> Iterator[np.ndarray]:
    for start in range(0, n, batch_size):
        yield np.arange(start, min(start + batch_size, n))


def dist_info() -> tuple[int, int]:
    """(rank, world size) from torchrun's environment."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
