"""train.budget (a time or step budget that sizes the schedule), and binary metrics at the threshold
chosen on validation data."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors import safe_open

from helixlab.config import config_from_dict, parse_budget
from helixlab.errors import HelixError
from helixlab.tasks.metrics import BinaryMetrics, best_mcc_threshold
from helixlab.train import fit
from tests.conftest import kill_and_resume, tiny_config


def committed_state(run) -> dict:
    """The trainer state of a run's resumable checkpoint."""
    with safe_open(str(run / "checkpoints" / "last.safetensors"), "pt") as fh:
        return json.loads(fh.metadata()["trainer"])


def test_budget_strings():
    assert parse_budget("30min") == ("seconds", 1800)
    assert parse_budget(" 90 s ") == ("seconds", 90)
    assert parse_budget("2h") == ("seconds", 7200)
    assert parse_budget("20000 steps") == ("steps", 20000)
    for bad in ("", "30", "fast", "-5min", "0 steps", "2.5 steps"):
        with pytest.raises(HelixError, match="train.budget"):
            parse_budget(bad)
    with pytest.raises(HelixError, match="train.budget"):
        config_from_dict(tiny_config({"train": "x.csv"}, budget="ten minutes"), "recipe.toml")


def test_a_step_budget_runs_exactly_that_many_steps_with_a_partial_last_epoch(motif_data, tmp_path):
    res = fit(config_from_dict(tiny_config(motif_data, batch_size=32, budget="40 steps"), "t"), tmp_path / "r")
    history = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == [15, 30, 40]  # 480 rows / 32 = 15 steps per epoch
    assert res["budget_steps"] == 40 and res["epochs"] == 3
    assert history[-1]["lr"] < 0.01 * 5e-3  # the cosine schedule spans the budget: near zero at its end


def test_a_time_budget_becomes_a_recorded_step_count(motif_data, tmp_path):
    res = fit(config_from_dict(tiny_config(motif_data, budget="3s"), "t"), tmp_path / "r")
    assert res["budget"] == "3s" and res["budget_steps"] > 15
    assert res["train_seconds"] < 3 * 3  # sized to the budget (loose: machines vary)
    # the recorded step count repeats the schedule's length (its first tenth ran on the probe's count)
    again = fit(config_from_dict(tiny_config(motif_data, budget=f"{res['budget_steps']} steps"), "t"),
                tmp_path / "again")
    assert again["budget_steps"] == res["budget_steps"] and again["epochs"] == res["epochs"]


def test_a_timed_count_is_committed_before_the_first_step(motif_data, tmp_path, monkeypatch):
    from helixlab.train.checkpoint import TrainerState

    def killed(self, loss, steps_per_epoch):  # as a kill -9 during the first step
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(TrainerState, "record_loss", killed)
        with pytest.raises(KeyboardInterrupt):
            fit(config_from_dict(tiny_config(motif_data, budget="2s"), "t"), tmp_path / "r")
    state = TrainerState.from_dict(committed_state(tmp_path / "r"), "t")
    resumed = fit(None, tmp_path / "r", resume=True)  # keeps the count timed before the kill
    assert state.step == 0 and resumed.get("budget_probe_steps", resumed["budget_steps"]) == state.total_steps


def test_a_time_budget_is_first_corrected_from_the_runs_own_pace(motif_data, tmp_path, monkeypatch):
    from helixlab.train import loop
    from helixlab.train.checkpoint import TrainerState

    monkeypatch.setattr(loop, "seconds_per_step", lambda *a, **k: 1e-4)  # a probe that reads the pace far too fast
    real, steps = TrainerState.record_loss, []

    def killed_after_the_correction(self, loss, steps_per_epoch):  # as a kill -9 later in the run
        real(self, loss, steps_per_epoch)
        steps.append(self.step)
        if self.probe_steps and self.step >= 20:
            raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(TrainerState, "record_loss", killed_after_the_correction)
        with pytest.raises(KeyboardInterrupt):
            fit(config_from_dict(tiny_config(motif_data, budget="2s", checkpoint_every=0), "t"), tmp_path / "r")
    assert steps[-1] == 20  # the first epoch's 15 steps ran, then the count was corrected and committed
    committed = committed_state(tmp_path / "r")
    assert committed["probe_steps"] == 20000 and committed["total_steps"] < 20000  # 2 s at 0.1 ms a step
    resumed = fit(None, tmp_path / "r", resume=True)  # later epoch ends size the rest again (test below)
    assert resumed["budget_steps"] < 20000 and resumed["budget_probe_steps"] == 20000
    assert resumed["train_seconds"] < 2 * 3  # the corrected count fills the budget (loose: machines vary)


