"""Metrics from streaming sufficient statistics (confusion counts, moment sums) where the metric
allows it; rank-based metrics (AUROC, AUPRC, Spearman) keep the scores, 8 bytes per row."""

from __future__ import annotations

import math

import numpy as np


def _rank(x: np.ndarray) -> np.ndarray:
    """Average ranks (1-based) with ties sharing the mean rank."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    ranks = np.empty(len(x), dtype=np.float64)
    boundaries = np.flatnonzero(np.diff(xs)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(x)]])
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with tied ranks); NaN when one class is absent."""
    pos = labels > 0.5
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    r = _rank(scores)
    return float((r[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def curve_points(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative (true positives, false positives, thresholds) at each distinct score, high to low."""
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order] > 0.5
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tp = np.cumsum(y)[last]
    fp = (last + 1) - tp
    return tp.astype(np.float64), fp.astype(np.float64), s[last]


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    tp, fp, _ = curve_points(scores, labels)
    return np.r_[0.0, fp / max(fp[-1], 1)], np.r_[0.0, tp / max(tp[-1], 1)]


def pr_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) at each distinct threshold."""
    tp, fp, _ = curve_points(scores, labels)
    return tp / max(tp[-1], 1), tp / (tp + fp)


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the PR curve as average precision (step-wise, as in scikit-learn)."""
    tp, fp, _ = curve_points(scores, labels)
    if tp[-1] == 0:
        return float("nan")
    recall = tp / tp[-1]
    precision = tp / (tp + fp)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def pearson_from_sums(n: float, sx: float, sy: float, sxx: float, syy: float, sxy: float) -> float:
    cov = sxy - sx * sy / n
    vx, vy = sxx - sx * sx / n, syy - sy * sy / n
    return float(cov / math.sqrt(vx * vy)) if vx > 0 and vy > 0 else float("nan")


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    dx, dy = x - x.mean(), y - y.mean()
    denom = math.sqrt(float((dx * dx).sum() * (dy * dy).sum()))
    return float((dx * dy).sum() / denom) if denom > 0 else float("nan")


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    rx, ry = _rank(x), _rank(y)
    return pearson_from_sums(len(x), rx.sum(), ry.sum(), (rx * rx).sum(), (ry * ry).sum(), (rx * ry).sum())


def mcc_from_counts(tp: np.ndarray, fp: np.ndarray, tn: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denom = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return np.where(denom > 0, (tp * tn - fp * fn) / np.where(denom > 0, denom, 1), 0.0)


def best_mcc_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The score threshold (predict 1 when score >= threshold) with the highest MCC on these labels."""
    tp, fp, thresholds = curve_points(scores, labels)
    pos, neg = tp[-1], fp[-1]
    return float(thresholds[int(np.argmax(mcc_from_counts(tp, fp, neg - fp, pos - tp)))])


class BinaryMetrics:
    """Accuracy, precision, recall, F1, MCC at threshold 0.5 (streamed counts); AUROC, AUPRC.

    With several label columns (multi-label) every metric is the mean over columns.
    """

    def __init__(self, n_labels: int = 1) -> None:
        self.counts = np.zeros((n_labels, 4), dtype=np.int64)  # tp, fp, tn, fn per column
        self.scores: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []

    def update(self, prob: np.ndarray, y: np.ndarray) -> None:
        """prob, y: (N, T) probabilities of class 1 and 0/1 labels."""
        pred, truth = prob >= 0.5, y > 0.5
        self.counts += np.stack([(pred & truth).sum(0), (pred & ~truth).sum(0), (~pred & ~truth).sum(0),
                                 (~pred & truth).sum(0)], 1)
        self.scores.append(np.asarray(prob, dtype=np.float32))
        self.labels.append(np.asarray(y, dtype=np.float32))

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(scores, labels) of the first label column, for curves."""
        return np.concatenate(self.scores)[:, 0], np.concatenate(self.labels)[:, 0]

    def best_threshold(self) -> float:
        """The threshold of the first label column that maximises MCC here (chosen on validation data)."""
        return best_mcc_threshold(*self.arrays())

    def at_threshold(self, threshold: float) -> dict[str, float]:
        """Accuracy and MCC of the first label column at a given threshold (e.g. one chosen on valid)."""
        scores, labels = self.arrays()
        pred, truth = scores >= threshold, labels > 0.5
        counts = [np.array(float(v)) for v in ((pred & truth).sum(), (pred & ~truth).sum(), (~pred & ~truth).sum(),
                                                (~pred & truth).sum())]
        return {"accuracy_at_threshold": float((pred == truth).mean()) if len(pred) else float("nan"),
                "mcc_at_threshold": float(mcc_from_counts(*counts))}

    def compute(self) -> dict[str, float]:
        scores, labels = np.concatenate(self.scores), np.concatenate(self.labels)
        per_column = [self._column(j, scores[:, j], labels[:, j]) for j in range(len(self.counts))]
        return {k: float(np.mean([c[k] for c in per_column])) for k in per_column[0]}

    def _column(self, j: int, scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
        tp, fp, tn, fn = (int(v) for v in self.counts[j])
        n = tp + fp + tn + fn
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        denom = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        return {
            "accuracy": (tp + tn) / n if n else float("nan"),
            "precision": precision,
            "recall": recall,
            "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
            "mcc": (tp * tn - fp * fn) / denom if denom else 0.0,
            "auroc": auroc(scores, labels),
            "auprc": average_precision(scores, labels),
        }


class MulticlassMetrics:
    """Accuracy, per-class accuracy (recall), macro F1 and multi-class MCC from a streamed confusion matrix."""

    def __init__(self, n_classes: int) -> None:
        self.confusion = np.zeros((n_classes, n_classes), dtype=np.int64)

    def update(self, prob: np.ndarray, y: np.ndarray) -> None:
        """prob: (N, K) class probabilities; y: (N, 1) class indices."""
        pred = prob.argmax(1)
        np.add.at(self.confusion, (y[:, 0].astype(np.int64), pred), 1)

    def compute(self) -> dict[str, float]:
        c = self.confusion.astype(np.float64)
        n = c.sum()
        correct = np.trace(c)
        t, p = c.sum(1), c.sum(0)
        recall = np.divide(np.diag(c), t, out=np.zeros_like(t), where=t > 0)
        precision = np.divide(np.diag(c), p, out=np.zeros_like(p), where=p > 0)
        f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(t), where=precision + recall > 0)
        denom = math.sqrt((n * n - (p * p).sum()) * (n * n - (t * t).sum()))
        out = {
            "accuracy": correct / n if n else float("nan"),
            "macro_f1": float(f1.mean()),
            "mcc": float((correct * n - (t * p).sum()) / denom) if denom else 0.0,
        }
        for k, r in enumerate(recall):
            out[f"recall_class{k}"] = float(r)
        return out


class RegressionMetrics:
    """Pearson and MSE from streamed sums; Spearman from kept values. Averaged over targets."""

    def __init__(self, n_targets: int) -> None:
        self.sums = np.zeros((n_targets, 6))
        self.sq_err = np.zeros(n_targets)
        self.preds: list[np.ndarray] = []
        self.truth: list[np.ndarray] = []

    def update(self, pred: np.ndarray, y: np.ndarray) -> None:
        """pred, y: (N, T)."""
        pred, y = pred.astype(np.float64), y.astype(np.float64)
        self.sums += np.stack([np.full(pred.shape[1], len(pred)), pred.sum(0), y.sum(0), (pred * pred).sum(0),
                               (y * y).sum(0), (pred * y).sum(0)], 1)
        self.sq_err += ((pred - y) ** 2).sum(0)
        self.preds.append(pred.astype(np.float32))
        self.truth.append(y.astype(np.float32))

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.concatenate(self.preds), np.concatenate(self.truth)

    def compute(self) -> dict[str, float]:
        pred, truth = self.arrays()
        pearson = [pearson_from_sums(*row) for row in self.sums]
        rho = [spearman(pred[:, j], truth[:, j]) for j in range(pred.shape[1])]
        return {
            "pearson": float(np.mean(pearson)),
            "spearman": float(np.mean(rho)),
            "mse": float((self.sq_err / self.sums[:, 0]).mean()),
        }


class MaskedLMMetrics:
    """Masked-token accuracy and per-token cross-entropy (and perplexity) over the chosen tokens.
    mlm_accuracy counts every chosen token, so the 10 % that BERT masking leaves unchanged put a floor
    of about 0.10 under it that copying the input reaches; mlm_accuracy_hidden counts only the tokens
    the model could not see (shown as [MASK] or as another token)."""

    def __init__(self) -> None:
        self.correct = 0
        self.total = 0
        self.hidden_correct = 0
        self.hidden_total = 0
        self.loss_sum = 0.0

    def update(self, batch: tuple[np.ndarray, np.ndarray, float, np.ndarray], y: np.ndarray) -> None:
        """batch: (predicted ids, true ids, summed loss, hidden flags) of the chosen tokens; y (no labels) unused."""
        pred, true, loss_sum, hidden = batch
        right = pred == true
        self.correct += int(right.sum())
        self.total += len(true)
        self.hidden_correct += int(right[hidden].sum())
        self.hidden_total += int(hidden.sum())
        self.loss_sum += loss_sum

    def compute(self) -> dict[str, float]:
        token_loss = self.loss_sum / max(self.total, 1)
        return {"mlm_accuracy": self.correct / max(self.total, 1),
                "mlm_accuracy_hidden": self.hidden_correct / max(self.hidden_total, 1), "token_loss": token_loss,
                "perplexity": math.exp(min(token_loss, 50.0)), "masked_tokens": float(self.total)}


def context_classes(y: np.ndarray, classes: np.ndarray | None) -> np.ndarray:
    """The class of context labels y (N, 2) (centre base code 0-3, repeat bit): `classes` maps the base
    codes to classes; None: the class is the repeat bit (task.target 'repeat')."""
    if classes is None:
        return (np.asarray(y[:, 1]) > 0.5).astype(np.int64)
    return classes[np.asarray(y[:, 0], dtype=np.int64)]


class ContextMetrics:
    """Centre-base prediction: accuracy, cross-entropy (nats and bits per base), per-class accuracy and
    the confusion matrix, overall and apart for repeat (soft-masked) and non-repeat positions."""

    GROUPS = ("all", "repeat", "nonrepeat")

    def __init__(self, class_names: list[str], classes: np.ndarray | None) -> None:
        self.names, self.classes = class_names, classes
        k = len(class_names)
        self.confusion = {g: np.zeros((k, k), dtype=np.int64) for g in self.GROUPS}
        self.nll = dict.fromkeys(self.GROUPS, 0.0)

    def update(self, prob: np.ndarray, y: np.ndarray) -> None:
        """prob: (N, K) class probabilities; y: (N, 2) centre base code 0-3 and repeat bit."""
        truth = context_classes(y, self.classes)
        pred = prob.argmax(1)
        nll = -np.log(np.clip(prob[np.arange(len(prob)), truth], 1e-12, None))
        repeat = y[:, 1] > 0.5
        for group, rows in (("all", slice(None)), ("repeat", repeat), ("nonrepeat", ~repeat)):
            np.add.at(self.confusion[group], (truth[rows], pred[rows]), 1)
            self.nll[group] += float(nll[rows].sum())

    def compute(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for group in self.GROUPS:
            c = self.confusion[group]
            n = int(c.sum())
            suffix = "" if group == "all" else f"_{group}"
            ce = self.nll[group] / n if n else float("nan")
            out[f"accuracy{suffix}"] = float(np.trace(c) / n) if n else float("nan")
            out[f"cross_entropy{suffix}"] = ce
            out[f"bits_per_base{suffix}"] = ce / math.log(2)
            for k, name in enumerate(self.names):
                t = c[k].sum()
                out[f"accuracy_{name}{suffix}"] = float(c[k, k] / t) if t else float("nan")
            out[f"positions{suffix}"] = float(n)
        return out
