"""Motifs as IUPAC strings: parsing, matching on both strands, and base composition.

    mask = iupac_mask("TATAWAWR")             # (8, 4) bool: which bases each position allows
    hits = occurrences(X, mask)               # (N, L - 7) bool: a match starting there, either strand
    gc_fraction(X)                            # (N,) over the A/C/G/T bases of each row
"""

from __future__ import annotations

import numpy as np

from helixlab.errors import HelixError
from helixlab.seq.alphabet import N_CODE, encode

IUPAC = {"A": "A", "C": "C", "G": "G", "T": "T", "U": "T", "R": "AG", "Y": "CT", "S": "CG", "W": "AT", "K": "GT",
         "M": "AC", "B": "CGT", "D": "AGT", "H": "ACT", "V": "ACG", "N": "ACGT"}


def iupac_mask(motif: str, *, option: str = "--motif") -> np.ndarray:
    """(len, 4) bool: the bases each position of an IUPAC string allows. Letters outside IUPAC are an
    error naming the option."""
    text = motif.strip().upper()
    bad = sorted({ch for ch in text if ch not in IUPAC})
    if not text or bad:
        raise HelixError(f"{motif!r} is not an IUPAC motif" + (f" (letters {', '.join(map(repr, bad))})" if bad else
                                                                 " (empty)"), record=option)
    return np.array([[base in IUPAC[ch] for base in "ACGT"] for ch in text], dtype=bool)


def reverse_mask(mask: np.ndarray) -> np.ndarray:
    """The mask of the motif's reverse complement."""
    return mask[::-1, ::-1].copy()


def occurrences(X: np.ndarray, mask: np.ndarray, *, both_strands: bool = True) -> np.ndarray:
    """(N, L - k + 1) bool: where the motif (k, 4) matches X (N, L) codes, on the forward strand or (with
    both_strands) the reverse one. N bases match nothing."""
    X = np.asarray(X)
    k = len(mask)
    n, length = X.shape
    if length < k:
        return np.zeros((n, 0), dtype=bool)
    windows = np.lib.stride_tricks.sliding_window_view(X, k, axis=1)  # (N, L-k+1, k)
    clean = windows < N_CODE
    base = np.minimum(windows, 3)
    hits = np.zeros(windows.shape[:2], dtype=bool)
    for m in [mask, reverse_mask(mask)] if both_strands else [mask]:
        hits |= (m[np.arange(k), base] & clean).all(-1)
    return hits


def count_occurrences(X: np.ndarray, masks: list[np.ndarray]) -> np.ndarray:
    """(N,) int: matches of all the motifs, both strands, in each row."""
    total = np.zeros(len(X), dtype=np.int64)
    for mask in masks:
        total += occurrences(X, mask).sum(1)
    return total


def gc_fraction(X: np.ndarray) -> np.ndarray:
    """(N,) float: the G+C fraction of the A/C/G/T bases of each row (N bases not counted)."""
    X = np.asarray(X)
    acgt = (X < N_CODE).sum(-1)
    gc = ((X == 1) | (X == 2)).sum(-1)
    return gc / np.maximum(acgt, 1)


def consensus_codes(motif: str, *, option: str = "--motif") -> np.ndarray:
    """A motif to insert, as base codes: A/C/G/T letters only (an ambiguity code has no one base)."""
    text = motif.strip().upper()
    iupac_mask(text, option=option)
    if set(text) - set("ACGT"):
        raise HelixError(f"{motif!r}: a motif to insert must be A/C/G/T bases (or a JASPAR matrix id); "
                         f"ambiguity codes have no one base", record=option)
    return encode(text)
