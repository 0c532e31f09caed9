"""Where things are: the shared data directory, path expansion, atomic writes and the run-directory layout.

A run directory (the one owner of these names; every module that reads or writes a run imports them):

  config.json            resolved RunConfig, written before the first step
  run.json               what the model needs to be rebuilt (input length, outputs, labels) + provenance
  metrics.jsonl          one record per finished epoch;  trace.jsonl  training loss ~20 times per epoch
  checkpoints/last.safetensors   resumable state;  checkpoints/best.safetensors  best weights
  results.json, plots/*.png, report.md, MODEL_CARD.md    written when training finishes
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from helixlab.errors import HelixError

DATA_ENV = "HELIXLAB_DATA"

CONFIG = "config.json"
INFO = "run.json"
METRICS = "metrics.jsonl"
TRACE = "trace.jsonl"
RESULTS = "results.json"
REPORT = "report.md"
CARD = "MODEL_CARD.md"
ENSEMBLE = "ensemble.json"  # an ensemble directory: its member runs (helixlab ensemble)
PLOTS = "plots"
TOKENIZER_FILE = "tokenizer.json"  # models that tokenize keep their vocabulary beside the run
LAST = Path("checkpoints/last.safetensors")
BEST = Path("checkpoints/best.safetensors")


def data_root() -> Path:
    """The shared data directory: $HELIXLAB_DATA, else ../shared/data beside the repository."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "data"


def expand_path(value: str) -> str:
    """Expand ${HELIXLAB_DATA} (with its default) and other environment variables in a path."""
    value = value.replace("${HELIXLAB_DATA}", str(data_root())).replace("$HELIXLAB_DATA", str(data_root()))
    return os.path.expanduser(os.path.expandvars(value))


@contextmanager
def atomic_path(path: str | os.PathLike[str], *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary sibling of `path` to write; it becomes `path` only when the block completes.

    On any error (or kill) the temporary file is removed or left hidden, and `path` is untouched.
    With overwrite=False an existing `path` is an error before anything is written.
    """
    out = Path(path)
    if out.exists() and not overwrite:
        raise HelixError("output file already exists; choose another name or remove it", path=str(out))
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike[str], text: str, *, overwrite: bool = True) -> None:
    """Write a text file whole or not at all."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike[str], value: Any, *, indent: int = 2) -> None:
    """Write JSON under a temporary name, then rename (never a half-written file)."""
    write_text(path, json.dumps(value, indent=indent) + "\n")


def write_jsonl(path: str | os.PathLike[str], rows: list[dict[str, Any]]) -> None:
    """One JSON record per line, written whole or not at all."""
    write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def write_npy(path: str | os.PathLike[str], array: Any) -> None:
    """One numpy array as .npy, whole or not at all."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)


def write_npz(path: str | os.PathLike[str], *, compressed: bool = False, overwrite: bool = True, **arrays: Any) -> None:
    """Named numpy arrays as .npz, whole or not at all."""
    with atomic_path(path, overwrite=overwrite) as tmp, open(tmp, "wb") as fh:
        (np.savez_compressed if compressed else np.savez)(fh, **arrays)


def read_json(path: str | os.PathLike[str], what: str = "JSON file") -> Any:
    """A JSON file a user or an earlier run wrote; missing, truncated or malformed files are an error
    naming the file (and the line)."""
    p = Path(path)
    if not p.is_file():
        raise HelixError(f"{what} not found", path=str(p))
    try:
        return json.loads(p.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError:
        raise HelixError(f"{what} is not UTF-8 text", path=str(p)) from None
    except json.JSONDecodeError as exc:
        raise HelixError(f"{what} is not valid JSON ({exc.msg})", path=str(p), record=f"line {exc.lineno}") from None


def read_json_object(path: str | os.PathLike[str], what: str = "JSON file") -> dict[str, Any]:
    """`read_json` of a file that must hold one JSON object."""
    value = read_json(path, what)
    if not isinstance(value, dict):
        raise HelixError(f"{what} must hold a JSON object, found {type(value).__name__}", path=str(path))
    return value


def best_or_last(run_dir: str | os.PathLike[str], checkpoint: str = "best") -> Path:
    """The checkpoint file a finished run is used from: its best weights, else its last state
    (checkpoint='last': the last state)."""
    rd = Path(run_dir)
    if checkpoint not in ("best", "last"):
        raise HelixError(f"checkpoint must be 'best' or 'last', got {checkpoint!r}", record="checkpoint")
    if checkpoint == "best" and (rd / BEST).exists():
        return rd / BEST
    return rd / LAST


def is_run_dir(path: str | os.PathLike[str]) -> bool:
    """Whether `path` is a helixlab run directory (it has a config.json with model and train sections)."""
    try:
        value = read_json(Path(path) / CONFIG)
    except HelixError:  # missing or unreadable: not a run (callers that need one say so)
        return False
    return isinstance(value, dict) and "model" in value and "train" in value
