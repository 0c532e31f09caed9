"""Ensembles: `helixlab ensemble RUN_DIR... -o DIR`, used like a run by evaluate, predict, score-variants,
ISM and helixlab.load; members checked; a killed build leaves nothing that looks finished."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import helixlab
from helixlab.cli import main
from helixlab.config import config_from_dict
from helixlab.errors import HelixError
from helixlab.run import ensemble as ensemble_mod
from helixlab.run.ensemble import build_ensemble
from helixlab.tasks import make_task
from helixlab.tasks.task import TaskConfig
from helixlab.train import fit
from tests.conftest import motif_rows, tiny_config, write_csv


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> tuple[list[Path], dict[str, Path]]:
    tmp = tmp_path_factory.mktemp("ens")
    data = {split: write_csv(tmp / f"{split}.csv", motif_rows(n, 40, seed))
            for split, n, seed in (("train", 480, 1), ("valid", 160, 2), ("test", 160, 3))}
    runs = []
    for seed in range(3):
        fit(config_from_dict(tiny_config(data, epochs=2, seed=seed), "test"), tmp / f"seed{seed}")
        runs.append(tmp / f"seed{seed}")
    return runs, data


def test_combine_averages_probabilities_and_values():
    outs = [torch.tensor([[2.0], [-1.0]]), torch.tensor([[0.0], [1.0]])]
    binary = make_task(TaskConfig(kind="binary"), 1)
    assert torch.allclose(binary.activate(binary.combine(outs)),
                          (torch.sigmoid(outs[0]) + torch.sigmoid(outs[1])) / 2, atol=1e-6)
    multi = make_task(TaskConfig(kind="multiclass", n_classes=3), 1)
    logits = [torch.randn(4, 3), torch.randn(4, 3)]
    assert torch.allclose(multi.activate(multi.combine(logits)),
                          (logits[0].softmax(-1) + logits[1].softmax(-1)) / 2, atol=1e-6)
    reg = make_task(TaskConfig(kind="regression"), 1)
    assert torch.allclose(reg.combine(outs), torch.tensor([[1.0], [0.0]]))
    binned = make_task(TaskConfig(kind="regression", bins=5, bin_range=[0.0, 4.0]), 1)
    logits = [torch.randn(4, 5), torch.randn(4, 5)]
    assert torch.allclose(binned.activate(binned.combine(logits)),
                          (binned.activate(logits[0]) + binned.activate(logits[1])) / 2, atol=1e-5)


def test_an_ensemble_is_used_like_a_run(seeds, tmp_path, capsys):
    runs, data = seeds
    out = tmp_path / "ens"
    assert main(["ensemble", *map(str, runs), "-o", str(out)]) == 0
    assert {"ensemble.json", "results.json", "MODEL_CARD.md", "report.md"} <= {p.name for p in out.iterdir()}
    results = json.loads((out / "results.json").read_text())
    assert {"valid", "test"} <= set(results["splits"]) and "mcc_at_threshold" in results["splits"]["test"]
    card = (out / "MODEL_CARD.md").read_text()
    assert "ensemble" in card and all(str(r) in card for r in runs)
    # the Python API: the mean of the members' probabilities
    ens = helixlab.load(out, device="cpu")
    assert "ensemble of 3" in repr(ens)
    members = np.stack([helixlab.load(r, device="cpu").predict(str(data["test"])) for r in runs])
    assert np.allclose(ens.predict(str(data["test"])), members.mean(0), atol=1e-5)
    assert ens.embed(str(data["test"])).shape[1] == 3 * helixlab.load(runs[0]).embed("ACGT" * 10).shape[1]
    # with strand averaging, each member averages its strands before the members are combined
    both = np.stack([helixlab.load(r, device="cpu").predict(str(data["test"]), rc_average=True) for r in runs])
    assert np.allclose(ens.predict(str(data["test"]), rc_average=True), both.mean(0), atol=1e-5)
    # evaluate and predict take it like a run
    capsys.readouterr()
    assert main(["evaluate", str(out), str(data["test"]), "-o", str(tmp_path / "m.json")]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["auroc"] == pytest.approx(results["splits"]["test"]["auroc"])
    assert main(["predict", str(out), str(data["test"]), "-o", str(tmp_path / "p.csv")]) == 0
    with open(tmp_path / "p.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert np.allclose([float(r["prediction"]) for r in rows], members.mean(0)[:, 0], atol=1e-5)
    # score-variants and ISM
    (tmp_path / "v.csv").write_text("sequence,position,ref,alt\n" + "ACGT" * 10 + ",3,T,A\n")
    assert main(["score-variants", str(out), str(tmp_path / "v.csv"), "-o", str(tmp_path / "e.csv")]) == 0
    assert main(["interpret", "attributions", str(out), str(data["test"]), "--limit", "2", "-o",
                 str(tmp_path / "a.npz")]) == 0
    # members are recorded relative to the ensemble, so the two can move together
    rel = json.loads((out / "ensemble.json").read_text())["members"]
    assert all(not Path(m).is_absolute() for m in rel)


def test_ensemble_members_are_checked(seeds, tmp_path, motif_data):
    runs, data = seeds
    with pytest.raises(HelixError, match="at least two"):
        build_ensemble(runs[:1], tmp_path / "one")
    with pytest.raises(HelixError, match="given twice"):
        build_ensemble([runs[0], runs[0]], tmp_path / "twice")
    (tmp_path / "notrun").mkdir()
    with pytest.raises(HelixError, match="not a helixlab run directory") as exc:
        build_ensemble([runs[0], tmp_path / "notrun"], tmp_path / "bad")
    assert "notrun" in str(exc.value)
    unfinished = tmp_path / "unfinished"
    shutil.copytree(runs[1], unfinished)
    (unfinished / "results.json").unlink()
    with pytest.raises(HelixError, match="not a finished run"):
        build_ensemble([runs[0], unfinished], tmp_path / "bad")
    # a member of another task, or another input length
    regression = [(s, float(y)) for s, y in motif_rows(200, 40, 5)]
    reg_data = {split: write_csv(tmp_path / f"r{split}.csv", regression) for split in ("train", "valid")}
    cfg = tiny_config(reg_data, epochs=1)
    cfg["task"] = {"kind": "regression"}
    fit(config_from_dict(cfg, "t"), tmp_path / "reg")
    with pytest.raises(HelixError, match="differ in task"):
        build_ensemble([runs[0], tmp_path / "reg"], tmp_path / "bad")
    longer = {split: write_csv(tmp_path / f"l{split}.csv", motif_rows(200, 50, 7)) for split in ("train", "valid")}
    fit(config_from_dict(tiny_config(longer, epochs=1), "t"), tmp_path / "long")
    with pytest.raises(HelixError, match="differ in input length"):
        build_ensemble([runs[0], tmp_path / "long"], tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
    # never over an existing directory; an ensemble is not a member
    build_ensemble(runs[:2], tmp_path / "ens")
    with pytest.raises(HelixError, match="already exists"):
        build_ensemble(runs[:2], tmp_path / "ens")
    with pytest.raises(HelixError, match="cannot be a member"):
        build_ensemble([tmp_path / "ens", runs[2]], tmp_path / "nested")


def test_a_failed_build_leaves_no_directory(seeds, tmp_path, monkeypatch):
    runs, _ = seeds

    def boom(*args, **kwargs):
        raise KeyboardInterrupt  # as a kill in the middle of writing would

    monkeypatch.setattr(ensemble_mod, "write_ensemble_card", boom)
    with pytest.raises(KeyboardInterrupt):
        build_ensemble(runs[:2], tmp_path / "ens")
    assert list(tmp_path.iterdir()) == []
