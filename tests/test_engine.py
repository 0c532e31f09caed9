"""Training: learning, determinism, exact resume after SIGKILL, DDP over gloo, evaluate and predict."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helixlab.cli import main
from helixlab.config import config_from_dict
from helixlab.train import fit
from helixlab.train.loop import lr_factor
from tests.conftest import kill_and_resume, tiny_config

METRIC_KEYS = ("loss", "accuracy", "mcc", "auroc")


def final_metrics(run: Path) -> dict[str, float]:
    return json.loads((run / "results.json").read_text())["splits"]["test"]


def test_training_learns_the_planted_motif_and_writes_the_run(tmp_path, motif_data):
    results = fit(config_from_dict(tiny_config(motif_data, epochs=4), "test"), tmp_path / "run")
    assert results["splits"]["test"]["accuracy"] > 0.85
    run = tmp_path / "run"
    for name in ("config.json", "run.json", "metrics.jsonl", "results.json", "report.md",
                 "checkpoints/best.safetensors", "checkpoints/last.safetensors",
                 "plots/learning_curves.png", "plots/roc_pr_test.png"):
        assert (run / name).exists(), name
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 4
    assert "plots/roc_pr_test.png" in (run / "report.md").read_text()


def test_same_seed_same_metrics_and_refuses_overwrite(tmp_path, motif_data):
    cfg = config_from_dict(tiny_config(motif_data, epochs=2), "test")
    a = fit(cfg, tmp_path / "a")["splits"]["test"]
    b = fit(cfg, tmp_path / "b")["splits"]["test"]
    assert a == b
    from helixlab.errors import HelixError

    with pytest.raises(HelixError, match="already exists"):
        fit(cfg, tmp_path / "a")


def test_early_stopping_stops_when_the_monitor_stalls(tmp_path, motif_data):
    # a learning rate of 1e-12 cannot move any prediction across 0.5: valid accuracy stalls after epoch 1
    cfg = config_from_dict(tiny_config(motif_data, epochs=30, patience=2, lr=1e-12, schedule="constant",
                                       monitor="accuracy"), "test")
    res = fit(cfg, tmp_path / "run")
    assert res["epochs"] == 3 and res["stopped_early"] and res["best_epoch"] == 1


def test_lr_schedules():
    assert lr_factor(0, 100, "cosine", 0.1) == pytest.approx(0.1)
    assert lr_factor(10, 100, "cosine", 0.1) == pytest.approx(1.0)
    assert lr_factor(100, 100, "cosine", 0.1) == pytest.approx(0.0, abs=1e-9)
    assert lr_factor(30, 100, "onecycle", 0.0) == pytest.approx(1.0)
    assert lr_factor(0, 100, "onecycle", 0.0) == pytest.approx(0.04)


def test_sigkill_mid_epoch_then_resume_gives_the_same_metrics(tmp_path, motif_data):
    cfg = tiny_config(motif_data, epochs=8, batch_size=8, checkpoint_every=5, rc_augment=True)
    cfg["model"]["params"]["dropout"] = 0.3
    straight, run = kill_and_resume(cfg, tmp_path)
    a, b = final_metrics(straight), final_metrics(run)
    assert {k: a[k] for k in METRIC_KEYS} == {k: b[k] for k in METRIC_KEYS}
    hist_a = [json.loads(x) for x in (straight / "metrics.jsonl").read_text().splitlines()]
    hist_b = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [h["valid_loss"] for h in hist_a] == [h["valid_loss"] for h in hist_b]


def train_ddp(cfg: dict, tmp_path: Path) -> Path:
    """`helixlab train` as 2 DDP processes over gloo; returns the run directory."""
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(json.dumps(cfg))
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "helixlab", "train", str(cfg_path), "-o", str(run)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run


def test_ddp_with_a_time_budget_agrees_on_one_step_count(tmp_path, motif_data):
    run = train_ddp(tiny_config(motif_data, budget="2s"), tmp_path)
    res = json.loads((run / "results.json").read_text())
    history = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert res["budget_steps"] > 0 and history[-1]["step"] == res["budget_steps"]


def test_ddp_two_processes_over_gloo(tmp_path, motif_data):
    run = train_ddp(tiny_config(motif_data, epochs=2), tmp_path)
    info = json.loads((run / "run.json").read_text())
    assert info["world_size"] == 2
    assert final_metrics(run)["accuracy"] > 0.6
    # resuming a finished DDP run with the same world size is a no-op that re-writes the results
    assert (run / "checkpoints" / "last.safetensors").exists()


def test_evaluate_and_predict_cli(tmp_path, motif_data, capsys):
    run = tmp_path / "run"
    fit(config_from_dict(tiny_config(motif_data, epochs=2), "test"), run)
    capsys.readouterr()
    assert main(["evaluate", str(run), str(motif_data["test"]), "-o", str(tmp_path / "m.json")]) == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["accuracy"] == pytest.approx(final_metrics(run)["accuracy"])
    fasta = tmp_path / "q.fa"
    seqs = [line.split(",")[0] for line in motif_data["test"].read_text().splitlines()[1:6]]
    fasta.write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(seqs)))
    out = tmp_path / "pred.csv"
    assert main(["predict", str(run), str(fasta), "-o", str(out), "--rc-average"]) == 0
    rows = out.read_text().splitlines()
    assert rows[0] == "id,prediction" and len(rows) == 6 and rows[1].startswith("s0,")
    assert all(0.0 <= float(r.split(",")[1]) <= 1.0 for r in rows[1:])


def test_predict_rejects_wrong_length_and_leaves_no_output(tmp_path, motif_data, capsys):
    run = tmp_path / "run"
    fit(config_from_dict(tiny_config(motif_data, epochs=1), "test"), run)
    fasta = tmp_path / "q.fa"
    fasta.write_text(">a\n" + "A" * 40 + "\n>b\n" + "A" * 39 + "\n")
    out = tmp_path / "pred.csv"
    capsys.readouterr()
    assert main(["predict", str(run), str(fasta), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "q.fa, line 3" in err and "length 39" in err
    assert not out.exists()


# the trainer state exactly as runs written before `TrainerState` existed stored it (a plain JSON dict);
# the oldest runs had no training-loss trace yet
OLD_STATE_KEYS = ("epoch", "batch", "step", "loss_sum", "loss_n", "best", "best_epoch", "bad_epochs", "done",
                  "history", "train_seconds", "seqs_seen", "trace", "win_sum", "win_n")


@pytest.mark.parametrize("keys", [OLD_STATE_KEYS, OLD_STATE_KEYS[:12]])
def test_a_run_written_at_the_old_layout_loads_predicts_and_resumes(tmp_path, motif_data, monkeypatch, keys):
    from safetensors import safe_open
    from safetensors.torch import save_file

    from helixlab.apply.api import load
    from helixlab.train import loop

    cfg = config_from_dict(tiny_config(motif_data, epochs=2, checkpoint_every=5), "test")
    straight = fit(cfg, tmp_path / "straight")
    real, saved = loop.save_training_state, []

    def crash_after_second(*args, **kwargs):  # as a kill -9 after the second checkpoint (mid epoch 1)
        real(*args, **kwargs)
        saved.append(1)
        if len(saved) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "save_training_state", crash_after_second)
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, tmp_path / "old")
    monkeypatch.undo()
    last = tmp_path / "old" / "checkpoints" / "last.safetensors"
    with safe_open(str(last), framework="pt") as fh:
        tensors, meta = {k: fh.get_tensor(k) for k in fh.keys()}, dict(fh.metadata())
    state = json.loads(meta["trainer"])
    assert set(state) == {*OLD_STATE_KEYS, "total_steps", "probe_steps"}  # the old keys unchanged; two added
    meta["trainer"] = json.dumps({k: state[k] for k in keys})
    save_file(tensors, str(last), metadata=meta)
    resumed = fit(None, tmp_path / "old", resume=True)  # type: ignore[arg-type]
    assert resumed["splits"] == straight["splits"]
    probs = load(tmp_path / "old", device="cpu").predict(str(motif_data["test"]))
    assert probs.shape == (160, 1) and ((probs >= 0) & (probs <= 1)).all()
