"""The training loop: set up a run (data, task, model, optimizer, resume state), then epochs of steps
with validation, early stopping and checkpoints.

Resumability rests on three facts: the data order of an epoch is a function of (seed, epoch);
augmentation choices are a function of (seed, epoch, batch); and the checkpoint holds weights,
optimizer moments, the step and every rank's torch RNG state (`helixlab.train.checkpoint`).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from helixlab.config import RunConfig, parse_budget
from helixlab.data.batches import (batches_per_epoch, load_batch, mask_augment, rc_augment, shift_augment,
                                   train_batches)
from helixlab.data.genome import GenomeWindows
from helixlab.data.splits import SPLITS, Split, open_split
from helixlab.errors import HelixError
from helixlab.models import REGISTRY, build_model, count_params
from helixlab.models.base import SequenceModel, autocast, resolve_precision
from helixlab.models.weights import save_weights
from helixlab.paths import BEST, CONFIG, INFO, LAST, METRICS, TRACE, expand_path, write_json, write_jsonl
from helixlab.progress import progress_bar
from helixlab.run.records import environment, read_config, read_info
from helixlab.seq.alphabet import decode_rows
from helixlab.tasks import HIGHER_IS_BETTER, Task, evaluate_shard, make_task
from helixlab.train.averaging import WeightAverage
from helixlab.train.checkpoint import TrainerState, load_training_state, save_training_state
from helixlab.train.device import barrier, gather_rng
from helixlab.train.logs import open_log
from helixlab.train.pretrained import adopt, load_init


def lr_factor(step: int, total: int, schedule: str, warmup_frac: float) -> float:
    """Multiplier of the base learning rate at `step` of `total`."""
    progress = step / max(total, 1)
    if schedule == "onecycle":
        # One-cycle: rise from 1/25 to 1 over the first 30 %, cosine down to 1e-4 after.
        peak = 0.3
        if progress < peak:
            return 0.04 + 0.96 * (1 - math.cos(math.pi * progress / peak)) / 2
        return 1e-4 + (1 - 1e-4) * (1 + math.cos(math.pi * (progress - peak) / (1 - peak))) / 2
    warmup = max(int(warmup_frac * total), 1) if warmup_frac > 0 else 0
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(total - warmup, 1)))


def is_better(value: float, best: float | None, monitor: str) -> bool:
    if best is None or math.isnan(best):
        return not math.isnan(value)
    return value > best if HIGHER_IS_BETTER[monitor] else value < best


@dataclass
class Setup:
    """Everything the loop needs, built before the first step."""

    cfg: RunConfig
    splits: dict[str, Split | None]
    task: Task
    model: SequenceModel
    optimizer: torch.optim.Optimizer
    state: TrainerState
    info: dict[str, Any]
    precision: str  # resolved: 'fp32' or 'bf16'
    average: WeightAverage | None = None  # train.ema or train.swa


def _prepare_model(cfg: RunConfig, rd: Path, train: Split) -> RunConfig:
    """Adopt a pretrained encoder's settings, let the model save its files (tokenizer) in the run,
    and record the resolved config. Idempotent: a run killed before its first checkpoint redoes it."""
    if cfg.train.init_from:
        cfg = adopt(cfg, expand_path(cfg.train.init_from), rd)

    def sequences(limit: int = 50_000) -> Iterator[str]:
        rows = np.random.default_rng(0).permutation(len(train))[:limit]
        for start in range(0, len(rows), 1024):
            yield from decode_rows(train.codes(np.sort(rows[start : start + 1024])))

    params = REGISTRY[cfg.model.name].cls.prepare_run(cfg.model.params, rd, sequences)
    cfg = replace(cfg, model=replace(cfg.model, params=params))
    write_json(rd / CONFIG, cfg.to_dict())
    return cfg


def setup(cfg: RunConfig, rd: Path, resume: bool, rank: int, world: int, device: torch.device) -> Setup:
    """Open (preparing if needed) the data, check labels, build model and optimizer, load resume state."""
    t, d = cfg.train, cfg.data

    def open_splits(progress: bool) -> dict[str, Split | None]:
        return {s: open_split(d, rd, s, require_labels=cfg.task.kind != "mlm", seed=t.seed, progress=progress)
                for s in SPLITS}

    # Rank 0 prepares raw files once; the others open what it wrote.
    splits: dict[str, Split | None] = open_splits(t.progress) if rank == 0 else {}
    barrier(world)
    if rank != 0:
        splits = open_splits(False)
    train = splits["train"]
    assert train is not None
    labels = list(train.meta["labels"])  # type: ignore[call-overload]
    if cfg.task.bins and cfg.task.bin_range is None and labels:  # bins span the training labels, recorded
        st = train.meta["label_stats"][labels[0]]  # type: ignore[call-overload,index]
        cfg = replace(cfg, task=replace(cfg.task, bin_range=[float(st["min"]), float(st["max"])]))
    task = make_task(cfg.task, len(labels))
    if task.needs_labels and not labels:
        raise HelixError("training data has no label column", path=d.source("train"))
    for split, data in splits.items():
        if data is not None:
            task.check_data(data.meta, labels, d.source(split), what=f"{split} labels", against="train labels",
                            strict=True)
    lengths = {sh.length for sh in splits.values() if sh is not None}
    seq_len = lengths.pop() if len(lengths) == 1 else None
    monitor = t.monitor or task.default_monitor
    if monitor not in task.metric_names:
        raise HelixError(f"train.monitor {monitor!r} is not a metric of a {task.kind} task; choose from "
                         f"{sorted(task.metric_names)}", record="train.monitor")

    fresh = not (resume and (rd / LAST).exists())  # no checkpoint yet: (re)start from the beginning
    if fresh:  # fix what the model keeps beside the run (a tokenizer), on rank 0
        if rank == 0:
            cfg = _prepare_model(cfg, rd, train)
        if world > 1:
            barrier(world)
            cfg = read_config(rd)
    torch.manual_seed(t.seed)
    model: SequenceModel = build_model(cfg.model.name, cfg.model.params, seq_len, task.n_outputs, run_dir=rd)
    longest = max(int(sh.meta["max_length"]) for sh in splits.values() if sh is not None)
    try:
        model.check_length(longest)
    except ValueError as exc:
        raise HelixError(str(exc), path=d.source("train"), record="model.params.max_tokens") from None
    init_from = expand_path(t.init_from) if t.init_from else None
    init = load_init(model, init_from, cfg.task) if init_from and fresh else None
    model.to(device)
    precision = resolve_precision(t.precision, device, model)
    if not fresh and (rd / INFO).exists():  # a resumed run keeps the precision it started with
        precision = str(read_info(rd).get("precision", precision))
    info = {"seq_len": seq_len, "n_outputs": task.n_outputs, "labels": labels, "params": count_params(model),
            "monitor": monitor, "data": {s: sh.meta for s, sh in splits.items() if sh is not None},
            "init_from": {"source": str(init_from), **init} if init else None,
            "environment": environment(), "world_size": world, "precision": precision}
    if rank == 0 and fresh:
        write_json(rd / INFO, info)
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": t.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=t.lr)
    state = TrainerState()
    shadow: dict[str, torch.Tensor] = {}
    if not fresh:
        rngs, state, shadow = load_training_state(rd / LAST, model, optimizer)
        if len(rngs) != world:
            raise HelixError(f"checkpoint was written by {len(rngs)} processes, resuming with {world}",
                             path=str(rd / LAST))
        torch.set_rng_state(rngs[rank])
    else:
        torch.manual_seed(t.seed + 1000 * rank)  # each rank its own dropout stream
    average = WeightAverage(model, t.ema or None, shadow) if t.ema or t.swa else None  # SWA's start: train_loop
    return Setup(cfg, splits, task, model, optimizer, state, info, precision, average)


def train_step(net: torch.nn.Module, s: Setup, x: torch.Tensor, y: np.ndarray, strand: torch.Tensor | None,
               key: tuple[int, ...], lr: float) -> torch.Tensor:
    """One optimizer step at learning rate `lr`; returns the (detached) loss."""
    for group in s.optimizer.param_groups:
        group["lr"] = lr
    with autocast(x.device, s.precision):
        loss, _ = s.task.step(net, x, y, key=key, reverse=strand)
    s.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if s.cfg.train.clip_grad:
        torch.nn.utils.clip_grad_norm_(s.model.parameters(), s.cfg.train.clip_grad)
    s.optimizer.step()
    return loss.detach()


def batch_inputs(s: Setup, idx: np.ndarray, epoch: int, b: int, device: torch.device
                 ) -> tuple[torch.Tensor, np.ndarray, torch.Tensor | None]:
    """A training batch on the device: (x, labels, strand flags of RC augmentation or None)."""
    t = s.cfg.train
    x, y = load_batch(s.splits["train"], idx)  # type: ignore[arg-type]
    strand = None
    if t.rc_augment:
        x, strand = rc_augment(x, t.seed, epoch, b)
        strand = strand.to(device)
    if t.shift_augment:
        x = shift_augment(x, t.shift_augment, t.seed, epoch, b)
    if t.mask_augment:
        x = mask_augment(x, t.mask_augment, t.seed, epoch, b)
    return x.to(device, non_blocking=True), y, strand


def seconds_per_step(s: Setup, device: torch.device, rank: int, world: int, steps: int = 12) -> float:
    """Time training steps of a throw-away copy of the model on this rank's first batches (the run's own
    model, optimizer and RNG streams are untouched), for turning a time budget into a step count."""
    import copy

    t = s.cfg.train
    probe = replace(s, model=copy.deepcopy(s.model))
    probe.optimizer = torch.optim.AdamW(probe.model.parameters(), lr=0.0)
    rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    if isinstance(s.splits["train"], GenomeWindows):
        s.splits["train"].draw(0)  # the positions of epoch 0 (a function of the seed: drawn again alike)
    times = []
    probe.model.train()
    for b, idx in train_batches(s.splits["train"], batch_size=t.batch_size, seed=t.seed, epoch=0,  # type: ignore[arg-type]
                                rank=rank, world=world):
        if b >= steps:
            break
        t0 = time.perf_counter()
        x, y, strand = batch_inputs(probe, idx, 0, b, device)
        train_step(probe.model, probe, x, y, strand, (t.seed, 0, b), 0.0)
        times.append(time.perf_counter() - t0)
    torch.set_rng_state(rng)
    if cuda_rng is not None:
        torch.cuda.set_rng_state(cuda_rng, device)
    return float(np.median(times[2:] if len(times) > 4 else times))


def plan_steps(s: Setup, steps_per_epoch: int, device: torch.device, rank: int, world: int) -> int:
    """The schedule's length: train.epochs whole epochs, or what train.budget buys (the same on every rank)."""
    t = s.cfg.train
    if t.budget is None:
        return steps_per_epoch * t.epochs
    kind, value = parse_budget(t.budget)
    if kind == "steps":
        return int(value)
    seconds = torch.tensor([seconds_per_step(s, device, rank, world)], dtype=torch.float64, device=device)
    if world > 1:  # every rank waits for the slowest: the same count everywhere
        torch.distributed.all_reduce(seconds, op=torch.distributed.ReduceOp.MAX)
    return max(1, int(value / float(seconds)))


