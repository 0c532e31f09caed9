"""Sequence design: greedy ISM rounds and the genetic algorithm, constraints, checks, resume after kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helixlab.cli import main
from helixlab.design import design
from helixlab.design.objective import Predictor
from helixlab.errors import HelixError
from helixlab.seq import alphabet
from helixlab.seq.motifs import count_occurrences, gc_fraction, iupac_mask
from tests.conftest import MOTIF


def test_greedy_design_raises_the_prediction_and_writes_its_outputs(motif_run, tmp_path):
    run, _ = motif_run
    res = design([run], tmp_path / "d", random=12, length=40, rounds=4, check=[run], progress=False)
    rows = [json.loads(json.dumps(r)) for r in _csv(tmp_path / "d" / "trajectory.csv")]
    start = np.mean([float(r["prediction"]) for r in rows if r["round"] == "0"])
    assert res.values.mean() > start + 0.25
    assert np.allclose(res.checks[run.name], res.values, atol=1e-5)  # the same run as check
    for name in ("designs.fa", "trajectory.csv", "design.png", "design.md"):
        assert (tmp_path / "d" / name).stat().st_size > 0
    lines = (tmp_path / "d" / "designs.fa").read_text().splitlines()
    assert len(lines) == 24 and lines[0].startswith(">random0_design")
    # at most one substitution per design and round
    assert ((res.designs != design_starts(12, 40)).sum(1) <= 4).all()


def design_starts(n: int, length: int) -> np.ndarray:
    from helixlab.design.run import random_starts

    return random_starts(n, length, 0)[0]


def test_windowed_substitution_values_equal_predicting_every_mutant(motif_run):
    run, _ = motif_run
    fast = Predictor(run, device="cpu")
    assert fast.windowed
    slow = Predictor(run, device="cpu")
    slow.windowed = False
    X = design_starts(5, 40)
    allowed = np.ones((5, 4, 40), dtype=bool)
    allowed[np.arange(5)[:, None], X, np.arange(40)[None, :]] = False
    a, b = fast.substitution_values(X, allowed), slow.substitution_values(X, allowed)
    assert np.isnan(a[~allowed]).all()
    np.testing.assert_allclose(a[allowed], b[allowed], atol=1e-5)


def test_constraints_hold_for_greedy_and_ga(motif_run, tmp_path):
    run, _ = motif_run
    starts = design_starts(10, 40)
    for method in ("greedy", "ga"):
        res = design([run], tmp_path / method, random=10, length=40, rounds=5, method=method, fixed="0-10,30-40",
                     max_edits=3, gc=(0.3, 0.7), forbid=["TATAAAGG"], progress=False)
        assert (res.designs[:, :10] == starts[:, :10]).all() and (res.designs[:, 30:] == starts[:, 30:]).all()
        assert ((res.designs != starts).sum(1) <= 3).all()
        gc0, gc1 = gc_fraction(starts), gc_fraction(res.designs)
        inside = (gc0 >= 0.3) & (gc0 <= 0.7)
        assert ((gc1[inside] >= 0.3 - 1e-9) & (gc1[inside] <= 0.7 + 1e-9)).all()
        mask = [iupac_mask("TATAAAGG")]
        assert (count_occurrences(res.designs, mask) <= count_occurrences(starts, mask)).all()
        assert (res.designs != starts).any()


def test_ga_improves_and_is_seeded(motif_run, tmp_path):
    run, _ = motif_run
    a = design([run], tmp_path / "a", random=6, length=40, rounds=6, method="ga", population=24, progress=False)
    b = design([run], tmp_path / "b", random=6, length=40, rounds=6, method="ga", population=24, progress=False)
    assert (a.designs == b.designs).all()
    start = Predictor(run, device="cpu").values(design_starts(6, 40))
    assert a.values.mean() > start.mean() + 0.1


def test_design_resumes_after_kill_to_the_same_designs(motif_run, tmp_path):
    run, _ = motif_run
    args = [str(run), "--random", "8", "--length", "40", "--method", "ga", "--population", "400",
            "--rounds", "40", "--seed", "3"]
    assert main(["design", *args, "-o", str(tmp_path / "whole")]) == 0
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "helixlab", "design", *args, "-o", str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = out / ".state" / "state.json"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if state.is_file() and json.loads(state.read_text())["round"] >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = json.loads(state.read_text())["round"]
    assert 0 < done < 40, "the design was not stopped part-way"
    assert main(["design", *args, "-o", str(out)]) == 0
    assert (out / "designs.fa").read_text() == (tmp_path / "whole" / "designs.fa").read_text()
    assert (out / "trajectory.csv").read_text() == (tmp_path / "whole" / "trajectory.csv").read_text()


@pytest.mark.parametrize("kwargs, message", [
    (dict(fixed="30-50"), "runs past the end"),
    (dict(fixed="0-20,10-30"), "overlap"),
    (dict(fixed="0-40"), "nothing is left to design"),
    (dict(fixed="5"), None),
    (dict(fixed="a-b"), "not a range"),
    (dict(forbid=["TATXAA"]), "not an IUPAC motif"),
    (dict(forbid=["N" * 41]), "longer than the sequences"),
    (dict(goal="target:1.5"), "outside the model's output range"),
    (dict(goal="largest"), "unknown goal"),
    (dict(length=50), "differs from the model's input length"),
    (dict(method="anneal"), "unknown design method"),
    (dict(gc=(0.7, 0.3)), "GC range"),
    (dict(max_edits=0), "at least 1"),
    (dict(output=3), "not an output"),
])
def test_bad_design_options_are_clear_errors(motif_run, tmp_path, kwargs, message):
    run, _ = motif_run
    options = dict(random=4, length=40, rounds=1, progress=False) | kwargs
    if message is None:
        design([run], tmp_path / "d", **options)  # a single position is a valid range
        return
    with pytest.raises(HelixError, match=message):
        design([run], tmp_path / "d", **options)
    assert not (tmp_path / "d" / "designs.fa").exists()


def test_design_cli_inputs_and_a_changed_design_in_the_same_directory(motif_run, tmp_path):
    run, data = motif_run
    fasta = tmp_path / "starts.fa"
    fasta.write_text("".join(f">s{i}\r\n{alphabet.decode(x).lower()}\r\n" for i, x in enumerate(design_starts(3, 40))))
    out = tmp_path / "d"
    assert main(["design", str(run), "--input", str(fasta), "-o", str(out), "--rounds", "2", "--goal", "min"]) == 0
    assert (out / "designs.fa").read_text().startswith(">s0_design")
    assert main(["design", str(run), "--input", str(fasta), "-o", str(out), "--rounds", "2", "--goal", "max"]) == 1
    ragged = tmp_path / "ragged.fa"
    ragged.write_text(">a\nACGTACGT\n>b\nACGTAC\n")
    with pytest.raises(HelixError, match="one length"):
        design([run], tmp_path / "r", inputs=ragged, progress=False)
    with pytest.raises(HelixError, match="not both"):
        design([run], tmp_path / "r", inputs=fasta, random=3, length=40, progress=False)
    assert main(["design", str(run), "--random", "3", "--length", "40", "-o", str(tmp_path / "g"), "--gc",
                 "high"]) == 1


def _csv(path: Path) -> list[dict[str, str]]:
    import csv

    return list(csv.DictReader(open(path)))


def test_forbidden_motif_is_never_created_by_greedy(motif_run, tmp_path):
    run, _ = motif_run
    res = design([run], tmp_path / "f", random=8, length=40, rounds=6, forbid=[MOTIF[:6]], progress=False)
    mask = [iupac_mask(MOTIF[:6])]
    assert (count_occurrences(res.designs, mask) <= count_occurrences(design_starts(8, 40), mask)).all()


def test_several_runs_are_one_objective_and_cli_motif_errors(motif_run, tmp_path):
    run, data = motif_run
    one = design([run], tmp_path / "one", random=4, length=40, rounds=2, progress=False)
    two = design([run, run], tmp_path / "two", random=4, length=40, rounds=2, progress=False)
    assert (one.designs == two.designs).all()
    assert main(["interpret", "motifs", str(run), str(data["test"]), "-o", str(tmp_path / "m"), "--database",
                 "jaspar:bacteria"]) == 1
    assert main(["interpret", "motifs", str(run), str(data["test"]), "-o", str(tmp_path / "m"), "--method",
                 "saliency"]) == 1
