"""Genome windows: sampled inside regions, never across N, reproducible, clear errors."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from helixlab.data.genome import GenomeWindows, parse_regions
from helixlab.data.shards import Shard, prepare
from helixlab.errors import HelixError


@pytest.fixture
def genome(tmp_path):
    rng = np.random.default_rng(0)
    chr1 = "".join(rng.choice(list("ACGTacgt"), 5000))
    chr1 = chr1[:1000] + "N" * 200 + chr1[1200:]
    chr2 = "".join(rng.choice(list("ACGT"), 800))
    path = tmp_path / "g.fa.gz"
    with gzip.open(path, "wt") as fh:
        for name, seq in (("gi|1|ref|chr1.1| test", chr1), ("chr2", chr2)):
            fh.write(f">{name}\n" + "\n".join(seq[i : i + 60] for i in range(0, len(seq), 60)) + "\n")
    prepare([str(path)], tmp_path / "prep", length="variable", iupac="n", unique_ids=False, progress=False)
    return Shard.open(tmp_path / "prep"), chr1.upper(), chr2


def test_windows_stay_inside_regions_and_avoid_n(genome):
    shard, chr1, _ = genome
    regions = parse_regions(["chr1.1:500-3000"], shard, "cfg")
    w = GenomeWindows(shard, 100, regions, n=400, seed=1)
    assert len(w) == 400 and w.codes(np.arange(5)).shape == (5, 100)
    starts = w.starts - int(shard.offsets[0])
    assert starts.min() >= 500 and starts.max() + 100 <= 3000
    assert not ((starts < 1200) & (starts + 100 > 1000)).any()  # never overlapping the N run
    letters = np.frombuffer(b"ACGTN", np.uint8)[w.codes(np.arange(3))]
    for s, row in zip(starts[:3], letters):
        assert row.tobytes().decode() == chr1[s : s + 100]
    again = GenomeWindows(shard, 100, regions, n=400, seed=1)
    assert np.array_equal(again.starts, w.starts)
    assert not np.array_equal(GenomeWindows(shard, 100, regions, n=400, seed=2).starts, w.starts)


def test_region_errors_name_the_problem(genome):
    shard, _, _ = genome
    with pytest.raises(HelixError, match="no record named 'chrZ'"):
        parse_regions(["chrZ:0-10"], shard, "cfg")
    with pytest.raises(HelixError, match="outside record"):
        parse_regions(["chr2:0-900"], shard, "cfg")
    with pytest.raises(HelixError, match="cannot read region"):
        parse_regions(["chr2:5"], shard, "cfg")
    with pytest.raises(HelixError, match="without N"):
        GenomeWindows(shard, 150, parse_regions(["chr1.1:1000-1300"], shard, "cfg"), n=10, seed=0)
    assert parse_regions(["chr2"], shard, "cfg")[0].end == 800


def test_pretraining_refuses_valid_windows_from_the_training_bases(genome, tmp_path):
    from helixlab.config import config_from_dict
    from helixlab.train import fit

    fasta = str(tmp_path / "g.fa.gz")
    values = {"data": {"train": fasta, "valid": fasta, "window": 50, "samples": {"train": 64, "valid": 16}},
              "model": {"name": "bert", "params": {"tokenizer": "nucleotide", "size": "tiny", "hidden": 16,
                                                   "heads": 2, "intermediate": 32}},
              "task": {"kind": "mlm"}, "train": {"epochs": 1, "batch_size": 16, "progress": False}}
    with pytest.raises(HelixError, match="give data.regions for train and valid"):
        fit(config_from_dict(values, "t"), tmp_path / "run")
    assert not (tmp_path / "run").exists()
    values["data"]["regions"] = {"train": ["chr1.1:0-4000"], "valid": ["chr1.1:4000-5000"]}
    res = fit(config_from_dict(values, "t"), tmp_path / "run")
    assert res["splits"]["valid"]["masked_tokens"] > 0
    assert not (tmp_path / "run" / "data" / "valid").exists()  # the file was prepared once, for both splits