def test_a_time_budget_is_sized_again_at_each_epoch_end_from_that_epochs_pace(motif_data, tmp_path, monkeypatch):
    """A clock that ticks only in training steps: 0.125 s a step for 30 steps, then 0.25 s (a VM that slows
    down). The probe reads 0.125 s, so a 10 s budget is 80 steps; the correction at step 8 and the ends of
    epochs 1-2 keep 80; the end of epoch 3 sizes the rest at 0.25 s a step: 55 steps, exactly 10 s."""
    import types

    from helixlab.train import loop
    from helixlab.train.checkpoint import TrainerState

    clock = [0.0]
    monkeypatch.setattr(loop, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))
    monkeypatch.setattr(loop, "seconds_per_step", lambda *a, **k: 0.125)
    real = TrainerState.record_loss

    def ticking(self, loss, steps_per_epoch):
        clock[0] += 0.125 if self.step <= 30 else 0.25
        real(self, loss, steps_per_epoch)
        if kill and self.step == 50:  # as a kill -9 in epoch 4, after the correction at the end of epoch 3
            raise KeyboardInterrupt

    monkeypatch.setattr(TrainerState, "record_loss", ticking)
    cfg = config_from_dict(tiny_config(motif_data, budget="10s", checkpoint_every=0), "t")
    kill = False
    res = fit(cfg, tmp_path / "r")
    assert res["budget_probe_steps"] == 80 and res["budget_steps"] == 55
    assert res["train_seconds"] == pytest.approx(10.0)  # corrected once only, 100 steps would take 17.5 s
    history = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == [15, 30, 45, 55]
    kill, clock[0] = True, 0.0
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, tmp_path / "k")
    assert committed_state(tmp_path / "k")["total_steps"] == 55  # committed with epoch 3
    kill = False
    resumed = fit(None, tmp_path / "k", resume=True)
    assert resumed["budget_steps"] == 55 and resumed["train_seconds"] == pytest.approx(10.0)
    assert resumed["splits"] == res["splits"]


def test_sigkill_during_a_budgeted_run_then_resume_gives_the_same_metrics(tmp_path, motif_data):
    cfg = tiny_config(motif_data, epochs=5, batch_size=8, checkpoint_every=5, budget="130 steps")
    straight, run = kill_and_resume(cfg, tmp_path)
    a = json.loads((straight / "results.json").read_text())
    b = json.loads((run / "results.json").read_text())
    assert a["splits"] == b["splits"] and a["budget_steps"] == b["budget_steps"] == 130


def test_mcc_at_the_validation_threshold():
    rng = np.random.default_rng(0)
    labels = (rng.random(2000) < 0.25).astype(np.float32)  # 1:3, as small promoter sets are
    scores = np.clip(0.15 + 0.25 * labels + rng.normal(0, 0.1, 2000), 0, 1)  # calibrated too low
    thr = best_mcc_threshold(scores, labels)
    acc = BinaryMetrics()
    acc.update(scores[:, None], labels[:, None])
    at = acc.at_threshold(thr)
    assert acc.best_threshold() == pytest.approx(thr, abs=1e-6) and 0.2 < thr < 0.5
    assert at["mcc_at_threshold"] > acc.compute()["mcc"] + 0.1
    # the brute-force maximum over every threshold
    best = max(acc.at_threshold(t)["mcc_at_threshold"] for t in np.unique(scores))
    assert at["mcc_at_threshold"] == pytest.approx(best)


def test_binary_runs_report_metrics_at_the_validation_threshold(motif_data, tmp_path):
    res = fit(config_from_dict(tiny_config(motif_data, epochs=1), "t"), tmp_path / "r")
    assert 0 < res["threshold"] < 1
    for split in ("valid", "test"):
        assert {"mcc_at_threshold", "accuracy_at_threshold"} <= set(res["splits"][split])
    assert res["splits"]["valid"]["mcc_at_threshold"] >= res["splits"]["valid"]["mcc"]


def test_evaluate_reports_metrics_at_the_runs_threshold(motif_data, tmp_path):
    from helixlab.apply.evaluate import evaluate_run
    from helixlab.run.loaded import load_run

    res = fit(config_from_dict(tiny_config(motif_data, epochs=1), "t"), tmp_path / "r")
    metrics = evaluate_run(load_run(tmp_path / "r"), motif_data["test"], progress=False)
    assert metrics["mcc_at_threshold"] == pytest.approx(res["splits"]["test"]["mcc_at_threshold"])
