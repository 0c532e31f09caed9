"""Windows sampled from long sequences (a genome), without materialising them.

A genome FASTA is prepared once like any file (`length="variable"`: one uint8 array of all
bases, a record offset index, soft-mask bits apart). `GenomeWindows` then holds only the start
positions of a seeded sample of windows inside the given regions, none containing N, and reads
their bases from the memory-mapped array batch by batch. It offers the same interface as a
`Shard` (len, codes, labels, meta, length), so training and evaluation take it unchanged.
The training split draws a fresh sample every epoch (`draw(epoch)`; epoch 0 is the first draw).

`CentreWindows` is the context task (S5): windows of `flank` bases each side of a sampled centre,
whose base is hidden from the model (read as N) and is the label, with its soft-mask (repeat) bit.
`context_counts` counts (left k-mer, right k-mer, centre class) over every position of regions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from helixlab.data.shards import Shard
from helixlab.errors import HelixError
from helixlab.progress import progress_bar
from helixlab.seq.alphabet import N_CODE

_REGION = re.compile(r"^(?P<name>[^:]+)(?::(?P<start>[\d,_]+)-(?P<end>[\d,_]+))?$")


@dataclass(frozen=True)
class Region:
    record: int  # index of the record in the prepared shard
    start: int  # 0-based, half-open, within the record
    end: int


def record_offsets(shard: Shard) -> np.ndarray:
    """Where each record starts in the flat base array, plus the end (n + 1 values), for either layout."""
    return shard.offsets if shard.offsets is not None else np.arange(len(shard) + 1) * shard.length


def record_index(shard: Shard) -> dict[str, int]:
    """Record (chromosome) index by name: the first word of each FASTA header, and the accessions inside
    NCBI ids (gi|110640213|ref|NC_008253.1| is also NC_008253.1)."""
    names = shard.ids()
    index = {name.split()[0]: i for i, name in enumerate(names)}
    for i, name in enumerate(names):
        for part in name.split()[0].split("|"):
            if part:
                index.setdefault(part, i)
    return index


def parse_regions(specs: list[str], shard: Shard, source: str) -> list[Region]:
    """'chrX:0-50000000' (0-based half-open) or 'chrX' (whole record) -> Regions of the shard."""
    index = record_index(shard)
    lengths = np.diff(record_offsets(shard))
    regions = []
    for spec in specs:
        m = _REGION.match(spec.strip())
        if not m:
            raise HelixError(f"cannot read region {spec!r}; expected NAME or NAME:START-END", path=source)
        name = m["name"]
        if name not in index:
            raise HelixError(f"region {spec!r}: no record named {name!r} (records: {', '.join(list(index)[:5])}"
                             f"{', ...' if len(index) > 5 else ''})", path=source)
        r = index[name]
        start = int(m["start"].replace(",", "").replace("_", "")) if m["start"] else 0
        end = int(m["end"].replace(",", "").replace("_", "")) if m["end"] else int(lengths[r])
        if not 0 <= start < end <= lengths[r]:
            raise HelixError(f"region {spec!r} is outside record {name!r} of length {lengths[r]:,}", path=source)
        regions.append(Region(r, start, end))
    return regions


def n_runs(flat: np.ndarray, chunk: int = 1 << 26) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of the runs of N in a flat base array, half-open, sorted; read in chunks so
    memory stays small whatever the genome size (a genome has few runs of N, however long)."""
    starts: list[np.ndarray] = []
    ends: list[np.ndarray] = []
    prev = np.int8(0)
    for a in range(0, len(flat), chunk):
        isn = (np.asarray(flat[a : a + chunk]) == N_CODE).astype(np.int8)
        edges = np.diff(isn, prepend=prev)  # +1 where a run starts, -1 where one has just ended
        starts.append(np.flatnonzero(edges == 1) + a)
        ends.append(np.flatnonzero(edges == -1) + a)
        prev = isn[-1]
    if prev:
        ends.append(np.array([len(flat)]))
    return np.concatenate(starts or [np.zeros(0, np.int64)]), np.concatenate(ends or [np.zeros(0, np.int64)])


