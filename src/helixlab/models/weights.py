"""Model weights as safetensors (never pickle): save, load, read. Written to a temporary name and
renamed, so a kill never leaves half a file. The training state (optimizer, RNG) is `helixlab.train.checkpoint`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from helixlab.errors import HelixError
from helixlab.paths import BEST, CONFIG, atomic_path, expand_path, read_json_object

NOT_WEIGHTS = ("optim.", "rng.", "ema.")  # tensors of a training-state file that are not model weights


def save_tensors(tensors: dict[str, torch.Tensor], metadata: dict[str, str], path: Path) -> None:
    """Tensors + string metadata as one safetensors file, whole or not at all (fsynced before the rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous().cpu().clone() for k, v in tensors.items()}, str(tmp),
                  metadata=metadata)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())


def save_weights(model: torch.nn.Module, path: Path, info: dict[str, Any] | None = None) -> None:
    """Model weights only (the shareable checkpoint)."""
    save_tensors(dict(model.state_dict()), {"helixlab": json.dumps(info or {})}, path)


def model_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The model weights of a weights file or a training-state file (whose weights are 'model.*')."""
    return {k.removeprefix("model."): v for k, v in tensors.items() if not k.startswith(NOT_WEIGHTS)}


def load_weights(model: torch.nn.Module, path: Path) -> dict[str, Any]:
    """Load a weights (or training-state) file into `model`; tensors that do not fit are an error
    naming the file. Returns the file's helixlab metadata."""
    tensors, meta = read(path)
    try:
        model.load_state_dict(model_tensors(tensors))
    except RuntimeError as exc:
        raise HelixError(f"weights do not fit this model: {str(exc).splitlines()[0]}", path=str(path)) from None
    try:
        return json.loads(meta.get("helixlab", "{}"))
    except json.JSONDecodeError:
        raise HelixError("checkpoint metadata is not valid JSON", path=str(path), record="helixlab") from None


def finished_run_config(run: str, need: str) -> tuple[dict[str, Any], Path]:
    """The recorded config of a finished run that a model reads (a counting run, a mixture's part) and its
    directory. `need` is the error when `run` is not a finished run; a config without a [model] section
    with params is an error naming the file."""
    rd = Path(expand_path(run))
    if not run or not (rd / CONFIG).exists() or not (rd / BEST).exists():
        raise HelixError(need, path=str(rd), record="model.params")
    cfg = read_json_object(rd / CONFIG, "run config")
    model = cfg.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("params"), dict):
        raise HelixError("run config has no [model] section with params", path=str(rd / CONFIG), record="model")
    return cfg, rd


def read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a safetensors file; a missing or corrupt file is an error naming it."""
    if not path.exists():
        raise HelixError("checkpoint not found", path=str(path))
    try:
        with safe_open(str(path), framework="pt") as fh:
            return {k: fh.get_tensor(k) for k in fh.keys()}, dict(fh.metadata() or {})
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise HelixError(f"cannot read checkpoint ({exc})", path=str(path)) from None
