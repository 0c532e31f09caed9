"""Sorted two-sided context keys of every position of genome regions (the `context_count` model).

Each position whose `k` bases each side and itself are N-free and inside its region gives one key
(`helixlab.seq.context_keys`: the context, nearest bases first) and the class of its centre; with
both strands, also the key of the reverse-complement window with the complemented centre's class.
The keys are sorted once: the class counts of any context prefix are then a range of the arrays.

Memory: 9 bytes per key kept, plus the sort. In memory the sort needs about 2.5x the keys
(`in_memory_bytes`); when that exceeds `max_memory`, the keys are partitioned by their first four
context bases into 256 bucket files under `work_dir` (one pass over the genome, one chunk in memory
at a time), each bucket is sorted alone and written in order into memory-mapped output arrays. The
working memory is then one chunk plus one bucket (about 1/256 of the keys for a mammalian genome:
a 3 Gb genome, both strands, is 6e9 keys, 54 GB of output on disk, buckets of about 0.2 GB).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from helixlab.data.genome import Region, record_offsets
from helixlab.data.shards import Shard
from helixlab.errors import HelixError
from helixlab.progress import progress_bar
from helixlab.seq.alphabet import N_CODE
from helixlab.seq.context_keys import ordered, pack, reverse_strand

BUCKET_BITS = 8  # the first four context bases choose the bucket
KEY_BYTES = 9  # a uint64 key and a uint8 class per position and strand


def machine_memory() -> int:
    """Bytes of physical memory of this machine."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def model_bytes(positions: int, n_classes: int) -> int:
    """Bytes a fitted model of `positions` keys holds in memory to predict: keys, classes, prefix sums."""
    return positions * (KEY_BYTES + 4 * (n_classes - 1))


def in_memory_bytes(positions: int) -> int:
    """Peak bytes of counting `positions` keys in memory (keys, classes, the argsort, the sorted copy)."""
    return int(positions * (KEY_BYTES + 8 + 8) * 1.1)


def _candidates(regions: list[Region], k: int) -> int:
    return sum(max(0, r.end - r.start - 2 * k) for r in regions)


def _chunks(shard: Shard, regions: list[Region], k: int, classes: np.ndarray | None, both: bool, order: str,
            chunk: int, bar: object):
    """(keys, classes) of successive chunks of positions (both strands concatenated)."""
    lut = None if classes is None else np.concatenate([classes, [0]]).astype(np.uint8)
    flat = shard.seqs.reshape(-1)
    mask = shard.mask.reshape(-1) if shard.mask is not None else None
    offsets = record_offsets(shard)
    for r in regions:
        lo, hi = int(offsets[r.record]) + r.start + k, int(offsets[r.record]) + r.end - k  # centres [lo, hi)
        for p0 in range(lo, hi, chunk):
            m = min(chunk, hi - p0)
            seg = np.asarray(flat[p0 - k : p0 + m + k])
            n_cum = np.concatenate([[0], np.cumsum(seg == N_CODE)])
            ok = n_cum[2 * k + 1 : 2 * k + 1 + m] == n_cum[:m]
            left = [seg[k - i : k - i + m] for i in range(1, k + 1)]
            right = [seg[k + i : k + i + m] for i in range(1, k + 1)]
            centre = seg[k : k + m]
            if lut is None:  # the repeat target: the soft-mask bit, the same on both strands
                if mask is None:
                    raise HelixError("task.target 'repeat' needs a soft-masked genome (lowercase repeats)",
                                     path=str(shard.path))
                fwd_cls = rev_cls = np.asarray(mask[p0 : p0 + m])[ok].astype(np.uint8)
            else:
                fwd_cls = lut[centre[ok]]
                rev_cls = lut[3 - np.minimum(centre[ok], 3)]
            keys = [pack(ordered(left, right, order))[ok]]
            cls = [fwd_cls]
            if both:
                keys.append(pack(ordered(*reverse_strand(left, right), order))[ok])
                cls.append(rev_cls)
            bar.update(m)  # type: ignore[attr-defined]
            yield np.concatenate(keys), np.concatenate(cls)


