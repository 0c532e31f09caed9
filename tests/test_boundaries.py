"""Every place that reads what a user gives: malformed input is one clear error line naming the file (and
line, record or key), never a traceback; awkward but valid input (CRLF, a UTF-8 byte-order mark,
lowercase, blank lines, trailing spaces) just works."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from helixlab.cli import main
from helixlab.config import config_from_dict
from helixlab.data.shards import Shard
from helixlab.train import fit
from tests.conftest import motif_rows, tiny_config, write_csv
from tests.test_bad_input import expect_error

BOM = "\ufeff"
SEQS = [s for s, _ in motif_rows(6, 40, seed=4)]
LABELS = [y for _, y in motif_rows(6, 40, seed=4)]


def _awkward(text: str) -> str:
    """A UTF-8 byte-order mark, CRLF line ends, lowercase bases kept as written, blank lines."""
    return BOM + text.replace("\n", "\r\n\r\n")


def _codes(path: Path) -> np.ndarray:
    shard = Shard.open(path)
    return shard.codes(np.arange(len(shard)))


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> np.ndarray:
    tmp = tmp_path_factory.mktemp("clean")
    f = write_csv(tmp / "c.csv", list(zip(SEQS, LABELS)))
    assert main(["prepare", str(f), "-o", str(tmp / "p")]) == 0
    return _codes(tmp / "p")


@pytest.mark.parametrize("fmt", ["csv", "tsv", "fasta", "dream", "csv.gz"])
def test_awkward_but_valid_files_read_like_clean_ones(tmp_path, clean, fmt):
    rows = list(zip([s.lower() if i % 2 else s for i, s in enumerate(SEQS)], LABELS))
    if fmt.startswith("csv"):
        text = "sequence , label \n" + "".join(f"{s} ,{y} \n" for s, y in rows)
    elif fmt == "tsv":
        text = "sequence\tlabel\n" + "".join(f"{s}\t{y} \n" for s, y in rows)
    elif fmt == "fasta":
        text = "".join(f">r{i} some description\n{s[:20]}\n{s[20:]}  \n" for i, (s, _) in enumerate(rows))
    else:
        text = "".join(f"{s}\t{y}\n" for s, y in rows)
    path = tmp_path / f"a.{'txt' if fmt == 'dream' else fmt}"
    data = _awkward(text).encode()
    path.write_bytes(gzip.compress(data) if fmt.endswith(".gz") else data)
    assert main(["prepare", str(path), "-o", str(tmp_path / "p")]) == 0
    assert np.array_equal(_codes(tmp_path / "p"), clean)
    shard = Shard.open(tmp_path / "p")
    if fmt != "fasta":
        assert shard.meta["labels"] and np.array_equal(np.asarray(shard.labels)[:, 0], LABELS)


def test_awkward_recipe_and_variants_tables_work(tmp_path, motif_data, capsys):
    cfg = tiny_config(motif_data, epochs=1)
    recipe = tmp_path / "r.toml"
    lines = [f"[{section}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items() if k != "params")
             for section, values in cfg.items()]
    lines.append("[model.params]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in cfg["model"]["params"].items()))
    recipe.write_bytes(_awkward("".join(lines)).encode())
    assert main(["train", str(recipe), "-o", str(tmp_path / "run")]) == 0
    seq = SEQS[0]
    variants = tmp_path / "v.csv"
    variants.write_bytes(_awkward(f"id , sequence,position,ref,alt \nv1,{seq.lower()} ,3 , {seq[3].lower()},t \n")
                         .encode())
    assert main(["score-variants", str(tmp_path / "run"), str(variants), "-o", str(tmp_path / "e.csv")]) == 0
    assert (tmp_path / "e.csv").read_text().splitlines()[1].startswith("v1,")


@pytest.mark.parametrize("content,needles", [
    (b"\xff\xfes\x00e\x00q\x00", ("UTF-16",)),
    (b"sequence,label\nACGT,1\nAC\x00GT,0\n", ("line 3",)),
    (b"sequence,label\nACGT,1\nACGA,0,7\n", ("malformed table",)),
    (b"sequence,label\nACGT,1\nACGA,yes\n", ("line 3", "'yes'")),
    (b"seq;label\nACGT;1\n", ("no sequence column",)),
])
def test_malformed_tables_name_the_file(tmp_path, capsys, content, needles):
    f = tmp_path / "bad.csv"
    f.write_bytes(content)
    expect_error(["prepare", str(f), "-o", str(tmp_path / "p")], capsys, str(f), *needles, absent=tmp_path / "p")


def test_a_table_without_a_label_column_says_so_unless_asked_for_unlabelled(tmp_path, capsys):
    f = tmp_path / "u.csv"
    f.write_text("sequence,score2\nACGT,1\n")
    expect_error(["prepare", str(f), "-o", str(tmp_path / "p")], capsys, str(f), "no label column", "--unlabelled",
                 absent=tmp_path / "p")
    assert main(["prepare", str(f), "-o", str(tmp_path / "p"), "--unlabelled"]) == 0
    assert Shard.open(tmp_path / "p").meta["labels"] == []
    assert main(["prepare", str(f), "-o", str(tmp_path / "q"), "--label-col", "score2"]) == 0


@pytest.mark.parametrize("key,value,needle", [
    ("train.lr", '"fast"', "train.lr"),
    ("train.epochs", "1.5", "train.epochs"),
    ("train.rc_augment", '"yes"', "train.rc_augment"),
    ("data.regions", '"chrX"', "data.regions"),
    ("data.samples", '{train = "many"}', "data.samples"),
    ("model.params", '"cnn"', "model.params"),
    ("model.params.channels", '"wide"', "model.params"),
    ("task.kind", "3", "task.kind"),
    ("train", "5", "train"),
    ("model.name", '"kmer_count"', "model.name"),  # a genome-context model on a table task
])
def test_recipe_values_of_the_wrong_type_name_the_key(tmp_path, motif_data, capsys, key, value, needle):
    from tests.test_bad_input import write_config

    recipe = write_config(tmp_path, tiny_config(motif_data))
    run = tmp_path / "run"
    expect_error(["train", str(recipe), "--set", f"{key}={value}", "-o", str(run)], capsys, needle, absent=run)


@pytest.mark.parametrize("content", [b"[train\nepochs = 1\n", b"\xff\xfe[\x00", b"[train]\nepochs = \n"])
def test_unreadable_recipes_name_the_file(tmp_path, capsys, content):
    recipe = tmp_path / "r.toml"
    recipe.write_bytes(content)
    expect_error(["train", str(recipe), "-o", str(tmp_path / "run")], capsys, str(recipe), absent=tmp_path / "run")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    tmp = tmp_path_factory.mktemp("run")
    data = {split: write_csv(tmp / f"{split}.csv", motif_rows(n, 40, seed))
            for split, n, seed in (("train", 160, 1), ("valid", 64, 2), ("test", 64, 3))}
    fit(config_from_dict(tiny_config(data, epochs=1), "test"), tmp / "run")
    return tmp / "run", data


def _broken_copy(run: Path, tmp_path: Path, name: str, content: bytes | None) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    target = copy / name
    if content is None:
        target.unlink()
    else:
        target.write_bytes(content)
    return copy


@pytest.mark.parametrize("name,content,needle", [
    ("config.json", b'{"model": {"name": "cnn"', "config.json"),
    ("config.json", b'["a list"]', "config.json"),
    ("config.json", b'{"model": 3, "train": {}}', "config.json"),
    ("run.json", b'{"seq_len": 40}', "run.json"),
    ("run.json", b"\x00\x01", "run.json"),
    ("run.json", None, "run.json"),
    ("checkpoints/best.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{}", "best.safetensors"),
    ("checkpoints/best.safetensors", b"", "best.safetensors"),
])
def test_damaged_run_directories_name_the_file(tmp_path, finished_run, capsys, name, content, needle):
    run, data = finished_run
    copy = _broken_copy(run, tmp_path, name, content)
    for args in (["evaluate", str(copy), str(data["test"])],
                 ["predict", str(copy), str(data["test"]), "-o", str(tmp_path / "p.csv")]):
        expect_error(args, capsys, needle, absent=tmp_path / "p.csv")


def test_a_damaged_resume_checkpoint_names_the_file(tmp_path, finished_run, capsys):
    run, _ = finished_run
    copy = _broken_copy(run, tmp_path, "checkpoints/last.safetensors", b"\x08\x00\x00\x00\x00\x00\x00\x00{\"a\":1}")
    expect_error(["train", "--resume", str(copy)], capsys, "last.safetensors")
    expect_error(["train", "--resume", str(tmp_path / "nowhere")], capsys, "nowhere")


def test_init_from_bad_sources_names_them(tmp_path, motif_data, finished_run, capsys):
    from tests.test_bad_input import write_config

    recipe = write_config(tmp_path, tiny_config(motif_data, epochs=1))
    bad = tmp_path / "w.safetensors"
    bad.write_bytes(b"not a checkpoint")
    expect_error(["train", str(recipe), "-o", str(tmp_path / "a"), "--init-from", str(bad)], capsys, str(bad),
                 absent=tmp_path / "a")
    other = tmp_path / "other.json"
    cfg = tiny_config(motif_data, epochs=1)
    cfg["model"]["params"]["channels"] = [8]  # type: ignore[index]
    other.write_text(write_config(tmp_path, cfg).read_text())
    weights = finished_run[0] / "checkpoints" / "best.safetensors"
    shutil.copy(weights, tmp_path / "copy.safetensors")
    expect_error(["train", str(other), "-o", str(tmp_path / "b"), "--init-from", str(tmp_path / "copy.safetensors")],
                 capsys, "copy.safetensors", "do not fit", absent=tmp_path / "b")


@pytest.mark.parametrize("files,needle", [
    ({"config.json": '{"model_type": "bert", "vocab_size": 10'}, "config.json"),
    ({"config.json": '{"model_type": "bert", "vocab_size": 10}'}, "num_hidden_layers"),
    ({"config.json": "HF", "tokenizer.json": '{"model": {"vocab": '}, "tokenizer.json"),
    ({"config.json": "HF", "vocab.txt": ""}, "vocab.txt"),
])
def test_bad_hugging_face_directories_name_the_file(tmp_path, motif_data, capsys, files, needle):
    from tests.test_bad_input import write_config

    hf = tmp_path / "hf"
    hf.mkdir()
    good = {"model_type": "bert", "vocab_size": 69, "num_hidden_layers": 1, "hidden_size": 16,
            "num_attention_heads": 2, "intermediate_size": 32, "max_position_embeddings": 64}
    for name, text in files.items():
        (hf / name).write_text(json.dumps(good) if text == "HF" else text)
    cfg = tiny_config(motif_data, epochs=1)
    cfg["model"] = {"name": "bert", "params": {}}
    recipe = write_config(tmp_path, cfg)
    expect_error(["train", str(recipe), "-o", str(tmp_path / "a"), "--init-from", str(hf)], capsys, needle,
                 absent=tmp_path / "a")


@pytest.mark.parametrize("text,needle", [
    ("sequence,position,ref,alt\nACGTACGT,1,C\n", "line 2"),
    ("sequence,position,ref,alt\nACGTACGT,one,C,G\n", "line 2"),
    ("sequence,ref,alt\nACGTACGT,C,G\n", "position"),
    ("\ufeffsequence,position,ref,alt\nACGTACGT,1,G,T\n", "line 2"),
])
def test_bad_variant_tables_name_the_line(tmp_path, finished_run, capsys, text, needle):
    run, _ = finished_run
    f = tmp_path / "v.csv"
    f.write_text(text)
    expect_error(["score-variants", str(run), str(f), "-o", str(tmp_path / "e.csv")], capsys, str(f), needle,
                 absent=tmp_path / "e.csv")
