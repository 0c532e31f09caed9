import gzip
import json

import numpy as np
import pytest

from helixlab.cli import main
from helixlab.data.batches import epoch_order, train_batches
from helixlab.data.shards import Shard, prepare, read_fixed_length, read_sequences
from helixlab.errors import HelixError
from helixlab.seq import alphabet


def test_fixed_length_table_round_trip(tmp_path):
    f = tmp_path / "a.tsv.gz"
    with gzip.open(f, "wt") as fh:
        fh.write("id\tsequence\tscore\n" + "".join(f"r{i}\t{'ACGTN'[i % 5] * 6}\t{i / 2}\n" for i in range(10)))
    shard = Shard.open(prepare([f], tmp_path / "p", progress=False))
    assert len(shard) == 10 and shard.length == 6
    assert shard.meta["labels"] == []  # 'score' is not a default label name
    assert shard.ids()[:2] == ["r0", "r1"]
    assert alphabet.decode(shard.codes(np.array([3]))[0]) == "TTTTTT"
    assert len(shard.meta["sources"][0]["sha256"]) == 64


def test_labels_stats_and_explicit_columns(tmp_path):
    f = tmp_path / "a.csv"
    f.write_text("seq,y1,y2\nACGT,1,0.5\nTTTT,0,1.5\n")
    shard = Shard.open(prepare([f], tmp_path / "p", label_cols=["y1", "y2"], progress=False))
    assert shard.meta["labels"] == ["y1", "y2"]
    assert shard.labels.tolist() == [[1.0, 0.5], [0.0, 1.5]]
    assert shard.meta["label_stats"]["y2"]["mean"] == 1.0
    assert shard.meta["label_stats"]["y1"]["value_counts"] == {"0": 1, "1": 1}


def test_variable_length_fasta_with_mask(tmp_path):
    f = tmp_path / "g.fa.gz"
    with gzip.open(f, "wt") as fh:
        fh.write(">a desc\nACgt\nNN\n>b\nTTTTTTTT\n>c\nA\n")
    shard = Shard.open(prepare([f], tmp_path / "p", keep_mask=True, progress=False))
    assert shard.length is None and shard.meta["min_length"] == 1 and shard.meta["max_length"] == 8
    codes = shard.codes(np.array([0, 2]))
    assert codes.shape == (2, 6)
    assert alphabet.decode(codes[0]) == "ACGTNN" and alphabet.decode(codes[1]) == "ANNNNN"
    mask = np.fromfile(shard.path / "mask.u8", dtype=np.uint8)
    assert mask[:6].tolist() == [0, 0, 1, 1, 0, 0]
    assert shard.ids() == ["a", "b", "c"]


def test_dream_headerless_lines(tmp_path):
    f = tmp_path / "train_sequences.txt"
    f.write_text("ACGTACGT\t11.0\nTTTTACGT\t3.5\n")
    shard = Shard.open(prepare([f], tmp_path / "p", progress=False))
    assert shard.meta["labels"] == ["expression"]
    assert shard.labels[:, 0].tolist() == [11.0, 3.5]


def test_several_inputs_concatenate(tmp_path):
    a = tmp_path / "a.csv"
    b = tmp_path / "b.csv"
    a.write_text("sequence,label\nAAAA,1\n")
    b.write_text("sequence,label\nCCCC,0\nGGGG,1\n")
    assert main(["prepare", str(a), str(b), "-o", str(tmp_path / "p")]) == 0
    meta = json.loads((tmp_path / "p" / "meta.json").read_text())
    assert meta["records"] == 3 and [s["records"] for s in meta["sources"]] == [1, 2]


def test_batches_cover_each_row_once_and_resume_mid_epoch(tmp_path):
    f = tmp_path / "a.csv"
    f.write_text("sequence,label\n" + "".join(f"{'ACGT'[i % 4] * 4},{i % 2}\n" for i in range(103)))
    shard = Shard.open(prepare([f], tmp_path / "p", progress=False))
    full = list(train_batches(shard, batch_size=10, seed=1, epoch=2))
    assert sorted(np.concatenate([idx for _, idx in full]).tolist()) == list(range(103))
    resumed = list(train_batches(shard, batch_size=10, seed=1, epoch=2, start=4))
    assert [b for b, _ in resumed] == list(range(4, 11))
    assert all(np.array_equal(x, y) for (_, x), (_, y) in zip(full[4:], resumed))
    ranks = [np.concatenate([i for _, i in train_batches(shard, batch_size=10, seed=1, epoch=2, rank=r, world=2)])
             for r in (0, 1)]
    assert sorted(np.concatenate(ranks).tolist()) == list(range(103))
    assert not np.array_equal(epoch_order(103, 1, 0), epoch_order(103, 1, 1))


def test_read_sequences_and_fixed_length(tmp_path):
    fa = tmp_path / "s.fa"
    fa.write_text(">a\nACGT\n>b\nacgtn\n")
    rows, ids = read_sequences(fa)
    assert ids == ["a", "b"] and [len(r) for r in rows] == [4, 5]
    with pytest.raises(HelixError, match="must share one length: 5 bp here, 4 bp in the first") as err:
        read_fixed_length(fa)
    assert "line 3" in str(err.value)
    same = tmp_path / "t.csv"
    same.write_text("sequence\r\nACGT\r\nTTGA\r\n")
    codes, ids = read_fixed_length(same)
    assert codes.shape == (2, 4) and ids == ["seq0", "seq1"]
    (tmp_path / "e.fa").write_text("")
    with pytest.raises(HelixError, match="file is empty"):
        read_sequences(tmp_path / "e.fa")
    with pytest.raises(HelixError, match="file not found"):
        read_sequences(tmp_path / "missing.fa")
