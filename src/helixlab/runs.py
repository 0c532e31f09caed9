"""The run directory: its layout, its records and loading a finished run for evaluation/prediction.

  config.json            resolved RunConfig, written before the first step
  run.json               what the model needs to be rebuilt (input length, outputs, labels) + provenance
  metrics.jsonl          one record per finished epoch;  trace.jsonl  training loss ~20 times per epoch
  checkpoints/last.safetensors   resumable state;  checkpoints/best.safetensors  best weights
  results.json, plots/*.png, report.md    written when training finishes
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from helixlab.config import RunConfig, config_from_dict
from helixlab.errors import HelixError
from helixlab.io import atomic_path
from helixlab.models import build_model
from helixlab.models.base import SequenceModel
from helixlab.tasks import Task, TaskConfig, make_task

CONFIG = "config.json"
INFO = "run.json"
METRICS = "metrics.jsonl"
TRACE = "trace.jsonl"
RESULTS = "results.json"
LAST = Path("checkpoints/last.safetensors")
BEST = Path("checkpoints/best.safetensors")


def write_json(path: Path, value: Any) -> None:
    """Write JSON under a temporary name, then rename (never a half-written file)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(value, indent=2) + "\n")


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def environment() -> dict[str, Any]:
    """Versions and machine, recorded with every run and benchmark."""
    import numpy

    return {
        "python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
        "machine": platform.machine(), "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "commit": git_commit(), "command": " ".join(sys.argv),
    }


def read_config(run_dir: Path) -> RunConfig:
    path = run_dir / CONFIG
    if not path.exists():
        raise HelixError("not a helixlab run directory (no config.json)", path=str(run_dir))
    return config_from_dict(json.loads(path.read_text()), str(path))


def read_history(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / METRICS
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass
class LoadedRun:
    """A trained run ready for inference."""

    run_dir: Path
    config: RunConfig
    info: dict[str, Any]
    model: SequenceModel
    task: Task

    @property
    def seq_len(self) -> int | None:
        return self.info["seq_len"]


def load_run(run_dir: str | os.PathLike[str], *, checkpoint: str = "best", device: str = "cpu") -> LoadedRun:
    """Rebuild the model of a run and load its best (or last) weights."""
    from helixlab.checkpoint import load_weights

    rd = Path(run_dir)
    cfg = read_config(rd)
    info_path = rd / INFO
    if not info_path.exists():
        raise HelixError("run has no run.json: it never started training", path=str(rd))
    info = json.loads(info_path.read_text())
    model = build_model(cfg.model.name, cfg.model.params, info["seq_len"], info["n_outputs"], source=str(rd / CONFIG),
                        run_dir=rd)
    path = rd / (BEST if checkpoint == "best" else LAST)
    if checkpoint == "best" and not path.exists():
        path = rd / LAST
    load_weights(model, path)
    model.to(device).eval()
    task = make_task(TaskConfig(**cfg.task.__dict__), len(info["labels"]))
    return LoadedRun(rd, cfg, info, model, task)
