from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from helixlab import alphabet
from helixlab.config import data_root

MOTIF = "TATAAAGG"


def motif_rows(n: int, length: int, seed: int) -> list[tuple[str, int]]:
    """Random sequences; half carry MOTIF at a random place (label 1)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        codes = rng.integers(0, 4, size=length).astype(np.uint8)
        label = i % 2
        if label:
            at = int(rng.integers(0, length - len(MOTIF)))
            codes[at : at + len(MOTIF)] = alphabet.encode(MOTIF)
        rows.append((alphabet.decode(codes), label))
    return rows


def write_csv(path: Path, rows: list[tuple[str, object]], header: str = "sequence,label") -> Path:
    path.write_text(header + "\n" + "".join(f"{s},{y}\n" for s, y in rows))
    return path


@pytest.fixture
def motif_data(tmp_path: Path) -> dict[str, Path]:
    """Tiny train/valid/test CSVs of a planted-motif task (length 40)."""
    return {split: write_csv(tmp_path / f"{split}.csv", motif_rows(n, 40, seed))
            for split, n, seed in (("train", 480, 1), ("valid", 160, 2), ("test", 160, 3))}


def tiny_config(data: dict[str, Path], **train: object) -> dict[str, object]:
    return {
        "data": {k: str(v) for k, v in data.items()},
        "model": {"name": "cnn", "params": {"channels": [16], "kernels": [8], "pools": [1], "hidden": [16]}},
        "task": {"kind": "binary"},
        "train": {"epochs": 3, "batch_size": 32, "lr": 5e-3, "progress": False, "threads": 1, **train},
    }


@pytest.fixture
def shared_data() -> Path:
    root = data_root()
    if not (root / "promoter_gue_human").is_dir():
        pytest.skip(f"real data not found at {root} (set HELIXLAB_DATA to the shared data directory)")
    return root


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    import torch

    torch.set_num_threads(int(os.environ.get("HELIXLAB_TEST_THREADS", "1")))
