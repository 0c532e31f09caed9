"""What a design may change: fixed regions, forbidden motifs, a GC-content range, a maximum of edits.

`Constraints.allowed(X, start)` is the (N, 4, L) mask of the single substitutions each current sequence
may take; `Constraints.creates_forbidden(before, after)` says which candidates gain a forbidden motif
(either strand). Both greedy design and the genetic algorithm use them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from helixlab.errors import HelixError
from helixlab.seq.alphabet import N_CODE
from helixlab.seq.motifs import count_occurrences, gc_fraction, iupac_mask


def parse_ranges(text: str | None, *, option: str = "--fixed") -> list[tuple[int, int]]:
    """'0-17,97-110' -> [(0, 17), (97, 110)]: 0-based, end excluded (as in BED)."""
    if not text:
        return []
    ranges = []
    for part in text.split(","):
        bits = part.strip().split("-")
        try:
            start, end = (int(bits[0]), int(bits[1])) if len(bits) == 2 else (int(bits[0]), int(bits[0]) + 1)
        except ValueError:
            raise HelixError(f"{part.strip()!r} is not a range START-END (0-based, end excluded)",
                             record=option) from None
        if start < 0 or end <= start:
            raise HelixError(f"range {part.strip()!r} is empty or negative (START-END, 0-based, end excluded)",
                             record=option)
        ranges.append((start, end))
    ranges.sort()
    for (a, b), (c, d) in zip(ranges, ranges[1:]):
        if c < b:
            raise HelixError(f"ranges {a}-{b} and {c}-{d} overlap: give them as one range", record=option)
    return ranges


@dataclass
class Constraints:
    fixed: list[tuple[int, int]] = field(default_factory=list)
    forbid: list[str] = field(default_factory=list)
    gc: tuple[float, float] | None = None
    max_edits: int | None = None

    def __post_init__(self) -> None:
        self.masks = [iupac_mask(m, option="--forbid") for m in self.forbid]
        if self.gc is not None:
            lo, hi = self.gc
            if not 0.0 <= lo <= hi <= 1.0:
                raise HelixError(f"GC range {lo:g}-{hi:g} must satisfy 0 <= LOW <= HIGH <= 1", record="--gc")
        if self.max_edits is not None and self.max_edits < 1:
            raise HelixError(f"the maximum number of edits must be at least 1, not {self.max_edits}",
                             record="--max-edits")

    def check(self, length: int) -> None:
        """Refuse constraints that cannot apply to sequences of `length`."""
        for start, end in self.fixed:
            if end > length:
                raise HelixError(f"fixed region {start}-{end} runs past the end of the sequences ({length} bp)",
                                 record="--fixed")
        if self.fixed and self.free(length).sum() == 0:
            raise HelixError(f"the fixed regions cover every position of the {length} bp sequences: nothing is "
                             "left to design", record="--fixed")
        for motif, mask in zip(self.forbid, self.masks):
            if len(mask) > length:
                raise HelixError(f"forbidden motif {motif!r} ({len(mask)} bp) is longer than the sequences "
                                 f"({length} bp)", record="--forbid")

    def free(self, length: int) -> np.ndarray:
        """(L,) bool: the positions a design may change."""
        free = np.ones(length, dtype=bool)
        for start, end in self.fixed:
            free[start:end] = False
        return free

    def allowed(self, X: np.ndarray, start: np.ndarray) -> np.ndarray:
        """(N, 4, L) bool: substitution of base b at position p of row i is allowed (a different base, a
        free position, not an N, within the edit budget, and keeping GC in range or moving toward it)."""
        n, length = X.shape
        ok = (np.arange(4)[None, :, None] != X[:, None, :]) & (X[:, None, :] < N_CODE)
        ok &= self.free(length)[None, None, :]
        if self.max_edits is not None:
            edited = X != start
            edits = edited.sum(1)
            # a substitution at an unedited position adds one edit; back to the start base removes one
            change = np.where(edited[:, None, :], 0, 1) - (np.arange(4)[None, :, None] == start[:, None, :])
            ok &= (edits[:, None, None] + change) <= self.max_edits
        if self.gc is not None:
            lo, hi = self.gc
            acgt = np.maximum((X < N_CODE).sum(1), 1)[:, None, None]
            gc = ((X == 1) | (X == 2)).sum(1)[:, None, None]
            is_gc = np.isin(np.arange(4), (1, 2))
            now_gc = np.isin(X, (1, 2))[:, None, :]
            new = (gc + is_gc[None, :, None].astype(int) - now_gc.astype(int)) / acgt
            now = gc / acgt
            ok &= _distance(new, lo, hi) <= np.maximum(_distance(now, lo, hi) - 1e-12, 0.0) + 1e-12
        return ok

    def creates_forbidden(self, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        """(N,) bool: rows of `after` with more forbidden-motif matches than the same rows of `before`."""
        if not self.masks:
            return np.zeros(len(after), dtype=bool)
        return count_occurrences(after, self.masks) > count_occurrences(before, self.masks)

    def satisfied(self, X: np.ndarray, start: np.ndarray) -> np.ndarray:
        """(N,) bool: whole sequences that keep every constraint relative to their starts (GC in range,
        fixed regions as the start, edits within the budget)."""
        ok = np.ones(len(X), dtype=bool)
        free = self.free(X.shape[1])
        ok &= (X[:, ~free] == start[:, ~free]).all(1)
        if self.max_edits is not None:
            ok &= (X != start).sum(1) <= self.max_edits
        if self.gc is not None:
            ok &= _distance(gc_fraction(X), *self.gc) <= _distance(gc_fraction(start), *self.gc) + 1e-12
        return ok

    def describe(self) -> list[str]:
        out = []
        if self.fixed:
            out.append("fixed regions " + ", ".join(f"{a}-{b}" for a, b in self.fixed))
        if self.forbid:
            out.append("forbidden motifs " + ", ".join(self.forbid) + " (both strands)")
        if self.gc is not None:
            out.append(f"GC content {self.gc[0]:g}-{self.gc[1]:g}")
        if self.max_edits is not None:
            out.append(f"at most {self.max_edits} edits from the start")
        return out or ["none"]


def _distance(value: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """How far a GC fraction lies outside [lo, hi] (0 inside)."""
    return np.maximum(lo - value, 0.0) + np.maximum(value - hi, 0.0)
