"""Metrics of a model on labelled data: the one evaluation loop (training, `evaluate`, interpretation)."""

from __future__ import annotations

from typing import Any

import torch

from helixlab.data.batches import eval_batches, load_batch
from helixlab.data.splits import Split
from helixlab.models.base import autocast, resolve_precision
from helixlab.progress import progress_bar
from helixlab.tasks.task import Task

EVAL_KEY = (20_240_101, 2**31 - 1)  # evaluation masks (MLM) are the same in every epoch and every run


def evaluate_shard(model: torch.nn.Module, shard: Split, task: Task, *, batch_size: int = 512,
                   device: torch.device | str = "cpu", rc_average: bool = False, precision: str = "auto",
                   progress: bool = False) -> tuple[dict[str, float], Any]:
    """Metrics of `model` on a labelled shard, and the metric accumulator (for plots). precision: 'auto', 'fp32' or
    'bf16' (`resolve_precision`)."""
    device = torch.device(device)
    precision = resolve_precision(precision, device, model)
    was_training = model.training
    model.eval()
    acc = task.metrics()
    loss_sum, n = 0.0, 0
    bar = progress_bar(progress, total=(len(shard) + batch_size - 1) // batch_size, desc="evaluate", leave=False)
    for b, idx in enumerate(eval_batches(len(shard), batch_size)):
        bar.update(1)
        x, y = load_batch(shard, idx)
        with torch.inference_mode(), autocast(device, precision):
            loss, out = task.step(model, x.to(device), y, key=EVAL_KEY + (b,), rc_average=rc_average)
            acc.update(task.predictions(out, loss), y)
        loss_sum += float(loss) * len(idx)
        n += len(idx)
    bar.close()
    model.train(was_training)
    return {"loss": loss_sum / max(n, 1), **acc.compute()}, acc


def add_threshold_metrics(results: dict[str, Any], accumulators: dict[str, Any]) -> None:
    """Binary tasks with one label column: also accuracy and MCC at the threshold with the best MCC on valid
    (results['threshold'])."""
    valid = accumulators.get("valid")
    if valid is None or not hasattr(valid, "best_threshold") or len(valid.counts) != 1:  # single-label only
        return
    results["threshold"] = accumulators["valid"].best_threshold()
    for split, acc in accumulators.items():
        results["splits"][split].update(acc.at_threshold(results["threshold"]))
