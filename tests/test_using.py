"""Using trained runs: the Python API, embeddings, attributions (with sanity checks), variant effects,
ONNX export with parity, model cards."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import helixlab
from helixlab.cli import main
from helixlab.config import config_from_dict
from helixlab.errors import HelixError
from helixlab.interpret.attributions import METHODS, attribute, position_scores
from helixlab.seq import alphabet
from helixlab.train import fit
from tests.conftest import MOTIF, tiny_config


def _positives(data: dict[str, Path]) -> tuple[list[str], list[int]]:
    rows = [line.split(",") for line in data["test"].read_text().splitlines()[1:]]
    seqs = [s for s, y in rows if y == "1"]
    return seqs, [s.find(MOTIF) for s in seqs]


def test_load_predicts_like_the_cli_on_strings_files_and_codes(motif_run, tmp_path):
    run, data = motif_run
    model = helixlab.load(run, device="cpu")
    seqs = [line.split(",")[0] for line in data["test"].read_text().splitlines()[1:]]
    from_strings = model.predict(seqs)
    assert np.allclose(model.predict(data["test"]), from_strings)
    codes = np.stack([alphabet.encode(s) for s in seqs])
    assert np.allclose(model.predict(codes), from_strings)
    assert np.allclose(model.predict([alphabet.encode(s) for s in seqs[:3]]), from_strings[:3])
    assert main(["predict", str(run), str(data["test"]), "-o", str(tmp_path / "p.csv")]) == 0
    cli = np.array([float(r["prediction"]) for r in csv.DictReader(open(tmp_path / "p.csv"))])
    assert np.allclose(cli, from_strings[:, 0], atol=1e-5)
    vectors = model.embed(seqs)
    assert vectors.shape == (len(seqs), model.run.model.feature_dim)
    assert main(["embed", str(run), str(data["test"]), "-o", str(tmp_path / "e.npy")]) == 0
    assert np.allclose(np.load(tmp_path / "e.npy"), vectors, atol=1e-5)
    assert np.allclose(model.predict(seqs[0]), from_strings[:1])  # one sequence as a string
    assert np.allclose(model.predict(codes[0]), from_strings[:1])  # one sequence as a 1-d array of codes
    from helixlab.apply.api import _looks_like_sequence

    assert _looks_like_sequence("ACGT" * 100) and not _looks_like_sequence("data/x.fa")
    with pytest.raises(HelixError, match="length 39 differs"):
        model.predict([seqs[0][:-1]])
    with pytest.raises(HelixError, match="invalid character"):
        model.predict(["X" * 40])


@pytest.mark.parametrize("method", sorted(METHODS))
def test_attributions_find_the_planted_motif_and_restore_the_model(motif_run, method):
    run, data = motif_run
    model = helixlab.load(run, device="cpu")
    seqs, at = _positives(data)
    X = model.inputs(seqs[:20])
    net = model.run.model.train()
    attr = attribute(net, X, method)
    assert attr.shape == (20, 4, 40) and net.training  # the model's mode is restored
    scores = np.abs(position_scores(attr, X, method))
    hits = [len(set(np.argsort(s)[-len(MOTIF):]) & set(range(a, a + len(MOTIF)))) / len(MOTIF)
            for s, a in zip(scores, at[:20])]
    assert np.mean(hits) > 0.6, hits  # most of the top-attributed positions lie on the motif


def test_attributions_of_a_randomised_model_differ(motif_run):
    """The model-randomisation test: attributions must depend on the learned weights."""
    from helixlab.models import build_model

    run, data = motif_run
    model = helixlab.load(run, device="cpu")
    X = model.inputs(_positives(data)[0][:20])
    trained = position_scores(attribute(model.run.model, X, "gradient_x_input"), X, "gradient_x_input")
    again = position_scores(attribute(model.run.model, X, "gradient_x_input"), X, "gradient_x_input")
    assert np.allclose(trained, again)
    torch.manual_seed(123)
    cfg = model.run.config.model
    random_net = build_model(cfg.name, cfg.params, model.seq_len, model.run.info["n_outputs"])
    shuffled = position_scores(attribute(random_net, X, "gradient_x_input"), X, "gradient_x_input")
    from helixlab.tasks.metrics import spearman

    rho = np.mean([spearman(np.abs(a), np.abs(b)) for a, b in zip(trained, shuffled)])
    assert rho < 0.3, rho


def test_ism_is_exact_and_works_for_token_models_where_gradients_do_not():
    torch.manual_seed(0)
    from helixlab.models import build_model

    net = build_model("kmer_linear", {"ks": [2]}, 12, 1).eval()
    X = np.random.default_rng(0).integers(0, 4, (3, 12)).astype(np.uint8)
    out = attribute(net, X, "ism", batch_size=7)
    x = X[1].copy()
    x[5] = (x[5] + 1) % 4
    with torch.no_grad():
        expect = net(torch.from_numpy(x[None]))[0, 0] - net(torch.from_numpy(X[1:2]))[0, 0]
    assert out[1, x[5], 5] == pytest.approx(float(expect), abs=1e-5)
    assert (out[np.arange(3)[:, None], X, np.arange(12)[None, :]] == 0).all()  # the reference bases
    with pytest.raises(HelixError, match="use the 'ism' method"):
        attribute(net, X, "integrated_gradients")


def test_deeplift_warns_where_it_has_no_rule_and_only_there():
    import warnings

    from helixlab.models import build_model

    params = {"channels": [8], "kernels": [5], "pools": [2], "pooling": "flatten", "hidden": [4]}
    X = np.random.default_rng(0).integers(0, 4, (2, 20)).astype(np.uint8)
    def rule_warnings(net: torch.nn.Module) -> list[str]:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            attribute(net.eval(), X, "deeplift")
        return [str(w.message) for w in seen if "has no rule" in str(w.message)]

    assert rule_warnings(build_model("cnn", params, 20, 1)) == []  # ReLU convs and dense layers: exact rules
    [message] = rule_warnings(build_model("cnn", {**params, "attention": 1, "heads": 2}, 20, 1))
    assert "no rule for LayerNorm, MultiheadAttention" in message


def test_interpret_attributions_cli_writes_arrays_logos_and_metaplot(motif_run, tmp_path):
    run, data = motif_run
    out = tmp_path / "attr" / "a.npz"
    assert main(["interpret", "attributions", str(run), str(data["test"]), "-o", str(out), "--method",
                 "integrated_gradients", "--logo", "1", "--limit", "30", "--device", "cpu"]) == 0
    arrays = np.load(out)
    assert arrays["attributions"].shape == (30, 4, 40) and arrays["scores"].shape == (30, 40)
    assert (tmp_path / "attr" / "a_metaplot.png").exists() and list((tmp_path / "attr").glob("a_logo_1_*.png"))


def test_score_variants_tables_and_errors(motif_run, tmp_path):
    run, data = motif_run
    model = helixlab.load(run, device="cpu")
    seq = _positives(data)[0][0]
    alt = seq[:10] + ("A" if seq[10] != "A" else "C") + seq[11:]
    (tmp_path / "v.csv").write_text(f"id,sequence,position,ref,alt\nsnv1,{seq},10,{seq[10].lower()},{alt[10]}\n")
    assert main(["score-variants", str(run), str(tmp_path / "v.csv"), "-o", str(tmp_path / "o.csv")]) == 0
    row = next(csv.DictReader(open(tmp_path / "o.csv")))
    expect = model.predict([alt])[0, 0] - model.predict([seq])[0, 0]
    assert row["id"] == "snv1" and float(row["effect_prediction"]) == pytest.approx(expect, abs=1e-5)
    (tmp_path / "p.tsv").write_text(f"ref_sequence\talt_sequence\n{seq}\t{alt}\n")
    assert main(["score-variants", str(run), str(tmp_path / "p.tsv"), "-o", str(tmp_path / "o2.csv")]) == 0
    assert float(next(csv.DictReader(open(tmp_path / "o2.csv")))["effect_prediction"]) == pytest.approx(expect,
                                                                                                       abs=1e-5)
    (tmp_path / "s.fa").write_text(f">chrA\n{seq}\n")
    (tmp_path / "i.csv").write_text(f"id,position,ref,alt\nchrA,10,{seq[10]},{alt[10]}\n")
    assert main(["score-variants", str(run), str(tmp_path / "i.csv"), "--sequences", str(tmp_path / "s.fa"),
                 "-o", str(tmp_path / "o3.csv")]) == 0
    wrong = "ACGT".replace(seq[10].upper(), "")[0]
    (tmp_path / "bad.csv").write_text(f"sequence,position,ref,alt\n{seq},10,{seq[10]},T\n{seq},10,{wrong},T\n")
    from helixlab.apply.variants import read_variants, score_variants

    with pytest.raises(HelixError, match=r"bad.csv, line 3: ref .* does not match"):
        read_variants(tmp_path / "bad.csv")
    (tmp_path / "pairs_bad.csv").write_text(f"ref_sequence,alt_sequence\n\n{seq},{alt[:-1]}X\n")
    with pytest.raises(HelixError, match=r"pairs_bad.csv, line 3: invalid character 'X'"):
        score_variants(model, read_variants(tmp_path / "pairs_bad.csv"))
    (tmp_path / "cols.csv").write_text("seq,pos\nACGT,1\n")
    with pytest.raises(HelixError, match="needs the columns"):
        read_variants(tmp_path / "cols.csv")


@pytest.mark.parametrize("name,params", [
    ("cnn", {"channels": [8], "kernels": [5], "pools": [2], "hidden": [8]}),
    ("cnn_gru", {"channels": [8], "kernels": [5], "pools": [2], "hidden_size": 8, "hidden": [8]}),
    ("mlp", {"hidden": [16]}),
    ("legnet", {"stem": 16, "channels": [16], "hidden": [8], "strand_channel": True}),
    ("kmer_linear", {"ks": [2, 3]}),
    ("bert", {"tokenizer": "kmer", "k": 3, "size": "tiny", "max_tokens": 64}),
])
def test_onnx_export_matches_torch(motif_run, tmp_path, name, params):
    from helixlab.apply.export import onnx_outputs
    from helixlab.apply.predict import predict
    from helixlab.run.loaded import load_run

    _, data = motif_run
    cfg = tiny_config(data, epochs=1)
    cfg["model"] = {"name": name, "params": params}
    fit(config_from_dict(cfg, "test"), tmp_path / "run")
    assert main(["export", str(tmp_path / "run"), "--format", "onnx", "-o", str(tmp_path / "m.onnx")]) == 0
    spec = json.loads((tmp_path / "m.onnx.json").read_text())
    assert spec["input"]["dtype"] == "uint8" and spec["output"]["activation"] == "sigmoid"
    assert spec["parity"]["max_abs_diff"] < 1e-4
    x = np.random.default_rng(5).integers(0, 5, (9, 40)).astype(np.uint8)
    torch_out = predict(load_run(tmp_path / "run").model, x).numpy()
    assert np.allclose(onnx_outputs(tmp_path / "m.onnx", x), torch_out, atol=1e-4)


def test_every_finished_run_has_a_model_card_linked_from_its_report(motif_run):
    run, data = motif_run
    card = (run / "MODEL_CARD.md").read_text()
    test_sha = json.loads((run / "run.json").read_text())["data"]["test"]["sources"][0]["sha256"]
    for text in ("## Data", test_sha, str(data["test"]), "## Metrics", "accuracy", "## Training", "## Intended use",
                 "## Known limits", "40 bases", "Weights kept: as trained;"):
        assert text in card, text
    assert "MODEL_CARD.md" in (run / "report.md").read_text()
