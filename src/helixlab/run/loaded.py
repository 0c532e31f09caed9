"""A finished run loaded for inference: its config, its record, its model with the best (or last)
weights, and its task."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helixlab.config import RunConfig
from helixlab.models import build_model
from helixlab.models.base import SequenceModel
from helixlab.models.weights import load_weights
from helixlab.paths import CONFIG, best_or_last
from helixlab.run.records import read_config, read_info
from helixlab.tasks import Task, make_task


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
    rd = Path(run_dir)
    cfg = read_config(rd)
    info = read_info(rd)
    model = build_model(cfg.model.name, cfg.model.params, info["seq_len"], info["n_outputs"], source=str(rd / CONFIG),
                        run_dir=rd)
    load_weights(model, best_or_last(rd, checkpoint))
    model.to(device).eval()
    task = make_task(cfg.task, len(info["labels"]))
    return LoadedRun(rd, cfg, info, model, task)
