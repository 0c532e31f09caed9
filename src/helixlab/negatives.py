"""Negatives from positives the GUE / DeePromoter way: cut each sequence into 20 equal chunks
(15 bp for 300 bp), choose 12 of them at random, keep the other 8 where they were. A fresh choice
per sequence; seeded.

Two ways to fill the 12 chosen places:
  mode="shuffle"  the 12 chosen chunks are permuted among their places (composition kept);
  mode="random"   the 12 chosen chunks are replaced by uniform random bases. This is what the
                  GUE prom_300_* dev/test negatives contain: checked on 1,500 of them, the 8 kept
                  chunks match an EPDnew positive in place and the 12 others are not chunks of that
                  positive, with base frequencies 0.249/0.251/0.250/0.250 and CG at 1/16.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from helixlab import alphabet
from helixlab.errors import HelixError
from helixlab.io import read_records
from helixlab.shards import encode_chunk


MODES = ("shuffle", "random")


def chunk_shuffle(codes: np.ndarray, rng: np.random.Generator, n_chunks: int = 20, n_shuffled: int = 12,
                  mode: str = "shuffle") -> np.ndarray:
    """codes: (N, L) uint8 -> (N, L) with `n_shuffled` of `n_chunks` chunks permuted (or randomised) per row.

    L need not be a multiple of n_chunks: the last L % n_chunks bases stay in place.
    """
    n, length = codes.shape
    size = length // n_chunks
    if size < 1 or not 2 <= n_shuffled <= n_chunks:
        raise ValueError(f"cannot cut length {length} into {n_chunks} chunks and shuffle {n_shuffled}")
    body = codes[:, : size * n_chunks].reshape(n, n_chunks, size)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    chosen = np.argsort(rng.random((n, n_chunks)), axis=1)[:, :n_shuffled]
    rows = np.arange(n)[:, None]
    out = body.copy()
    if mode == "shuffle":
        order = np.argsort(rng.random((n, n_shuffled)), axis=1)
        out[rows, chosen] = body[rows, np.take_along_axis(chosen, order, axis=1)]
    else:
        out[rows, chosen] = rng.integers(0, 4, size=(n, n_shuffled, size), dtype=np.uint8)
    return np.concatenate([out.reshape(n, -1), codes[:, size * n_chunks :]], axis=1)


def write_negatives(positives: str | os.PathLike[str], out_csv: str | os.PathLike[str], *, seed: int = 0,
                    n_chunks: int = 20, n_shuffled: int = 12, mode: str = "shuffle",
                    include_positives: bool = False, overwrite: bool = False) -> tuple[int, int]:
    """Write `sequence,label` rows (negatives label 0; with include_positives the positives too, label 1).

    Returns (positives read, rows written). The output appears only when complete.
    """
    out = Path(out_csv)
    if out.exists() and not overwrite:
        raise HelixError("output file already exists", path=str(out))
    rng = np.random.default_rng(seed)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    n_in = n_out = 0
    length: int | None = None
    try:
        with open(tmp, "w") as fh:
            fh.write("sequence,label\n")
            for chunk in read_records(positives):
                codes, lens, _ = encode_chunk(chunk, str(positives))
                if length is None:
                    length = int(lens[0])
                ragged = np.flatnonzero(lens != length)
                if ragged.size:
                    raise HelixError(f"sequence length {lens[ragged[0]]} differs from {length}; negatives need "
                                     "positives of one length", path=str(positives),
                                     record=f"line {chunk.lines[ragged[0]]}")
                matrix = codes.reshape(-1, length)
                try:
                    shuffled = chunk_shuffle(matrix, rng, n_chunks, n_shuffled, mode)
                except ValueError as exc:
                    raise HelixError(str(exc), path=str(positives)) from None
                rows = []
                for k in range(len(matrix)):
                    if include_positives:
                        rows.append(alphabet.decode(matrix[k]) + ",1\n")
                    rows.append(alphabet.decode(shuffled[k]) + ",0\n")
                fh.write("".join(rows))
                n_in += len(matrix)
                n_out += len(rows)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return n_in, n_out