def replan_at(total_steps: int, steps_per_epoch: int) -> int:
    """The step at which a time budget's count is first corrected from the run's own pace (later epoch ends
    correct it again): a tenth of the planned schedule, no later than the end of the first epoch (0: a
    schedule of a step is left as is)."""
    at = max(1, min(steps_per_epoch, total_steps // 10))
    return at if at < total_steps else 0


def replan_steps(budget_seconds: float, elapsed: float, step: int, device: torch.device, world: int) -> int:
    """The step count a time budget buys at the pace of the run's first `step` steps (`elapsed` seconds
    of training). The probe times a dozen steps of a copy and reads the pace of a long run a few per cent
    fast; the run's own steps (data, logging, checkpoints included) do not. Same count on every rank."""
    seconds = torch.tensor([elapsed], dtype=torch.float64, device=device)
    if world > 1:
        torch.distributed.all_reduce(seconds, op=torch.distributed.ReduceOp.MAX)
    return max(step + 1, int(budget_seconds * step / max(float(seconds), 1e-9)))


def steps_left(budget_seconds: float, state: TrainerState, since: tuple[int, float], device: torch.device,
               world: int) -> int:
    """At an epoch end: the steps the rest of a time budget buys at the pace of the steps run since `since`
    (step, training seconds): this epoch, or since a resume within it. Same count on every rank."""
    steps, seconds = state.step - since[0], state.train_seconds - since[1]
    left = state.total_steps - state.step
    if steps > 0:  # each rank times itself: the smallest count of all ranks, so they stop together
        left = max(0, int((budget_seconds - state.train_seconds) / max(seconds / steps, 1e-9)))
    count = torch.tensor([left], dtype=torch.int64, device=device)
    if world > 1:
        torch.distributed.all_reduce(count, op=torch.distributed.ReduceOp.MIN)
    return int(count)


def write_records(rd: Path, state: TrainerState) -> None:
    """metrics.jsonl and trace.jsonl from the state (before the checkpoint: it is the commit point)."""
    write_jsonl(rd / METRICS, state.history)
    write_jsonl(rd / TRACE, state.trace)


def train_loop(s: Setup, rd: Path, rank: int, world: int, device: torch.device,
               on_epoch: Callable[[int, float], None] | None = None) -> None:
    """Epochs of steps, validation, early stopping, checkpoints. `on_epoch(epoch, validation metric)` is
    called after each epoch is committed (a search's pruner: it may raise to stop the run there)."""
    cfg, task, model, optimizer, state = s.cfg, s.task, s.model, s.optimizer, s.state
    t = cfg.train
    train, valid = s.splits["train"], s.splits["valid"]
    assert train is not None
    monitor = s.info["monitor"]
    net: torch.nn.Module = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                                        else None)
    steps_per_epoch = batches_per_epoch(len(train), t.batch_size)

    def save_last() -> None:
        rngs = gather_rng(world)
        if rank == 0:
            save_training_state(rd / LAST, model, optimizer, rngs, state,
                                s.average.shadow if s.average else None)

    kind, amount = parse_budget(t.budget) if t.budget is not None else ("epochs", t.epochs)
    timed = kind == "seconds"
    if not state.total_steps:  # fixed at the start, and kept in the checkpoint
        state.total_steps = plan_steps(s, steps_per_epoch, device, rank, world)
        if timed:
            save_last()  # a timed count is not repeatable: commit it before the first step
    check_at = replan_at(state.total_steps, steps_per_epoch) if timed and not state.probe_steps else 0

    def schedule() -> tuple[int, int, int]:
        """(total steps, the step the lr is held from under SWA, epochs) of the count now fixed."""
        total = state.total_steps
        swa_from = total - round(t.swa * total) if t.swa else total
        if s.average is not None and t.swa:
            s.average.start = swa_from
        return total, swa_from, math.ceil(total / steps_per_epoch)

    total_steps, swa_start, epochs = schedule()
    log = open_log(t.log, rd, state.step) if rank == 0 else None

    while not state.done and state.epoch < epochs:
        epoch = state.epoch
        if isinstance(train, GenomeWindows):
            train.draw(epoch)  # new genome positions every epoch
        net.train()
        this_epoch = min(steps_per_epoch, total_steps - epoch * steps_per_epoch)  # the last may be partial
        since = (state.step, state.train_seconds)  # the pace of this epoch corrects a time budget at its end
        bar = progress_bar(t.progress and rank == 0, total=this_epoch, initial=state.batch,
                           desc=f"epoch {epoch + 1}/{epochs}")
        t0, seen = time.perf_counter(), 0
        for b, idx in train_batches(train, batch_size=t.batch_size, seed=t.seed, epoch=epoch, start=state.batch,
                                    rank=rank, world=world):
            if b >= this_epoch:
                break
            x, y, strand = batch_inputs(s, idx, epoch, b, device)
            key = (t.seed, epoch, b, rank) if world > 1 else (t.seed, epoch, b)  # each rank its own masks
            loss = train_step(net, s, x, y, strand, key,
                              t.lr * lr_factor(min(state.step, swa_start), total_steps, t.schedule,
                                                     t.warmup_frac))
            state.batch, state.step = b + 1, state.step + 1
            if s.average is not None:
                s.average.update(model, state.step)
            traced = len(state.trace)
            state.record_loss(float(loss), steps_per_epoch)
            if log is not None and len(state.trace) > traced:
                log.loss(state.step, state.trace[-1]["train_loss"], optimizer.param_groups[0]["lr"])
            seen += len(idx) * world
            bar.update(1)
            if bar.n % 10 == 0:
                bar.set_postfix(loss=f"{state.loss_sum / state.loss_n:.4f}",
                                seq_s=f"{seen / (time.perf_counter() - t0):.0f}")
            replan = state.step == check_at  # the budget's first count from the run's own pace, committed
            if replan or t.checkpoint_every and state.step % t.checkpoint_every == 0 and b + 1 < this_epoch:
                state.train_seconds += time.perf_counter() - t0
                state.seqs_seen += seen
                t0, seen = time.perf_counter(), 0
                if replan:
                    state.probe_steps = state.total_steps
                    state.total_steps = replan_steps(amount, state.train_seconds, state.step, device, world)
                    total_steps, swa_start, epochs = schedule()
                    this_epoch = min(steps_per_epoch, total_steps - epoch * steps_per_epoch)
                    bar.total = this_epoch
                    bar.set_description(f"epoch {epoch + 1}/{epochs}")
                save_last()
        bar.close()
        epoch_seconds = time.perf_counter() - t0
        state.train_seconds += epoch_seconds
        state.seqs_seen += seen
        record: dict[str, Any] = {"epoch": epoch + 1, "step": state.step, "lr": optimizer.param_groups[0]["lr"],
                                  "train_loss": state.loss_sum / max(state.loss_n, 1),
                                  "train_seconds": round(state.train_seconds, 2)}
        improved = True
        average = s.average if s.average is not None and s.average.covers(state.step) else None
        with average.applied(model) if average else contextlib.nullcontext():  # validate the average
            if valid is not None:
                metrics, _ = evaluate_shard(model, valid, task, batch_size=t.eval_batch_size, device=device,
                                            rc_average=t.rc_average, precision=s.precision)
                record.update({f"valid_{k}": v for k, v in metrics.items()})
                improved = is_better(metrics[monitor], state.best, monitor)
                state.bad_epochs = 0 if improved else state.bad_epochs + 1
                if improved:
                    state.best = metrics[monitor]
            if improved:
                state.best_epoch = epoch + 1
                if rank == 0:
                    save_weights(model, rd / BEST, {"epoch": epoch + 1, monitor: state.best})
        state.history.append(record)
        if log is not None:
            log.epoch(record, seen / max(epoch_seconds, 1e-9))
        state.epoch, state.batch, state.loss_sum, state.loss_n = epoch + 1, 0, 0.0, 0
        state.done = bool(t.patience and state.bad_epochs >= t.patience)
        # a time budget: the rest of it at this epoch's pace (not once an SWA average runs: it counts from its start)
        if timed and state.probe_steps and state.step < total_steps and state.step <= swa_start:
            state.total_steps = state.step + steps_left(amount, state, since, device, world)  # >= 0 left
            total_steps, swa_start, epochs = schedule()
        if rank == 0:  # the records first: the checkpoint is the commit point of the epoch
            write_records(rd, state)
        save_last()
        if on_epoch is not None and valid is not None:
            on_epoch(epoch + 1, float(record[f"valid_{monitor}"]))
    if log is not None:
        log.close()
