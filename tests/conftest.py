from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from helixlab.config import config_from_dict
from helixlab.data.shards import prepare
from helixlab.paths import data_root
from helixlab.seq import alphabet
from helixlab.train import fit

# precision 'auto' decides as on a CPU without bf16 units, on every machine (and in the CLI subprocesses):
# the suite's numbers do not depend on which kind of CPU runs it; tests of bf16 ask for it by name
os.environ["HELIXLAB_CPU_BF16"] = "0"

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


@pytest.fixture(scope="session")
def motif_run(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    """A CNN trained to find the planted motif (trained once per test session)."""
    tmp = tmp_path_factory.mktemp("motif")
    data = {split: write_csv(tmp / f"{split}.csv", motif_rows(n, 40, seed))
            for split, n, seed in (("train", 480, 1), ("valid", 160, 2), ("test", 160, 3))}
    torch.manual_seed(0)
    res = fit(config_from_dict(tiny_config(data, epochs=5), "test"), tmp / "run")
    assert res["splits"]["test"]["accuracy"] > 0.85
    return tmp / "run", data


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


def _checkpoint_position(path: Path) -> tuple[int, int]:
    """(epoch, batch) recorded in a last.safetensors, or (-1, -1) while none is readable."""
    import json

    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            state = json.loads(fh.metadata()["trainer"])
        return state["epoch"], state["batch"]
    except Exception:
        return -1, -1


def kill_and_resume(cfg: dict[str, object], tmp_path: Path) -> tuple[Path, Path]:
    """Train `cfg` straight through, and again with a SIGKILL as soon as a mid-epoch checkpoint of
    epoch 2 or later exists, then `--resume`: returns (straight run, killed-and-resumed run)."""
    import json
    import signal
    import subprocess
    import sys
    import time

    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(json.dumps(cfg))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def train(run: Path) -> list[str]:
        return [sys.executable, "-m", "helixlab", "train", str(cfg_path), "-o", str(run)]

    straight, run = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(train(straight), check=True, env=env, capture_output=True)
    proc = subprocess.Popen(train(run), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = run / "checkpoints" / "last.safetensors"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        epoch, batch = _checkpoint_position(last)
        if epoch >= 1 and batch > 0:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "training finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "results.json").exists()
    assert _checkpoint_position(last)[0] < int(cfg["train"]["epochs"])  # type: ignore[index]
    resumed = subprocess.run([sys.executable, "-m", "helixlab", "train", "--resume", str(run)], env=env,
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    return straight, run


# the genome-context tests' synthetic genome (tests/test_context.py, tests/test_context_count.py)
LENGTH = 60_000


def synthetic_genome() -> str:
    """A Markov background (uppercase) with many mutated copies of one 200 bp repeat element (lowercase,
    predictable from its flanks) and a run of N."""
    rng = np.random.default_rng(0)
    seq = rng.integers(0, 4, LENGTH).astype(np.uint8)
    for i in range(2, LENGTH):  # the next base often copies the one two back: a 2nd-order dependency
        if rng.random() < 0.5:
            seq[i] = seq[i - 2]
    text = np.frombuffer(b"ACGT", np.uint8)[seq].tobytes().decode()
    element = "".join(rng.choice(list("acgt"), 200))
    chars = list(text)
    for start in rng.choice(np.arange(0, LENGTH - 200, 400), 60, replace=False):
        copy = [c if rng.random() > 0.03 else rng.choice(list("acgt")) for c in element]
        chars[start : start + 200] = copy
    chars[30_000:30_300] = "N" * 300
    return "".join(chars)


@pytest.fixture(scope="module")
def genome_fa(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("genome") / "chrT.fa.gz"
    seq = synthetic_genome()
    with gzip.open(path, "wt") as fh:
        fh.write(">chrT test genome\n" + "\n".join(seq[i : i + 60] for i in range(0, len(seq), 60)) + "\n")
    return path


@pytest.fixture(scope="module")
def genome_dir(genome_fa, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prep") / "genome"
    prepare([str(genome_fa)], out, length="variable", iupac="n", keep_mask=True, unique_ids=False, progress=False)
    return out
