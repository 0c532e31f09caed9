"""Tasks own the loss on raw model outputs, the output activation, the metrics and the target dtype."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from helixlab.errors import HelixError
from helixlab.models.base import MaskedTokens, call, model_outputs, unwrap
from helixlab.tasks.metrics import (BinaryMetrics, ContextMetrics, MaskedLMMetrics, MulticlassMetrics,
                                    RegressionMetrics, context_classes)

# Metric name -> True when larger is better.
HIGHER_IS_BETTER = {"accuracy": True, "mcc": True, "auroc": True, "auprc": True, "f1": True, "macro_f1": True,
                    "pearson": True, "spearman": True, "loss": False, "mse": False, "mlm_accuracy": True,
                    "mlm_accuracy_hidden": True,
                    "perplexity": False, "cross_entropy": False, "bits_per_base": False,
                    "accuracy_repeat": True, "accuracy_nonrepeat": True}


@dataclass
class TaskConfig:
    """kind: 'binary' | 'multiclass' | 'regression' | 'mlm' (masked-language-model pretraining) |
    'context' (the centre base of genome windows, data.flank; `target` 'base' (A/C/G/T), 'pair'
    (A/T vs C/G) or 'purine' (A/G vs C/T));
    loss for regression: 'mse' | 'huber'. mlm: `mask_prob` of the tokens are masked, in spans of
    `mask_span` tokens (0 = the tokenizer's choice: k for overlapping k-mers, else 1).

    bins > 0 (regression): predict a distribution over `bins` equally spaced values spanning
    `bin_range` (default: the training labels' min..max, recorded at the start of the run) with a
    KL loss; the prediction is its mean. The target is a normal of sd `bin_sd` bin widths around
    the label, integrated over each bin (LegNet's soft classification); bin_sd = 0: the nearest bin.

    label_smoothing (binary, multiclass): training targets move a fraction eps towards the uniform
    (a 0/1 label becomes eps/2 or 1 - eps/2; a class gets 1 - eps + eps/K); validation, test and the
    reported loss use the labels as they are."""

    kind: str = "binary"
    n_classes: int = 2
    loss: str = "mse"
    huber_delta: float = 1.0
    mask_prob: float = 0.15
    mask_span: int = 0
    bins: int = 0
    bin_range: list[float] | None = None
    bin_sd: float = 0.5
    target: str = "base"
    label_smoothing: float = 0.0


def mean_distribution(outs: list[torch.Tensor]) -> torch.Tensor:
    """Logits of the mean of several softmax distributions (an ensemble of classifiers or binned regressors)."""
    return torch.stack([torch.softmax(o.float(), -1) for o in outs]).mean(0).clamp_min(1e-12).log()


class Task:
    kind: str
    default_monitor: str
    needs_labels = True
    metric_names: frozenset[str] = frozenset(HIGHER_IS_BETTER) - {"mlm_accuracy", "perplexity", "cross_entropy",
                                                                  "bits_per_base", "accuracy_repeat",
                                                                  "accuracy_nonrepeat"}

    def __init__(self, cfg: TaskConfig, n_labels: int) -> None:
        self.cfg = cfg
        self.n_labels = n_labels

    def step(self, net: torch.nn.Module, x: torch.Tensor, y: np.ndarray, *, key: tuple[int, ...],
             rc_average: bool = False, reverse: torch.Tensor | None = None) -> tuple[torch.Tensor, Any]:
        """One batch: (loss, outputs for `predictions`). `net`: a model (or its DDP wrapper). `key`
        (seed, epoch, batch) seeds any randomness the task itself adds; rc_average (evaluation only)
        averages both strands; `reverse` flags the rows RC augmentation flipped (the strand flags of
        models with a strand channel)."""
        target = self.target(y).to(x.device)
        out = model_outputs(net, x, rc_average=True) if rc_average else call(net, x, reverse, self.model_target(target))
        smoothing = self.cfg.label_smoothing if getattr(net, "training", False) else 0.0
        return (self.smoothed_loss(out, target, smoothing) if smoothing else self.loss(out, target)), out

    def smoothed_loss(self, out: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
        """The training loss with targets smoothed by `eps` (task.label_smoothing; binary and multiclass)."""
        raise NotImplementedError

    def model_target(self, target: torch.Tensor) -> Any:
        """What a training step gives the model beside x (`SequenceModel.train_outputs`): nothing by default."""
        return None

    def predictions(self, out: Any, loss: torch.Tensor) -> Any:
        """What `metrics().update` takes, from `step`'s outputs (evaluation only, never on the training path)."""
        return self.activate(out.detach()).cpu().numpy()

    @property
    def n_outputs(self) -> int:
        return self.n_labels

    def target(self, y: np.ndarray) -> torch.Tensor:
        """Labels (N, T) float32 -> the tensor the loss expects."""
        return torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def activate(self, out: torch.Tensor) -> torch.Tensor:
        """Raw outputs -> predictions (probabilities or values), in fp32 (outputs of a bf16 autocast are bf16)."""
        return out.float()

    def combine(self, outs: list[torch.Tensor]) -> torch.Tensor:
        """Raw outputs of several models -> raw outputs whose `activate` is the mean of theirs (an ensemble
        averages probabilities or values). Default: the mean (outputs that are values)."""
        return torch.stack([o.float() for o in outs]).mean(0)

    def metrics(self) -> Any:
        """A fresh accumulator: `.update(activated outputs (N, n_outputs), labels (N, T))`, `.compute()`."""
        raise NotImplementedError

    def check_labels(self, meta: dict[str, Any], source: str) -> None:
        """Refuse labels that cannot belong to this task, before any training."""

    def check_data(self, meta: dict[str, Any], labels: list[str], source: str, *, what: str = "labels",
                   against: str = "the run's", strict: bool = False) -> None:
        """Data (its prepared meta) this task can score beside `labels` (the training label names): the
        same label columns, with values the task accepts. An error naming `source` otherwise. strict: the
        label names must agree even for a task that reads none (the splits of one training run)."""
        if (self.needs_labels or strict) and list(meta["labels"]) != list(labels):
            raise HelixError(f"{what} {meta['labels']} differ from {against} {labels}", path=source)
        self.check_labels(meta, source)


class BinaryTask(Task):
    kind = "binary"
    default_monitor = "auroc"

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(out.float(), y)

    def smoothed_loss(self, out: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(out.float(), y * (1.0 - eps) + 0.5 * eps)

    def activate(self, out: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(out.float())

    def combine(self, outs: list[torch.Tensor]) -> torch.Tensor:
        return torch.logit(torch.stack([self.activate(o) for o in outs]).mean(0), eps=1e-7)

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

    def smoothed_loss(self, out: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
        return F.cross_entropy(out.float(), y, label_smoothing=eps)

    def activate(self, out: torch.Tensor) -> torch.Tensor:
        return torch.softmax(out.float(), -1)

    def combine(self, outs: list[torch.Tensor]) -> torch.Tensor:
        return mean_distribution(outs)

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

    @property
    def n_outputs(self) -> int:
        return self.cfg.bins or self.n_labels

    def centres(self, device: torch.device | str = "cpu") -> torch.Tensor:
        lo, hi = self.cfg.bin_range or (0.0, float(self.cfg.bins - 1))
        return torch.linspace(lo, hi, self.cfg.bins, device=device)

    def target(self, y: np.ndarray) -> torch.Tensor:
        y = super().target(y)
        if not self.cfg.bins:
            return y
        c = self.centres()
        width = float(c[1] - c[0]) if len(c) > 1 else 1.0
        if self.cfg.bin_sd <= 0:
            return F.one_hot((y[:, 0:1] - c).abs().argmin(-1), len(c)).float()
        edges = torch.cat([torch.tensor([-torch.inf]), (c[1:] + c[:-1]) / 2, torch.tensor([torch.inf])])
        cdf = torch.special.ndtr((edges[None, :] - y[:, 0:1]) / (self.cfg.bin_sd * width))
        return (cdf[:, 1:] - cdf[:, :-1]).clamp_min(0)

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.cfg.bins:
            return F.kl_div(torch.log_softmax(out.float(), -1), y, reduction="batchmean")
        if self.cfg.loss == "huber":
            return F.huber_loss(out.float(), y, delta=self.cfg.huber_delta)
        return F.mse_loss(out.float(), y)

    def activate(self, out: torch.Tensor) -> torch.Tensor:
        if not self.cfg.bins:
            return super().activate(out)
        return (torch.softmax(out.float(), -1) * self.centres(out.device)).sum(-1, keepdim=True)

    def combine(self, outs: list[torch.Tensor]) -> torch.Tensor:
        if not self.cfg.bins:
            return super().combine(outs)
        # the mean bin distribution: its expected value is the mean of the members' values
        return mean_distribution(outs)

    def metrics(self) -> RegressionMetrics:
        return RegressionMetrics(self.n_labels)

    def check_labels(self, meta: dict[str, Any], source: str) -> None:
        if self.cfg.bins and self.n_labels != 1:
            raise HelixError(f"binned regression (task.bins) needs one label column, got {self.n_labels}",
                             path=source)


# context targets: class of each base code A, C, G, T (None: the centre's soft-mask bit), and the class names
TARGETS: dict[str, tuple[np.ndarray | None, list[str]]] = {
    "base": (np.array([0, 1, 2, 3]), ["A", "C", "G", "T"]),
    "pair": (np.array([0, 1, 1, 0]), ["AT", "CG"]),
    "purine": (np.array([0, 1, 0, 1]), ["AG", "CT"]),
    "repeat": (None, ["non-repeat", "repeat"]),
}


def context_target(name: str, source: str | None = None) -> tuple[np.ndarray | None, list[str]]:
    """(class of each base code, class names) of a context target; an error (naming `source`, the
    config file) for an unknown one."""
    if name not in TARGETS:
        raise HelixError(f"task.target must be one of {', '.join(TARGETS)}, got {name!r}", path=source,
                         record="task.target")
    return TARGETS[name]


class ContextTask(MulticlassTask):
    """The centre base of genome windows from its flanks (S5): labels are the centre base code and
    its repeat bit (`CentreWindows`); the target groups the bases per `cfg.target`, or is the repeat
    bit itself ('repeat': is the centre soft-masked?)."""

    kind = "context"
    metric_names = frozenset({"loss", "accuracy", "cross_entropy", "bits_per_base", "accuracy_repeat",
                              "accuracy_nonrepeat"})

    def __init__(self, cfg: TaskConfig, n_labels: int) -> None:
        super().__init__(cfg, n_labels)
        self.classes, self.class_names = context_target(cfg.target)
        # the class of the complementary centre (what a reverse-strand count of a position holds)
        self.complement = (np.arange(len(self.class_names)) if self.classes is None else
                           np.array([self.classes[3 - int(np.flatnonzero(self.classes == c)[0])]
                                     for c in range(len(self.class_names))]))

    @property
    def n_outputs(self) -> int:
        return len(self.class_names)

    def model_target(self, target: torch.Tensor) -> Any:
        """Each window's class, in training: a fused model leaves its own count out (`Fused.train_outputs`)."""
        return target

    def step(self, net: torch.nn.Module, x: torch.Tensor, y: np.ndarray, *, key: tuple[int, ...],
             rc_average: bool = False, reverse: torch.Tensor | None = None) -> tuple[torch.Tensor, Any]:
        if reverse is not None and bool(reverse.any()):  # a reverse-complemented window: complement its centre
            y = np.array(y, copy=True)
            flipped = reverse.cpu().numpy()
            y[flipped, 0] = 3 - y[flipped, 0]
        return super().step(net, x, y, key=key, rc_average=rc_average, reverse=reverse)

    def target(self, y: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(context_classes(y, self.classes))

    def metrics(self) -> ContextMetrics:  # type: ignore[override]
        return ContextMetrics(self.class_names, self.classes)

    def check_labels(self, meta: dict[str, Any], source: str) -> None:
        if list(meta["labels"]) != ["centre", "repeat"]:
            raise HelixError("a context task reads the centre base of genome windows: set data.flank "
                             f"(labels here are {meta['labels']})", path=source)


def mask_tokens(ids: torch.Tensor, *, tokenizer: Any, prob: float, span: int, generator: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking of token ids (N, T), in contiguous spans of `span` tokens (DNABERT: span = k, so a
    masked base cannot be read off overlapping neighbours). Of the chosen tokens 80 % become [MASK],
    10 % a random token and 10 % stay. Returns (masked ids, labels: original id where chosen, else -100)."""
    special = torch.isin(ids, tokenizer.special_ids.to(ids.device))
    u = torch.rand(ids.shape, generator=generator, device=ids.device)
    starts = (u < prob / span) & ~special
    chosen = torch.zeros_like(starts)
    lo = -(span // 2)
    for offset in range(lo, lo + span):  # dilate every start into a span centred on it
        shifted = torch.roll(starts, offset, dims=1)
        if offset > 0:
            shifted[:, :offset] = False
        elif offset < 0:
            shifted[:, offset:] = False
        chosen |= shifted
    chosen &= ~special
    if not chosen.any():  # never a batch without a target
        real = (~special).nonzero()
        if len(real):
            r = real[torch.randint(len(real), (1,), generator=generator, device=ids.device)][0]
            chosen[r[0], r[1]] = True
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    v = torch.rand(ids.shape, generator=generator, device=ids.device)
    plain = tokenizer.plain_ids.to(ids.device)
    random_ids = plain[torch.randint(len(plain), ids.shape, generator=generator, device=ids.device)]
    masked = torch.where(chosen & (v < 0.8), torch.full_like(ids, tokenizer.mask_id), ids)
    masked = torch.where(chosen & (v >= 0.8) & (v < 0.9), random_ids, masked)
    return masked, labels


class MaskedLMTask(Task):
    """Masked-language-model pretraining: no labels; the model must tokenize and carry an MLM head."""

    kind = "mlm"
    default_monitor = "mlm_accuracy"
    needs_labels = False
    metric_names = frozenset({"mlm_accuracy", "mlm_accuracy_hidden", "perplexity", "loss"})

    @property
    def n_outputs(self) -> int:
        return 0

    def step(self, net: torch.nn.Module, x: torch.Tensor, y: np.ndarray, *, key: tuple[int, ...],
             rc_average: bool = False, reverse: torch.Tensor | None = None) -> tuple[torch.Tensor, Any]:
        tokenizer = unwrap(net).tokenizer  # under DDP the wrapper is called, the model tokenizes
        ids, attention = tokenizer.encode(x)
        gen = torch.Generator(device=ids.device)
        gen.manual_seed(int(np.random.default_rng(list(key)).integers(2**62)))
        masked, labels = mask_tokens(ids, tokenizer=tokenizer, prob=self.cfg.mask_prob,
                                     span=self.cfg.mask_span or tokenizer.mask_span, generator=gen)
        logits = net(x, None, MaskedTokens(masked, attention, labels)).float()
        chosen = labels != -100
        target = labels[chosen]
        # a batch of nothing but special tokens (e.g. all-N records) has no target: zero loss, no NaN
        loss = F.cross_entropy(logits, target) if len(target) else logits.sum() * 0.0
        return loss, (logits, target, (masked != ids)[chosen])

    def predictions(self, out: Any, loss: torch.Tensor) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
        logits, target, hidden = out
        return (logits.detach().argmax(-1).cpu().numpy(), target.cpu().numpy(), float(loss.detach()) * len(target),
                hidden.cpu().numpy())

    def metrics(self) -> MaskedLMMetrics:
        return MaskedLMMetrics()


TASKS: dict[str, type[Task]] = {"binary": BinaryTask, "multiclass": MulticlassTask, "regression": RegressionTask,
                                "mlm": MaskedLMTask, "context": ContextTask}


def make_task(cfg: TaskConfig, n_labels: int) -> Task:
    if cfg.kind not in TASKS:
        raise HelixError(f"unknown task kind {cfg.kind!r}; expected one of {sorted(TASKS)}", record="task.kind")
    if cfg.bins < 0 or (cfg.bins and (cfg.kind != "regression" or cfg.bins < 2)):
        raise HelixError("task.bins (>= 2) is an option of regression tasks", record="task.bins")
    if cfg.kind == "regression" and cfg.loss not in ("mse", "huber"):
        raise HelixError(f"unknown regression loss {cfg.loss!r}; expected mse or huber", record="task.loss")
    return TASKS[cfg.kind](cfg, n_labels)
