"""`fit`: train per a config into a run directory, or continue it; one dispatcher for every kind of run.

- a network: gradient steps (`helixlab.train.loop`);
- a model fitted by counting (kmer_count): one counting pass over the training genome;
- two-stage training (S2, a `[stage2]` section): stage 1 on all rows, then stage 2 fine-tunes its best
  weights on a near-uniform subset (k rows per label bin) with a Huber loss. RUN_DIR/stage1 is an
  ordinary run; RUN_DIR itself is stage 2 (its config.json records the stage-2 settings, `train.init_from`
  pointing at stage 1's best weights), so `predict`, `evaluate` and `load_run` use the final model.
  Killing and resuming at any point continues the stage that was running.

Under torchrun (WORLD_SIZE > 1) training is DDP: gloo on the CPU, NCCL on GPUs.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from helixlab.config import RunConfig, load_config
from helixlab.data.contexts import sorted_contexts
from helixlab.data.genome import CentreWindows, context_counts
from helixlab.errors import HelixError
from helixlab.models import count_params
from helixlab.models.weights import load_weights, save_weights
from helixlab.paths import BEST, CONFIG, LAST, RESULTS, best_or_last, read_json_object, write_json
from helixlab.run.card import write_model_card
from helixlab.run.records import read_config
from helixlab.run.report import write_report
from helixlab.tasks import add_threshold_metrics, evaluate_shard
from helixlab.train.checkpoint import save_training_state
from helixlab.train.device import barrier, dist_info, distributed_device, gather_rng
from helixlab.train.loop import Setup, setup, train_loop, write_records

STAGE1 = "stage1"


def fit(cfg: RunConfig | None, run_dir: str | os.PathLike[str], *, resume: bool = False,
        init_from: str | None = None, on_epoch: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """Train per `cfg` into `run_dir` (or continue it with resume=True: the run's recorded config is
    used and `cfg` may be None); return the final results. `init_from` sets `train.init_from`;
    `on_epoch(epoch, validation metric)` is called after every committed epoch (search pruning)."""
    rd = Path(run_dir)
    if resume:
        cfg = read_config(rd)  # a resumed run follows its own recorded config
    elif cfg is None:
        raise HelixError("a new run needs a config")
    elif init_from:
        cfg = replace(cfg, train=replace(cfg.train, init_from=str(init_from)))
    if cfg.stage2.per_bin:
        return fit_two_stage(cfg, rd, resume)
    return fit_one(cfg, rd, resume=resume, on_epoch=on_epoch)


def fit_recipe(recipe: str | os.PathLike[str] | None, overrides: list[str] | None = None, *,
               out: str | os.PathLike[str] | None = None, resume: str | os.PathLike[str] | None = None,
               init_from: str | os.PathLike[str] | None = None, pretrain: bool = False) -> tuple[dict[str, Any], Path]:
    """`helixlab train` / `pretrain`: a recipe with --set overrides into `out` (default runs/<recipe name>),
    or `resume` a run directory. pretrain: masked-language-model pretraining (task.kind = 'mlm').
    Returns (results, run directory)."""
    if resume is not None:
        return fit(None, resume, resume=True), Path(resume)
    if recipe is None:
        raise HelixError("give a CONFIG recipe, or --resume RUN_DIR")
    cfg = load_config(recipe, list(overrides or []))
    if pretrain and cfg.task.kind != "mlm":
        cfg = load_config(recipe, ["task.kind=mlm", *(overrides or [])])
    if not pretrain and cfg.task.kind == "mlm":
        raise HelixError("this recipe is for masked-language-model pretraining: use `helixlab pretrain`",
                         path=str(recipe))
    run_dir = Path(out) if out is not None else Path("runs") / Path(recipe).stem
    return fit(cfg, run_dir, init_from=str(init_from) if init_from else None), run_dir


def new_run_dir(rd: Path) -> None:
    """Create a run directory; an existing one is never overwritten."""
    if rd.exists():
        raise HelixError("run directory already exists; refusing to overwrite it (use --resume to continue)",
                         path=str(rd))
    rd.mkdir(parents=True)


def fit_one(cfg: RunConfig, rd: Path, *, resume: bool,
            on_epoch: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """One training run into `rd` (resume=True: continue it, or start it in an existing directory)."""
    rank, world = dist_info()
    device = distributed_device(cfg.train.device)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    if not resume and rank == 0:
        new_run_dir(rd)
        write_json(rd / CONFIG, cfg.to_dict())
    barrier(world)
    try:
        s = setup(cfg, rd, resume, rank, world, device)
    except BaseException:
        if not resume and rank == 0:
            shutil.rmtree(rd, ignore_errors=True)  # nothing was trained: leave nothing behind
        raise
    if s.model.fitted_by_counting:
        count(s, rd, world, device)
    else:
        train_loop(s, rd, rank, world, device, on_epoch)
    results = finish(rd, s, device) if rank == 0 else {}
    barrier(world)
    return results


def count(s: Setup, rd: Path, world: int, device: torch.device) -> None:
    """Fit a counting model (kmer_count, context_count) in one pass over the whole training region
    instead of gradient steps, then let it choose its smoothing on the validation split. Nothing is
    saved until the counts are complete; a killed run counts again."""
    state, model, t = s.state, s.model, s.cfg.train
    if state.epoch:
        return
    train = s.splits["train"]
    if not isinstance(train, CentreWindows):
        raise HelixError(f"model {s.cfg.model.name!r} counts genome contexts: it needs the context task "
                         "(data.flank)", record="model.name")
    if world > 1:
        raise HelixError("counting models run in one process, not under torchrun", record="model.name")
    t0 = time.perf_counter()
    positions = fit_by_counting(s, train, rd)
    model.to(device)
    state.train_seconds, state.seqs_seen = time.perf_counter() - t0, positions
    state.epoch, state.best_epoch = 1, 1
    record: dict[str, Any] = {"epoch": 1, "step": 0, "train_positions": positions,
                              "train_seconds": round(state.train_seconds, 2)}
    valid = s.splits["valid"]
    if isinstance(valid, CentreWindows):
        every = np.arange(len(valid))
        record.update(model.tune(torch.from_numpy(valid.codes(every)), s.task.target(valid.labels)))
    if s.splits["valid"] is not None:
        metrics, _ = evaluate_shard(model, s.splits["valid"], s.task, batch_size=t.eval_batch_size,
                                    device=device, precision=s.precision)
        record.update({f"valid_{k}": v for k, v in metrics.items()})
    state.history = [record]
    save_weights(model, rd / BEST, {"epoch": 1})
    write_records(rd, state)
    save_training_state(rd / LAST, model, s.optimizer, gather_rng(1), state)
    shutil.rmtree(rd / COUNTING_DIR, ignore_errors=True)


COUNTING_DIR = ".counting"  # the bucket files of a counting sort too large for memory


def fit_by_counting(s: Setup, train: CentreWindows, rd: Path) -> int:
    """Make the counts the model asks for (`fitted_by_counting`) over the training regions and fit it;
    return the number of positions (and strands) counted."""
    model, task, t = s.model, s.task, s.cfg.train
    classes = task.classes  # type: ignore[attr-defined]
    if model.fitted_by_counting == "kmer":
        if classes is None:
            raise HelixError("kmer_count counts centre bases; for task.target 'repeat' use context_count",
                             record="task.target")
        counts = context_counts(train.shard, train.regions, model.k, classes, progress=t.progress)  # type: ignore[attr-defined]
        model.fit_counts(counts)
        return int(counts.sum())
    cfg = model.cfg  # type: ignore[attr-defined]
    per_order = (sorted_contexts(train.shard, train.regions, cfg.k, classes, both_strands=cfg.strands == "both",
                                 order=order, max_memory=cfg.max_memory_gb * 1e9, work_dir=rd / COUNTING_DIR / order,
                                 progress=t.progress, n_orders=len(cfg.orders))
                 for order in cfg.orders)  # one order sorted at a time
    model.fit_counts((per_order, task.complement))  # type: ignore[attr-defined]
    return int(model.keys.shape[1])  # type: ignore[attr-defined]


def finish(rd: Path, s: Setup, device: torch.device) -> dict[str, Any]:
    """Reload the best weights, score valid and test, write results.json, plots, report and model card."""
    cfg, model, task, state = s.cfg, s.model, s.task, s.state
    load_weights(model, best_or_last(rd))
    t = cfg.train
    results: dict[str, Any] = {
        "model": cfg.model.name, "params": count_params(model), "epochs": state.epoch,
        "best_epoch": state.best_epoch, "monitor": s.info["monitor"],
        "train_seconds": round(state.train_seconds, 2),
        "train_seq_per_s": round(state.seqs_seen / max(state.train_seconds, 1e-9), 1),
        "stopped_early": bool(state.done and state.step < state.total_steps), "precision": s.precision,
        "splits": {},
    }
    if t.budget is not None:
        results["budget"], results["budget_steps"] = t.budget, state.total_steps
        if state.probe_steps:  # the schedule's first tenth ran on the probe's count, corrected later
            results["budget_probe_steps"] = state.probe_steps
    accumulators = {}
    for split in ("valid", "test"):
        data = s.splits.get(split)
        if data is None:
            continue
        metrics, acc = evaluate_shard(model, data, task, batch_size=t.eval_batch_size, device=device,
                                      rc_average=t.rc_average, precision=s.precision)
        results["splits"][split] = metrics
        accumulators[split] = acc
    add_threshold_metrics(results, accumulators)
    write_json(rd / RESULTS, results)
    write_model_card(rd, cfg, s.info, results)
    write_report(rd, cfg, s.info, results, state.history, accumulators, task, trace=state.trace)
    return results


def stage1_config(cfg: RunConfig) -> RunConfig:
    return replace(cfg, stage2=replace(cfg.stage2, per_bin=0))


def stage2_config(cfg: RunConfig, stage1_dir: Path) -> RunConfig:
    """The stage-2 run config; a function of cfg.stage2 (lr resolved) alone, so applying it twice changes nothing."""
    s2 = cfg.stage2
    task = cfg.task if cfg.task.bins else replace(cfg.task, loss=s2.loss, huber_delta=s2.huber_delta)
    # the splits stage 1 prepared (already selected, filtered and reshaped) are read as they are
    prepared = {split: str(stage1_dir / "data" / split) for split in ("train", "valid", "test")
                if cfg.data.files(split) and (stage1_dir / "data" / split / "meta.json").exists()}
    return replace(cfg, task=task,
                   data=replace(cfg.data, per_bin=s2.per_bin, bins=s2.bins, **prepared),
                   train=replace(cfg.train, epochs=s2.epochs, budget=None, lr=s2.lr, patience=0,
                                 init_from=str(stage1_dir / BEST)))


def fit_two_stage(cfg: RunConfig, rd: Path, resume: bool) -> dict[str, Any]:
    rank, world = dist_info()
    distributed_device(cfg.train.device)  # under torchrun: the process group, so the ranks can wait for rank 0
    s1 = rd / STAGE1
    s1_done, s1_resume = (s1 / RESULTS).exists(), (s1 / CONFIG).exists()  # read before any change
    barrier(world)
    if rank == 0:
        if not resume:
            new_run_dir(rd)
        if not s1_done and s1.exists() and not s1_resume:
            shutil.rmtree(s1)  # killed before stage 1 wrote anything
    if not resume:
        if cfg.stage2.lr is None:  # resolved once and recorded, so the stage-2 config is a function of it
            cfg = replace(cfg, stage2=replace(cfg.stage2, lr=cfg.train.lr / 10))
        if rank == 0:
            write_json(rd / CONFIG, cfg.to_dict())
    barrier(world)
    if not s1_done:
        try:
            fit(stage1_config(cfg), s1, resume=s1_resume)
        except BaseException:
            if not resume and rank == 0 and not (s1 / CONFIG).exists():
                shutil.rmtree(rd, ignore_errors=True)  # nothing was trained: leave nothing behind
            raise
    results = fit_one(stage2_config(cfg, s1), rd, resume=True)
    if results:
        results["stage1"] = read_json_object(s1 / RESULTS, "stage-1 results")
        write_json(rd / RESULTS, results)
    return results
