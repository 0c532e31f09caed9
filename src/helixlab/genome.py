"""Windows sampled from long sequences (a genome), without materialising them.

A genome FASTA is prepared once like any file (`length="variable"`: one uint8 array of all
bases, a record offset index, soft-mask bits apart). `GenomeWindows` then holds only the start
positions of a seeded sample of windows inside the given regions, none containing N, and reads
their bases from the memory-mapped array batch by batch. It offers the same interface as a
`Shard` (len, codes, labels, meta, length), so training and evaluation take it unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from helixlab.alphabet import N_CODE
from helixlab.errors import HelixError
from helixlab.shards import Shard

_REGION = re.compile(r"^(?P<name>[^:]+)(?::(?P<start>[\d,_]+)-(?P<end>[\d,_]+))?$")


@dataclass(frozen=True)
class Region:
    record: int  # index of the record in the prepared shard
    start: int  # 0-based, half-open, within the record
    end: int


def record_offsets(shard: Shard) -> np.ndarray:
    """Where each record starts in the flat base array, plus the end (n + 1 values), for either layout."""
    return shard.offsets if shard.offsets is not None else np.arange(len(shard) + 1) * shard.length


def parse_regions(specs: list[str], shard: Shard, source: str) -> list[Region]:
    """'chrX:0-50000000' (0-based half-open) or 'chrX' (whole record) -> Regions of the shard."""
    names = shard.ids()
    index = {name.split()[0]: i for i, name in enumerate(names)}
    for i, name in enumerate(names):  # also the accession inside NCBI ids: gi|110640213|ref|NC_008253.1|
        for part in name.split()[0].split("|"):
            if part:
                index.setdefault(part, i)
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


class GenomeWindows:
    """A seeded sample of `n` N-free windows of `window` bases from `regions` of a prepared shard."""

    labels = None

    def __init__(self, shard: Shard, window: int, regions: list[Region], n: int, seed: int) -> None:
        if window < 1:
            raise HelixError(f"window length must be positive, got {window}", path=str(shard.path))
        self.shard, self.length, self.path = shard, window, shard.path
        offsets = record_offsets(shard)
        spans = [(int(offsets[r.record]) + r.start, r.end - r.start - window + 1) for r in regions]
        spans = [(s, m) for s, m in spans if m > 0]
        if n < 1:
            raise HelixError(f"the number of windows must be positive, got {n}", path=str(shard.path))
        if not spans:
            raise HelixError(f"no region is at least {window} bases long", path=str(shard.path))
        flat = shard.seqs.reshape(-1)
        firsts = np.array([s for s, _ in spans])
        weights = np.array([m for _, m in spans], dtype=np.float64)
        rng = np.random.default_rng([seed, window, n])
        starts: list[np.ndarray] = []
        have, tries = 0, 0
        while have < n:
            tries += 1
            if tries > 50:
                raise HelixError(f"could not find {n:,} windows of {window} bases without N in the regions",
                                 path=str(shard.path))
            k = int((n - have) * 1.3) + 16
            which = rng.choice(len(spans), size=k, p=weights / weights.sum())
            cand = firsts[which] + (rng.random(k) * weights[which]).astype(np.int64)
            has_n = np.concatenate([(flat[c[:, None] + np.arange(window)] == N_CODE).any(1)  # 16 MB at a time
                                    for c in np.array_split(cand, max(1, k * window // 2**24))])
            good = cand[~has_n][: n - have]
            starts.append(good)
            have += len(good)
        self.starts = np.concatenate(starts)
        self._flat = flat
        self.meta: dict[str, Any] = {"labels": [], "records": n, "min_length": window, "max_length": window,
                                     "label_stats": {}, "source": str(shard.path), "window": window,
                                     "regions": [[r.record, r.start, r.end] for r in regions], "seed": seed,
                                     "sha256": shard.meta.get("sha256")}

    def __len__(self) -> int:
        return len(self.starts)

    def codes(self, idx: np.ndarray, pad_to: int | None = None) -> np.ndarray:
        return np.asarray(self._flat[self.starts[idx][:, None] + np.arange(self.length)])

    def ids(self) -> list[str]:
        return [str(s) for s in self.starts.tolist()]
