"""Two-sided contexts of a centre base packed into one uint64 key, nearest bases first.

The context bases (`k` each side, k <= 16) are put in an order, two bits each, the first in the most
significant bits. Orders (`ORDERS`): 'interleaved' by distance from the centre (1 left, 1 right,
2 left, 2 right, ...), 'left' (the left bases outward, then the right ones) and 'right' (the other
way round). A context of the first `depth` bases of an order (for 'interleaved': the nearest,
symmetric for even depths, one base longer on the left for odd ones) is then a key prefix: in a
sorted array of keys, the contexts sharing it form one contiguous range (`prefix_range`). Keys are
top-aligned, so a prefix means the same for any k. Different orders break at different mismatches:
a diverged repeat copy that differs 3 bases to the left still matches 16 bases to the right.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MAX_K = 16  # 2 x 16 bases x 2 bits = 64 bits
_ONE, _TWO = np.uint64(1), np.uint64(2)


ORDERS = ("interleaved", "left", "right")


def ordered(left: Sequence[np.ndarray], right: Sequence[np.ndarray], order: str = "interleaved") -> list[np.ndarray]:
    """The digit arrays in key order, from left[i] / right[i] = the bases i + 1 away (0-3)."""
    if order == "interleaved":
        return [d for pair in zip(left, right) for d in pair]
    if order == "left":
        return [*left, *right]
    if order == "right":
        return [*right, *left]
    raise ValueError(f"unknown context order {order!r}; expected one of {', '.join(ORDERS)}")


def pack(digits: Sequence[np.ndarray]) -> np.ndarray:
    """uint64 keys from up to 32 digit arrays (values 0-3, key order), top-aligned."""
    if len(digits) > 2 * MAX_K:
        raise ValueError(f"at most {MAX_K} bases each side fit a 64-bit key")
    key = np.zeros(len(digits[0]) if digits else 0, dtype=np.uint64)
    for d in digits:
        key <<= _TWO
        key |= np.asarray(d).astype(np.uint64)
    key <<= np.uint64(64 - 2 * len(digits))
    return key


def window_digits(x: np.ndarray, k: int, order: str = "interleaved"
                  ) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Centred windows x (N, L) of base codes, L odd -> (digits in key order and their reverse-strand
    digits, as in `pack`; and the usable depth of each window: the number of context bases in key
    order before the first N, at most 2k)."""
    c = x.shape[1] // 2
    if k > c:
        raise ValueError(f"windows of {x.shape[1]} bases have {c} bases each side, fewer than k = {k}")
    x = np.asarray(x)
    left = [x[:, c - i] for i in range(1, k + 1)]
    right = [x[:, c + i] for i in range(1, k + 1)]
    fwd = ordered(left, right, order)
    rev = ordered(*reverse_strand(left, right), order)
    is_n = np.stack(fwd, 1) > 3 if fwd else np.zeros((len(x), 0), bool)
    depth = np.where(is_n.any(1), is_n.argmax(1), 2 * k)
    return [d & 3 for d in fwd], rev, depth


def reverse_strand(left: Sequence[np.ndarray], right: Sequence[np.ndarray]
                   ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The left and right bases of the reverse-complement window: the complements of the right ones
    become its left ones, and vice versa (N read as T's complement, A: only N-free windows are counted)."""
    return [3 - np.minimum(r, 3) for r in right], [3 - np.minimum(v, 3) for v in left]


def prefix_range(keys: np.ndarray, queries: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """[lo, hi) of the sorted `keys` that share each query's first `depth` context bases (0: all keys).
    Queries sorted ascending are fastest."""
    if depth <= 0:
        return np.zeros(len(queries), np.int64), np.full(len(queries), len(keys), np.int64)
    low = queries if depth >= 2 * MAX_K else queries & ~((_ONE << np.uint64(64 - 2 * depth)) - _ONE)
    high = queries if depth >= 2 * MAX_K else low | ((_ONE << np.uint64(64 - 2 * depth)) - _ONE)
    return np.searchsorted(keys, low, "left"), np.searchsorted(keys, high, "right")


def same_prefix(a: np.ndarray, b: np.ndarray, depth: int) -> np.ndarray:
    """Whether keys a and b share their first `depth` context bases."""
    if depth <= 0:
        return np.ones(len(a), bool)
    shift = np.uint64(64 - 2 * min(depth, 2 * MAX_K))
    return (a >> shift) == (b >> shift) if depth < 2 * MAX_K else a == b

