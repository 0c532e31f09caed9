"""Each kind of bad input: exit status 1, one clear line naming the file (and record), no output left."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from helixlab.cli import main
from tests.conftest import motif_rows, tiny_config, write_csv


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    err = capsys.readouterr().err
    return code, err


def expect_error(args: list[str], capsys: pytest.CaptureFixture[str], *needles: str,
                 absent: Path | None = None) -> None:
    code, err = run_cli(args, capsys)
    assert code == 1, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err!r}"
    if absent is not None:
        assert not absent.exists()
        assert not list(absent.parent.glob(f".{absent.name}.tmp-*"))


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "prepared"


def test_bad_character_names_file_line_and_char(tmp_path, out, capsys):
    f = write_csv(tmp_path / "a.csv", [("ACGT", 1), ("ACXT", 0)])
    expect_error(["prepare", str(f), "-o", str(out)], capsys, "a.csv", "line 3", "'X'", "position 3", absent=out)


def test_bad_character_in_fasta_names_record(tmp_path, out, capsys):
    f = tmp_path / "a.fa"
    f.write_text(">s1\nACGT\n>s2\nAC\nG*T\n")
    expect_error(["prepare", str(f), "-o", str(out)], capsys, "a.fa", "line 3", "(s2)", "'*'", absent=out)


def test_iupac_code_is_an_error_by_default_and_n_on_request(tmp_path, out, capsys):
    f = write_csv(tmp_path / "a.csv", [("ACRT", 1)])
    expect_error(["prepare", str(f), "-o", str(out)], capsys, "'R'", "IUPAC", absent=out)
    assert main(["prepare", str(f), "-o", str(out), "--iupac", "n"]) == 0


def test_empty_file(tmp_path, out, capsys):
    f = tmp_path / "empty.csv"
    f.write_text("")
    expect_error(["prepare", str(f), "-o", str(out)], capsys, "empty.csv", "empty", absent=out)


def test_header_only(tmp_path, out, capsys):
    f = tmp_path / "h.csv"
    f.write_text("sequence,label\n")
    expect_error(["prepare", str(f), "-o", str(out)], capsys, "h.csv", "no records", absent=out)


def test_truncated_gzip(tmp_path, out, capsys):
    f = tmp_path / "t.csv.gz"
    rows = "".join(f"{s},{y}\n" for s, y in motif_rows(2000, 60, 0))
    blob = gzip.compress(("sequence,label\n" + rows).encode())
    f.write_bytes(blob[: len(blob) // 2])
    expect_error(["prepare", str(f), "-o", str(out)], capsys, "t.csv.gz", "truncated", absent=out)


def test_ragged_lengths_when_fixed_required(tmp_path, out, capsys):
    f = write_csv(tmp_path / "r.csv", [("ACGT", 1), ("ACGTA", 0)])
    expect_error(["prepare", str(f), "-o", str(out), "--length", "fixed"], capsys, "r.csv", "line 3", "length 5",
                 absent=out)


def test_missing_label(tmp_path, out, capsys):
    f = tmp_path / "m.csv"
    f.write_text("sequence,label\nACGT,1\nACGT,\n")
    expect_error(["prepare", str(f), "-o", str(out)], capsys, "m.csv", "line 3", "missing", absent=out)


def test_nan_label(tmp_path, out, capsys):
    f = tmp_path / "n.csv"
    f.write_text("sequence,label\nACGT,1\nACGT,nan\n")
    expect_error(["prepare", str(f), "-o", str(out)], capsys, "n.csv", "line 3", "label", absent=out)


def test_non_numeric_label(tmp_path, out, capsys):
    f = tmp_path / "x.csv"
    f.write_text("sequence,label\nACGT,yes\n")
    expect_error(["prepare", str(f), "-o", str(out)], capsys, "x.csv", "line 2", "'yes'", absent=out)


def test_wrong_columns(tmp_path, out, capsys):
    f = tmp_path / "w.csv"
    f.write_text("dna,label\nACGT,1\n")
    expect_error(["prepare", str(f), "-o", str(out)], capsys, "w.csv", "no sequence column", "dna", absent=out)
    expect_error(["prepare", str(f), "-o", str(out), "--seq-col", "dna", "--label-col", "score"], capsys,
                 "w.csv", "'score'", absent=out)


def test_duplicate_fasta_ids(tmp_path, out, capsys):
    f = tmp_path / "d.fa"
    f.write_text(">a\nACGT\n>b\nACGT\n>a\nACGT\n")
    expect_error(["prepare", str(f), "-o", str(out)], capsys, "d.fa", "line 5", "duplicate", absent=out)


def test_fasta_sequence_before_header(tmp_path, out, capsys):
    f = tmp_path / "s.fa"
    f.write_text("ACGT\n>a\nACGT\n")
    expect_error(["prepare", str(f), "-o", str(out)], capsys, "s.fa", "line 1", absent=out)


def test_fasta_record_without_sequence(tmp_path, out, capsys):
    f = tmp_path / "e.fa"
    f.write_text(">a\n>b\nACGT\n")
    expect_error(["prepare", str(f), "-o", str(out)], capsys, "e.fa", "line 1", "no sequence", absent=out)


def test_missing_file(tmp_path, out, capsys):
    expect_error(["prepare", str(tmp_path / "nope.csv"), "-o", str(out)], capsys, "nope.csv", "not found", absent=out)


def test_prepare_refuses_existing_output(tmp_path, capsys):
    f = write_csv(tmp_path / "a.csv", [("ACGT", 1)])
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("precious")
    expect_error(["prepare", str(f), "-o", str(existing)], capsys, "already exists")
    assert (existing / "keep.txt").read_text() == "precious"


def write_config(tmp_path: Path, cfg: dict) -> Path:
    import tomllib  # noqa: F401  (the recipes are TOML; JSON is accepted too)

    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    return path


def test_unknown_model_name(tmp_path, motif_data, capsys):
    cfg = tiny_config(motif_data)
    cfg["model"] = {"name": "cnn_gruu"}
    run = tmp_path / "run"
    expect_error(["train", str(write_config(tmp_path, cfg)), "-o", str(run)], capsys, "cfg.json",
                 "unknown model 'cnn_gruu'", "did you mean 'cnn_gru'", absent=run)


def test_typo_in_config_key(tmp_path, motif_data, capsys):
    cfg = tiny_config(motif_data)
    cfg["train"]["learning_rate"] = 0.1
    run = tmp_path / "run"
    expect_error(["train", str(write_config(tmp_path, cfg)), "-o", str(run)], capsys, "cfg.json", "train.learning_rate",
                 absent=run)


def test_typo_in_model_param(tmp_path, motif_data, capsys):
    cfg = tiny_config(motif_data)
    cfg["model"]["params"]["kernel"] = [3]
    run = tmp_path / "run"
    expect_error(["train", str(write_config(tmp_path, cfg)), "-o", str(run)], capsys, "cfg.json", "'kernel'",
                 "did you mean 'kernels'", absent=run)


def test_bad_set_override(tmp_path, motif_data, capsys):
    run = tmp_path / "run"
    expect_error(["train", str(write_config(tmp_path, tiny_config(motif_data))), "-o", str(run), "--set", "train.lr"],
                 capsys, "key=value", absent=run)


def test_binary_task_with_non_binary_labels(tmp_path, motif_data, capsys):
    data = dict(motif_data)
    data["train"] = write_csv(tmp_path / "reg.csv", [(s, 2.5) for s, _ in motif_rows(40, 40, 0)])
    run = tmp_path / "run"
    expect_error(["train", str(write_config(tmp_path, tiny_config(data))), "-o", str(run)], capsys, "reg.csv",
                 "0/1 labels")


def test_config_file_missing(tmp_path, capsys):
    expect_error(["train", str(tmp_path / "nope.toml")], capsys, "nope.toml", "not found")


def test_bad_option_values(tmp_path, out, capsys):
    f = write_csv(tmp_path / "a.csv", [("ACGT", 1)])
    expect_error(["prepare", str(f), "-o", str(out), "--length", "fixd"], capsys, "'fixd'", absent=out)
    expect_error(["prepare", str(f), "-o", str(out), "--iupac", "x"], capsys, "'x'", absent=out)


def test_unlabelled_prepared_training_data(tmp_path, motif_data, capsys):
    fasta = tmp_path / "u.fa"
    fasta.write_text(">a\n" + "ACGT" * 10 + "\n")
    assert main(["prepare", str(fasta), "-o", str(tmp_path / "u")]) == 0
    cfg = tiny_config(motif_data)
    cfg["data"]["train"] = str(tmp_path / "u")
    run = tmp_path / "run"
    expect_error(["train", str(write_config(tmp_path, cfg)), "-o", str(run)], capsys, "no label column", absent=run)
