"""Regression and multi-class training end to end on tiny analytic data."""

from __future__ import annotations

import json

import numpy as np

from helixlab.config import config_from_dict
from helixlab.seq import alphabet
from helixlab.train import fit
from tests.conftest import write_csv


def _gc_rows(n: int, seed: int, length: int) -> list[tuple[str, float]]:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        codes = rng.integers(0, 4, size=int(rng.integers(length - 3, length + 1))).astype(np.uint8)
        rows.append((alphabet.decode(codes), float(((codes == 1) | (codes == 2)).mean())))
    return rows


def test_regression_with_huber_on_variable_lengths(tmp_path):
    data = {s: write_csv(tmp_path / f"{s}.tsv", _gc_rows(n, k, 30), header="sequence\texpression")
            for s, n, k in (("train", 400, 1), ("valid", 100, 2), ("test", 100, 3))}
    for p in data.values():  # make them real TSVs
        p.write_text(p.read_text().replace(",", "\t"))
    cfg = {"data": {k: str(v) for k, v in data.items()},
           "model": {"name": "cnn", "params": {"channels": [16], "kernels": [3], "pools": [1], "pooling": "mean",
                                               "hidden": [16], "dropout": 0.0}},
           "task": {"kind": "regression", "loss": "huber", "huber_delta": 0.5},
           "train": {"epochs": 6, "batch_size": 32, "lr": 5e-3, "progress": False, "threads": 1}}
    res = fit(config_from_dict(cfg, "test"), tmp_path / "run")
    assert res["splits"]["test"]["pearson"] > 0.8
    assert (tmp_path / "run" / "plots" / "pred_vs_measured_test.png").exists()
    assert json.loads((tmp_path / "run" / "run.json").read_text())["seq_len"] is None


def test_multiclass_predicts_the_majority_base(tmp_path):
    rng = np.random.default_rng(0)

    def rows(n: int) -> list[tuple[str, int]]:
        out = []
        for _ in range(n):
            k = int(rng.integers(0, 3))
            codes = np.where(rng.random(24) < 0.6, k, rng.integers(0, 4, 24)).astype(np.uint8)
            out.append((alphabet.decode(codes), k))
        return out

    data = {s: write_csv(tmp_path / f"{s}.csv", rows(n)) for s, n in (("train", 300), ("valid", 90), ("test", 90))}
    cfg = {"data": {k: str(v) for k, v in data.items()},
           "model": {"name": "kmer_linear", "params": {"ks": [1]}},
           "task": {"kind": "multiclass", "n_classes": 3},
           "train": {"epochs": 8, "batch_size": 32, "lr": 5e-2, "progress": False, "threads": 1}}
    res = fit(config_from_dict(cfg, "test"), tmp_path / "run")
    assert res["splits"]["test"]["accuracy"] > 0.9