def sorted_contexts(shard: Shard, regions: list[Region], k: int, classes: np.ndarray | None, *,
                    both_strands: bool = True, order: str = "interleaved", max_memory: float = 3e9,
                    work_dir: Path | None = None, chunk: int = 1 << 22, progress: bool = False, n_orders: int = 1
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(keys uint64 sorted, classes uint8 in the same order) of every counted position of `regions`,
    its context bases in `order` (`helixlab.seq.context_keys.ORDERS`).
    classes: the class of each base code 0-3, or None for the soft-mask (repeat) bit. Above
    `max_memory` bytes the bucketed path runs in `work_dir` (a new directory, removed after; the
    output arrays are memory-mapped files inside it, which stay readable until dropped). n_orders: how
    many such arrays the model holds (for the check that it fits this machine's memory)."""
    strands = 2 if both_strands else 1
    bound = _candidates(regions, k) * strands
    if bound == 0:
        raise HelixError(f"no position of the training regions has {k} bases each side inside its region",
                         path=str(shard.path))
    n_classes = 2 if classes is None else int(classes.max()) + 1
    need = model_bytes(bound, n_classes) * n_orders
    if need > machine_memory():
        raise HelixError(f"counting up to {bound:,} contexts in {n_orders} order(s) makes a model of about "
                         f"{need / 1e9:.1f} GB in memory (keys, classes and their prefix sums), more than this "
                         f"machine's {machine_memory() / 1e9:.1f} GB: count one strand (model.params.strands = "
                         "'forward'), fewer orders or fewer training regions", path=str(shard.path))
    bar = progress_bar(progress, total=bound // strands, desc=f"count {order} contexts of {k} bases each side",
                       unit=" bases", unit_scale=True)
    try:
        if in_memory_bytes(bound) <= max_memory:
            keys, cls = _in_memory(_chunks(shard, regions, k, classes, both_strands, order, chunk, bar), bound)
        else:
            if work_dir is None:
                raise HelixError(f"counting {bound:,} contexts needs about {in_memory_bytes(bound) / 1e9:.1f} GB "
                                 f"in memory, over the limit of {max_memory / 1e9:.1f} GB, and no work directory "
                                 "was given for the bucketed path", path=str(shard.path))
            keys, cls = _bucketed(_chunks(shard, regions, k, classes, both_strands, order, chunk, bar), work_dir)
    finally:
        bar.close()
    if not len(keys):
        raise HelixError(f"no usable position in the training regions: every window of {2 * k + 1} bases "
                         "has an N", path=str(shard.path))
    return keys, cls


def _in_memory(chunks, bound: int) -> tuple[np.ndarray, np.ndarray]:
    keys = np.empty(bound, np.uint64)
    cls = np.empty(bound, np.uint8)
    n = 0
    for kc, cc in chunks:
        keys[n : n + len(kc)], cls[n : n + len(cc)] = kc, cc
        n += len(kc)
    order = np.argsort(keys[:n])
    return keys[:n][order], cls[:n][order]


def _bucketed(chunks, work_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """External sort by buckets of the first context bases: bucket files, then each bucket sorted
    into its place of the memory-mapped output."""
    if work_dir.exists():
        shutil.rmtree(work_dir)  # left by a killed run: start clean
    buckets = work_dir / "buckets"
    buckets.mkdir(parents=True)
    shift = np.uint64(64 - BUCKET_BITS)
    sizes = np.zeros(1 << BUCKET_BITS, np.int64)
    for kc, cc in chunks:
        b = (kc >> shift).astype(np.int64)
        order = np.argsort(b, kind="stable")
        edges = np.searchsorted(b[order], np.arange((1 << BUCKET_BITS) + 1))
        kc, cc = kc[order], cc[order]
        for i in np.flatnonzero(np.diff(edges)):
            with open(buckets / f"{i}.keys", "ab") as fk, open(buckets / f"{i}.cls", "ab") as fc:
                fk.write(kc[edges[i] : edges[i + 1]].tobytes())
                fc.write(cc[edges[i] : edges[i + 1]].tobytes())
        sizes += np.diff(edges)
    n = int(sizes.sum())
    keys = np.lib.format.open_memmap(work_dir / "keys.npy", "w+", np.uint64, (n,))
    cls = np.lib.format.open_memmap(work_dir / "classes.npy", "w+", np.uint8, (n,))
    at = 0
    for i in np.flatnonzero(sizes):
        bk = np.fromfile(buckets / f"{i}.keys", np.uint64)
        bc = np.fromfile(buckets / f"{i}.cls", np.uint8)
        order = np.argsort(bk)
        keys[at : at + len(bk)], cls[at : at + len(bk)] = bk[order], bc[order]
        at += len(bk)
        os.remove(buckets / f"{i}.keys")
        os.remove(buckets / f"{i}.cls")
    keys.flush()
    cls.flush()
    return keys, cls
