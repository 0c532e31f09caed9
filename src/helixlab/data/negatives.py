"""Negatives from positives the GUE / DeePromoter way: cut each sequence into 20 equal chunks
(15 bp for 300 bp), choose 12 of them at random, keep the other 8 where they were. A fresh choice
per sequence; seeded.

Two ways to fill the 12 chosen places:
  mode="shuffle"  the 12 chosen chunks are permuted among their places (composition kept);
  mode="random"   the 12 chosen chunks are replaced by uniform random bases. This is what the
                  GUE prom_300_* dev/test negatives contain: checked on 1,500 of them, the 8 kept
                  chunks match an EPDnew positive in place and the 12 others are not chunks of that
                  positive, with base frequencies 0.249/0.251/0.250/0.250 and CG at 1/16.

GUE prom_core_* (70 bp) negatives are bases 216-286 of such 300 bp negatives: checked on 369 train negatives
whose source positive is in the set, the kept/random runs switch at bases 9, 24, 39, 54 and 69, the 15 bp
chunk edges of a 300 bp frame (`frame=300, offset=216`, random mode), and the last base (in the always kept
last chunk: `keep_last`) matches in every one.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from helixlab.data.formats import read_records
from helixlab.data.shards import encode_chunk
from helixlab.errors import HelixError
from helixlab.paths import atomic_path
from helixlab.seq import alphabet

MODES = ("shuffle", "random")


def chunk_ids(length: int, n_chunks: int = 20, frame: int | None = None, offset: int = 0) -> np.ndarray:
    """(length,) chunk index of each position, -1 where no chunk covers it.

    The chunks cut a `frame`-long sequence (default: `length`) into n_chunks of frame // n_chunks bases (a tail
    of frame % n_chunks bases belongs to none); the sequence is the window [offset, offset + length) of it. GUE
    prom_core_* (70 bp) negatives are such a window: bases 216-286 of a 300 bp negative cut into 20 chunks of 15.
    """
    frame = length if frame is None else frame
    size = frame // n_chunks
    if size < 1 or offset < 0 or offset + length > frame:
        raise ValueError(f"cannot cut a {frame} bp frame into {n_chunks} chunks with a {length} bp window at "
                         f"offset {offset}")
    ids = (offset + np.arange(length)) // size
    return np.where(ids < n_chunks, ids, -1)


def chunk_shuffle(codes: np.ndarray, rng: np.random.Generator, n_chunks: int = 20, n_shuffled: int = 12,
                  mode: str = "shuffle", frame: int | None = None, offset: int = 0,
                  keep_last: bool = False) -> np.ndarray:
    """codes: (N, L) uint8 -> (N, L) with `n_shuffled` of `n_chunks` chunks permuted (or randomised) per row.

    keep_last: choose among the first n_chunks - 1 chunks only, so the last one always stays, as in GUE's
    negatives (checked on 528 prom_300_all dev negatives: the last 15 bp chunk is kept in every one).

    L need not be a multiple of n_chunks: the last L % n_chunks bases stay in place. With `frame` and `offset`
    (chunk_ids) the rows are windows of longer sequences; only mode="random" applies there, as chunks
    partly outside the window cannot be moved.
    """
    n, length = codes.shape
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    pool = n_chunks - 1 if keep_last else n_chunks
    if not 2 <= n_shuffled <= pool:
        raise ValueError(f"cannot shuffle {n_shuffled} of {pool} chunks")
    if frame is not None and (frame, offset) == (length, 0):
        frame = None  # the rows are the whole frame: whole chunks, either mode
    if frame is not None and mode != "random":
        raise ValueError(f"a {frame} bp frame around {length} bp sequences needs mode 'random'")
    chosen = np.argsort(rng.random((n, pool)), axis=1)[:, :n_shuffled]
    if frame is not None:  # a window of a longer frame: random mode, position by position
        hit = np.zeros((n, n_chunks + 1), dtype=bool)  # the last column: positions in no chunk
        np.put_along_axis(hit, chosen, True, axis=1)
        replace = hit[:, chunk_ids(length, n_chunks, frame, offset)]
        out = codes.copy()
        out[replace] = rng.integers(0, 4, size=int(replace.sum()), dtype=np.uint8)
        return out
    size = length // n_chunks
    if size < 1:
        raise ValueError(f"cannot cut length {length} into {n_chunks} chunks")
    body = codes[:, : size * n_chunks].reshape(n, n_chunks, size)
    rows = np.arange(n)[:, None]
    out = body.copy()
    if mode == "shuffle":
        order = np.argsort(rng.random((n, n_shuffled)), axis=1)
        out[rows, chosen] = body[rows, np.take_along_axis(chosen, order, axis=1)]
    else:
        out[rows, chosen] = rng.integers(0, 4, size=(n, n_shuffled, size), dtype=np.uint8)
    return np.concatenate([out.reshape(n, -1), codes[:, size * n_chunks :]], axis=1)


def write_negatives(positives: str | os.PathLike[str], out_csv: str | os.PathLike[str], *, seed: int = 0,
                    n_chunks: int = 20, n_shuffled: int = 12, mode: str = "shuffle", frame: int | None = None,
                    offset: int = 0, keep_last: bool = False, include_positives: bool = False,
                    overwrite: bool = False) -> tuple[int, int]:
    """Write `sequence,label` rows (negatives label 0; with include_positives the positives too, label 1).

    Returns (positives read, rows written). The output appears only when complete.
    """
    rng = np.random.default_rng(seed)
    n_in = n_out = 0
    length: int | None = None
    with atomic_path(out_csv, overwrite=overwrite) as tmp:
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
                    shuffled = chunk_shuffle(matrix, rng, n_chunks, n_shuffled, mode, frame, offset, keep_last)
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
    return n_in, n_out


IUPAC_SETS = {"A": "A", "C": "C", "G": "G", "T": "T", "R": "AG", "Y": "CT", "S": "CG", "W": "AT", "K": "GT",
              "M": "AC", "B": "CGT", "D": "AGT", "H": "ACT", "V": "ACG", "N": "ACGT"}


def motif_hits(windows: np.ndarray, motif: str, first: int, last: int) -> np.ndarray:
    """(N,) True where an IUPAC `motif` starts at some offset in [first, last] of the (N, L) windows."""
    allowed = np.zeros((len(motif), 5), dtype=bool)
    for i, ch in enumerate(motif.upper()):
        if ch not in IUPAC_SETS:
            raise HelixError(f"motif {motif!r} has a character that is not an IUPAC code: {ch!r}")
        allowed[i, [alphabet.BASES.index(b) for b in IUPAC_SETS[ch]]] = True
    hit = np.zeros(len(windows), dtype=bool)
    for start in range(first, last + 1):
        ok = np.ones(len(windows), dtype=bool)
        for i in range(len(motif)):
            ok &= allowed[i, windows[:, start + i]]
        hit |= ok
    return hit


def genome_background(genome: str | os.PathLike[str], out_csv: str | os.PathLike[str], *, count: int,
                      length: int = 300, seed: int = 0, motif: str | None = None,
                      motif_range: tuple[int, int] = (214, 222), motif_fraction: float = 0.5,
                      overwrite: bool = False) -> int:
    """Write `count` random genome windows without N as `sequence,label` rows with label 0.

    With `motif`, a `motif_fraction` of them must carry it (IUPAC) starting within `motif_range`:
    non-promoter sequence that looks like a promoter at one place, as the GUE TATA negatives do.
    """
    if Path(out_csv).exists() and not overwrite:
        raise HelixError("output file already exists; choose another name or remove it", path=str(out_csv))
    parts = [encode_chunk(chunk, str(genome))[0] for chunk in read_records(genome, "fasta")]
    seq = np.concatenate(parts)
    if len(seq) < length * 10:
        raise HelixError(f"genome has {len(seq)} bases, too few for {length} bp windows", path=str(genome))
    rng = np.random.default_rng(seed)
    n_motif = int(round(count * motif_fraction)) if motif else 0
    picked: list[np.ndarray] = []
    need = {"motif": n_motif, "plain": count - n_motif}
    for _ in range(1000):
        if need["motif"] <= 0 and need["plain"] <= 0:
            break
        starts = rng.integers(0, len(seq) - length, size=200_000)
        windows = seq[starts[:, None] + np.arange(length)]
        windows = windows[~(windows == alphabet.N_CODE).any(1)]
        if motif and need["motif"] > 0:
            hits = motif_hits(windows, motif, *motif_range)
            picked.append(windows[hits][: need["motif"]])
            need["motif"] -= len(picked[-1])
            windows = windows[~hits]
        if need["plain"] > 0:
            picked.append(windows[: need["plain"]])
            need["plain"] -= len(picked[-1])
    if need["motif"] > 0 or need["plain"] > 0:
        raise HelixError(f"could not find {count} windows (motif {motif!r} too rare?)", path=str(genome))
    rows = np.concatenate(picked)
    rows = rows[rng.permutation(len(rows))]
    with atomic_path(out_csv, overwrite=overwrite) as tmp:
        tmp.write_text("sequence,label\n" + "".join(alphabet.decode(r) + ",0\n" for r in rows))
    return len(rows)
