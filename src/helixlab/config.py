"""Typed run configuration: defaults < TOML file < `--set key=value` flags, checked strictly.

A typo'd key is an error naming the file and the key (with the closest valid name), never
silently ignored.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helixlab.data.splits import DataConfig
from helixlab.errors import HelixError
from helixlab.fields import check_fields
from helixlab.models import model_config
from helixlab.models.base import PRECISIONS
from helixlab.tasks import HIGHER_IS_BETTER, TaskConfig, context_target


@dataclass
class ModelSection:
    name: str = "cnn"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainConfig:
    """schedule: 'cosine' (linear warm-up then cosine) | 'onecycle' | 'constant'.
    patience: epochs without improvement of `monitor` on valid before stopping (0 = never stop).
    shift_augment: move each training sequence by a random whole number of bases in [-N, N] (seeded by
    seed, epoch and batch), the vacated end filled with N: for signals whose position varies a little.
    mask_augment: the fraction of training bases replaced by N at random in each batch (seeded by seed, epoch
    and batch; 0 = off): a regulariser that keeps every base in place, for position-aware models.
    checkpoint_every: also save a resumable checkpoint every this many steps (0 = epoch ends only).
    budget: a training budget that sizes the schedule instead of `epochs`: "30min" (also "90s", "2h") or
    "20000 steps". A time budget becomes a step count at the start of the run by timing a few training
    steps, corrected a tenth of the way in (at most after the first epoch) from the run's own pace, and at
    each later epoch end from that epoch's pace (results.json: budget_steps the final count, budget_probe_steps
    the first; "N steps" repeats the length).
    The learning-rate schedule spans the budget; the last epoch may be partial; early stopping still applies.
    ema: decay of an exponential moving average of the weights (e.g. 0.999; 0 = off): validation scores the
    average and the best checkpoint keeps it. The decay ramps up as (1 + step) / (10 + step) until it reaches
    this value (0.999 at step 8,990, 0.995 at step 1,790); until then the average spans roughly the last tenth
    of the steps, whatever the value.
    swa: stochastic weight averaging: the fraction (0-1] of the schedule, at its end, over which the weights
    after each step are averaged with equal weight (e.g. 0.3; 0 = off; not with ema). From there the learning
    rate is held at the value the schedule had reached; validation scores the average once it holds a step.
    Batch-norm statistics are averaged like the weights (not recomputed for the averaged weights).
    precision: 'auto' | 'fp32' | 'bf16' for training and evaluation steps (bf16 autocast on a GPU or a CPU;
    auto picks bf16 where the device has bf16 units and the model family gains, `resolve_precision`).
    init_from: pretrained weights to start from (`train --init-from`): a helixlab run directory, a Hugging
    Face BERT directory or a .safetensors file.
    log: 'none' | 'tensorboard' (training loss, per-epoch metrics, learning rate and throughput written to
    RUN_DIR/tb/ with torch.utils.tensorboard; a resumed run continues the same curves)."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.01
    schedule: str = "cosine"
    warmup_frac: float = 0.05
    clip_grad: float = 1.0
    patience: int = 0
    monitor: str | None = None
    rc_augment: bool = False
    rc_average: bool = False
    shift_augment: int = 0
    mask_augment: float = 0.0
    seed: int = 0
    device: str = "auto"
    budget: str | None = None
    ema: float = 0.0
    swa: float = 0.0
    precision: str = "auto"
    threads: int | None = None
    checkpoint_every: int = 200
    eval_batch_size: int = 512
    progress: bool = True
    init_from: str | None = None
    log: str = "none"


LOGS = ("none", "tensorboard")
# tasks with one label per whole sequence: the only ones whose bases train.shift_augment and mask_augment may edit
SEQUENCE_LABEL_TASKS = ("binary", "multiclass", "regression")


