"""Plots (learning curves; ROC and PR, or predicted vs measured) and the run's report.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from helixlab.config import RunConfig
from helixlab.paths import CARD, PLOTS, REPORT, TOKENIZER_FILE, write_text
from helixlab.plots import pyplot, save_figure
from helixlab.tasks import Task
from helixlab.tasks.metrics import pr_curve, roc_curve


def plot_learning_curves(history: list[dict[str, Any]], monitor: str, path: Path,
                         trace: list[dict[str, Any]] | None = None) -> None:
    """Loss (training loss along the epochs from `trace` if given, else per epoch) and the monitor."""
    plt = pyplot()
    epochs = [r["epoch"] for r in history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    if trace:
        axes[0].plot([r["epoch"] for r in trace], [r["train_loss"] for r in trace], "-", label="train")
    else:
        axes[0].plot(epochs, [r["train_loss"] for r in history], "o-", label="train")
    if history and "valid_loss" in history[0]:
        axes[0].plot(epochs, [r["valid_loss"] for r in history], "o-", label="valid")
    axes[0].set(xlabel="epoch", ylabel="loss", title="Loss")
    axes[0].legend()
    key = f"valid_{monitor}"
    if history and key in history[0]:
        axes[1].plot(epochs, [r[key] for r in history], "o-", color="C1")
    axes[1].set(xlabel="epoch", ylabel=monitor, title=f"Validation {monitor}")
    fig.tight_layout()
    save_figure(fig, path)


def plot_roc_pr(scores: np.ndarray, labels: np.ndarray, title: str, path: Path) -> None:
    plt = pyplot()
    fpr, tpr = roc_curve(scores, labels)
    recall, precision = pr_curve(scores, labels)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    axes[0].plot(fpr, tpr)
    axes[0].plot([0, 1], [0, 1], "--", color="grey")
    axes[0].set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC ({title})")
    axes[1].plot(recall, precision)
    axes[1].axhline(float(np.mean(labels > 0.5)), ls="--", color="grey")
    axes[1].set(xlabel="recall", ylabel="precision", title=f"Precision-recall ({title})", ylim=(0, 1.02))
    fig.tight_layout()
    save_figure(fig, path)


def plot_scatter(pred: np.ndarray, truth: np.ndarray, title: str, path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    if len(pred) > 20000:
        pick = np.random.default_rng(0).choice(len(pred), 20000, replace=False)
        pred, truth = pred[pick], truth[pick]
    ax.scatter(truth, pred, s=3, alpha=0.3)
    lo, hi = float(min(truth.min(), pred.min())), float(max(truth.max(), pred.max()))
    ax.plot([lo, hi], [lo, hi], "--", color="grey")
    ax.set(xlabel="measured", ylabel="predicted", title=f"Predicted vs measured ({title})")
    fig.tight_layout()
    save_figure(fig, path)


def plot_confusion(acc: Any, title: str, path: Path) -> None:
    """Row-normalised confusion matrices of a context run: all, repeat and non-repeat positions."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for ax, group in zip(axes, acc.GROUPS):
        c = acc.confusion[group].astype(np.float64)
        frac = c / np.maximum(c.sum(1, keepdims=True), 1)
        ax.imshow(frac, vmin=0, vmax=1, cmap="Blues")
        for i in range(len(c)):
            for j in range(len(c)):
                ax.text(j, i, f"{frac[i, j]:.2f}", ha="center", va="center",
                        color="white" if frac[i, j] > 0.6 else "black")
        ax.set(xticks=range(len(c)), yticks=range(len(c)), xticklabels=acc.names, yticklabels=acc.names,
               xlabel="predicted", ylabel="true", title=f"{group} ({int(c.sum()):,} positions, {title})")
    fig.tight_layout()
    save_figure(fig, path)


def format_metric(value: float) -> str:
    """Counts as integers with thousands separators, everything else to 4 decimals."""
    return f"{int(value):,}" if float(value).is_integer() and abs(value) >= 10 else f"{value:.4f}"


