"""A built-in synthetic promoter data set and the `make demo` job.

Positives are 300 bp windows (-249..+50 around a TSS at index 249) over a background with a
realistic GC gradient, with planted elements at their usual places: a TATA box near -30, an
initiator (Inr) over the TSS, GC boxes (Sp1) between -110 and -40, a CCAAT box near -80.
Negatives are made from the positives with `negatives.chunk_shuffle` (the GUE way).
Everything is a function of the seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from helixlab.config import config_from_dict
from helixlab.data.negatives import chunk_shuffle
from helixlab.paths import atomic_path
from helixlab.seq import alphabet
from helixlab.train import fit

LENGTH = 300
TSS = 249
# (consensus, position of its first base relative to the TSS, probability of being present)
ELEMENTS: list[tuple[str, int, float]] = [
    ("TATAAAAG", -31, 0.45),
    ("CCAATCA", -82, 0.35),
    ("TCAGTCT", -2, 0.6),
]
GC_BOX = "GGGGCGGGG"


def _background(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, LENGTH) codes; GC content rises towards the TSS as in CpG-island promoters."""
    gc = 0.42 + 0.2 * np.exp(-((np.arange(LENGTH) - TSS + 40) / 90.0) ** 2)
    u = rng.random((n, LENGTH))
    strong = u < gc
    pick = rng.random((n, LENGTH)) < 0.5
    return np.where(strong, np.where(pick, 1, 2), np.where(pick, 0, 3)).astype(np.uint8)


def _plant(seqs: np.ndarray, rng: np.random.Generator, motif: str, start: int, prob: float, jitter: int) -> None:
    codes = alphabet.encode(motif)
    rows = np.flatnonzero(rng.random(len(seqs)) < prob)
    offsets = start + rng.integers(-jitter, jitter + 1, size=len(rows))
    for r, o in zip(rows, offsets):
        # point mutations keep the elements realistic (consensus is rarely exact)
        site = codes.copy()
        flip = rng.random(len(site)) < 0.1
        site[flip] = rng.integers(0, 4, size=int(flip.sum()))
        seqs[r, o : o + len(site)] = site


def synthetic_promoters(n: int, seed: int) -> np.ndarray:
    """(n, 300) uint8 codes of synthetic promoters."""
    rng = np.random.default_rng(seed)
    seqs = _background(rng, n)
    for motif, rel, prob in ELEMENTS:
        _plant(seqs, rng, motif, TSS + rel, prob, jitter=2)
    for _ in range(3):
        _plant(seqs, rng, GC_BOX, TSS - 110 + int(rng.integers(0, 60)), 0.5, jitter=10)
    return seqs


def write_split(path: Path, n_pos: int, seed: int) -> None:
    """A balanced CSV split: n_pos synthetic promoters and as many chunk-shuffled negatives."""
    pos = synthetic_promoters(n_pos, seed)
    neg = chunk_shuffle(pos, np.random.default_rng(seed + 1))
    seqs = np.concatenate([pos, neg])
    labels = np.r_[np.ones(n_pos, dtype=int), np.zeros(n_pos, dtype=int)]
    order = np.random.default_rng(seed + 2).permutation(len(seqs))
    rows = [f"{alphabet.decode(seqs[i])},{labels[i]}\n" for i in order]
    with atomic_path(path) as tmp:
        tmp.write_text("sequence,label\n" + "".join(rows))


def run_demo(out: Path, *, epochs: int = 6, seed: int = 0) -> tuple[dict[str, Any], Path]:
    """Write the demo data under out/data, train cnn_gru into out/run-<n>, return (results, report path)."""
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    for name, n_pos, split_seed in (("train", 2500, 1), ("valid", 500, 2), ("test", 500, 3)):
        if not (data / f"{name}.csv").exists():
            write_split(data / f"{name}.csv", n_pos, seed * 100 + split_seed)
    k = 1
    while (out / f"run-{k}").exists():
        k += 1
    run_dir = out / f"run-{k}"
    cfg = config_from_dict({
        "data": {s: str(data / f"{s}.csv") for s in ("train", "valid", "test")},
        "model": {"name": "cnn_gru"},
        "task": {"kind": "binary"},
        "train": {"epochs": epochs, "batch_size": 64, "lr": 2e-3, "seed": seed},
    }, "demo")
    results = fit(cfg, run_dir)
    return results, run_dir / "report.md"
