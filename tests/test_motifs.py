"""Motif discovery (modisco-lite + TOMTOM against JASPAR or a MEME file) and motif marginalisation."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from helixlab.cli import main
from helixlab.errors import HelixError
from helixlab.interpret.jaspar import Motif, consensus, jaspar_motif, load_database, read_meme, write_meme
from helixlab.interpret.marginalize import marginalize
from helixlab.interpret.motifs import discover_motifs
from helixlab.seq.motifs import iupac_mask, occurrences
from tests.conftest import MOTIF, motif_rows, write_csv


def _planted_database(path):
    ppm = iupac_mask(MOTIF).T.astype(float) * 0.94 + 0.015
    write_meme(path, [Motif("planted", MOTIF, ppm)])
    return path


def test_planted_motif_is_recovered_and_matched_to_itself(motif_run, tmp_path):
    run, _ = motif_run
    data = write_csv(tmp_path / "disc.csv", motif_rows(600, 40, 7))
    db = [str(_planted_database(tmp_path / "planted.meme")), "jaspar:fungi"]
    res = discover_motifs(run, data, tmp_path / "m", database=db, window=10, flank=5, min_seqlets=30, device="cpu")
    positive = [m for m in res.motifs if m.sign > 0]
    assert positive, "no motif found"
    best = max(positive, key=lambda m: len(m.seqlets))
    assert best.matches[0]["id"] == "planted" and best.matches[0]["q"] < 0.01
    assert MOTIF[1:7] in "".join("ACGT"[i] for i in best.ppm.argmax(0))
    rows = list(csv.DictReader(open(tmp_path / "m" / "seqlets.csv")))
    assert rows and set(rows[0]) == {"record", "id", "start", "end", "strand", "motif"}
    for name in ("motifs.md", "motifs.meme", f"logos/{best.id}.png"):
        assert (tmp_path / "m" / name).stat().st_size > 0
    assert read_meme(tmp_path / "m" / "motifs.meme")[0].ppm.shape[0] == 4
    # the same seed gives the same motifs (the contributions are reused from the first run's cache)
    again = discover_motifs(run, data, tmp_path / "m", database=db, window=10, flank=5, min_seqlets=30, device="cpu")
    assert [(m.id, len(m.seqlets)) for m in again.motifs] == [(m.id, len(m.seqlets)) for m in res.motifs]


def test_jaspar_offline_and_bad_databases(tmp_path):
    assert jaspar_motif("MA0108").name == "TBP" and consensus("MA0108").startswith("TATA")
    assert len(load_database(["jaspar:fungi"])) > 100
    with pytest.raises(HelixError, match="unknown JASPAR matrix id"):
        jaspar_motif("MA9999")
    with pytest.raises(HelixError, match="not a JASPAR matrix id"):
        jaspar_motif("TBP1")
    with pytest.raises(HelixError, match="unknown JASPAR taxon"):
        load_database(["jaspar:bacteria"])
    with pytest.raises(HelixError, match="motif database not found"):
        load_database([str(tmp_path / "none.meme")])
    bad = tmp_path / "bad.meme"
    bad.write_text("MOTIF x\nletter-probability matrix: alength= 4 w= 2\n0.5 0.5\n")
    with pytest.raises(HelixError, match="MEME"):
        load_database([str(bad)])


def test_motif_matching_on_both_strands():
    X = np.array([[0, 1, 3, 3, 3, 2, 2, 0]], dtype=np.uint8)  # ACTTTGGA
    hits = occurrences(X, iupac_mask("CCAAA"))  # its reverse complement TTTGG is at 2
    assert hits[0].tolist() == [False, False, True, False]
    assert not occurrences(X, iupac_mask("CCAAA"), both_strands=False).any()
    assert occurrences(X, iupac_mask("WCW"))[0, 0]


def test_marginalize_by_position_and_pairs(motif_run, tmp_path):
    run, data = motif_run
    res, files = marginalize(run, MOTIF, tmp_path / "a", n=40, seed=1, device="cpu")
    assert len(res.x) == 40 - len(MOTIF) + 1 and res.mean.min() > 0.2  # the planted motif raises P(positive)
    other, _ = marginalize(run, "CCGCGCCG", tmp_path / "b", n=40, seed=1, device="cpu")
    assert np.abs(other.mean).mean() < res.mean.mean() / 3
    rows = list(csv.DictReader(open(tmp_path / "a" / "marginalize.csv")))
    assert len(rows) == len(res.x) and float(rows[0]["mean_change"]) == pytest.approx(res.mean[0], rel=1e-4)
    assert all(f.stat().st_size > 0 for f in files)
    bg = write_csv(tmp_path / "bg.csv", motif_rows(30, 40, 9))
    assert main(["interpret", "marginalize", str(run), "--motif", MOTIF, "--second", "CCGCGCCG", "--background",
                 str(bg), "--mode", "random", "--n", "20", "--spacings", "0-6", "-o", str(tmp_path / "p")]) == 0
    pair = list(csv.DictReader(open(tmp_path / "p" / "marginalize.csv")))
    assert [int(r["spacing"]) for r in pair] == list(range(6)) and "additive" in pair[0]
    again, _ = marginalize(run, MOTIF, tmp_path / "c", n=40, seed=1, device="cpu")
    assert np.array_equal(again.mean, res.mean)


@pytest.mark.parametrize("kwargs, message", [
    (dict(motif="TATRAA"), "must be A/C/G/T"),
    (dict(motif="TAXAA"), "not an IUPAC motif"),
    (dict(motif="A" * 41), "longer than the region"),
    (dict(motif="MA9999"), "unknown JASPAR"),
    (dict(motif=MOTIF, region="30-50"), "not inside"),
    (dict(motif=MOTIF, positions=[35]), "does not fit"),
    (dict(motif=MOTIF, mode="dinuc"), "unknown background"),
    (dict(motif=MOTIF, n=0), "at least 1"),
    (dict(motif=MOTIF, second="GGGG", at=38), "does not fit"),
])
def test_bad_marginalize_options(motif_run, tmp_path, kwargs, message):
    run, _ = motif_run
    with pytest.raises(HelixError, match=message):
        marginalize(run, out=tmp_path / "x", device="cpu", **kwargs)
