"""Training-only regularisers: label smoothing (task.label_smoothing), shift augmentation
(train.shift_augment) and base masking (train.mask_augment)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helixlab.config import config_from_dict
from helixlab.data.batches import mask_augment, shift_augment
from helixlab.errors import HelixError
from helixlab.seq.alphabet import N_CODE
from helixlab.tasks import TaskConfig, make_task
from tests.conftest import kill_and_resume, tiny_config


class _Fixed(torch.nn.Module):
    """Returns the same logits whatever x: isolates the task's loss."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits


def test_shift_moves_each_row_by_its_own_offset_and_fills_with_n():
    x = torch.arange(20, dtype=torch.uint8).remainder(4).repeat(64, 1)
    x[:, 0] = 3
    out = shift_augment(x, 3, seed=5, epoch=2, batch=7)
    assert out.shape == x.shape and out.dtype == x.dtype
    seen = set()
    for row, moved in zip(x, out, strict=True):
        matches = [k for k in range(-3, 4)
                   if torch.equal(moved[max(k, 0):20 + min(k, 0)], row[max(-k, 0):20 - max(k, 0)])
                   and bool((moved[:k] == N_CODE).all() if k > 0 else (moved[20 + k:] == N_CODE).all() if k else True)]
        assert matches, "every row is its input moved by at most 3 bases, padded with N"
        seen.add(matches[0])
    assert seen == set(range(-3, 4))  # 64 rows draw every offset
    assert torch.equal(out, shift_augment(x, 3, seed=5, epoch=2, batch=7))  # a function of the key only
    assert not torch.equal(out, shift_augment(x, 3, seed=5, epoch=2, batch=8))


def test_mask_hides_about_the_fraction_asked_and_moves_nothing():
    x = torch.randint(0, 4, (256, 70), generator=torch.Generator().manual_seed(0)).to(torch.uint8)
    out = mask_augment(x, 0.1, seed=5, epoch=2, batch=7)
    assert out.shape == x.shape and out.dtype == x.dtype
    hidden = out != x
    assert bool((out[hidden] == N_CODE).all())  # every change is an N, in place
    assert 0.08 < hidden.float().mean().item() < 0.12
    assert torch.equal(out, mask_augment(x, 0.1, seed=5, epoch=2, batch=7))  # a function of the key only
    assert not torch.equal(out, mask_augment(x, 0.1, seed=5, epoch=3, batch=7))


def test_label_smoothing_changes_the_training_loss_only():
    logits = torch.tensor([[2.0], [-1.0], [0.5]])
    y = np.array([[1.0], [0.0], [1.0]], dtype=np.float32)
    task = make_task(TaskConfig(kind="binary", label_smoothing=0.2), 1)
    net = _Fixed(logits)
    net.train()
    loss, _ = task.step(net, torch.zeros(3, 10, dtype=torch.uint8), y, key=(0, 0, 0))
    expected = F.binary_cross_entropy_with_logits(logits, torch.tensor([[0.9], [0.1], [0.9]]))
    assert torch.allclose(loss, expected)
    net.eval()  # validation and test: the labels as they are
    loss, _ = task.step(net, torch.zeros(3, 10, dtype=torch.uint8), y, key=(0, 0, 0))
    assert torch.allclose(loss, F.binary_cross_entropy_with_logits(logits, torch.from_numpy(y)))

    logits3 = torch.tensor([[2.0, 0.0, -1.0], [0.1, 0.2, 0.3]])
    multi = make_task(TaskConfig(kind="multiclass", n_classes=3, label_smoothing=0.3), 1)
    net3 = _Fixed(logits3).train()
    loss, _ = multi.step(net3, torch.zeros(2, 10, dtype=torch.uint8), np.array([[0.0], [2.0]]), key=(0, 0, 0))
    soft = torch.tensor([[0.8, 0.1, 0.1], [0.1, 0.1, 0.8]])
    assert torch.allclose(loss, -(soft * torch.log_softmax(logits3, -1)).sum(-1).mean())


def test_the_regularisers_train_resume_and_show_in_the_card(motif_data, tmp_path):
    cfg = tiny_config(motif_data, epochs=6, batch_size=16, checkpoint_every=7, shift_augment=2, mask_augment=0.05)
    cfg["task"]["label_smoothing"] = 0.1
    straight, run = kill_and_resume(cfg, tmp_path)
    a = json.loads((straight / "results.json").read_text())["splits"]["test"]
    b = json.loads((run / "results.json").read_text())["splits"]["test"]
    assert a == b  # killed and resumed: the same shifts, the same metrics
    assert a["auroc"] > 0.9  # the planted motif is found wherever it moved
    card = (straight / "MODEL_CARD.md").read_text()
    assert "shifts of up to 2 bases" in card and "label smoothing 0.1" in card and "5% of bases masked" in card


@pytest.mark.parametrize(("section", "key", "value", "kind"), [
    ("task", "label_smoothing", 1.0, "binary"),
    ("task", "label_smoothing", -0.1, "binary"),
    ("task", "label_smoothing", "a little", "binary"),
    ("task", "label_smoothing", 0.1, "regression"),
    ("train", "shift_augment", -1, "binary"),
    ("train", "shift_augment", 1.5, "binary"),
    ("train", "shift_augment", 2, "mlm"),
    ("train", "mask_augment", 1.0, "binary"),
    ("train", "mask_augment", -0.1, "binary"),
    ("train", "mask_augment", "some", "binary"),
    ("train", "mask_augment", 0.1, "mlm"),
])
def test_bad_regulariser_values_name_their_key(section, key, value, kind):
    cfg = tiny_config({"train": "x.csv"})
    cfg["task"]["kind"] = kind
    cfg[section][key] = value
    with pytest.raises(HelixError, match=f"{section}.{key}") as err:
        config_from_dict(cfg, "recipe.toml")
    assert "recipe.toml" in str(err.value)
