"""Tasks own the loss on raw model outputs, the activation and the metrics; `evaluate_shard` scores a model."""

from __future__ import annotations

from helixlab.tasks.evaluate import EVAL_KEY, add_threshold_metrics, evaluate_shard
from helixlab.tasks.task import (HIGHER_IS_BETTER, TARGETS, TASKS, BinaryTask, ContextTask, MaskedLMTask,
                                 MulticlassTask, RegressionTask, Task, TaskConfig, context_target, make_task,
                                 mask_tokens)

__all__ = ["EVAL_KEY", "HIGHER_IS_BETTER", "TARGETS", "TASKS", "BinaryTask", "ContextTask", "MaskedLMTask",
           "MulticlassTask", "RegressionTask", "Task", "TaskConfig", "add_threshold_metrics", "context_target",
           "evaluate_shard", "make_task", "mask_tokens"]