def clean(runs: tuple[np.ndarray, np.ndarray], lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """True where the closed ranges [lo, hi] of the flat array hold no N (`runs` from `n_runs`)."""
    starts, ends = runs
    if not len(starts):
        return np.ones(len(lo), dtype=bool)
    i = np.searchsorted(ends, lo, side="right")  # the first run that ends after lo
    return (i >= len(starts)) | (starts[np.minimum(i, len(starts) - 1)] > hi)


class GenomeWindows:
    """A seeded sample of `n` N-free windows of `window` bases from `regions` of a prepared shard.

    Each sampled anchor needs the bases [anchor - before, anchor + after] N-free and inside its
    region; the window read is `window` bases from anchor - lead. Plain windows: the anchor is the
    start (before = lead = 0, after = window - 1)."""

    labels: np.ndarray | None = None

    def __init__(self, shard: Shard, window: int, regions: list[Region], n: int, seed: int) -> None:
        self._setup(shard, window, regions, n, seed, before=0, after=window - 1, lead=0)

    def _setup(self, shard: Shard, window: int, regions: list[Region], n: int, seed: int, *,
               before: int, after: int, lead: int) -> None:
        if window < 1:
            raise HelixError(f"window length must be positive, got {window}", path=str(shard.path))
        if n < 1:
            raise HelixError(f"the number of windows must be positive, got {n}", path=str(shard.path))
        self.shard, self.length, self.path, self.n, self.seed = shard, window, shard.path, n, seed
        self.regions, self.before, self.after, self.lead = regions, before, after, lead
        offsets = record_offsets(shard)
        # anchors of region r: first = its start + before, count = its length - before - after
        self._spans = [(int(offsets[r.record]) + r.start + before, r.end - r.start - before - after)
                       for r in regions]
        self._spans = [(s, m) for s, m in self._spans if m > 0]
        if not self._spans:
            raise HelixError(f"no region is at least {before + after + 1} bases long", path=str(shard.path))
        self._flat = shard.seqs.reshape(-1)
        self._nruns = n_runs(self._flat)
        self.epoch = -1
        self.meta: dict[str, Any] = {"labels": [], "records": n, "min_length": window, "max_length": window,
                                     "label_stats": {}, "source": str(shard.path), "window": window,
                                     "regions": [[r.record, r.start, r.end] for r in regions], "seed": seed,
                                     "sources": shard.meta.get("sources", [])}
        self.draw(0)

    def _key(self, epoch: int) -> list[int]:
        base = [self.seed, self.length, self.n]
        return base if epoch == 0 else [*base, epoch]

    def draw(self, epoch: int) -> None:
        """Sample the windows of `epoch` (a function of seed and epoch alone): the training split
        sees new positions every epoch; valid and test keep epoch 0, a fixed sample."""
        if epoch == self.epoch:
            return
        firsts = np.array([s for s, _ in self._spans])
        weights = np.array([m for _, m in self._spans], dtype=np.float64)
        rng = np.random.default_rng(self._key(epoch))
        anchors: list[np.ndarray] = []
        have, tries = 0, 0
        while have < self.n:
            tries += 1
            if tries > 50:
                raise HelixError(f"could not find {self.n:,} windows of {self.length} bases without N in the "
                                 "regions", path=str(self.shard.path))
            k = int((self.n - have) * 1.3) + 16
            which = rng.choice(len(firsts), size=k, p=weights / weights.sum())
            cand = firsts[which] + (rng.random(k) * weights[which]).astype(np.int64)
            good = cand[clean(self._nruns, cand - self.before, cand + self.after)][: self.n - have]
            anchors.append(good)
            have += len(good)
        self.anchors = np.concatenate(anchors)
        self.starts = self.anchors - self.lead
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.starts)

    def codes(self, idx: np.ndarray, pad_to: int | None = None) -> np.ndarray:
        return np.asarray(self._flat[self.starts[idx][:, None] + np.arange(self.length)])

    def ids(self) -> list[str]:
        return [str(s) for s in self.starts.tolist()]


CONTEXT_LABELS = ["centre", "repeat"]


