"""train.log = "tensorboard": curves in RUN_DIR/tb that a resumed run continues without duplicated steps."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import kill_and_resume, tiny_config


def _scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tb"))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tensorboard_curves_continue_after_kill(motif_data, tmp_path):
    cfg = tiny_config(motif_data, epochs=4, batch_size=8, checkpoint_every=7, log="tensorboard")
    straight, killed = kill_and_resume(cfg, tmp_path)
    a, b = _scalars(straight), _scalars(killed)
    assert {"train/loss", "train/lr", "epoch/train_loss", "epoch/seq_per_s", "valid/auroc"} <= set(a)
    assert len(a["valid/auroc"]) == 4
    for tag in ("train/loss", "train/lr", "epoch/train_loss", "valid/auroc"):
        steps = [s for s, _ in b[tag]]
        assert steps == sorted(set(steps)), f"{tag}: duplicated or unordered steps {steps}"
        assert steps == [s for s, _ in a[tag]]
    assert [round(v, 5) for _, v in b["valid/auroc"]] == [round(v, 5) for _, v in a["valid/auroc"]]
