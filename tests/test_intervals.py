"""Genome intervals as data (prepare --bed, chromosome split) and GC-matched backgrounds."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from helixlab.cli import main
from helixlab.data.background import gc_matched
from helixlab.data.intervals import Region, assign_split, parse_split, prepare_intervals, read_bed
from helixlab.data.shards import Shard
from helixlab.errors import HelixError
from helixlab.seq import alphabet
from tests.conftest import MOTIF

CHROMS = {"chr1": 40_000, "chr2": 30_000, "chr3": 20_000, "chr4": 20_000}


@pytest.fixture(scope="module")
def genome(tmp_path_factory) -> tuple[Path, dict[str, str], dict[str, list[int]]]:
    """Four chromosomes with MOTIF planted every 1,000 bases in GC-rich 300 bp islands (the positives),
    GC-rich islands without it half-way between (what a GC-matched background finds), AT-rich elsewhere;
    a run of N on chr2."""
    rng = np.random.default_rng(5)
    seqs, sites = {}, {}
    for name, size in CHROMS.items():
        codes = rng.choice(4, size=size, p=[0.3, 0.2, 0.2, 0.3]).astype(np.uint8)
        sites[name] = list(range(600, size - 600, 1000))
        for s in sites[name]:
            codes[s - 150 : s + 150] = rng.choice(4, size=300, p=[0.2, 0.3, 0.3, 0.2])
            codes[s + 350 : s + 650] = rng.choice(4, size=300, p=[0.2, 0.3, 0.3, 0.2])
            codes[s : s + len(MOTIF)] = alphabet.encode(MOTIF)
        seqs[name] = alphabet.decode(codes)
    seqs["chr2"] = seqs["chr2"][:25_000] + "N" * 200 + seqs["chr2"][25_200:]
    path = tmp_path_factory.mktemp("g") / "genome.fa.gz"
    with gzip.open(path, "wt") as fh:
        for name, s in seqs.items():
            fh.write(f">{name} test\n" + "\n".join(s[i : i + 70].lower() if name == "chr3" else s[i : i + 70]
                                                  for i in range(0, len(s), 70)) + "\n")
    return path, seqs, sites


def _bed(path: Path, rows: list[str], header: str = "#chrom\tstart\tend\tname\tactivity\tstrand") -> Path:
    path.write_text("track name=test\r\nbrowser position chr1\r\n" + header + "\r\n" + "\r\n".join(rows) + "\r\n")
    return path


def test_intervals_are_cut_recentred_and_reverse_complemented(genome, tmp_path):
    fa, seqs, _ = genome
    bed = _bed(tmp_path / "a.bed", ["chr1\t100\t160\ta\t2.5\t+", "chr1\t1000\t1060\tb\t-1\t-",
                                    "chr3\t10\t30\tc\t0\t.", "chr1\t39990\t40100\td\t1\t+"])
    report = prepare_intervals(bed, fa, tmp_path / "p", labels=["activity"])
    assert report["kept"] == 3 and report["dropped"]["off_chromosome"] == 1
    shard = Shard.open(tmp_path / "p" / "all")
    assert shard.ids() == ["a", "b", "c"]
    got = [alphabet.decode(shard.codes(np.array([i]))[0]).rstrip("N") for i in range(3)]
    assert got[0] == seqs["chr1"][100:160]
    assert got[1] == alphabet.decode(alphabet.reverse_complement(alphabet.encode(seqs["chr1"][1000:1060])))
    assert got[2] == seqs["chr3"][10:30].upper()
    assert shard.labels[:, 0].tolist() == [2.5, -1.0, 0.0]
    # re-centred on the middle, or on a summit column, and resized
    prepare_intervals(bed, fa, tmp_path / "q", labels=["activity"], length=40, edge="pad")
    q = Shard.open(tmp_path / "q" / "all")
    assert q.length == 40 and len(q) == 4
    assert alphabet.decode(q.codes(np.array([0]))[0]) == seqs["chr1"][110:150]
    assert alphabet.decode(q.codes(np.array([3]))[0]).endswith("N" * 5)  # off the end: padded with N
    summit = _bed(tmp_path / "s.bed", ["chr1\t100\t160\ta\t10"], "#chrom\tstart\tend\tname\tpeak")
    prepare_intervals(summit, fa, tmp_path / "r", label=1, length=20, summit="peak")
    assert alphabet.decode(Shard.open(tmp_path / "r" / "all").codes(np.array([0]))[0]) == seqs["chr1"][100:120]


def test_chromosome_split_and_n_policies(genome, tmp_path):
    fa, _, sites = genome
    rows = [f"{c}\t{s - 50}\t{s + 50}\t{c}_{s}\t1\t+" for c, ss in sites.items() for s in ss]
    rows.append("chr2\t24950\t25050\tn_run\t1\t+")
    bed = _bed(tmp_path / "b.bed", rows)
    report = prepare_intervals(bed, fa, tmp_path / "p", label=1.0, split=parse_split(["chr3:test", "chr4:valid"]))
    assert report["dropped"]["with_n"] == 1
    assert report["splits"]["test"]["chromosomes"] == ["chr3"] and report["splits"]["valid"]["chromosomes"] == ["chr4"]
    assert report["splits"]["train"]["chromosomes"] == ["chr1", "chr2"]
    assert json.loads((tmp_path / "p" / "intervals.json").read_text())["kept"] == report["kept"]
    with pytest.raises(HelixError, match="contains N"):
        prepare_intervals(bed, fa, tmp_path / "e", label=1.0, edge="error")
    kept_n = prepare_intervals(bed, fa, tmp_path / "k", label=1.0, edge="pad")
    assert kept_n["kept"] == report["kept"] + 1


@pytest.mark.parametrize("rows, kwargs, message", [
    (["chr1\t100"], {}, "at least 3 columns"),
    (["chr1\t200\t100\ta\t1"], {}, "start > end"),
    (["chr1\tx\t100\ta\t1"], {}, "whole numbers"),
    (["chr1\t100\t200\ta\thigh"], {"labels": ["activity"]}, "not a number"),
    (["chrZ\t100\t200\ta\t1"], {}, "not in the genome"),
    (["chr1\t100\t200\ta\t1", "chr1\t100\t200\tb\t1"], {"duplicates": "refuse"}, "duplicate"),
    (["chr1\t100\t200\ta\t1"], {"labels": ["signal"]}, "no column 'signal'"),
    (["chr1\t100\t200\ta\t1"], {"edge": "trim"}, "unknown edge"),
    (["chr1\t100\t200\ta\t1"], {"label": None}, "--label-col COLUMN"),
])
def test_bad_bed_input(genome, tmp_path, rows, kwargs, message):
    fa, _, _ = genome
    bed = _bed(tmp_path / "bad.bed", rows)
    options = {"label": 1.0} | kwargs
    if "labels" in kwargs:
        options.pop("label")
    with pytest.raises(HelixError, match=message):
        prepare_intervals(bed, fa, tmp_path / "out", **options)  # type: ignore[arg-type]
    assert not (tmp_path / "out" / "intervals.json").exists()


def test_duplicates_kept_and_reported_and_empty_bed(genome, tmp_path):
    fa, _, _ = genome
    bed = _bed(tmp_path / "d.bed", ["chr1\t100\t200\ta\t1", "chr1\t100\t200\tb\t1"])
    assert prepare_intervals(bed, fa, tmp_path / "o", label=1)["duplicates"] == 1
    empty = tmp_path / "e.bed"
    empty.write_text("track name=x\n# nothing\n")
    with pytest.raises(HelixError, match="no intervals"):
        read_bed(empty)


def test_gc_matched_background_matches_and_excludes_positives(genome, tmp_path):
    fa, _, sites = genome
    bed = _bed(tmp_path / "pos.bed", [f"{c}\t{s - 150}\t{s + 150}\tp\t1\t+" for c, ss in sites.items() for s in ss])
    res = gc_matched(fa, bed, tmp_path / "bg.bed", seed=3)
    assert res.count == len(res.positives_gc) and res.plot.exists()
    assert abs(res.positives_gc.mean() - res.background_gc.mean()) < 0.01  # GC-rich islands matched...
    genome_gc = 0.4
    assert res.positives_gc.mean() > genome_gc + 0.05
    windows = [line.split("\t") for line in (tmp_path / "bg.bed").read_text().splitlines()]
    for chrom, start, end, *_ in windows:  # ...but never the positives themselves
        for s in sites[chrom]:
            assert int(end) <= s - 150 or int(start) >= s + 150
    again = gc_matched(fa, bed, tmp_path / "bg2.bed", seed=3)
    assert (tmp_path / "bg2.bed").read_text() == (tmp_path / "bg.bed").read_text() and again.count == res.count
    # positives no genome window can match
    gc_only = tmp_path / "gc.csv"
    gc_only.write_text("sequence,label\n" + "".join("GC" * 50 + ",1\n" for _ in range(20)))
    with pytest.raises(HelixError, match="found 0 of 20 GC-matched windows"):
        gc_matched(fa, gc_only, tmp_path / "none.csv", max_draws=200_000)
    # positives as sequences of two lengths: only with a window --length
    ragged = tmp_path / "ragged.fa"
    ragged.write_text(">a\nACGTACGTAC\n>b\nACGTACGTACGT\n")
    with pytest.raises(HelixError, match="the positives have 2 lengths"):
        gc_matched(fa, ragged, tmp_path / "r.csv")
    with pytest.raises(HelixError, match="file not found"):
        gc_matched(fa, tmp_path / "missing.fa", tmp_path / "m.csv")
    assert not (tmp_path / "r.csv").exists() and not (tmp_path / "m.csv").exists()


def test_bed_to_trained_model_with_chromosome_held_out_test(genome, tmp_path):
    """A new user's path: positive intervals + GC-matched background -> prepare --bed with a chromosome split
    -> train -> test metrics on a held-out chromosome, from the CLI alone."""
    fa, _, sites = genome
    pos = _bed(tmp_path / "pos.bed", [f"{c}\t{s - 40}\t{s + 40}\tp\t1\t+" for c, ss in sites.items() for s in ss])
    assert main(["background", str(fa), "--matched", str(pos), "-o", str(tmp_path / "bg.bed"), "--seed", "1"]) == 0
    both = tmp_path / "all.bed"
    both.write_text(pos.read_text().replace("#chrom\tstart\tend\tname\tactivity\tstrand", "#chrom\tstart\tend\tname\t"
                                                                                        "score\tstrand")
                    + (tmp_path / "bg.bed").read_text())
    assert main(["prepare", "--bed", str(both), "--genome", str(fa), "--label-col", "score", "--split", "chr3:test",
                 "--split", "chr4:valid", "-o", str(tmp_path / "data")]) == 0
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({
        "data": {s: str(tmp_path / "data" / s) for s in ("train", "valid", "test")},
        "model": {"name": "cnn", "params": {"channels": [16], "kernels": [8], "pools": [1], "hidden": [16]}},
        "task": {"kind": "binary"}, "train": {"epochs": 4, "batch_size": 16, "lr": 5e-3, "progress": False}}))
    assert main(["train", str(recipe), "-o", str(tmp_path / "run")]) == 0
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert res["splits"]["test"]["auroc"] > 0.9
    rows = list(csv.reader(open(tmp_path / "data" / ".intervals" / "test.csv")))
    assert rows[0][:2] == ["id", "sequence"] and len(rows) > 10


@pytest.mark.data
def test_region_split_holds_windows_and_drops_those_across_an_edge(genome, tmp_path):
    fa, _, _ = genome
    regions = parse_split(["chr1:10000-20000:test", "chr1:20000-25000,chr2:test", "chr3:valid"])
    assert assign_split(regions, "chr1", 10000, 10300) == "test"
    assert assign_split(regions, "chr1", 19900, 20100) == "test"  # two regions of one split, no edge between
    assert assign_split(regions, "chr1", 9900, 10100) is None  # across the edge of a held-out region
    assert assign_split(regions, "chr1", 100, 400) == "train" and assign_split(regions, "chr4", 0, 10) == "train"
    rows = [f"chr1\t{a}\t{a + 100}\tr{a}\t1\t+" for a in range(5000, 30000, 250)]
    bed = _bed(tmp_path / "r.bed", rows)
    report = prepare_intervals(bed, fa, tmp_path / "p", label=1.0, length=200,
                               split=parse_split(["chr1:10000-20000:test", "chr1:20000-25000:valid"]))
    # windows [a - 50, a + 150): across 10000 (a = 10000), 20000 (a = 20000) and 25000 (a = 25000) are dropped
    assert report["dropped"]["straddles_split"] == 3
    assert {k: v["records"] for k, v in report["splits"].items()} == {"train": 39, "test": 39, "valid": 19}
    assert report["kept"] == 97 and report["regions"][0] == ["chr1", 10000, 20000, "test"]
    # a train region only documents the default; a name may hold ':' (alt contigs)
    assert assign_split(parse_split(["chr1:0-100:train"]), "chr1", 50, 150) == "train"
    assert parse_split(["HLA-A*01:01:01:01:test"]) == [Region("HLA-A*01:01:01:01", "test")]
    assert parse_split(["chr1:1_000-2_000:valid"]) == [Region("chr1", "valid", 1000, 2000)]
    for specs, message in [(["chr1:20-10:test"], "START < END"),
                           (["chr1:0-100:test", "chr1:50-150:valid"], "two splits"),
                           (["chr1:test", "chr1:0-10:valid"], "two splits"),
                           (["chr1:0-10:holdout"], "--split expects")]:
        with pytest.raises(HelixError, match=message):
            parse_split(specs)
    # a window padded with N off the chromosome's start lies in the region that holds its bases
    edge = _bed(tmp_path / "edge.bed", ["chr1\t0\t100\te\t1\t+"])
    padded = prepare_intervals(edge, fa, tmp_path / "pad", label=1.0, length=300, edge="pad",
                               split=parse_split(["chr1:0-1000:test"]))
    assert padded["splits"]["test"]["records"] == 1 and padded["dropped"]["straddles_split"] == 0
    with pytest.raises(HelixError, match="not in the genome"):
        prepare_intervals(bed, fa, tmp_path / "q", label=1.0, split=parse_split(["chr9:0-10:test"]))


def test_real_genomes_ecoli_and_chrx(shared_data, tmp_path):
    """Intervals this test writes, cut from the E. coli 536 genome (checked against the FASTA) with a
    GC-matched background, and repeat intervals of the hg19 chrX region (its RepeatMasker BED)."""
    fa = shared_data / "genome_ecoli_536" / "NC_008253.1_Ecoli_536.fna.gz"
    text = "".join(line.strip() for line in gzip.open(fa, "rt") if not line.startswith(">")).upper()
    rng = np.random.default_rng(0)
    starts = np.sort(rng.integers(0, len(text) - 500, 60))
    bed = _bed(tmp_path / "ecoli.bed", [f"NC_008253.1\t{s}\t{s + 250}\ti{k}\t{k % 2}\t{'+-'[k % 2]}"
                                        for k, s in enumerate(starts)], "#chrom\tstart\tend\tname\tclass\tstrand")
    report = prepare_intervals(bed, fa, tmp_path / "e", labels=["class"])
    assert report["kept"] == 60
    shard = Shard.open(tmp_path / "e" / "all")
    for k in (0, 1):
        want = text[starts[k] : starts[k] + 250]
        if k % 2:
            want = alphabet.decode(alphabet.reverse_complement(alphabet.encode(want)))
        assert alphabet.decode(shard.codes(np.array([k]))[0]) == want
    # a region split named by the NCBI id holds the intervals the BED names by accession
    split = prepare_intervals(bed, tmp_path / "e" / "genome", tmp_path / "e2", labels=["class"],
                              split=parse_split(["gi|110640213|ref|NC_008253.1|:0-2_500_000:test"]))
    assert split["splits"]["test"]["records"] == int((starts + 250 <= 2_500_000).sum()) > 0
    assert split["splits"]["train"]["records"] == int((starts >= 2_500_000).sum()) > 0
    with pytest.raises(HelixError, match="two splits"):
        prepare_intervals(bed, tmp_path / "e" / "genome", tmp_path / "e3", labels=["class"],
                          split=parse_split(["gi|110640213|ref|NC_008253.1|:test", "NC_008253.1:0-10:valid"]))
    with pytest.raises(HelixError, match="past the chromosome's end"):
        prepare_intervals(bed, tmp_path / "e" / "genome", tmp_path / "e4", labels=["class"],
                          split=parse_split(["NC_008253.1:0-9000000:test"]))
    res = gc_matched(tmp_path / "e" / "genome", bed, tmp_path / "bg.csv", seed=0)
    assert res.count == 60 and abs(res.positives_gc.mean() - res.background_gc.mean()) < 0.01
    chrx = shared_data / "genome_human_hg19_chrX_0-70Mb"
    rows = [line.split("\t") for line in gzip.open(chrx / "hg19_rmsk_chrX_0-69999930.bed.gz", "rt")][:3000]
    rmsk = tmp_path / "rmsk.bed"
    rmsk.write_text("".join("\t".join(r[:3]).strip() + "\n" for r in rows))
    got = prepare_intervals(rmsk, chrx / "hg19_chrX_0-69999930.softmasked.fa.gz", tmp_path / "x", label=1, length=200,
                            split=parse_split(["chrX:0-100000:test", "chrX:100000-200000:valid"]))
    parts = {k: v["records"] for k, v in got["splits"].items()}
    assert set(parts) == {"train", "valid", "test"} and sum(parts.values()) == got["kept"] > 2500
    assert got["dropped"]["straddles_split"] > 0


def test_recipe_reads_bed_and_genome(genome, tmp_path):
    fa, _, sites = genome
    pos = [f"{c}\t{s - 40}\t{s + 40}\tp\t1\t+" for c, ss in sites.items() for s in ss]
    neg = [f"{c}\t{s + 460}\t{s + 540}\tn\t0\t+" for c, ss in sites.items() for s in ss]  # GC-rich, no motif
    bed = _bed(tmp_path / "all.bed", pos + neg, "#chrom\tstart\tend\tname\tscore\tstrand")
    recipe = tmp_path / "r.json"
    cfg = {"data": {"bed": str(bed), "genome": str(fa),
                    "intervals": {"labels": ["score"], "split": ["chr3:test", "chr4:valid"]}},
           "model": {"name": "cnn", "params": {"channels": [16], "kernels": [8], "pools": [1], "hidden": [16]}},
           "task": {"kind": "binary"}, "train": {"epochs": 6, "batch_size": 16, "lr": 5e-3, "progress": False}}
    recipe.write_text(json.dumps(cfg))
    assert main(["train", str(recipe), "-o", str(tmp_path / "run")]) == 0
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert res["splits"]["test"]["auroc"] > 0.8
    report = json.loads((tmp_path / "run" / "data" / "intervals" / "intervals.json").read_text())
    assert report["splits"]["test"]["chromosomes"] == ["chr3"]
    cfg["data"]["intervals"]["width"] = 5
    recipe.write_text(json.dumps(cfg))
    assert main(["train", str(recipe), "-o", str(tmp_path / "bad")]) == 1
    cfg["data"]["train"] = str(bed)
    recipe.write_text(json.dumps(cfg))
    assert main(["train", str(recipe), "-o", str(tmp_path / "bad2")]) == 1
