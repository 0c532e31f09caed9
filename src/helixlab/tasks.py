"""Tasks own the loss on raw model outputs, the output activation, the metrics and the target dtype."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from helixlab.errors import HelixError
from helixlab.metrics import BinaryMetrics, MulticlassMetrics, RegressionMetrics

# Metric name -> True when larger is better.
HIGHER_IS_BETTER = {"accuracy": True, "mcc": True, "auroc": True, "auprc": True, "f1": True, "macro_f1": True,
                    "pearson": True, "spearman": True, "loss": False, "mse": False}


@dataclass
class TaskConfig:
    """kind: 'binary' | 'multiclass' | 'regression'; loss for regression: 'mse' | 'huber'."""

    kind: str = "binary"
    n_classes: int = 2
    loss: str = "mse"
    huber_delta: float = 1.0


class Task:
    kind: str
    default_monitor: str

    def __init__(self, cfg: TaskConfig, n_labels: int) -> None:
        self.cfg = cfg
        self.n_labels = n_labels

    @property
    def n_outputs(self) -> int:
        return self.n_labels

    def target(self, y: np.ndarray) -> torch.Tensor:
        """Labels (N, T) float32 -> the tensor the loss expects."""
        return torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def activate(self, out: torch.Tensor) -> torch.Tensor:
        """Raw outputs -> predictions (probabilities or values)."""
        return out

    def metrics(self) -> Any:
        """A fresh accumulator: `.update(activated outputs (N, n_outputs), labels (N, T))`, `.compute()`."""
        raise NotImplementedError

    def check_labels(self, meta: dict[str, Any], source: str) -> None:
        """Refuse labels that cannot belong to this task, before any training."""


class BinaryTask(Task):
    kind = "binary"
    default_monitor = "auroc"

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(out.float(), y)

    def activate(self, out: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(out.float())

    def metrics(self) -> BinaryMetrics:
        return BinaryMetrics(self.n_labels)

    def check_labels(self, meta: dict[str, Any], source: str) -> None:
        for name, st in meta["label_stats"].items():
            counts = st.get("value_counts")
            if counts is None or not set(counts) <= {"0", "1"}:
                raise HelixError(f"binary task needs 0/1 labels, column {name!r} has values "
                                 f"{sorted(counts) if counts else str(st['min']) + '..' + str(st['max'])}", path=source)


class MulticlassTask(Task):
    kind = "multiclass"
    default_monitor = "accuracy"

    @property
    def n_outputs(self) -> int:
        return self.cfg.n_classes

    def target(self, y: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(y[:, 0], dtype=np.int64))

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out.float(), y)

    def activate(self, out: torch.Tensor) -> torch.Tensor:
        return torch.softmax(out.float(), -1)

    def metrics(self) -> MulticlassMetrics:
        return MulticlassMetrics(self.cfg.n_classes)

    def check_labels(self, meta: dict[str, Any], source: str) -> None:
        st = next(iter(meta["label_stats"].values()))
        counts = st.get("value_counts")
        allowed = {f"{k:g}" for k in range(self.cfg.n_classes)}
        if counts is None or not set(counts) <= allowed:
            raise HelixError(f"multiclass task with n_classes={self.cfg.n_classes} needs integer labels "
                             f"0..{self.cfg.n_classes - 1}", path=source)


class RegressionTask(Task):
    kind = "regression"
    default_monitor = "pearson"

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.cfg.loss == "huber":
            return F.huber_loss(out.float(), y, delta=self.cfg.huber_delta)
        return F.mse_loss(out.float(), y)

    def metrics(self) -> RegressionMetrics:
        return RegressionMetrics(self.n_labels)


TASKS: dict[str, type[Task]] = {"binary": BinaryTask, "multiclass": MulticlassTask, "regression": RegressionTask}


def make_task(cfg: TaskConfig, n_labels: int) -> Task:
    if cfg.kind not in TASKS:
        raise HelixError(f"unknown task kind {cfg.kind!r}; expected one of {sorted(TASKS)}", record="task.kind")
    if cfg.kind == "regression" and cfg.loss not in ("mse", "huber"):
        raise HelixError(f"unknown regression loss {cfg.loss!r}; expected mse or huber", record="task.loss")
    return TASKS[cfg.kind](cfg, n_labels)
