"""Checkpoints as safetensors: model weights, optimizer tensors and RNG states, with the trainer
state as JSON metadata. Written to a temporary name and renamed, so a kill never leaves half a file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from helixlab.errors import HelixError
from helixlab.io import atomic_path


def _atomic_save(tensors: dict[str, torch.Tensor], metadata: dict[str, str], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous().cpu().clone() for k, v in tensors.items()}, str(tmp),
                  metadata=metadata)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())


def save_weights(model: torch.nn.Module, path: Path, info: dict[str, Any] | None = None) -> None:
    """Model weights only (the shareable checkpoint)."""
    _atomic_save(dict(model.state_dict()), {"helixlab": json.dumps(info or {})}, path)


def load_weights(model: torch.nn.Module, path: Path) -> dict[str, Any]:
    tensors, meta = read(path)
    model.load_state_dict({k[len("model."):] if k.startswith("model.") else k: v for k, v in tensors.items()
                           if not k.startswith(("optim.", "rng."))})
    return json.loads(meta.get("helixlab", "{}"))


def read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if not path.exists():
        raise HelixError("checkpoint not found", path=str(path))
    try:
        with safe_open(str(path), framework="pt") as fh:
            return {k: fh.get_tensor(k) for k in fh.keys()}, dict(fh.metadata() or {})
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise HelixError(f"cannot read checkpoint ({exc})", path=str(path)) from None


def save_training_state(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                        rng_states: list[torch.Tensor], state: dict[str, Any]) -> None:
    """Everything needed to resume exactly: weights, optimizer moments, per-rank RNG, trainer state."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for pid, pstate in opt["state"].items():
        for name, value in pstate.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{name}"] = value
            else:
                scalars.setdefault(str(pid), {})[name] = value
    for r, rng in enumerate(rng_states):
        tensors[f"rng.{r}"] = rng
    meta = {"trainer": json.dumps(state), "param_groups": json.dumps(opt["param_groups"]),
            "optim_scalars": json.dumps(scalars)}
    _atomic_save(tensors, meta, path)


def load_training_state(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer
                        ) -> tuple[list[torch.Tensor], dict[str, Any]]:
    tensors, meta = read(path)
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    opt_state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            opt_state.setdefault(int(pid), {})[name] = value
    for pid, values in json.loads(meta["optim_scalars"]).items():
        opt_state.setdefault(int(pid), {}).update(values)
    optimizer.load_state_dict({"state": opt_state, "param_groups": json.loads(meta["param_groups"])})
    rngs = [tensors[f"rng.{r}"] for r in range(sum(k.startswith("rng.") for k in tensors))]
    return rngs, json.loads(meta["trainer"])
