"""train.ema: the weight average is what validation scores and the best checkpoint keeps, and it resumes exactly."""

from __future__ import annotations

import json

import pytest
import torch

from helixlab.config import config_from_dict
from helixlab.errors import HelixError
from helixlab.models.weights import read
from helixlab.train import fit
from helixlab.train.averaging import WeightAverage
from tests.conftest import kill_and_resume, tiny_config


def test_the_average_follows_the_ema_formula_and_is_swapped_in_and_out():
    model = torch.nn.Linear(3, 1)
    avg = WeightAverage(model, 0.5)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    avg.update(model, step=100)  # decay min(0.5, 101/110) = 0.5
    assert torch.allclose(avg.shadow["weight"], start + 0.5)
    with avg.applied(model):
        assert torch.allclose(model.weight, start + 0.5)
    assert torch.allclose(model.weight, start + 1.0)


def test_the_ramp_sets_the_decay_until_it_reaches_the_configured_one():
    def shadow_after(decay: float, steps: int) -> torch.Tensor:
        model = torch.nn.Linear(1, 1, bias=False)
        torch.nn.init.zeros_(model.weight)
        avg = WeightAverage(model, decay)
        for step in range(1, steps + 1):
            with torch.no_grad():
                model.weight.fill_(float(step))
            avg.update(model, step)
        return avg.shadow["weight"]

    # (1 + step) / (10 + step) stays below 0.995 until step 1,790: 0.999 and 0.9995 give the same average
    assert torch.equal(shadow_after(0.999, 1000), shadow_after(0.9995, 1000))
    assert not torch.equal(shadow_after(0.99, 1000), shadow_after(0.999, 1000))  # 0.99 binds from step 890


def test_an_ema_run_keeps_the_average_as_its_best_checkpoint(motif_data, tmp_path):
    res = fit(config_from_dict(tiny_config(motif_data, epochs=3, ema=0.9), "t"), tmp_path / "r")
    assert res["splits"]["test"]["accuracy"] > 0.8
    best, _ = read(tmp_path / "r" / "checkpoints" / "best.safetensors")
    last, _ = read(tmp_path / "r" / "checkpoints" / "last.safetensors")
    assert res["best_epoch"] == 3
    for key, value in best.items():  # the best (last epoch) weights are the average, not the trained ones
        assert torch.equal(value, last[f"ema.{key}"])
    assert any(not torch.equal(v, last[f"model.{k}"]) for k, v in best.items())
    assert "moving average of the weights (decay 0.9)" in (tmp_path / "r" / "MODEL_CARD.md").read_text()
    with pytest.raises(HelixError, match="train.ema"):
        config_from_dict(tiny_config(motif_data, ema=1.0), "t")


@pytest.mark.parametrize("average", [{"ema": 0.98}, {"swa": 0.6}], ids=["ema", "swa"])
def test_sigkill_then_resume_with_an_average_gives_the_same_metrics(tmp_path, motif_data, average):
    cfg = tiny_config(motif_data, epochs=4, batch_size=8, checkpoint_every=5, **average)
    straight, run = kill_and_resume(cfg, tmp_path)
    a = json.loads((straight / "results.json").read_text())
    b = json.loads((run / "results.json").read_text())
    assert a["splits"] == b["splits"]


def test_swa_is_the_plain_mean_of_the_states_after_its_start():
    model = torch.nn.Linear(3, 1)
    avg = WeightAverage(model, None, start=2)
    first = model.weight.detach().clone()
    for step in (1, 2, 3, 4, 5):
        with torch.no_grad():
            model.weight.copy_(first + step)
        avg.update(model, step)
        assert avg.covers(step) == (step > 2)
    assert torch.allclose(avg.shadow["weight"], first + 4)  # the mean of the states after steps 3, 4 and 5


def test_an_swa_run_holds_the_lr_and_keeps_the_average(motif_data, tmp_path):
    res = fit(config_from_dict(tiny_config(motif_data, epochs=4, swa=0.5, monitor="loss"), "t"), tmp_path / "r")
    history = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert history[2]["lr"] == history[3]["lr"] < history[0]["lr"]  # held over the averaged half
    best, _ = read(tmp_path / "r" / "checkpoints" / "best.safetensors")
    last, _ = read(tmp_path / "r" / "checkpoints" / "last.safetensors")
    assert res["best_epoch"] == 4  # the average of the held-lr half is the best model here
    assert all(torch.equal(v, last[f"ema.{k}"]) for k, v in best.items())
    assert any(not torch.equal(v, last[f"model.{k}"]) for k, v in best.items())
    assert "the last 50% of the schedule (SWA)" in (tmp_path / "r" / "MODEL_CARD.md").read_text()
    for bad, key in ((dict(swa=1.5), "train.swa"), (dict(swa=0.3, ema=0.99), "train.swa")):
        with pytest.raises(HelixError, match=key):
            config_from_dict(tiny_config(motif_data, **bad), "t")

