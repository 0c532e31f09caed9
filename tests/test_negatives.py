import numpy as np
import pytest

from helixlab.cli import main
from helixlab.data.negatives import chunk_shuffle
from tests.conftest import motif_rows, write_csv


def _chunks(row: np.ndarray) -> list[bytes]:
    return [row[i * 15 : (i + 1) * 15].tobytes() for i in range(20)]


def test_shuffle_keeps_eight_chunks_in_place_and_permutes_the_rest():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 4, size=(50, 300), dtype=np.uint8)
    y = chunk_shuffle(x, np.random.default_rng(1))
    chosen_sets = set()
    for a, b in zip(x, y):
        ca, cb = _chunks(a), _chunks(b)
        assert sorted(ca) == sorted(cb)  # same chunks, permuted
        assert sum(p == q for p, q in zip(ca, cb)) >= 8
        chosen_sets.add(tuple(p == q for p, q in zip(ca, cb)))
    assert len(chosen_sets) > 40  # a fresh choice per sequence


def test_random_mode_replaces_twelve_chunks_with_random_bases():
    x = np.zeros((200, 300), dtype=np.uint8)  # all A: replaced chunks stand out
    y = chunk_shuffle(x, np.random.default_rng(1), mode="random")
    changed = (y.reshape(200, 20, 15) != 0).any(2).sum(1)
    assert (changed <= 12).all() and changed.mean() > 11.9
    freqs = np.bincount(y[y.reshape(200, 20, 15).any(2).repeat(15, 1)].ravel(), minlength=4) / (changed.sum() * 15)
    assert freqs[:4] == pytest.approx([0.25] * 4, abs=0.01)


def test_same_seed_same_negatives_and_tail_kept():
    x = np.random.default_rng(0).integers(0, 4, size=(5, 70), dtype=np.uint8)
    a = chunk_shuffle(x, np.random.default_rng(3))
    b = chunk_shuffle(x, np.random.default_rng(3))
    assert np.array_equal(a, b)
    assert np.array_equal(a[:, 60:], x[:, 60:])  # 70 = 20 * 3 + 10: the 10-base tail stays


def test_negatives_cli_writes_balanced_csv(tmp_path, capsys):
    pos = write_csv(tmp_path / "pos.csv", [(s, 1) for s, _ in motif_rows(30, 300, 0)])
    out = tmp_path / "train.csv"
    assert main(["negatives", str(pos), "-o", str(out), "--include-positives", "--seed", "4"]) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "sequence,label" and len(lines) == 61
    assert sum(line.endswith(",0") for line in lines) == 30


def test_motif_hits_respects_iupac_and_offsets():
    from helixlab.data.negatives import motif_hits
    from helixlab.seq import alphabet

    w = np.stack([alphabet.encode("CCTATAAACC"), alphabet.encode("CCCTATTAAC"), alphabet.encode("TATAAACCCC")])
    assert motif_hits(w, "TATAWA", 2, 3).tolist() == [True, False, False]
    assert motif_hits(w, "TATWWA", 3, 3).tolist() == [False, True, False]


def test_background_samples_genome_windows_with_motif(tmp_path, capsys):
    rng = np.random.default_rng(0)
    genome = tmp_path / "g.fa"
    seq = "".join("ACGT"[i] for i in rng.integers(0, 4, 200_000))
    genome.write_text(">chr\n" + "N" * 500 + seq + "\n")
    out = tmp_path / "bg.csv"
    assert main(["background", str(genome), "-o", str(out), "--count", "40", "--length", "50", "--motif", "TATA",
                 "--motif-at", "10-12", "--motif-fraction", "0.5"]) == 0
    rows = [line.split(",")[0] for line in out.read_text().splitlines()[1:]]
    assert len(rows) == 40 and all(len(r) == 50 and "N" not in r and r in seq for r in rows)
    assert sum(any(r[i : i + 4] == "TATA" for i in (10, 11, 12)) for r in rows) >= 20


def test_window_of_a_longer_frame_randomises_whole_frame_chunks():
    # GUE prom_core: 70 bp windows at 216 of 300 bp negatives cut into 15 bp chunks, the last chunk always kept
    x = np.zeros((400, 70), dtype=np.uint8)  # all A: randomised bases stand out (3 in 4 of them)
    y = chunk_shuffle(x, np.random.default_rng(2), mode="random", frame=300, offset=216, keep_last=True)
    edges = [0, 9, 24, 39, 54, 69, 70]  # frame chunk edges 225, 240, 255, 270, 285 inside the window
    pieces = [(y[:, a:b] != 0).any(1) for a, b in zip(edges, edges[1:])]
    assert not pieces[-1].any()  # base 285 lies in the kept last chunk
    changed = np.stack(pieces[:-1], 1)
    assert 0.5 < changed.mean() < 0.7  # 12 of the 19 choosable chunks: 0.63, less the chance all stay A
    for a, b in zip(edges[:-2], edges[1:-1]):  # a chunk is randomised whole: its bases change independently
        block = y[:, a:b] != 0
        touched = block.any(1)
        assert block[touched].mean() == pytest.approx(0.75, abs=0.05)


def test_keep_last_never_chooses_the_last_chunk():
    x = np.zeros((300, 300), dtype=np.uint8)
    y = chunk_shuffle(x, np.random.default_rng(0), mode="random", keep_last=True).reshape(300, 20, 15)
    changed = (y != 0).any(2)
    assert not changed[:, 19].any() and changed[:, :19].sum(1).max() == 12


def test_negatives_cli_rejects_bad_frames(tmp_path, capsys):
    pos = write_csv(tmp_path / "pos.csv", [(s, 1) for s, _ in motif_rows(10, 70, 0)])
    assert main(["negatives", str(pos), "-o", str(tmp_path / "a.csv"), "--frame", "300", "--offset", "216"]) != 0
    assert "needs mode 'random'" in capsys.readouterr().err
    assert main(["negatives", str(pos), "-o", str(tmp_path / "b.csv"), "--offset", "5"]) != 0
    assert "--offset needs --frame" in capsys.readouterr().err
    assert main(["negatives", str(pos), "-o", str(tmp_path / "c.csv"), "--mode", "random", "--frame", "200",
                 "--offset", "216"]) != 0
    assert "cannot cut a 200 bp frame" in capsys.readouterr().err
    assert not any((tmp_path / n).exists() for n in ("a.csv", "b.csv", "c.csv"))
    assert main(["negatives", str(pos), "-o", str(tmp_path / "d.csv"), "--mode", "random", "--frame", "300",
                 "--offset", "216", "--keep-last"]) == 0
    rows = (tmp_path / "d.csv").read_text().splitlines()[1:]
    assert len(rows) == 10 and all(len(r.split(",")[0]) == 70 and r.endswith(",0") for r in rows)


def test_a_frame_the_size_of_the_sequence_changes_nothing():
    x = np.random.default_rng(0).integers(0, 4, size=(20, 300), dtype=np.uint8)
    for mode in ("shuffle", "random"):
        a = chunk_shuffle(x, np.random.default_rng(5), mode=mode)
        assert np.array_equal(a, chunk_shuffle(x, np.random.default_rng(5), mode=mode, frame=300))
