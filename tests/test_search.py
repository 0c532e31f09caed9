"""helixlab search on Optuna: sampled spaces, pruning, a shared study, resume after kill -9, refusals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from helixlab.cli import main
from helixlab.errors import HelixError
from helixlab.train.search import parse_grid, parse_space, run_search
from tests.conftest import tiny_config

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _recipe(motif_data, tmp_path, **train) -> Path:
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(tiny_config(motif_data, **({"epochs": 2} | train))))
    return cfg


def _study(out: Path) -> optuna.Study:
    return optuna.load_study(study_name="helixlab", storage=f"sqlite:///{out / 'study.db'}")


def test_space_parsing_and_bad_spaces():
    assert parse_space(["train.lr=float:1e-4,1e-2,log", "train.batch_size=int:16,64",
                        "model.params.hidden=choice:[8],[16,16]"]) == {
        "train.lr": ("float", (1e-4, 1e-2, True)), "train.batch_size": ("int", (16, 64, False)),
        "model.params.hidden": ("choice", [[8], [16, 16]])}
    for bad in ["train.lr=float:1e-2,1e-4", "train.lr=float:0,1,log", "train.lr=normal:0,1", "train.lr",
                "train.lr=float:a,b", "x=choice:", "train.lr=float:1,2,3"]:
        with pytest.raises(HelixError, match="--space"):
            parse_space([bad])


def test_tpe_search_with_pruning_records_pruned_trials(motif_data, tmp_path):
    cfg = _recipe(motif_data, tmp_path, epochs=3)
    out = tmp_path / "s"
    records = run_search(cfg, {}, out, space=parse_space(["train.lr=float:1e-5,1e-2,log"]), budget=6, seed=1,
                         pruner="median")
    assert len(records) == 6 and {r["state"] for r in records} <= {"complete", "pruned"}
    complete = [r for r in records if r["state"] == "complete"]
    assert complete and all(r["test"] for r in complete)
    study = _study(out)
    assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))) == 6
    assert (out / "best.toml").exists() and (out / "search.png").exists()
    text = (out / "search.md").read_text()
    assert "| state |" in text.replace(" state |", "| state |", 1) or "state" in text
    # resumed with the same budget: nothing more to do
    assert len(run_search(cfg, {}, out, space=parse_space(["train.lr=float:1e-5,1e-2,log"]), budget=6, seed=1,
                          pruner="median")) == 6


def test_refusals(motif_data, tmp_path):
    cfg = _recipe(motif_data, tmp_path, epochs=1)
    out = tmp_path / "s"
    run_search(cfg, parse_grid(["train.lr=1e-3,5e-3"]), out)
    with pytest.raises(HelixError, match="another recipe"):
        run_search(cfg, parse_grid(["train.lr=1e-3,5e-3"]), out, overrides=["train.batch_size=16"])
    with pytest.raises(HelixError, match="other keys"):
        run_search(cfg, parse_grid(["train.lr=1e-3,1e-2"]), out)
    with pytest.raises(HelixError, match="unknown key"):
        run_search(cfg, parse_grid(["train.speed=1,2"]), tmp_path / "t")
    with pytest.raises(HelixError, match="needs --trials"):
        run_search(cfg, {}, tmp_path / "u", space=parse_space(["train.lr=float:1e-4,1e-2"]))
    with pytest.raises(HelixError, match="grid sampler"):
        run_search(cfg, {}, tmp_path / "v", space=parse_space(["train.lr=float:1e-4,1e-2"]), budget=2,
                   sampler="grid")
    with pytest.raises(HelixError, match="--startup must be"):
        run_search(cfg, {}, tmp_path / "x", space=parse_space(["train.lr=float:1e-4,1e-2"]), budget=2, startup=0)
    with pytest.raises(HelixError, match="unknown pruner"):
        run_search(cfg, parse_grid(["train.lr=1e-3"]), tmp_path / "w", pruner="hyperband")


def _search_cmd(cfg: Path, out: Path, grid: str) -> list[str]:
    return [sys.executable, "-m", "helixlab", "search", str(cfg), "--grid", grid, "-o", str(out)]


def test_two_processes_share_one_study_without_duplicates(motif_data, tmp_path):
    cfg = _recipe(motif_data, tmp_path, epochs=1)
    out = tmp_path / "s"
    grid = "train.lr=1e-3,2e-3,3e-3,4e-3,5e-3,6e-3"
    env = {**os.environ, "PYTHONPATH": SRC}
    main(["search", str(cfg), "--grid", grid, "-o", str(out), "--trials", "1"])  # creates the study
    procs = [subprocess.Popen(_search_cmd(cfg, out, grid), env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE) for _ in range(2)]
    for p in procs:
        assert p.wait(timeout=600) == 0, p.stderr.read().decode()[-2000:]
    trials = _study(out).get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    lrs = [t.params["train.lr"] for t in trials]
    assert len(trials) == 6 and len(set(lrs)) == 6
    assert len(list((out / "trials").glob("*/results.json"))) == 6


def test_search_resumes_after_kill(motif_data, tmp_path):
    cfg = _recipe(motif_data, tmp_path, epochs=30, checkpoint_every=5)
    out = tmp_path / "s"
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.Popen(_search_cmd(cfg, out, "train.lr=1e-3,5e-3"), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not list((out / "trials").glob("*/checkpoints/last.safetensors")):
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # the killed trial is re-run from its checkpoint (its process is gone: no need to wait for the heartbeat)
    records = run_search(cfg, parse_grid(["train.lr=1e-3,5e-3"]), out)
    assert sorted(r["params"]["train.lr"] for r in records) == [1e-3, 5e-3]
    assert all(r["state"] == "complete" and r["epochs"] == 30 for r in records)
