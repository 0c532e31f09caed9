"""fit / evaluate: the training loop, checkpoints, exact resume, early stopping, DDP.

The loop is a plain function. Resumability rests on three facts: the data order of an epoch is
a function of (seed, epoch); augmentation choices are a function of (seed, epoch, batch); and the
checkpoint holds weights, optimizer moments, the step and every rank's torch RNG state.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from helixlab import checkpoint as ckpt
from helixlab import runs
from helixlab.config import DEFAULT_SAMPLES, DataConfig, RunConfig, expand_path
from helixlab.data import (RowSubset, batches_per_epoch, dist_info, eval_batches, holdout_rows, load_batch, open_data,
                           per_bin_rows, rc_augment, train_batches)
from helixlab.errors import HelixError
from helixlab.io import atomic_path
from helixlab.genome import CentreWindows, GenomeWindows, parse_regions
from helixlab.models import REGISTRY, build_model, count_params
from helixlab.pretrained import adopt, load_init
from helixlab.models.base import SequenceModel, call_model
from helixlab.progress import progress_bar
from helixlab.shards import Shard, prepare
from helixlab.tokenizers import codes_to_strings
from helixlab.tasks import HIGHER_IS_BETTER, Task, make_task
from helixlab.transforms import SeqOptions


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


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise HelixError(f"device {name!r} asked for but no CUDA GPU is available", record="train.device")
    return torch.device(name)


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on a GPU; nothing on the CPU."""
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def model_outputs(model: torch.nn.Module, x: torch.Tensor, *, rc_average: bool = False) -> torch.Tensor:
    """Raw outputs (N, n_outputs); with rc_average, the mean over the sequence and its reverse complement."""
    from helixlab.alphabet import reverse_complement

    forward = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    out = call_model(model, x, forward).float()
    if rc_average:
        out = (out + call_model(model, reverse_complement(x), ~forward).float()) / 2  # type: ignore[arg-type]
    return out


EVAL_KEY = (20_240_101, 2**31 - 1)  # evaluation masks (MLM) are the same in every epoch and every run


