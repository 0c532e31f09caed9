"""Per-record sequence options applied when data is prepared and again when a run predicts.

Filters drop training rows (`drop_n`, `lengths`); transforms reshape every sequence the same way
in training, evaluation and prediction (`crop`, then `pad_to` with a constant context).
All work on a chunk at a time: flat uint8 codes + lengths, vectorised.

DREAM 2022 sequences are 110 bp: a 17 bp constant 5' flank, the 80 bp random region and a
13 bp constant 3' flank, cloned into the pTpA plasmid. `crop = [17, -13]` keeps the random
region; `pad_to = 150, pad_context = "pTpA"` extends each sequence with the plasmid bases
around the insert (upstream first), the way LegNet fed it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from helixlab.errors import HelixError
from helixlab.seq import alphabet

# The pTpA vector around a whole 110 bp DREAM sequence (which carries the constant 17 bp 5' and 13 bp
# 3' flanks itself): the bases just upstream of its first base and just downstream of its last.
PLASMID_CONTEXT: dict[str, tuple[str, str]] = {
    "pTpA": ("GCTAGCAGGAATGATGCAAAAGGTTCCCGATTCGAAC",
             "TCTTAATTAAAAAAAGATAGAAAACATTAGGAGTGTAACACAAGACTTTCGGATCCTGAGCAGGCAAGATAAACGA"),
}


@dataclass(frozen=True)
class SeqOptions:
    """drop_n: drop training rows containing N. lengths: keep only training rows of these lengths.
    crop: [start, end] slice of every sequence (end < 0 counts from the end, as in Python).
    pad_to: extend every sequence to this length with `pad_context`: a name in PLASMID_CONTEXT or
    [upstream, downstream] strings; upstream bases go first, the rest come from downstream; with
    no context the padding is N."""

    drop_n: bool = False
    lengths: tuple[int, ...] | None = None
    crop: tuple[int, int] | None = None
    pad_to: int = 0
    pad_context: str | tuple[str, str] | None = None

    def check(self, where: str = "data") -> None:
        if self.crop is not None and (len(self.crop) != 2 or self.crop[0] < 0):
            raise HelixError(f"{where}.crop must be [start, end] with start >= 0, got {list(self.crop)}",
                             record=f"{where}.crop")
        if self.pad_to < 0:
            raise HelixError(f"{where}.pad_to must be >= 0, got {self.pad_to}", record=f"{where}.pad_to")
        if self.crop is not None and self.pad_to and isinstance(self.pad_context, str):
            raise HelixError(f"the {self.pad_context} context continues the whole sequence, not a cropped part: "
                             f"use crop or pad_context, or give [upstream, downstream] bases",
                             record=f"{where}.pad_context")
        self.context()

    def transforms_only(self) -> SeqOptions:
        """These options without the row filters: for evaluation and prediction, where every record counts."""
        return replace(self, drop_n=False, lengths=None)

    @property
    def transforms(self) -> bool:
        return self.crop is not None or self.pad_to > 0

    def context(self) -> tuple[np.ndarray, np.ndarray]:
        """(upstream, downstream) padding bases as codes."""
        ctx = self.pad_context
        if ctx is None:
            return np.zeros(0, np.uint8), np.zeros(0, np.uint8)
        if isinstance(ctx, str):
            if ctx not in PLASMID_CONTEXT:
                raise HelixError(f"unknown pad_context {ctx!r}; known: {sorted(PLASMID_CONTEXT)} or "
                                 "[upstream, downstream]", record="data.pad_context")
            ctx = PLASMID_CONTEXT[ctx]
        if len(ctx) != 2:
            raise HelixError("pad_context must be a name or [upstream, downstream]", record="data.pad_context")
        codes = [alphabet.encode(s) for s in ctx]
        if any((c == alphabet.INVALID).any() for c in codes):
            raise HelixError("pad_context must be A, C, G, T or N", record="data.pad_context")
        return codes[0], codes[1]

    def as_dict(self) -> dict[str, object]:
        return {"drop_n": self.drop_n, "lengths": list(self.lengths) if self.lengths else None,
                "crop": list(self.crop) if self.crop else None, "pad_to": self.pad_to,
                "pad_context": list(self.pad_context) if isinstance(self.pad_context, tuple) else self.pad_context}

    def keep(self, codes: np.ndarray, lens: np.ndarray) -> np.ndarray:
        """Boolean (n,) mask of the records the filters keep (before transforms)."""
        keep = np.ones(len(lens), dtype=bool)
        if self.lengths is not None:
            keep &= np.isin(lens, np.asarray(self.lengths))
        if self.drop_n and len(lens):
            starts = np.cumsum(lens) - lens
            keep &= ~np.logical_or.reduceat(codes == alphabet.N_CODE, starts)
        return keep

    def apply(self, codes: np.ndarray, lens: np.ndarray, *, path: str, lines: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
        """Crop then pad every record; returns new (flat codes, lengths). Errors name the record.
        Records are reshaped a length at a time (boolean gathers, no per-record Python)."""
        if not self.transforms or len(lens) == 0:
            return codes, lens
        new = lens
        if self.crop is not None:
            start, end = self.crop
            new = (lens + end if end < 0 else np.minimum(lens, end)) - start
            if (new <= 0).any():
                i = int(np.flatnonzero(new <= 0)[0])
                raise HelixError(f"sequence of {lens[i]} bp is too short for crop {list(self.crop)}",
                                 path=path, record=f"line {lines[i]}")
        if self.pad_to and self.pad_context is not None:
            up, down = self.context()
            short = self.pad_to - new > len(up) + len(down)
            if short.any():
                i = int(np.flatnonzero(short)[0])
                raise HelixError(f"sequence of {lens[i]} bp is too short to pad to {self.pad_to} with the "
                                 f"{len(up) + len(down)} bp of context", path=path, record=f"line {lines[i]}")
        out_lens = np.maximum(new, self.pad_to).astype(np.int64)
        out = np.empty(int(out_lens.sum()), dtype=np.uint8)
        values, counts = np.unique(lens, return_counts=True)
        common = int(values[counts.argmax()])
        rows = lens == common  # most records: one boolean gather and scatter over the chunk
        out[np.repeat(rows, out_lens)] = self._reshape(codes[np.repeat(rows, lens)].reshape(-1, common)).ravel()
        if not rows.all():  # the few others: index gathers on those records only
            other = np.flatnonzero(~rows)
            mat = alphabet.pad_batch(codes, (np.cumsum(lens) - lens)[other], lens[other])
            starts = (np.cumsum(out_lens) - out_lens)[other]
            for length in np.unique(lens[other]).tolist():
                k = np.flatnonzero(lens[other] == length)
                part = self._reshape(mat[k, :length])
                out[starts[k, None] + np.arange(part.shape[1])] = part
        return out, out_lens

    def _reshape(self, mat: np.ndarray) -> np.ndarray:
        """Crop and pad records of one length, (n, L) -> (n, L')."""
        if self.crop is not None:
            start, end = self.crop
            mat = mat[:, start : (mat.shape[1] + end if end < 0 else end)]
        deficit = self.pad_to - mat.shape[1]
        if deficit <= 0:
            return mat
        n = len(mat)
        if self.pad_context is None:  # N on the right
            return np.hstack([mat, np.full((n, deficit), alphabet.N_CODE, dtype=np.uint8)])
        up, down = self.context()
        left = min(deficit, len(up))
        return np.hstack([np.broadcast_to(up[len(up) - left :], (n, left)), mat,
                          np.broadcast_to(down[: deficit - left], (n, deficit - left))])
