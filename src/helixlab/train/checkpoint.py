"""The resumable training state: model weights, optimizer tensors, every rank's RNG state and the
trainer's counters (`TrainerState`, as JSON metadata), in one safetensors file written atomically."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from helixlab.errors import HelixError
from helixlab.models.weights import model_tensors, read, save_tensors


@dataclass
class TrainerState:
    """Where training stands; saved in every resumable checkpoint. epoch/batch: the next batch to run
    (batch 0 of `epoch`); loss_sum/loss_n: this epoch's training loss so far; best/best_epoch/bad_epochs:
    the monitored validation metric; history: one record per finished epoch (metrics.jsonl); trace: the
    training loss about 20 times per epoch (trace.jsonl), win_sum/win_n the steps since its last point."""

    epoch: int = 0
    batch: int = 0
    step: int = 0
    loss_sum: float = 0.0
    loss_n: int = 0
    best: float | None = None
    best_epoch: int | None = None
    bad_epochs: int = 0
    done: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0
    seqs_seen: int = 0
    trace: list[dict[str, Any]] = field(default_factory=list)
    win_sum: float = 0.0
    win_n: int = 0
    total_steps: int = 0  # the schedule's length, fixed at the start (train.epochs or train.budget)
    probe_steps: int = 0  # a time budget's first count (the probe's), once the run's own pace corrects it

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str) -> TrainerState:
        """The state as saved (keys added since a run was written take their defaults)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise HelixError(f"checkpoint has unknown trainer state keys {unknown}", path=source, record="trainer")
        return cls(**values)

    def record_loss(self, loss: float, steps_per_epoch: int) -> None:
        """Add one step's training loss; about 20 times per epoch a point of the trace (the mean over
        the steps since the last point), for learning curves of runs that last an epoch or two."""
        self.loss_sum += loss
        self.loss_n += 1
        self.win_sum += loss
        self.win_n += 1
        if self.win_n >= max(1, steps_per_epoch // 20):
            self.trace.append({"step": self.step, "epoch": round(self.step / steps_per_epoch, 4),
                               "train_loss": self.win_sum / self.win_n})
            self.win_sum, self.win_n = 0.0, 0


def save_training_state(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                        rng_states: list[torch.Tensor], state: TrainerState,
                        average: dict[str, torch.Tensor] | None = None) -> None:
    """Everything needed to resume exactly: weights, optimizer moments, per-rank RNG, trainer state, and
    the weight average (train.ema or train.swa) when there is one."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"ema.{k}": v for k, v in (average or {}).items()})
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
    meta = {"trainer": json.dumps(state.to_dict()), "param_groups": json.dumps(opt["param_groups"]),
            "optim_scalars": json.dumps(scalars)}
    save_tensors(tensors, meta, path)


def load_training_state(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer
                        ) -> tuple[list[torch.Tensor], TrainerState, dict[str, torch.Tensor]]:
    """Restore weights and optimizer from a training-state file; returns (per-rank RNG states, trainer state,
    the weight average's tensors: empty without train.ema or train.swa)."""
    tensors, meta = read(path)
    try:
        model.load_state_dict(model_tensors(tensors))
        opt_state: dict[int, dict[str, Any]] = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, pid, name = key.split(".", 2)
                opt_state.setdefault(int(pid), {})[name] = value
        for pid, values in json.loads(meta["optim_scalars"]).items():
            opt_state.setdefault(int(pid), {}).update(values)
        optimizer.load_state_dict({"state": opt_state, "param_groups": json.loads(meta["param_groups"])})
        trainer = json.loads(meta["trainer"])
    except KeyError as exc:
        raise HelixError(f"not a resumable checkpoint: no {exc.args[0]!r} entry", path=str(path)) from None
    except (json.JSONDecodeError, ValueError, RuntimeError) as exc:
        raise HelixError(f"cannot resume from this checkpoint ({str(exc).splitlines()[0]})", path=str(path)) from None
    rngs = [tensors[f"rng.{r}"] for r in range(sum(k.startswith("rng.") for k in tensors))]
    average = {k.removeprefix("ema."): v for k, v in tensors.items() if k.startswith("ema.")}
    return rngs, TrainerState.from_dict(trainer, str(path)), average
