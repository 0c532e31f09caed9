"""Two-stage training (S2): stage 1 on all rows, then stage 2 fine-tunes its best weights on a
near-uniform subset (k rows per label bin) with a Huber loss. One config, one command.

RUN_DIR/stage1 is an ordinary run; RUN_DIR itself is stage 2 (its config.json records the stage-2
settings, `train.init_from` pointing at stage 1's best weights), so `predict`, `evaluate` and
`load_run` use the final model. Killing and resuming at any point continues the stage that was running.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from helixlab import runs
from helixlab.config import RunConfig
from helixlab.errors import HelixError

STAGE1 = "stage1"


def stage1_config(cfg: RunConfig) -> RunConfig:
    return replace(cfg, stage2=replace(cfg.stage2, per_bin=0))


def stage2_config(cfg: RunConfig, stage1_dir: Path) -> RunConfig:
    """The stage-2 run config; a function of cfg.stage2 (lr resolved) alone, so applying it twice changes nothing."""
    s2 = cfg.stage2
    task = cfg.task if cfg.task.bins else replace(cfg.task, loss=s2.loss, huber_delta=s2.huber_delta)
    # the splits stage 1 prepared (already selected, filtered and reshaped) are read as they are
    prepared = {split: str(stage1_dir / "data" / split) for split in ("train", "valid", "test")
                if getattr(cfg.data, split) and (stage1_dir / "data" / split / "meta.json").exists()}
    return replace(cfg, task=task,
                   data=replace(cfg.data, per_bin=s2.per_bin, bins=s2.bins, **prepared),
                   train=replace(cfg.train, epochs=s2.epochs, lr=s2.lr, patience=0,
                                 init_from=str(stage1_dir / "checkpoints" / "best.safetensors")))


def fit_two_stage(cfg: RunConfig, rd: Path, resume: bool) -> dict[str, Any]:
    import torch.distributed as dist

    from helixlab.data import dist_info
    from helixlab.engine import distributed_device, fit, fit_one

    rank, world = dist_info()
    distributed_device(cfg)  # under torchrun: the process group, so the ranks can wait for rank 0
    s1 = rd / STAGE1
    s1_done, s1_resume = (s1 / runs.RESULTS).exists(), (s1 / runs.CONFIG).exists()  # read before any change
    if world > 1:
        dist.barrier()
    if rank == 0:
        if not resume:
            if rd.exists():
                raise HelixError("run directory already exists; refusing to overwrite it (use --resume to "
                                 "continue)", path=str(rd))
            rd.mkdir(parents=True)
        if not s1_done and s1.exists() and not s1_resume:
            shutil.rmtree(s1)  # killed before stage 1 wrote anything
    if not resume:
        if cfg.stage2.lr is None:  # resolved once and recorded, so the stage-2 config is a function of it
            cfg = replace(cfg, stage2=replace(cfg.stage2, lr=cfg.train.lr / 10))
        if rank == 0:
            runs.write_json(rd / runs.CONFIG, cfg.to_dict())
    if world > 1:
        dist.barrier()
    if not s1_done:
        try:
            fit(stage1_config(cfg), s1, resume=s1_resume)
        except BaseException:
            if not resume and rank == 0 and not (s1 / runs.CONFIG).exists():
                shutil.rmtree(rd, ignore_errors=True)  # nothing was trained: leave nothing behind
            raise
    results = fit_one(stage2_config(cfg, s1), rd, resume=True)
    if results:
        results["stage1"] = json.loads((s1 / runs.RESULTS).read_text())
        runs.write_json(rd / runs.RESULTS, results)
    return results
