"""DNA alphabet: byte lookup tables, uint8 encode/decode, one-hot, reverse complement, k-mer ids.

Codes: A=0, C=1, G=2, T=3, N=4. Lowercase (soft-masked) letters get the same codes; the
lowercase bit is available separately through `lowercase_mask`.

IUPAC policy: the ambiguity codes R Y S W K M B D H V (and U) are an error by default
(`iupac="error"`); with `iupac="n"` they are read as N. Anything else is always an error.
"""

from __future__ import annotations

import itertools
from typing import Literal

import numpy as np
import torch

BASES = "ACGTN"
N_CODE = 4
INVALID = 255
IupacPolicy = Literal["error", "n"]
IUPAC_AMBIGUOUS = "RYSWKMBDHVU"


def _table(iupac: IupacPolicy) -> np.ndarray:
    lut = np.full(256, INVALID, dtype=np.uint8)
    for code, base in enumerate(BASES):
        lut[ord(base)] = code
        lut[ord(base.lower())] = code
    if iupac == "n":
        for ch in IUPAC_AMBIGUOUS:
            lut[ord(ch)] = N_CODE
            lut[ord(ch.lower())] = N_CODE
    elif iupac != "error":
        raise ValueError(f"iupac policy must be 'error' or 'n', got {iupac!r}")
    return lut


LUTS: dict[str, np.ndarray] = {"error": _table("error"), "n": _table("n")}
_LOWER = np.zeros(256, dtype=np.uint8)
_LOWER[np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", dtype=np.uint8)] = 1
_DECODE = np.frombuffer(BASES.encode(), dtype=np.uint8)
_COMPLEMENT = np.array([3, 2, 1, 0, 4], dtype=np.uint8)


def as_bytes(seq: str | bytes | np.ndarray) -> np.ndarray:
    """View a string or bytes as a uint8 array of raw bytes (no copy for bytes)."""
    if isinstance(seq, np.ndarray):
        return seq.view(np.uint8)
    if isinstance(seq, str):
        seq = seq.encode("ascii", errors="replace")
    return np.frombuffer(seq, dtype=np.uint8)


def encode(seq: str | bytes | np.ndarray, iupac: IupacPolicy = "error") -> np.ndarray:
    """Raw bytes -> uint8 codes; invalid characters become 255 (see `first_invalid`)."""
    return LUTS[iupac][as_bytes(seq)]


def lowercase_mask(seq: str | bytes | np.ndarray) -> np.ndarray:
    """1 where the raw byte is lowercase (a soft-masked repeat), else 0; uint8."""
    return _LOWER[as_bytes(seq)]


def first_invalid(codes: np.ndarray) -> int:
    """Index of the first invalid code in a flat array, or -1 when all are valid."""
    bad = np.flatnonzero(codes == INVALID)
    return int(bad[0]) if bad.size else -1


def decode_rows(x: np.ndarray | torch.Tensor) -> list[str]:
    """(N, L) uint8 codes -> N strings over ACGTN (one vectorised lookup, then one decode per row)."""
    if isinstance(x, torch.Tensor):
        x = x.cpu().numpy()
    letters = _DECODE[np.minimum(np.asarray(x, dtype=np.uint8), N_CODE)]
    return [row.tobytes().decode("ascii") for row in letters]


def decode(codes: np.ndarray | torch.Tensor) -> str:
    """uint8 codes (L,) -> string over ACGTN."""
    if isinstance(codes, torch.Tensor):
        codes = codes.cpu().numpy()
    return decode_rows(np.asarray(codes)[None])[0]


def pad_batch(flat: np.ndarray, starts: np.ndarray, lengths: np.ndarray, width: int | None = None) -> np.ndarray:
    """Records of a flat code array (flat[start:start+length]) as (n, width) uint8, right-padded with N
    (longer records are cut at `width`). Vectorised: one gather, no per-record Python."""
    lengths = np.asarray(lengths, dtype=np.int64)
    width = int(width if width is not None else (lengths.max() if len(lengths) else 0))
    cols = np.arange(width, dtype=np.int64)
    valid = cols[None, :] < lengths[:, None]
    if len(flat) == 0:
        return np.full((len(starts), width), N_CODE, dtype=np.uint8)
    idx = np.minimum(np.asarray(starts, dtype=np.int64)[:, None] + cols[None, :], len(flat) - 1)
    return np.where(valid, np.asarray(flat)[idx], np.uint8(N_CODE)).astype(np.uint8, copy=False)


def reverse_complement(x: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Reverse complement of codes along the last axis: x (..., L) uint8."""
    if isinstance(x, torch.Tensor):
        comp = torch.as_tensor(_COMPLEMENT, device=x.device)[x.long()]
        return comp.flip(-1)
    return _COMPLEMENT[x][..., ::-1].copy()


def one_hot(x: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """x: (N, L) uint8 codes -> (N, 4, L) one-hot; N becomes 0.25 in every channel. A float (N, 4, L)
    input is taken as one-hot already (so gradients can be taken with respect to it: attributions)."""
    if x.is_floating_point():
        return x.to(dtype)
    table = torch.zeros(5, 4, dtype=dtype, device=x.device)
    table[:4] = torch.eye(4, dtype=dtype, device=x.device)
    table[4] = 0.25
    return table[x.long()].transpose(1, 2)


def kmer_ids(x: torch.Tensor, k: int, stride: int = 1) -> torch.Tensor:
    """x: (N, L) uint8 codes -> (N, (L - k) // stride + 1) int64 k-mer ids; N-containing -> 4**k."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if x.shape[1] < k:
        raise ValueError(f"sequence length {x.shape[1]} is shorter than k={k}")
    codes = x.long()
    windows = codes.unfold(1, k, stride)  # (N, W, k)
    weights = 4 ** torch.arange(k - 1, -1, -1, device=x.device)
    ids = (windows.clamp(max=3) * weights).sum(-1)
    has_n = (windows == 4).any(-1)
    return torch.where(has_n, torch.full_like(ids, 4**k), ids)


def kmer_vocab_size(k: int) -> int:
    """Number of distinct ids `kmer_ids` can return (4^k plus the N id)."""
    return 4**k + 1


def all_kmers(k: int) -> list[str]:
    """The 4^k k-mers in the order of `kmer_ids` (lexicographic over ACGT)."""
    return ["".join(p) for p in itertools.product("ACGT", repeat=k)]
