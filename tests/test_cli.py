import subprocess
import sys

import numpy as np

from helixlab.cli import main
from helixlab.demo import ELEMENTS, TSS, synthetic_promoters
from helixlab.seq import alphabet


def test_python_dash_m_and_help():
    out = subprocess.run([sys.executable, "-m", "helixlab", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for command in ("prepare", "negatives", "background", "train", "evaluate", "predict", "demo"):
        assert command in out.stdout


def test_unknown_command_is_a_usage_error(capsys):
    assert main(["frobnicate"]) == 2


def test_demo_data_is_deterministic_with_elements_in_place():
    a, b = synthetic_promoters(200, 5), synthetic_promoters(200, 5)
    assert np.array_equal(a, b) and a.shape == (200, 300)
    tata, rel, _ = ELEMENTS[0]
    window = a[:, TSS + rel - 2 : TSS + rel + len(tata) + 2]
    seqs = [alphabet.decode(w) for w in window]
    assert sum("TATAAA" in s for s in seqs) > 40  # planted in ~45 % (with point mutations)