@dataclass
class Stage2Config:
    """Two-stage training (S2): after the whole run (stage 1), fine-tune its best weights on a
    near-uniform subset: at most `per_bin` training rows from each of `bins` equal-width label bins,
    for `epochs` epochs at `lr` (default: train.lr / 10) with `loss` ('huber' or 'mse'; binned-target
    tasks keep their KL loss). per_bin = 0: one stage only. Stage 1 is kept in RUN_DIR/stage1."""

    per_bin: int = 0
    bins: int = 18
    epochs: int = 1
    lr: float | None = None
    loss: str = "huber"
    huber_delta: float = 1.0


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelSection = field(default_factory=ModelSection)
    task: TaskConfig = field(default_factory=TaskConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    stage2: Stage2Config = field(default_factory=Stage2Config)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _build(cls: type, values: dict[str, Any], where: str, source: str) -> Any:
    if not isinstance(values, dict):
        raise HelixError(f"expected a table for [{where}], got {type(values).__name__}", path=source, record=where)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise HelixError(f"unknown key {key!r} in [{where}]{hint}; valid keys: {', '.join(fields)}",
                             path=source, record=f"{where}.{key}")
        sub = fields[key].default_factory if fields[key].default_factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(sub):
            kwargs[key] = _build(sub, value, f"{where}.{key}" if where else key, source)  # type: ignore[arg-type]
        else:
            kwargs[key] = value
    check_fields(cls, kwargs, where, source)
    return cls(**kwargs)


def parse_value(text: str) -> Any:
    """A `--set` value: TOML/JSON literal if it parses (numbers, booleans, lists, quoted strings), else a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        pass
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_overrides(values: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for item in overrides:
        if "=" not in item:
            raise HelixError(f"--set expects key=value, got {item!r}", record="--set")
        key, text = item.split("=", 1)
        parts = key.strip().split(".")
        node = values
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise HelixError(f"cannot set {key!r}: {part!r} is not a table", record="--set")
        node[parts[-1]] = parse_value(text.strip())
    return values


def load_config(path: str | os.PathLike[str] | None, overrides: list[str] | None = None) -> RunConfig:
    """Read a TOML recipe (or start from defaults), apply overrides, validate."""
    values: dict[str, Any] = {}
    source = "--set"
    if path is not None:
        source = str(path)
        p = Path(path)
        if not p.exists():
            raise HelixError("config file not found", path=source)
        if not p.is_file():
            raise HelixError("expected a config file, found a directory", path=source)
        try:
            text = p.read_bytes().decode("utf-8-sig")  # a byte-order mark is not part of the recipe
            values = tomllib.loads(text) if p.suffix == ".toml" else json.loads(text)
        except UnicodeDecodeError:
            raise HelixError("config is not UTF-8 text (a TOML recipe or JSON)", path=source) from None
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
            raise HelixError(f"cannot parse config: {exc}", path=source) from None
        if not isinstance(values, dict):
            raise HelixError(f"a config must be a table of sections, got {type(values).__name__}", path=source)
    values = apply_overrides(values, overrides or [])
    cfg = config_from_dict(values, source)
    return cfg


_BUDGET = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(steps?|s|sec|min|m|h)\s*$")
_SECONDS = {"s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600}


def parse_budget(text: str, source: str = "<config>") -> tuple[str, float]:
    """train.budget -> ('steps', n) or ('seconds', s); an error naming the key otherwise."""
    m = _BUDGET.match(str(text))
    if m is None or float(m.group(1)) <= 0:
        raise HelixError(f"train.budget must be a positive time (e.g. '30min', '90s', '2h') or step count "
                         f"('20000 steps'), got {text!r}", path=source, record="train.budget")
    value, unit = float(m.group(1)), m.group(2)
    if unit.startswith("step"):
        if value != int(value):
            raise HelixError(f"train.budget steps must be a whole number, got {text!r}", path=source,
                             record="train.budget")
        return "steps", value
    return "seconds", value * _SECONDS[unit]


def config_from_dict(values: dict[str, Any], source: str) -> RunConfig:
    cfg: RunConfig = _build(RunConfig, values, "", source)
    check_config(cfg, source)
    return cfg


def check_config(cfg: RunConfig, source: str) -> None:
    """Cross-field constraints, checked before anything is written."""
    t = cfg.train
    if cfg.data.bed:
        if not cfg.data.genome:
            raise HelixError("data.bed needs data.genome (a FASTA or a prepared directory)", path=source,
                             record="data.genome")
        if cfg.data.train or cfg.data.valid or cfg.data.test:
            raise HelixError("data.bed gives every split (data.intervals.split): leave data.train, valid and test "
                             "out", path=source, record="data.bed")
    elif not cfg.data.train:
        raise HelixError("data.train is required (or data.bed with data.genome)", path=source, record="data.train")
    for name, value in (("train.epochs", t.epochs), ("train.batch_size", t.batch_size)):
        if not isinstance(value, int) or value < 1:
            raise HelixError(f"{name} must be a positive integer, got {value!r}", path=source, record=name)
    if t.lr <= 0:
        raise HelixError(f"train.lr must be positive, got {t.lr}", path=source, record="train.lr")
    if t.log not in LOGS:
        raise HelixError(f"train.log must be one of {', '.join(LOGS)}, got {t.log!r}", path=source, record="train.log")
    if t.schedule not in ("cosine", "onecycle", "constant"):
        raise HelixError(f"train.schedule must be cosine, onecycle or constant, got {t.schedule!r}",
                         path=source, record="train.schedule")
    if t.budget is not None:
        parse_budget(t.budget, source)
    ls = cfg.task.label_smoothing  # its type (and shift_augment's) is checked by check_fields
    if not 0.0 <= ls < 1.0:
        raise HelixError(f"task.label_smoothing must be a fraction in [0, 1), got {ls!r}", path=source,
                         record="task.label_smoothing")
    if ls and cfg.task.kind not in ("binary", "multiclass"):
        raise HelixError(f"task.label_smoothing is an option of binary and multiclass tasks, not {cfg.task.kind!r}",
                         path=source, record="task.label_smoothing")
    if t.shift_augment < 0:
        raise HelixError(f"train.shift_augment must be a non-negative number of bases, got {t.shift_augment!r}",
                         path=source, record="train.shift_augment")
    if t.shift_augment and cfg.task.kind not in SEQUENCE_LABEL_TASKS:
        raise HelixError(f"train.shift_augment moves whole sequences; the {cfg.task.kind!r} task reads fixed "
                         "positions", path=source, record="train.shift_augment")
    if not 0.0 <= t.mask_augment < 1.0:
        raise HelixError(f"train.mask_augment must be a fraction of bases in [0, 1), got {t.mask_augment!r}",
                         path=source, record="train.mask_augment")
    if t.mask_augment and cfg.task.kind not in SEQUENCE_LABEL_TASKS:
        raise HelixError(f"train.mask_augment hides bases of whole sequences; the {cfg.task.kind!r} task predicts "
                         "bases", path=source, record="train.mask_augment")
    if not 0.0 <= t.ema < 1.0:
        raise HelixError(f"train.ema must be a decay in [0, 1) (0 = off), got {t.ema}", path=source,
                         record="train.ema")
    if not 0.0 <= t.swa <= 1.0:
        raise HelixError(f"train.swa must be a fraction of the schedule in [0, 1] (0 = off), got {t.swa}",
                         path=source, record="train.swa")
    if t.swa and t.ema:
        raise HelixError("train.swa and train.ema are two ways to average the weights; set one of them",
                         path=source, record="train.swa")
    if t.precision not in PRECISIONS:
        raise HelixError(f"train.precision must be one of {', '.join(PRECISIONS)}, got {t.precision!r}",
                         path=source, record="train.precision")
    if t.monitor is not None and t.monitor not in HIGHER_IS_BETTER:
        raise HelixError(f"train.monitor {t.monitor!r} is not a known metric; choose from "
                         f"{sorted(HIGHER_IS_BETTER)}", path=source, record="train.monitor")
    if t.patience and not (cfg.data.valid or cfg.data.holdout or cfg.data.bed):
        raise HelixError("train.patience needs data.valid for early stopping", path=source, record="train.patience")
    if cfg.data.iupac not in ("error", "n"):
        raise HelixError(f"data.iupac must be 'error' or 'n', got {cfg.data.iupac!r}", path=source, record="data.iupac")
    if cfg.data.format not in ("auto", "fasta", "csv", "tsv", "dream"):
        raise HelixError(f"data.format must be auto, fasta, csv, tsv or dream, got {cfg.data.format!r}",
                         path=source, record="data.format")
    d = cfg.data
    if not isinstance(d.window, int) or d.window < 0:
        raise HelixError(f"data.window must be a non-negative integer, got {d.window!r}", path=source,
                         record="data.window")
    for name in (*d.regions, *d.samples, *d.where):
        if name not in ("train", "valid", "test"):
            raise HelixError(f"data.regions/samples/where keys are train, valid, test; got {name!r}", path=source,
                             record=f"data.{name}")
    try:
        d.seq_options().check()
    except HelixError as exc:
        raise HelixError(exc.message, path=source, record=exc.record) from None
    if not isinstance(d.flank, int) or d.flank < 0 or not isinstance(d.clearance, int) or d.clearance < 0:
        raise HelixError("data.flank and data.clearance must be non-negative integers", path=source,
                         record="data.flank")
    if d.flank and d.window:
        raise HelixError("data.flank (the context task) and data.window (plain windows) exclude each other",
                         path=source, record="data.flank")
    if bool(d.flank) != (cfg.task.kind == "context"):
        raise HelixError("the context task (task.kind = 'context') and data.flank go together", path=source,
                         record="data.flank" if d.flank else "task.kind")
    if cfg.task.kind == "context":
        context_target(cfg.task.target, source)
        if t.rc_average:
            raise HelixError("train.rc_average is not available for the context task (the strands predict "
                             "complementary bases); train.rc_augment is", path=source, record="train.rc_average")
    if d.holdout and (d.window or d.flank):
        raise HelixError("data.holdout is for tables of records; genome windows take data.regions",
                         path=source, record="data.holdout")
    if not 0.0 <= d.holdout < 1.0:
        raise HelixError(f"data.holdout must be a fraction in [0, 1), got {d.holdout}", path=source,
                         record="data.holdout")
    if d.per_bin < 0 or d.bins < 1:
        raise HelixError("data.per_bin must be >= 0 and data.bins >= 1", path=source, record="data.per_bin")
    s2 = cfg.stage2
    if s2.per_bin:
        if cfg.task.kind != "regression":
            raise HelixError("two-stage training (stage2.per_bin) is for regression tasks", path=source,
                             record="stage2.per_bin")
        if s2.per_bin < 0 or s2.bins < 1 or s2.epochs < 1 or s2.loss not in ("huber", "mse"):
            raise HelixError("stage2 needs per_bin >= 0, bins >= 1, epochs >= 1 and loss huber or mse", path=source,
                             record="stage2")
    if cfg.model.name in ("fused", "kmer_count") and cfg.task.kind != "context":
        raise HelixError(f"model {cfg.model.name!r} predicts the centre base of genome windows: it needs the context "
                         "task (task.kind = 'context', data.flank)", path=source, record="model.name")
    if cfg.task.kind == "mlm" and cfg.model.name != "bert":
        raise HelixError(f"masked-language-model pretraining needs a token model (bert), not {cfg.model.name!r}",
                         path=source, record="model.name")
    model_config(cfg.model.name, cfg.model.params, source=source)


def _toml_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped, the rest as is."""
    out = []
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def _toml_key(key: str) -> str:
    bare = key and all(c.isascii() and (c.isalnum() or c in "_-") for c in key)
    return key if bare else _toml_string(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items() if v is not None) + " }"
    raise HelixError(f"cannot write {type(value).__name__} value {value!r} to TOML")


def to_toml(cfg: RunConfig, header: str = "") -> str:
    """A recipe file for `cfg`: one [section] per part of the config (unset values left out)."""
    lines = [f"# {line}" for line in header.splitlines()]
    for section, values in cfg.to_dict().items():
        lines += ["", f"[{section}]"]
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in values.items() if v is not None]
    return "\n".join(lines).lstrip("\n") + "\n"
