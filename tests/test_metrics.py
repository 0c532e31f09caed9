import math

import numpy as np
import pytest

from helixlab.tasks.metrics import (BinaryMetrics, MulticlassMetrics, RegressionMetrics, auroc, average_precision,
                                    spearman)


def test_auroc_hand_computed_with_ties():
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.4])
    labels = np.array([0, 0, 1, 1, 1])
    # positive-negative pairs: (0.35>0.1) (0.35<0.4) (0.8>both) (0.4>0.1) (0.4=0.4 -> 1/2): 4.5 / 6
    assert auroc(scores, labels) == pytest.approx(4.5 / 6)


def test_average_precision_hand_computed():
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    labels = np.array([1, 0, 1, 0])
    assert average_precision(scores, labels) == pytest.approx(0.5 * 1.0 + 0.5 * (2 / 3))


def test_binary_counts_and_mcc():
    m = BinaryMetrics()
    m.update(np.array([[0.9], [0.2], [0.7], [0.4]]), np.array([[1], [0], [0], [1]]))
    out = m.compute()
    assert out["accuracy"] == 0.5
    assert out["precision"] == 0.5 and out["recall"] == 0.5
    assert out["mcc"] == pytest.approx(0.0)


def test_streaming_equals_one_shot():
    rng = np.random.default_rng(0)
    pred, y = rng.normal(size=(1000, 1)), rng.normal(size=(1000, 1))
    a, b = RegressionMetrics(1), RegressionMetrics(1)
    a.update(pred, y)
    for i in range(0, 1000, 77):
        b.update(pred[i : i + 77], y[i : i + 77])
    assert a.compute() == pytest.approx(b.compute())
    assert a.compute()["pearson"] == pytest.approx(np.corrcoef(pred[:, 0], y[:, 0])[0, 1])


def test_spearman_is_pearson_of_ranks():
    x = np.array([1.0, 2.0, 2.0, 5.0])
    y = np.array([3.0, 1.0, 2.0, 4.0])
    ranks_x = np.array([1, 2.5, 2.5, 4])
    ranks_y = np.array([3, 1, 2, 4.0])
    assert spearman(x, y) == pytest.approx(np.corrcoef(ranks_x, ranks_y)[0, 1])


def test_multiclass_confusion():
    m = MulticlassMetrics(3)
    prob = np.eye(3)[[0, 1, 2, 2]]
    m.update(prob, np.array([[0], [1], [2], [1]]))
    out = m.compute()
    assert out["accuracy"] == 0.75
    assert out["recall_class1"] == 0.5
    assert not math.isnan(out["mcc"])