def evaluate_shard(model: torch.nn.Module, shard: Shard, task: Task, *, batch_size: int = 512,
                   device: torch.device | str = "cpu", rc_average: bool = False, amp: bool = True,
                   progress: bool = False) -> tuple[dict[str, float], Any]:
    """Metrics of `model` on a labelled shard, and the metric accumulator (for plots)."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    acc = task.metrics()
    loss_sum, n = 0.0, 0
    bar = progress_bar(progress, total=(len(shard) + batch_size - 1) // batch_size, desc="evaluate", leave=False)
    for b, idx in enumerate(eval_batches(len(shard), batch_size)):
        bar.update(1)
        x, y = load_batch(shard, idx)
        with torch.no_grad(), autocast(device, amp):
            loss, out = task.step(model, x.to(device), y, key=EVAL_KEY + (b,), rc_average=rc_average)
            acc.update(task.predictions(out, loss), y)
        loss_sum += float(loss) * len(idx)
        n += len(idx)
    bar.close()
    model.train(was_training)
    return {"loss": loss_sum / max(n, 1), **acc.compute()}, acc


def _is_better(value: float, best: float | None, monitor: str) -> bool:
    if best is None or math.isnan(best):
        return not math.isnan(value)
    return value > best if HIGHER_IS_BETTER[monitor] else value < best


def _gather_rng(world: int) -> list[torch.Tensor]:
    state = torch.get_rng_state()
    if world == 1:
        return [state]
    out: list[Any] = [None] * world
    dist.all_gather_object(out, state)
    return out


def _files(cfg: RunConfig, split: str) -> list[str]:
    """The configured file(s) of a split with variables expanded; [] when the split is not given."""
    value = getattr(cfg.data, split) or []
    return [expand_path(p) for p in ([value] if isinstance(value, str) else value)]


def _source(cfg: RunConfig, split: str) -> str:
    """The configured path(s) of a split, for messages."""
    return ", ".join(_files(cfg, split))


def open_split(cfg: RunConfig, run_dir: Path, split: str, rank: int, progress: bool
                ) -> Shard | GenomeWindows | RowSubset | None:
    files = _files(cfg, split)
    d = cfg.data
    if split == "valid" and not files and d.holdout:  # a fixed fraction of the training rows
        train = open_split(replace(cfg, data=replace(d, holdout=0.0, per_bin=0)), run_dir, "train", rank, False)
        assert isinstance(train, Shard)
        return RowSubset(train, holdout_rows(len(train), d.holdout), {"holdout": d.holdout})
    if not files:
        return None
    cache = run_dir / "data" / split
    if d.window or d.flank:  # windows sampled from long records (a genome), prepared once as one flat array
        if split != "train" and files == _files(cfg, "train"):
            if split not in d.regions or "train" not in d.regions:
                raise HelixError(f"data.{split} is the training file: give data.regions for train and {split} "
                                 "so their windows come from different parts of it", record="data.regions")
            cache = run_dir / "data" / "train"  # the same file is prepared once
        shard = open_genome(files, cache, d, progress=progress and rank == 0)
        return genome_split(cfg, shard, split, source=_source(cfg, split))
    options = SeqOptions.from_config(d)
    if split != "train":  # row filters shape the training set; valid and test are scored whole
        options = options.transforms_only()
    shard = open_data(files, cache, fmt=d.format, seq_col=d.seq_col, label_cols=d.label_cols, iupac=d.iupac,
                      require_labels=cfg.task.kind != "mlm", progress=progress and rank == 0,
                      where=d.where.get(split), options=options)
    if split != "train" or not (d.per_bin or d.holdout and not d.valid):
        return shard
    rows = np.arange(len(shard))
    note: dict[str, object] = {}
    if d.holdout and not d.valid:  # the rows held out for validation are not trained on
        rows = np.setdiff1d(rows, holdout_rows(len(shard), d.holdout))
        note["holdout"] = d.holdout
    if d.per_bin:
        if shard.labels is None:
            raise HelixError("data.per_bin needs labelled training data", path=_source(cfg, split))
        rows = rows[per_bin_rows(shard.labels[rows, 0], d.per_bin, d.bins, seed=cfg.train.seed)]
        note.update(per_bin=d.per_bin, bins=d.bins)
    return RowSubset(shard, rows, note)


def open_genome(files: list[str], cache: Path, d: DataConfig, *, progress: bool = False) -> Shard:
    """A genome as a prepared shard: a prepared directory as it is, else the files prepared once into
    `cache` (all bases in one array, IUPAC codes as N, soft-mask bits kept for the context task)."""
    if len(files) == 1 and Path(files[0]).is_dir():
        return Shard.open(files[0])
    if not (cache / "meta.json").exists():
        prepare(files, cache, fmt=d.format, length="variable", iupac="n", unique_ids=False,
                overwrite=cache.exists(), progress=progress, keep_mask=bool(d.flank))
    return Shard.open(cache)


def genome_split(cfg: RunConfig, shard: Shard, split: str, *, regions: list[str] | None = None,
                 samples: int | None = None, source: str = "") -> GenomeWindows:
    """The windows of `split` from a prepared genome per the run's data section (regions and sample
    size as configured unless given): centre windows for the context task, else plain windows."""
    d = cfg.data
    specs = regions or d.regions.get(split) or [n.split()[0] for n in shard.ids()]
    parsed = parse_regions(specs, shard, source or str(shard.path))
    n = samples or d.samples.get(split, DEFAULT_SAMPLES[split])
    seed = ("train", "valid", "test").index(split)
    if d.flank:
        if not shard.meta.get("has_mask"):
            raise HelixError("the context task reports repeats apart: prepare the genome with --keep-mask",
                             path=str(shard.path))
        return CentreWindows(shard, d.flank, parsed, n, seed, clearance=d.clearance)
    return GenomeWindows(shard, d.window, parsed, n, seed=seed)


@dataclass
class Setup:
    """Everything the loop needs, built before the first step."""

    cfg: RunConfig
    shards: dict[str, Shard | GenomeWindows | None]
    task: Task
    model: SequenceModel
    optimizer: torch.optim.Optimizer
    state: dict[str, Any]
    info: dict[str, Any]


def _prepare_model(cfg: RunConfig, rd: Path, train: Shard | GenomeWindows) -> RunConfig:
    """Adopt a pretrained encoder's settings, let the model save its files (tokenizer) in the run,
    and record the resolved config. Idempotent: a run killed before its first checkpoint redoes it."""
    if cfg.train.init_from:
        cfg = adopt(cfg, expand_path(cfg.train.init_from), rd)

    def sequences(limit: int = 50_000) -> Iterator[str]:
        rows = np.random.default_rng(0).permutation(len(train))[:limit]
        for start in range(0, len(rows), 1024):
            yield from codes_to_strings(train.codes(np.sort(rows[start : start + 1024])))

    params = REGISTRY[cfg.model.name].cls.prepare_run(cfg.model.params, rd, sequences)
    cfg = replace(cfg, model=replace(cfg.model, params=params))
    runs.write_json(rd / runs.CONFIG, cfg.to_dict())
    return cfg


def _setup(cfg: RunConfig, rd: Path, resume: bool, rank: int, world: int, device: torch.device) -> Setup:
    """Open (preparing if needed) the data, check labels, build model and optimizer, load resume state."""
    t = cfg.train
    # Rank 0 prepares raw files once; the others open what it wrote.
    shards: dict[str, Shard | GenomeWindows | None] = {}
    if rank == 0:
        shards = {s: open_split(cfg, rd, s, rank, t.progress) for s in ("train", "valid", "test")}
    if world > 1:
        dist.barrier()
        if rank != 0:
            shards = {s: open_split(cfg, rd, s, rank, False) for s in ("train", "valid", "test")}
    train = shards["train"]
    assert train is not None
    labels = list(train.meta["labels"])  # type: ignore[call-overload]
    if cfg.task.bins and cfg.task.bin_range is None and labels:  # bins span the training labels, recorded
        st = train.meta["label_stats"][labels[0]]  # type: ignore[call-overload,index]
        cfg = replace(cfg, task=replace(cfg.task, bin_range=[float(st["min"]), float(st["max"])]))
    task = make_task(cfg.task, len(labels))
    if task.needs_labels and not labels:
        raise HelixError("training data has no label column", path=_source(cfg, "train"))
    for split, shard in shards.items():
        if shard is not None:
            if shard.meta["labels"] != labels:
                raise HelixError(f"{split} labels {shard.meta['labels']} differ from train labels {labels}",
                                 path=_source(cfg, split))
            task.check_labels(shard.meta, _source(cfg, split))
    lengths = {sh.length for sh in shards.values() if sh is not None}
    seq_len = lengths.pop() if len(lengths) == 1 else None
    monitor = t.monitor or task.default_monitor
    if monitor not in task.metric_names:
        raise HelixError(f"train.monitor {monitor!r} is not a metric of a {task.kind} task; choose from "
                         f"{sorted(task.metric_names)}", record="train.monitor")

    fresh = not (resume and (rd / runs.LAST).exists())  # no checkpoint yet: (re)start from the beginning
    if fresh:  # fix what the model keeps beside the run (a tokenizer), on rank 0
        if rank == 0:
            cfg = _prepare_model(cfg, rd, train)
        if world > 1:
            dist.barrier()
            cfg = runs.read_config(rd)
    torch.manual_seed(t.seed)
    model: SequenceModel = build_model(cfg.model.name, cfg.model.params, seq_len, task.n_outputs, run_dir=rd)
    longest = max(int(sh.meta["max_length"]) for sh in shards.values() if sh is not None)
    try:
        model.check_length(longest)
    except ValueError as exc:
        raise HelixError(str(exc), path=_source(cfg, "train"), record="model.params.max_tokens") from None
    init_from = expand_path(t.init_from) if t.init_from else None
    init = load_init(model, init_from, cfg.task) if init_from and fresh else None
    model.to(device)
    info = {"seq_len": seq_len, "n_outputs": task.n_outputs, "labels": labels, "params": count_params(model),
            "monitor": monitor, "data": {s: sh.meta for s, sh in shards.items() if sh is not None},
            "init_from": {"source": str(init_from), **init} if init else None,
            "environment": runs.environment(), "world_size": world}
    if rank == 0 and fresh:
        runs.write_json(rd / runs.INFO, info)
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": t.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=t.lr)
    state: dict[str, Any] = {"epoch": 0, "batch": 0, "step": 0, "loss_sum": 0.0, "loss_n": 0, "best": None,
                             "best_epoch": None, "bad_epochs": 0, "done": False, "history": [],
                             "train_seconds": 0.0, "seqs_seen": 0, "trace": [], "win_sum": 0.0, "win_n": 0}
    if resume and (rd / runs.LAST).exists():
        rngs, state = ckpt.load_training_state(rd / runs.LAST, model, optimizer)
        if len(rngs) != world:
            raise HelixError(f"checkpoint was written by {len(rngs)} processes, resuming with {world}",
                             path=str(rd / runs.LAST))
        torch.set_rng_state(rngs[rank])
    else:
        torch.manual_seed(t.seed + 1000 * rank)  # each rank its own dropout stream
    return Setup(cfg, shards, task, model, optimizer, state, info)


def fit(cfg: RunConfig, run_dir: str | os.PathLike[str], *, resume: bool = False,
        init_from: str | None = None) -> dict[str, Any]:
    """Train per `cfg` into `run_dir` (or continue it with resume=True); return the final results.

    `init_from` sets `train.init_from` (pretrained weights). Under torchrun (WORLD_SIZE > 1) this is
    DDP training: gloo on the CPU, NCCL on GPUs.
    """
    rd = Path(run_dir)
    if resume:
        cfg = runs.read_config(rd)  # a resumed run follows its own recorded config
    elif init_from:
        cfg = replace(cfg, train=replace(cfg.train, init_from=str(init_from)))
    if cfg.stage2.per_bin:
        from helixlab.stages import fit_two_stage

        return fit_two_stage(cfg, rd, resume)
    return fit_one(cfg, rd, resume=resume)


def distributed_device(cfg: RunConfig) -> torch.device:
    """This process's device; under torchrun, the process group is started once (idempotent) and each
    rank takes its own GPU."""
    _, world = dist_info()
    device = resolve_device(cfg.train.device)
    if world > 1:
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
            torch.cuda.set_device(device)
    return device


def fit_one(cfg: RunConfig, rd: Path, *, resume: bool) -> dict[str, Any]:
    """One training run into `rd` (resume=True: continue it, or start it in an existing directory)."""
    rank, world = dist_info()
    device = distributed_device(cfg)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    if not resume and rank == 0:
        if rd.exists():
            raise HelixError("run directory already exists; refusing to overwrite it (use --resume to continue)",
                             path=str(rd))
        rd.mkdir(parents=True)
        runs.write_json(rd / runs.CONFIG, cfg.to_dict())
    if world > 1:
        dist.barrier()
    try:
        setup = _setup(cfg, rd, resume, rank, world, device)
    except BaseException:
        if not resume and rank == 0:
            shutil.rmtree(rd, ignore_errors=True)  # nothing was trained: leave nothing behind
        raise
    if getattr(setup.model, "counted", False):
        _count(setup, rd, world, device)
    else:
        _loop(setup, rd, rank, world, device)
    results = finish(rd, setup, device) if rank == 0 else {}
    if world > 1:
        dist.barrier()
    return results


def _count(setup: Setup, rd: Path, world: int, device: torch.device) -> None:
    """Fit a counting model (kmer_count) in one pass over the whole training region instead of
    gradient steps. Nothing is saved until the counts are complete; a killed run counts again."""
    state, model, t = setup.state, setup.model, setup.cfg.train
    if state["epoch"]:
        return
    train = setup.shards["train"]
    if not isinstance(train, CentreWindows):
        raise HelixError(f"model {setup.cfg.model.name!r} counts genome contexts: it needs the context task "
                         "(data.flank)", record="model.name")
    if world > 1:
        raise HelixError("counting models run in one process, not under torchrun", record="model.name")
    t0 = time.perf_counter()
    positions = model.fit_counts(train, setup.task, progress=t.progress)  # type: ignore[operator]
    model.to(device)
    state.update(train_seconds=time.perf_counter() - t0, seqs_seen=positions, epoch=1, best_epoch=1)
    record: dict[str, Any] = {"epoch": 1, "step": 0, "train_positions": positions,
                              "train_seconds": round(state["train_seconds"], 2)}
    if setup.shards["valid"] is not None:
        metrics, _ = evaluate_shard(model, setup.shards["valid"], setup.task, batch_size=t.eval_batch_size,
                                    device=device, amp=t.amp)
        record.update({f"valid_{k}": v for k, v in metrics.items()})
    state["history"] = [record]
    ckpt.save_weights(model, rd / runs.BEST, {"epoch": 1})
    _write_jsonl(rd / runs.METRICS, state["history"])
    ckpt.save_training_state(rd / runs.LAST, model, setup.optimizer, _gather_rng(1), state)


def _loop(setup: Setup, rd: Path, rank: int, world: int, device: torch.device) -> None:
    """The training loop: epochs of steps, validation, early stopping, checkpoints."""
    cfg, task, model, optimizer, state = setup.cfg, setup.task, setup.model, setup.optimizer, setup.state
    t = cfg.train
    train, valid = setup.shards["train"], setup.shards["valid"]
    assert train is not None
    monitor = setup.info["monitor"]
    net: torch.nn.Module = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                                        else None)
    steps_per_epoch = batches_per_epoch(len(train), t.batch_size)
    total_steps = steps_per_epoch * t.epochs

    def save_last() -> None:
        rngs = _gather_rng(world)
        if rank == 0:
            ckpt.save_training_state(rd / runs.LAST, model, optimizer, rngs, state)

    while not state["done"] and state["epoch"] < t.epochs:
        epoch = state["epoch"]
        if isinstance(train, GenomeWindows):
            train.draw(epoch)  # new genome positions every epoch
        net.train()
        bar = progress_bar(t.progress and rank == 0, total=steps_per_epoch, initial=state["batch"],
                           desc=f"epoch {epoch + 1}/{t.epochs}")
        t0, seen = time.perf_counter(), 0
        for b, idx in train_batches(train, batch_size=t.batch_size, seed=t.seed, epoch=epoch, start=state["batch"],
                                    rank=rank, world=world):
            x, y = load_batch(train, idx)
            reverse = None
            if t.rc_augment:
                x, reverse = rc_augment(x, t.seed, epoch, b)
                reverse = reverse.to(device)
            x = x.to(device, non_blocking=True)
            for group in optimizer.param_groups:
                group["lr"] = t.lr * lr_factor(state["step"], total_steps, t.schedule, t.warmup_frac)
            with autocast(device, t.amp):
                key = (t.seed, epoch, b, rank) if world > 1 else (t.seed, epoch, b)  # each rank its own masks
                loss, _ = task.step(net, x, y, key=key, reverse=reverse)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if t.clip_grad:
                torch.nn.utils.clip_grad_norm_(model.parameters(), t.clip_grad)
            optimizer.step()
            loss_value = float(loss.detach())
            state["loss_sum"] += loss_value
            state["loss_n"] += 1
            state["batch"], state["step"] = b + 1, state["step"] + 1
            _trace(state, loss_value, steps_per_epoch)
            seen += len(idx) * world
            bar.update(1)
            if bar.n % 10 == 0:
                bar.set_postfix(loss=f"{state['loss_sum'] / state['loss_n']:.4f}",
                                seq_s=f"{seen / (time.perf_counter() - t0):.0f}")
            if t.checkpoint_every and state["step"] % t.checkpoint_every == 0 and b + 1 < steps_per_epoch:
                state["train_seconds"] += time.perf_counter() - t0
                state["seqs_seen"] += seen
                t0, seen = time.perf_counter(), 0
                save_last()
        bar.close()
        state["train_seconds"] += time.perf_counter() - t0
        state["seqs_seen"] += seen
        record: dict[str, Any] = {"epoch": epoch + 1, "step": state["step"], "lr": optimizer.param_groups[0]["lr"],
                                  "train_loss": state["loss_sum"] / max(state["loss_n"], 1),
                                  "train_seconds": round(state["train_seconds"], 2)}
        improved = True
        if valid is not None:
            metrics, _ = evaluate_shard(model, valid, task, batch_size=t.eval_batch_size, device=device,
                                        rc_average=t.rc_average, amp=t.amp)
            record.update({f"valid_{k}": v for k, v in metrics.items()})
            improved = _is_better(metrics[monitor], state["best"], monitor)
            state["bad_epochs"] = 0 if improved else state["bad_epochs"] + 1
            if improved:
                state["best"] = metrics[monitor]
        if improved:
            state["best_epoch"] = epoch + 1
            if rank == 0:
                ckpt.save_weights(model, rd / runs.BEST, {"epoch": epoch + 1, monitor: state["best"]})
        state["history"].append(record)
        state.update(epoch=epoch + 1, batch=0, loss_sum=0.0, loss_n=0)
        state["done"] = bool(t.patience and state["bad_epochs"] >= t.patience)
        if rank == 0:  # the records first: the checkpoint is the commit point of the epoch
            _write_jsonl(rd / runs.METRICS, state["history"])
            _write_jsonl(rd / runs.TRACE, state.get("trace", []))
        save_last()


def _trace(state: dict[str, Any], loss: float, steps_per_epoch: int) -> None:
    """About 20 points per epoch of the training loss (mean over the steps since the last point),
    for learning curves of runs that last an epoch or two. Kept in the checkpointed state."""
    state["win_sum"] = state.get("win_sum", 0.0) + loss
    state["win_n"] = state.get("win_n", 0) + 1
    if state["win_n"] >= max(1, steps_per_epoch // 20):
        state.setdefault("trace", []).append({"step": state["step"], "epoch": round(state["step"] / steps_per_epoch, 4),
                                              "train_loss": state["win_sum"] / state["win_n"]})
        state["win_sum"], state["win_n"] = 0.0, 0


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))


def finish(rd: Path, setup: Setup, device: torch.device) -> dict[str, Any]:
    """Reload the best weights, score valid and test, write results.json, plots and report.md."""
    from helixlab.report import write_report

    cfg, model, task, state = setup.cfg, setup.model, setup.task, setup.state
    ckpt.load_weights(model, rd / (runs.BEST if (rd / runs.BEST).exists() else runs.LAST))
    t = cfg.train
    results: dict[str, Any] = {
        "model": cfg.model.name, "params": count_params(model), "epochs": state["epoch"],
        "best_epoch": state["best_epoch"], "monitor": setup.info["monitor"],
        "train_seconds": round(state["train_seconds"], 2),
        "train_seq_per_s": round(state["seqs_seen"] / max(state["train_seconds"], 1e-9), 1),
        "stopped_early": bool(state["done"] and state["epoch"] < t.epochs), "splits": {},
    }
    accumulators = {}
    for split in ("valid", "test"):
        shard = setup.shards.get(split)
        if shard is None:
            continue
        metrics, acc = evaluate_shard(model, shard, task, batch_size=t.eval_batch_size, device=device,
                                      rc_average=t.rc_average, amp=t.amp)
        results["splits"][split] = metrics
        accumulators[split] = acc
    runs.write_json(rd / runs.RESULTS, results)
    from helixlab.card import write_model_card

    write_model_card(rd, cfg, setup.info, results)
    write_report(rd, cfg, setup.info, results, state["history"], accumulators, task, trace=state.get("trace"))
    return results