def _table(rows: dict[str, dict[str, float]]) -> str:
    """Metrics as rows, splits as columns."""
    splits = list(rows)
    keys = list(rows[splits[0]])
    lines = ["| metric | " + " | ".join(splits) + " |", "|---|" + "---:|" * len(splits)]
    for k in keys:
        lines.append(f"| {k} | " + " | ".join(format_metric(rows[s][k]) for s in splits) + " |")
    return "\n".join(lines)


def write_report(rd: Path, cfg: RunConfig, info: dict[str, Any], results: dict[str, Any],
                 history: list[dict[str, Any]], accumulators: dict[str, Any], task: Task,
                 trace: list[dict[str, Any]] | None = None) -> Path:
    """Write plots/*.png and report.md into the run directory; return the report path."""
    plots = rd / PLOTS
    plots.mkdir(exist_ok=True)
    made: list[tuple[str, str]] = []
    if history and "train_loss" in history[0]:  # (counting models have no training loss)
        plot_learning_curves(history, results["monitor"], plots / "learning_curves.png", trace)
        made.append(("Learning curves", "plots/learning_curves.png"))
    for split, acc in accumulators.items():
        if task.kind == "binary":
            scores, labels = acc.arrays()
            plot_roc_pr(scores, labels, split, plots / f"roc_pr_{split}.png")
            made.append((f"ROC and precision-recall, {split}", f"plots/roc_pr_{split}.png"))
        elif task.kind == "context":
            plot_confusion(acc, split, plots / f"confusion_{split}.png")
            made.append((f"Confusion matrices (rows: true, columns: predicted), {split}",
                         f"plots/confusion_{split}.png"))
        elif task.kind == "regression":
            pred, truth = acc.arrays()
            plot_scatter(pred[:, 0], truth[:, 0], split, plots / f"pred_vs_measured_{split}.png")
            made.append((f"Predicted vs measured, {split}", f"plots/pred_vs_measured_{split}.png"))
    env = info.get("environment", {})
    lines = [
        f"# helixlab run: {rd.name}", "",
        f"- model: `{cfg.model.name}` ({results['params']:,} parameters); task: {task.kind}; labels: {info['labels']}",
        f"- epochs run: {results['epochs']} (best: {results['best_epoch']}, monitor: valid {results['monitor']})"
        + (" — stopped early" if results["stopped_early"] else ""),
        f"- training time: {results['train_seconds']:.1f} s, {results['train_seq_per_s']:.0f} sequences/s",
        f"- machine: {env.get('processor')} x{env.get('cpus')} CPUs, GPU: {env.get('cuda') or 'none'}; "
        f"torch {env.get('torch')}; commit {env.get('commit')}",
        *(["- model card: [MODEL_CARD.md](MODEL_CARD.md) (data checksums, intended use, known limits)"]
          if (rd / CARD).exists() else []), "",
        "## Metrics (best checkpoint)", "",
        _table(results["splits"]) if results["splits"] else "_no validation or test data_", "",
        *([f"`*_at_threshold`: predicting 1 at probability >= {results['threshold']:.4f}, the threshold with the "
           "best MCC on valid (the other metrics use 0.5).", ""] if "threshold" in results else []),
        *([f"Budget: {results['budget']} = {results['budget_steps']:,} steps"
           + (f" (the probe's first count: {results['budget_probe_steps']:,})" if "budget_probe_steps" in results
              else "") + ".", ""] if "budget" in results else []),
        "## Plots", "",
    ]
    for title, rel in made:
        lines += [f"### {title}", "", f"![{title}]({rel})", ""]
    lines += ["## Files", "", "- `config.json` resolved configuration; `run.json` data checksums and environment",
              "- `metrics.jsonl` per-epoch metrics; `trace.jsonl` training loss along the epochs; "
              "`results.json` final metrics",
              "- `checkpoints/best.safetensors` best weights; `checkpoints/last.safetensors` resumable state",
              *(["- `tokenizer.json` the token vocabulary the model reads"]
                if (rd / TOKENIZER_FILE).exists() else []),
              "", "## Configuration", "", "```json", json.dumps(cfg.to_dict(), indent=2), "```", ""]
    path = rd / REPORT
    write_text(path, "\n".join(lines))
    return path
