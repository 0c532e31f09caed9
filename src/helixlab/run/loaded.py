"""A finished run loaded for inference: its config, its record, its model with the best (or last)
weights, and its task. An ensemble directory (`helixlab ensemble`) loads the same way: its model averages
the members' predictions, and its config and record are its first member's (they agree on what matters)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from helixlab.config import RunConfig
from helixlab.errors import HelixError
from helixlab.models import build_model
from helixlab.models.base import SequenceModel
from helixlab.models.weights import load_weights
from helixlab.paths import CONFIG, ENSEMBLE, RESULTS, best_or_last, read_json_object
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
    members: list[Path] | None = None  # an ensemble's member runs

    @property
    def seq_len(self) -> int | None:
        return self.info["seq_len"]


class Ensemble(SequenceModel):
    """Several trained models of one task as one: the mean of their predictions (probabilities or values,
    `Task.combine`), as raw outputs the task activates like any model's. Features (embeddings) are the
    members' features side by side."""

    reads_one_hot = False  # no single differentiable head: attribute it with ISM

    def __init__(self, members: list[SequenceModel], task: Task) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.task = task
        self.reads_strand = any(m.reads_strand for m in members)
        self.bf16_on_cpu = all(m.bf16_on_cpu for m in members)
        self.bf16_on_gpu = all(m.bf16_on_gpu for m in members)
        self.feature_dim = sum(m.feature_dim for m in members)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([m.features(x).float() for m in self.members], 1)  # type: ignore[operator]

    def outputs(self, x: torch.Tensor, strand: torch.Tensor | None = None) -> torch.Tensor:
        return self.task.combine([m(x, strand) for m in self.members])

    def strand_average(self, x: torch.Tensor) -> torch.Tensor:
        return self.task.combine([m.strand_average(x) for m in self.members])  # type: ignore[operator]


def _members(rd: Path) -> list[Path]:
    record = read_json_object(rd / ENSEMBLE, "ensemble record")
    members = record.get("members")
    if not isinstance(members, list) or not members or not all(isinstance(m, str) for m in members):
        raise HelixError("an ensemble record needs 'members': a list of run directories", path=str(rd / ENSEMBLE),
                         record="members")
    return [(rd / m).resolve() for m in members]  # relative to the ensemble directory, as written


def check_member(rd: Path) -> None:
    """A member must be a finished run (results.json written), not an ensemble or a run in progress."""
    if (rd / ENSEMBLE).exists():
        raise HelixError("an ensemble cannot be a member of an ensemble: give its member runs", path=str(rd))
    read_config(rd)  # an error naming the directory when it is not a run
    if not (rd / RESULTS).exists():
        raise HelixError("not a finished run (no results.json): finish it with `helixlab train --resume`",
                         path=str(rd))


def compatible(first: LoadedRun, other: LoadedRun) -> None:
    """Members of one ensemble must agree on the task, labels, input length and input transforms."""
    checks = [("task", first.config.task, other.config.task),
              ("labels", first.info["labels"], other.info["labels"]),
              ("outputs", first.info["n_outputs"], other.info["n_outputs"]),
              ("input length", first.info["seq_len"], other.info["seq_len"]),
              ("input transforms (crop, padding, flank)", first.config.data.seq_options(),
               other.config.data.seq_options()),
              ("flank", first.config.data.flank, other.config.data.flank),
              ("strand averaging (train.rc_average)", first.config.train.rc_average, other.config.train.rc_average)]
    for what, a, b in checks:
        if a != b:
            raise HelixError(f"ensemble members differ in {what}: {a!r} in {first.run_dir} vs {b!r}",
                             path=str(other.run_dir), record=what)
    if first.task.kind == "mlm":
        raise HelixError("pretraining runs have no predictions to average", path=str(first.run_dir))


def load_ensemble(members: list[Path], *, checkpoint: str = "best", device: str = "cpu",
                  run_dir: Path | None = None) -> LoadedRun:
    """Member runs (checked: finished, compatible) as one LoadedRun whose model is their `Ensemble`."""
    runs = []
    for m in members:
        check_member(m)
        runs.append(load_run(m, checkpoint=checkpoint, device=device))
        compatible(runs[0], runs[-1])
    first = runs[0]
    model = Ensemble([r.model for r in runs], first.task).to(device).eval()
    info = {**first.info, "params": sum(int(r.info["params"]) for r in runs)}
    return LoadedRun(run_dir or first.run_dir, first.config, info, model, first.task, members=list(members))


def load_run(run_dir: str | os.PathLike[str], *, checkpoint: str = "best", device: str = "cpu") -> LoadedRun:
    """Rebuild the model of a run and load its best (or last) weights; an ensemble directory loads its
    members (`load_ensemble`)."""
    rd = Path(run_dir)
    if (rd / ENSEMBLE).exists():
        return load_ensemble(_members(rd), checkpoint=checkpoint, device=device, run_dir=rd)
    cfg = read_config(rd)
    info = read_info(rd)
    model = build_model(cfg.model.name, cfg.model.params, info["seq_len"], info["n_outputs"], source=str(rd / CONFIG),
                        run_dir=rd)
    load_weights(model, best_or_last(rd, checkpoint))
    model.to(device).eval()
    task = make_task(cfg.task, len(info["labels"]))
    return LoadedRun(rd, cfg, info, model, task)