class CentreWindows(GenomeWindows):
    """Windows of `flank` bases each side of a sampled centre (length 2 * flank + 1), the centre read
    as N; labels (centre base code 0-3, repeat bit). Centres are drawn with max(flank, clearance)
    clean bases each side, from a stream that does not depend on the flank: models with any flank up
    to `clearance` are trained and scored on exactly the same positions."""

    def __init__(self, shard: Shard, flank: int, regions: list[Region], n: int, seed: int, *,
                 clearance: int = 0) -> None:
        if flank < 1:
            raise HelixError(f"the flank must be at least 1 base, got {flank}", path=str(shard.path))
        self.flank, self.reach = flank, max(flank, clearance)
        self._mask = shard.mask
        self._setup(shard, 2 * flank + 1, regions, n, seed, before=self.reach, after=self.reach, lead=flank)
        self.meta.update(labels=list(CONTEXT_LABELS), flank=flank, clearance=self.reach,
                         has_mask=self._mask is not None)

    def _key(self, epoch: int) -> list[int]:
        return [self.seed, self.n, self.reach, 5] + ([epoch] if epoch else [])

    def draw(self, epoch: int) -> None:
        if epoch == self.epoch:
            return
        super().draw(epoch)
        centre = np.asarray(self._flat[self.anchors])
        repeat = np.asarray(self._mask[self.anchors]) if self._mask is not None else np.zeros(len(centre), np.uint8)
        self.labels = np.stack([centre, repeat], 1).astype(np.float32)

    def codes(self, idx: np.ndarray, pad_to: int | None = None) -> np.ndarray:
        x = super().codes(idx)
        x[:, self.flank] = N_CODE
        return x

    def ids(self) -> list[str]:
        return [str(s) for s in self.anchors.tolist()]


def context_counts(shard: Shard, regions: list[Region], k: int, classes: np.ndarray, *,
                   chunk: int = 1 << 24, progress: bool = False) -> np.ndarray:
    """Exact counts (4^k left contexts, 4^k right contexts, n classes) of every position of `regions`
    whose k bases each side and itself are N-free and inside the region. `classes` maps base codes
    0-3 to class indices. Left k-mer ids read outward-in (the farthest base is the most significant
    digit), right k-mers inward-out. Vectorised over chunks of `chunk` positions."""
    n_classes = int(classes.max()) + 1
    lut = np.zeros(N_CODE + 1, dtype=np.int64)
    lut[:4] = classes
    flat = shard.seqs.reshape(-1)
    offsets = record_offsets(shard)
    total = np.zeros(4 ** (2 * k) * n_classes, dtype=np.int64)
    bar = progress_bar(progress, total=sum(r.end - r.start for r in regions), desc=f"count {k}-mer contexts",
                       unit=" bases", unit_scale=True)
    pending: list[np.ndarray] = []
    waiting = 0
    for r in regions:
        lo, hi = int(offsets[r.record]) + r.start + k, int(offsets[r.record]) + r.end - k  # centres [lo, hi)
        bar.update(2 * k)
        for p0 in range(lo, hi, chunk):
            m = min(chunk, hi - p0)
            seg = np.asarray(flat[p0 - k : p0 + m + k]).astype(np.int64)
            n_cum = np.concatenate([[0], np.cumsum(seg == N_CODE)])
            ok = n_cum[2 * k + 1 : 2 * k + 1 + m] == n_cum[:m]
            digits = seg & 3
            kid = np.zeros(len(seg) - k + 1, dtype=np.int64)
            for j in range(k):
                kid = kid * 4 + digits[j : j + len(kid)]
            key = (kid[:m] * 4**k + kid[k + 1 : k + 1 + m]) * n_classes + lut[seg[k : k + m]]
            pending.append(key[ok])
            waiting += int(ok.sum())
            if waiting >= chunk:  # one bincount per `chunk` keys, however many (small) regions
                total += np.bincount(np.concatenate(pending), minlength=total.size)
                pending, waiting = [], 0
            bar.update(m)
    if pending:
        total += np.bincount(np.concatenate(pending), minlength=total.size)
    bar.close()
    return total.reshape(4**k, 4**k, n_classes)
