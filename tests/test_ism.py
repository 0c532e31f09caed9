"""Windowed ISM of convolutional models equals plain ISM (every mutant a full forward pass)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helixlab.errors import HelixError
from helixlab.interpret.ism import Prediction, ism
from helixlab.models.cnn import CNN, CNNConfig
from helixlab.tasks.task import TaskConfig, make_task

SHAPES = [
    dict(channels=[8, 8], kernels=[9, 9], pools=[2, 2], pooling="maxmean"),
    dict(channels=[6, 6, 6], kernels=[4, 5, 3], pools=[1, 3, 2], pooling="max", dilations=[1, 2, 3]),
    dict(channels=[8, 8], kernels=[7, 6], pools=[2, 1], pooling="mean", residual=True, activation="gelu"),
    dict(channels=[5], kernels=[8], pools=[2], pooling="flatten"),
    dict(channels=[6, 6], kernels=[5, 3], pools=[2, 1], pooling="flatten_maxmean", residual=True),
    dict(channels=[8, 8], kernels=[7, 5], pools=[1, 2], pooling="maxmean", bottleneck=3),
]


def _model(shape: dict, length: int, n_outputs: int = 2, seed: int = 0) -> CNN:
    torch.manual_seed(seed)
    net = CNN(CNNConfig(**shape, hidden=[8], dropout=0.1), length, n_outputs)
    for m in net.modules():  # batch-norm statistics that are not the identity
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return net.eval()


@pytest.mark.parametrize("shape", SHAPES)
def test_windowed_equals_plain(shape: dict) -> None:
    length = 37
    X = np.random.default_rng(1).integers(0, 4, size=(5, length)).astype(np.uint8)
    X[1, 3] = X[2, 20] = 4  # N positions are not mutated
    net = _model(shape, length)
    for target in (0, 1):
        plain = ism(net, X, target=target, local="no")
        fast = ism(net, X, target=target, local="yes", batch_size=2)
        scale = np.abs(plain).max()
        assert scale > 0
        np.testing.assert_allclose(fast, plain, atol=1e-4 * scale, rtol=0)
        assert not fast[1, :, 3].any() and not fast[2, :, 20].any()
        ref = np.eye(4, dtype=bool)[np.minimum(X, 3)].transpose(0, 2, 1)
        assert not fast[ref].any()  # zero at the reference base


def test_windowed_binned_regression() -> None:
    length = 30
    net = _model(SHAPES[0], length, n_outputs=6)
    task = make_task(TaskConfig(kind="regression", bins=6), 1)
    X = np.random.default_rng(2).integers(0, 4, size=(3, length)).astype(np.uint8)
    value = Prediction(net, task)
    np.testing.assert_allclose(ism(value, X, local="yes"), ism(value, X, local="no"), atol=1e-5)


def test_local_required_but_not_possible() -> None:
    from helixlab.models.registry import build_model

    net = build_model("gru", {}, 20, 1)
    with pytest.raises(HelixError, match="windowed ISM needs"):
        ism(net, np.zeros((1, 20), np.uint8), local="yes")
    attention = _model({**SHAPES[3], "attention": 1, "heads": 5}, 20)  # every position reads every base
    with pytest.raises(HelixError, match="without attention"):
        ism(attention, np.zeros((1, 20), np.uint8), local="yes")
    X = np.random.default_rng(3).integers(0, 4, size=(2, 20)).astype(np.uint8)
    np.testing.assert_array_equal(ism(attention, X), ism(attention, X, local="no"))  # auto: plain
    with pytest.raises(HelixError, match="local must be"):
        ism(net, np.zeros((1, 20), np.uint8), local="maybe")
