"""Numeric precision: train.precision / --precision (auto, fp32, bf16), bf16 autocast on the CPU, recurrent
layers kept in fp32, and what `auto` picks per device and model family."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import helixlab
from helixlab.cli import main
from helixlab.config import config_from_dict
from helixlab.errors import HelixError
from helixlab.models import build_model
from helixlab.models import base as model_base
from helixlab.models.base import autocast, resolve_precision
from helixlab.train import fit
from tests.conftest import tiny_config

CPU = torch.device("cpu")


def test_auto_is_fp32_on_a_cpu_without_bf16_units_and_per_family_with_them(monkeypatch):
    cnn = build_model("cnn", {"channels": [8], "kernels": [5], "pools": [1], "hidden": [8]}, 40, 1)
    gru = build_model("gru", {"hidden_size": 8, "hidden": [8]}, 40, 1)
    cnn_gru = build_model("cnn_gru", {"channels": [8], "kernels": [5], "pools": [1], "hidden_size": 8,
                                      "hidden": [8]}, 40, 1)
    monkeypatch.setattr(model_base, "cpu_has_bf16", lambda: False)
    assert {resolve_precision("auto", CPU, m) for m in (cnn, gru, cnn_gru)} == {"fp32"}
    monkeypatch.setattr(model_base, "cpu_has_bf16", lambda: True)
    assert resolve_precision("auto", CPU, cnn) == "bf16"
    assert resolve_precision("auto", CPU, cnn_gru) == "bf16"  # the conv front gains; the GRU stays fp32
    assert resolve_precision("auto", CPU, gru) == "fp32"  # a pure recurrent model gains nothing
    cnn_lstm = build_model("cnn_lstm", {"channels": [8], "kernels": [5], "pools": [1], "hidden_size": 8,
                                        "hidden": [8]}, 40, 1)
    assert resolve_precision("auto", CPU, cnn_lstm) == "fp32"  # the LSTM dominates: no gain measured
    kmer = build_model("kmer_linear", {"ks": [1, 2]}, 40, 1)
    assert resolve_precision("auto", CPU, kmer) == "fp32"  # k-mer counting: no matrix work to speed up
    assert resolve_precision("fp32", CPU, cnn) == "fp32" and resolve_precision("bf16", CPU, gru) == "bf16"
    with pytest.raises(HelixError, match="unknown precision 'half'"):
        resolve_precision("half", CPU, cnn)


def test_auto_on_a_gpu_is_bf16_only_for_the_families_measured_to_gain(monkeypatch):
    # No GPU is needed: resolve_precision reads only the device type and whether the GPU has bf16 units.
    gpu = torch.device("cuda")
    cnn = build_model("cnn", {"channels": [8], "kernels": [5], "pools": [1], "hidden": [8]}, 40, 1)
    legnet = build_model("legnet", {"stem": 8, "channels": [8], "expand": 2, "hidden": [8]}, 40, 1)
    bert = build_model("bert", {"tokenizer": "nucleotide", "layers": 1, "hidden": 16, "heads": 2,
                                "intermediate": 16}, 40, 1)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", gpu, legnet) == "bf16" and resolve_precision("auto", gpu, bert) == "bf16"
    assert resolve_precision("auto", gpu, cnn) == "fp32"  # launch-bound on an H200: bf16 0.78-0.86x at recipe batches
    assert resolve_precision("auto", gpu) == "bf16"  # no model named: the device decides
    assert resolve_precision("bf16", gpu, cnn) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", gpu, legnet) == "fp32"


def test_the_cpu_bf16_detection_can_be_overridden(monkeypatch):
    for value, expected in (("0", False), ("1", True)):
        monkeypatch.setenv("HELIXLAB_CPU_BF16", value)
        assert model_base.cpu_has_bf16() is expected
    monkeypatch.setenv("HELIXLAB_CPU_BF16", "yes")
    with pytest.raises(HelixError, match="HELIXLAB_CPU_BF16 must be 0 or 1, not 'yes'"):
        model_base.cpu_has_bf16()


def test_bf16_on_the_cpu_runs_convs_in_bf16_and_recurrent_layers_in_fp32():
    torch.manual_seed(0)
    model = build_model("cnn_gru", {"channels": [8], "kernels": [5], "pools": [1], "hidden_size": 8,
                                    "hidden": [8]}, 40, 1).eval()
    x = torch.randint(0, 4, (16, 40), dtype=torch.uint8)
    seen: dict[str, torch.dtype] = {}
    model.rnn.register_forward_hook(lambda m, i, o: seen.__setitem__("rnn", o[0].dtype))
    model.convs.register_forward_hook(lambda m, i, o: seen.__setitem__("conv", o.dtype))
    with torch.no_grad():
        ref = model(x).float()
        with autocast(CPU, "bf16"):
            low = model(x).float()
    assert seen == {"conv": torch.bfloat16, "rnn": torch.float32}
    assert torch.allclose(ref, low, atol=0.05)


def test_bf16_training_on_the_cpu_learns_and_is_recorded(motif_data, tmp_path):
    cfg = config_from_dict(tiny_config(motif_data, epochs=4, precision="bf16"), "test")
    res = fit(cfg, tmp_path / "run")
    assert res["splits"]["test"]["accuracy"] > 0.8
    assert json.loads((tmp_path / "run" / "run.json").read_text())["precision"] == "bf16"
    # predictions in either precision agree closely
    model = helixlab.load(tmp_path / "run", device="cpu")
    x = model.inputs(str(motif_data["test"]))
    fp32 = model.predict_encoded(x, precision="fp32")
    bf16 = model.predict_encoded(x, precision="bf16")
    assert np.abs(fp32 - bf16).max() < 0.05


def test_bad_precision_names_are_clear_errors(motif_data, tmp_path, capsys):
    with pytest.raises(HelixError, match="train.precision must be one of auto, fp32, bf16"):
        config_from_dict(tiny_config(motif_data, precision="fp16"), "test")
    res_dir = tmp_path / "run"
    fit(config_from_dict(tiny_config(motif_data, epochs=1), "test"), res_dir)
    assert main(["evaluate", str(res_dir), str(motif_data["test"]), "--precision", "half"]) != 0
    assert "unknown precision 'half'" in capsys.readouterr().err
    with pytest.raises(HelixError, match="unknown precision"):
        helixlab.load(res_dir, precision="int8")


def test_runs_recorded_with_train_amp_still_load_and_resume(motif_data, tmp_path):
    run = tmp_path / "old"
    fit(config_from_dict(tiny_config(motif_data, epochs=1), "test"), run)
    cfg = json.loads((run / "config.json").read_text())
    del cfg["train"]["precision"]
    cfg["train"]["amp"] = False  # what runs recorded before train.precision
    (run / "config.json").write_text(json.dumps(cfg))
    model = helixlab.load(run, device="cpu")
    assert model.run.config.train.precision == "fp32"
    fit(None, run, resume=True)


def test_bf16_regression_validates_and_tests_in_fp32(motif_data, tmp_path):
    """Unbinned regression outputs come out of a bf16 autocast as bf16; the metrics read them as fp32."""
    cfg = tiny_config(motif_data, epochs=2, precision="bf16")
    cfg["task"] = {"kind": "regression"}
    res = fit(config_from_dict(cfg, "test"), tmp_path / "run")
    assert res["precision"] == "bf16" and res["splits"]["test"]["pearson"] > 0.3
