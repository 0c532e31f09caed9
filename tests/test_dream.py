"""DREAM 2022 work: the fast DREAM reader, row selection, filters and transforms, binned targets,
the strand channel, two-stage training and the official scorer."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from helixlab.apply.dream import WEIGHTS, DreamTest, weighted
from helixlab.config import config_from_dict
from helixlab.data.batches import rc_augment
from helixlab.data.formats import read_dream
from helixlab.data.shards import Shard, prepare
from helixlab.data.splits import per_bin_rows
from helixlab.errors import HelixError
from helixlab.models import build_model
from helixlab.models.base import model_outputs
from helixlab.paths import data_root
from helixlab.run.loaded import load_run
from helixlab.seq import alphabet
from helixlab.seq.transforms import PLASMID_CONTEXT, SeqOptions
from helixlab.tasks import TaskConfig, make_task
from helixlab.tasks.metrics import pearson
from helixlab.train import fit

LEFT, RIGHT = "TGCATTTTTTTCACATC", "GGTTACGGCTGTT"


def random_seqs(n: int, length: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [alphabet.decode(rng.integers(0, 4, length).astype(np.uint8)) for _ in range(n)]


def planted(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """DREAM-like 110 bp sequences; expression 0..17 rises with copies of a planted motif (0, 1 or 2)."""
    rng = np.random.default_rng(seed)
    seqs, values = [], []
    for s in random_seqs(n, 80, seed):
        k = int(rng.integers(0, 3))
        for at in rng.choice([5, 30, 55], k, replace=False):
            s = s[:at] + "TATAAAGG" + s[at + 8:]
        seqs.append(LEFT + s + RIGHT)
        values.append(round(2 + 6 * k + rng.uniform(0, 2), 2))
    return seqs, np.array(values)


def dream_file(path: Path, seqs: list[str], values: np.ndarray, crlf: bool = False) -> Path:
    end = "\r\n" if crlf else "\n"
    path.write_text("".join(f"{s}\t{v:g}{end}" for s, v in zip(seqs, values)))
    return path


# ---------------------------------------------------------------- reader, selection, filters, transforms

def test_dream_reader_matches_the_lines_across_block_boundaries(tmp_path):
    seqs = [LEFT + s + RIGHT for s in random_seqs(300, 80, 0)]
    seqs[5] = seqs[5][:108]  # a short one
    values = np.random.default_rng(1).uniform(0, 17, 300).round(4)
    path = dream_file(tmp_path / "train.txt", seqs, values, crlf=True)
    with open(path, "a") as fh:
        fh.write("\n")  # a trailing blank line
    chunks = list(read_dream(path, block_bytes=1000))  # many blocks: lines cut at block ends are carried
    assert len(chunks) > 10
    raw = b"".join(c.raw for c in chunks)  # type: ignore[misc]
    assert raw.decode() == "".join(seqs)
    assert np.concatenate([c.lengths for c in chunks]).tolist() == [len(s) for s in seqs]  # type: ignore[misc]
    assert np.allclose(np.concatenate([c.labels[:, 0] for c in chunks]), values)  # type: ignore[index]
    assert np.concatenate([c.lines for c in chunks]).tolist() == list(range(1, 301))


@pytest.mark.parametrize("body, message, line", [
    ("ACGT\t1.5\nACGT\tabc\n", "not a finite number ('abc')", 2),
    ("ACGT\t1.5\nACGT\tnan\n", "not a finite number", 2),
    ("ACGT\t1.5\nACGT\t\n", "label is missing", 2),
    ("ACGT\t1.5\nACGT\n", "has no value", 2),
    ("ACGT\t1\n\t2\n", "empty sequence", 2),
    ("ACGT\t1\nACXT\t2\n", "invalid character 'X'", 2),
])
def test_bad_dream_lines_name_the_file_and_line_and_leave_nothing(tmp_path, body, message, line):
    path = tmp_path / "bad.txt"
    path.write_text(body)
    out = tmp_path / "prepared"
    with pytest.raises(HelixError, match=re.escape(message)) as err:
        prepare([path], out, fmt="dream", progress=False)
    assert f"line {line}" in str(err.value) and str(path) in str(err.value)
    assert not out.exists() and not list(tmp_path.glob(".prepared*"))


def test_dream_file_of_bare_sequences_reads_unlabelled(tmp_path):
    path = tmp_path / "new.txt"
    path.write_text("\nACGTACGT\nTTTTACGA\n")
    chunk = next(read_dream(path))
    assert chunk.labels is None and chunk.lengths.tolist() == [8, 8]  # type: ignore[union-attr]
    shard = Shard.open(prepare([path], tmp_path / "p", progress=False))
    assert shard.labels is None and len(shard) == 2
    mixed = tmp_path / "mixed.txt"
    mixed.write_text("ACGTACGT\nTTTTACGA\t3.5\n")
    with pytest.raises(HelixError, match="line 2: this line has a value column"):
        prepare([mixed], tmp_path / "q", progress=False)
    wide = tmp_path / "wide.txt"
    wide.write_text("ACGT\t1\nACGT\t" + "9" * 100 + "\n")
    with pytest.raises(HelixError, match="line 2: label field of 100 characters"):
        prepare([wide], tmp_path / "r", progress=False)


def test_where_selects_rows_and_filters_drop_training_rows(tmp_path):
    seqs = [LEFT + s + RIGHT for s in random_seqs(40, 80, 2)]
    seqs[3] = seqs[3][:50] + "N" + seqs[3][51:]
    seqs[7] = seqs[7][:109]
    split = ["train" if i % 4 else "test" for i in range(40)]
    table = tmp_path / "t.tsv"
    table.write_text("idx\tsequence\texpression\tdev_split\n" +
                     "".join(f"{i}\t{s}\t{i / 10}\t{d}\n" for i, (s, d) in enumerate(zip(seqs, split))))
    opts = SeqOptions(drop_n=True, lengths=(110,), crop=(17, -13))
    shard = Shard.open(prepare([table], tmp_path / "p", where="dev_split=train", options=opts, progress=False))
    assert shard.meta["dropped"] == 2 and len(shard) == 30 - 2 and shard.length == 80
    kept = [i for i in range(40) if split[i] == "train" and i not in (3, 7)]
    assert shard.ids() == [str(i) for i in kept]
    assert alphabet.decode(shard.codes(np.array([0]))[0]) == seqs[kept[0]][17:97]
    assert np.allclose(shard.labels[:, 0], np.array(kept) / 10)  # type: ignore[index]
    with pytest.raises(HelixError, match="no selection column 'fold'"):
        prepare([table], tmp_path / "q", where="fold=1", progress=False)
    with pytest.raises(HelixError, match="no records left"):
        prepare([table], tmp_path / "r", where="dev_split=valid", progress=False)


def test_crop_and_plasmid_padding():
    seqs = [LEFT + "A" * 80 + RIGHT, LEFT + "C" * 78 + RIGHT]
    codes, lens = alphabet.encode("".join(seqs)), np.array([110, 108])
    lines = np.array([1, 2])
    c, n = SeqOptions(crop=(17, -13)).apply(codes, lens, path="x", lines=lines)
    assert n.tolist() == [80, 78] and alphabet.decode(c) == "A" * 80 + "C" * 78
    up, down = PLASMID_CONTEXT["pTpA"]
    c, n = SeqOptions(pad_to=150, pad_context="pTpA").apply(codes, lens, path="x", lines=lines)
    text = alphabet.decode(c)
    assert n.tolist() == [150, 150]
    assert text[:150] == up + seqs[0] + down[:3]  # 37 upstream bases, then downstream ones
    assert text[150:] == up + seqs[1] + down[:5]
    c, n = SeqOptions(pad_to=112).apply(codes, lens, path="x", lines=lines)  # no context: N on the right
    assert alphabet.decode(c)[110:112] == "NN"
    with pytest.raises(HelixError, match="line 2"):
        SeqOptions(crop=(17, 30)).apply(alphabet.encode("ACGT" * 30 + "ACGT"), np.array([120, 4]), path="x",
                                        lines=lines)
    with pytest.raises(HelixError, match="too short to pad"):
        SeqOptions(pad_to=200, pad_context=("AC", "GT")).apply(codes, lens, path="x", lines=lines)
    with pytest.raises(HelixError, match="continues the whole sequence"):
        SeqOptions(crop=(17, -13), pad_to=150, pad_context="pTpA").check()


def test_per_bin_subset_is_near_uniform():
    values = np.concatenate([np.random.default_rng(0).normal(8, 1.5, 5000), [0.0, 17.0]])
    rows = per_bin_rows(values, per_bin=40, bins=18, seed=0)
    counts = np.bincount(np.minimum((values[rows] / 17 * 18).astype(int), 17), minlength=18)
    assert counts.max() == 40 and (counts[6:12] == 40).all() and counts[0] >= 1
    assert np.array_equal(rows, per_bin_rows(values, 40, 18, seed=0)) and len(np.unique(rows)) == len(rows)


# ---------------------------------------------------------------- binned targets, strand channel

def test_soft_bin_targets_and_predictions():
    task = make_task(TaskConfig(kind="regression", bins=18, bin_range=[0.0, 17.0]), 1)
    y = np.array([[0.0], [4.3], [17.0]], dtype=np.float32)
    t = task.target(y)
    assert t.shape == (3, 18) and torch.allclose(t.sum(1), torch.ones(3))
    assert abs(float((t[1] * task.centres()).sum()) - 4.3) < 0.05  # centred on the label
    assert int(t[1].argmax()) == 4 and t[1, 4] < 0.9  # soft: neighbours share the mass
    logits = torch.log(t.clamp_min(1e-9))
    assert float(task.loss(logits, t)) < 1e-4  # KL is zero at the target
    assert torch.allclose(task.activate(logits)[:, 0], (t * task.centres()).sum(1), atol=1e-4)
    hard = make_task(TaskConfig(kind="regression", bins=18, bin_range=[0.0, 17.0], bin_sd=0.0), 1).target(y)
    assert hard[1].tolist() == [0.0] * 4 + [1.0] + [0.0] * 13


def test_strand_channel_reads_the_flip_flags():
    torch.manual_seed(0)
    model = build_model("legnet", {"stem": 16, "channels": [16, 8], "expand": 2}, 40, 1).eval()
    x = torch.randint(0, 4, (6, 40), dtype=torch.uint8)
    fwd = model(x, torch.zeros(6, dtype=torch.bool))
    assert not torch.allclose(fwd, model(x, torch.ones(6, dtype=torch.bool)))
    assert torch.allclose(fwd, model(x))  # no flags: forward strand
    xa, flags = rc_augment(x, seed=0, epoch=0, batch=3)
    rows = flags.nonzero()[:, 0]
    assert 0 < len(rows) < 6
    assert torch.equal(xa[rows], alphabet.reverse_complement(x[rows]))
    assert torch.equal(xa[~flags], x[~flags])
    both = model_outputs(model, x, rc_average=True)
    rc = model(alphabet.reverse_complement(x), torch.ones(6, dtype=torch.bool))  # type: ignore[arg-type]
    assert torch.allclose(both, (fwd + rc) / 2, atol=1e-5)


# ---------------------------------------------------------------- training end to end

def _regression_files(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for split, n, seed in (("train", 600, 1), ("valid", 150, 2), ("test", 150, 3)):
        out[split] = dream_file(tmp_path / f"{split}.txt", *planted(n, seed))
    return out


def _legnet_config(files: dict[str, Path], **extra: object) -> dict[str, object]:
    return {"data": {k: str(v) for k, v in files.items()},
            "model": {"name": "legnet", "params": {"stem": 16, "channels": [16, 16], "expand": 2, "hidden": [16]}},
            "task": {"kind": "regression", "bins": 18},
            "train": {"epochs": 3, "batch_size": 32, "lr": 5e-3, "schedule": "onecycle", "rc_augment": True,
                      "rc_average": True, "progress": False, "threads": 1}, **extra}


def test_legnet_soft_bins_learns_and_records_the_bin_range(tmp_path):
    files = _regression_files(tmp_path)
    res = fit(config_from_dict(_legnet_config(files), "test"), tmp_path / "run")
    assert res["splits"]["test"]["pearson"] > 0.5
    run = load_run(tmp_path / "run")
    lo, hi = run.config.task.bin_range  # the training labels' range, recorded in config.json
    assert 2.0 <= lo < 4.0 and 14.0 < hi <= 16.0
    assert run.model.head[-1].out_features == 18  # type: ignore[index]


def test_two_stage_training_one_command_and_resume(tmp_path, monkeypatch):
    files = _regression_files(tmp_path)
    cfg = _legnet_config(files, stage2={"per_bin": 10, "bins": 6, "epochs": 2})
    cfg["task"] = {"kind": "regression"}
    cfg["train"]["epochs"] = 2  # type: ignore[index]
    straight = fit(config_from_dict(cfg, "test"), tmp_path / "straight")
    assert straight["stage1"]["epochs"] == 2 and straight["epochs"] == 2
    recorded = json.loads((tmp_path / "straight" / "config.json").read_text())
    assert recorded["task"]["loss"] == "huber" and recorded["data"]["per_bin"] == 10
    assert recorded["train"]["init_from"].endswith("stage1/checkpoints/best.safetensors")
    assert recorded["train"]["lr"] == pytest.approx(5e-4) and recorded["stage2"]["lr"] == pytest.approx(5e-4)

    import helixlab.train.loop as loop

    real = loop.write_jsonl
    calls = {"n": 0}

    def crash_in_stage2(path, rows):  # die after stage 2's first epoch was checkpointed
        real(path, rows)
        if "stage1" not in str(path) and path.name == "metrics.jsonl":
            calls["n"] += 1
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "write_jsonl", crash_in_stage2)
    with pytest.raises(KeyboardInterrupt):
        fit(config_from_dict(cfg, "test"), tmp_path / "killed")
    monkeypatch.setattr(loop, "write_jsonl", real)
    resumed = fit(None, tmp_path / "killed", resume=True)  # type: ignore[arg-type]
    assert calls["n"] == 1
    for key in ("pearson", "spearman", "mse"):
        assert resumed["splits"]["test"][key] == straight["splits"]["test"][key]
        assert resumed["stage1"]["splits"]["test"][key] == straight["stage1"]["splits"]["test"][key]


def test_holdout_validation_rows_are_not_trained_on(tmp_path):
    files = _regression_files(tmp_path)
    cfg = _legnet_config({"train": files["train"], "test": files["test"]}, )
    cfg["data"]["holdout"] = 0.1  # type: ignore[index]
    cfg["train"]["epochs"] = 1  # type: ignore[index]
    res = fit(config_from_dict(cfg, "test"), tmp_path / "run")
    assert "valid" in res["splits"]
    info = json.loads((tmp_path / "run" / "run.json").read_text())["data"]
    assert info["train"]["records"] == 540 and info["valid"]["records"] == 60
    assert info["train"]["subset"]["holdout"] == 0.1


def test_dream_cli_train_predict_and_prepare(tmp_path):
    from typer.testing import CliRunner

    from helixlab.cli import app

    files = _regression_files(tmp_path)
    cfg = _legnet_config(files)
    cfg["data"]["crop"] = [17, -13]  # type: ignore[index]
    cfg["train"]["epochs"] = 1  # type: ignore[index]
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    runner = CliRunner()
    r = runner.invoke(app, ["train", str(tmp_path / "cfg.json"), "-o", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    new = tmp_path / "new.txt"
    new.write_text("".join(f"{LEFT}{s}{RIGHT}\n" for s in random_seqs(5, 80, 9)))  # bare sequences, 110 bp
    r = runner.invoke(app, ["predict", str(tmp_path / "run"), str(new), "-o", str(tmp_path / "p.csv")])
    assert r.exit_code == 0, r.output
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 6  # cropped to 80 bp like the training data
    r = runner.invoke(app, ["prepare", str(files["train"]), "-o", str(tmp_path / "prep"), "--crop", "17,-13",
                            "--keep-length", "110", "--drop-n"])
    assert r.exit_code == 0, r.output
    assert Shard.open(tmp_path / "prep").length == 80


def test_a_110_bp_run_padded_by_its_recipe_predicts_shorter_dream_sequences(tmp_path):
    import helixlab

    files = _regression_files(tmp_path)
    cfg = _legnet_config(files)
    cfg["train"]["epochs"] = 1  # type: ignore[index]
    short = tmp_path / "short.txt"  # DREAM-format sequences of 100-110 bp, as the official training file holds
    short.write_text("".join(f"{LEFT}{s}{RIGHT}\t1.0\n" for n in range(70, 81)
                             for s in random_seqs(1, n, n)))
    fit(config_from_dict(cfg, "test"), tmp_path / "plain")
    with pytest.raises(HelixError, match="differs from the model's input length 110 .a recipe can pad"):
        helixlab.load(tmp_path / "plain").predict(str(short))
    cfg["data"].update(pad_to=110, pad_context="pTpA")  # type: ignore[attr-defined]
    fit(config_from_dict(cfg, "test"), tmp_path / "padded")
    model = helixlab.load(tmp_path / "padded")
    assert model.seq_len == 110
    pred = model.predict(str(short))
    assert pred.shape == (11, 1) and np.isfinite(pred).all()
    x = model.inputs(str(short))
    up = alphabet.encode(PLASMID_CONTEXT["pTpA"][0])
    assert (x[0, :10] == up[-10:]).all()  # 100 bp: the 10 plasmid bases just upstream come first
    card = (tmp_path / "padded" / "MODEL_CARD.md").read_text()
    assert "Shorter sequences are accepted: extended to 110 bases with the pTpA context" in card


# ---------------------------------------------------------------- the official scorer

def _toy_test() -> DreamTest:
    expr = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    return DreamTest(expression=expr, public=np.array([0, 0, 0, 0, 0, 0, 0, 1], bool),
                     dev_split=np.array(["train"] * 4 + ["test"] * 4),
                     singles={"high": np.array([4, 5, 6, 7]), "low": np.array([0, 1, 2])},
                     pairs={"SNVs": (np.array([1, 3, 5]), np.array([0, 2, 4])),
                            "motif_tiling": (np.array([2, 3, 7, 6]), np.array([0, 1, 0, 4]))},
                     public_parts={"high": {(6,)}, "motif_tiling": {(7, 0), (0, 7)}})


def test_scorer_on_a_hand_computed_case():
    test = _toy_test()
    pred = np.array([0.0, 2.0, 1.0, 3.0, 5.0, 4.0, 7.0, 6.0])
    res = test.score(pred, rows="private")
    parts = res["parts"]
    # all: rows 0..6 (row 7 is public)
    assert parts["all"]["n"] == 7 and parts["all"]["pearson"] == pytest.approx(pearson(pred[:7], np.arange(7.0)))
    # high: 4, 5, 7 minus high's own public member 6 -> (5,4,6) vs (4,5,7)
    assert parts["high"]["n"] == 3
    assert parts["high"]["pearson"] == pytest.approx(pearson(np.array([5, 4, 6.0]), np.array([4, 5, 7.0])))
    # SNV differences: predicted (2, 2, -1) vs measured (1, 1, 1): no variance in truth -> nan
    assert parts["SNVs"]["n"] == 3 and np.isnan(parts["SNVs"]["pearson"])
    # motif tiling: pair (7, 0) is public; the others: predicted (1, 3, 2), measured (2, 2, 2) -> nan; use spearman
    assert parts["motif_tiling"]["n"] == 3
    expected = (1.0 * parts["all"]["pearson"] + 0.3 * parts["high"]["pearson"] + 0.3 * parts["low"]["pearson"]) / 1.6
    assert res["pearson_score"] == pytest.approx(expected)  # nan parts are left out, weights renormalised
    dev = test.score(pred, rows="dev-test")  # rows 4..7, pairs only when both members are in
    assert dev["parts"]["all"]["n"] == 4 and dev["parts"]["SNVs"]["n"] == 1 and dev["parts"]["motif_tiling"]["n"] == 1
    assert weighted({k: 0.5 for k in WEIGHTS}) == pytest.approx(0.5)


@pytest.fixture
def dream_dir() -> Path:
    d = data_root() / "dream2022_yeast"
    if not (d / "test_set_maude_expression.tsv.gz").exists():
        pytest.skip(f"DREAM data not found at {d} (set HELIXLAB_DATA to the shared data directory)")
    return d


def test_scorer_reproduces_the_published_team_scores(dream_dir):
    import pandas as pd

    table = pd.read_csv(dream_dir / "published_test_scores_top_teams.csv", sep="\t", index_col=[0, 1])
    assert len(table) == 12
    for (metric, team), row in table.iterrows():
        assert weighted({k: row[k] for k in WEIGHTS}) == pytest.approx(row["score"], abs=1e-9), (metric, team)
    assert table.loc[("pearson", "autosome.org"), "score"] == pytest.approx(0.818394, abs=1e-6)


def test_scorer_on_the_real_test_set(dream_dir, tmp_path):
    from typer.testing import CliRunner

    from helixlab.cli import app

    test = DreamTest.load(dream_dir)
    perfect = test.score(test.expression, rows="private")
    assert perfect["complete"] and perfect["pearson_score"] == pytest.approx(1.0)
    sizes = {k: v["n"] for k, v in perfect["parts"].items()}
    assert sizes["all"] == 71_103 - 9_045 and sizes["high"] == 968 - 96 and sizes["random"] == 6_349 - 733
    noisy = test.expression + np.random.default_rng(0).normal(0, 0.3, len(test.expression))
    csv = tmp_path / "pred.csv"
    csv.write_text("id,prediction\n" + "".join(f"{i},{v}\n" for i, v in enumerate(noisy)))
    out = tmp_path / "score.json"
    r = CliRunner().invoke(app, ["dream-score", str(csv), "--data-dir", str(dream_dir), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["pearson_score"] == pytest.approx(test.score(noisy)["pearson_score"])
    r = CliRunner().invoke(app, ["dream-score", str(csv), "--data-dir", str(dream_dir), "--snv", "public"])
    assert r.exit_code != 0 and "none is left in the private score" in str(r.exception)
    with gzip.open(dream_dir / "official_public_leaderboard_ids" / "ground.json.gz") as fh:
        assert len(json.load(fh)) == 9_045
