"""Checks on the real data sets in ../shared/data (HELIXLAB_DATA); skipped with a reason when absent."""

import numpy as np

from helixlab.data.negatives import chunk_shuffle
from helixlab.data.shards import Shard, prepare


def test_gue_prom_core_all_dev_prepares_balanced(shared_data, tmp_path):
    shard = Shard.open(prepare([shared_data / "promoter_gue_human/prom_core_all/dev.csv.gz"], tmp_path / "p",
                               progress=False))
    assert len(shard) == 5920 and shard.length == 70
    counts = shard.meta["label_stats"]["label"]["value_counts"]
    assert counts["0"] + counts["1"] == 5920 and abs(counts["0"] - counts["1"]) < 100


def test_random_mode_negatives_match_gue_negative_composition(shared_data, tmp_path):
    gue = shared_data / "promoter_gue_human/prom_300_all"
    dev = Shard.open(prepare([gue / "dev.csv.gz"], tmp_path / "dev", progress=False))
    pos = Shard.open(prepare([gue / "train_positives_reconstructed.csv.gz"], tmp_path / "pos", progress=False))
    x, y = np.asarray(dev.seqs), np.asarray(dev.labels)[:, 0]

    def gc(a: np.ndarray) -> float:
        return float(((a == 1) | (a == 2)).mean())

    ours = chunk_shuffle(np.asarray(pos.seqs[:5000]), np.random.default_rng(0), mode="random")
    shuffled = chunk_shuffle(np.asarray(pos.seqs[:5000]), np.random.default_rng(0), mode="shuffle")
    # GUE negatives are GC-poorer than their positives; random-mode negatives reproduce that, shuffling cannot
    assert abs(gc(ours) - gc(x[y == 0])) < 0.01
    assert gc(shuffled) - gc(x[y == 0]) > 0.03


def test_pretrain_on_hg19_windows_then_fine_tune_on_gue_cli(shared_data, tmp_path):
    """The transformer path as a new user runs it, shrunk: MLM on chrX windows -> fine-tune -> evaluate -> predict."""
    import json
    from pathlib import Path

    from helixlab.cli import main

    root = Path(__file__).resolve().parents[1]
    pre, ft = tmp_path / "pre", tmp_path / "ft"
    small = ["--set", "data.samples.train=256", "--set", "data.samples.valid=64", "--set", "train.progress=false",
             "--set", "model.params.hidden=32", "--set", "model.params.heads=2",
             "--set", "model.params.intermediate=64"]
    assert main(["pretrain", str(root / "configs/pretrain_6mer_hg19.toml"), "-o", str(pre), *small]) == 0
    data = pre / "data" / "train"
    assert Shard.open(data).meta["records"] == 1  # the genome is one record; windows are only start positions
    core = shared_data / "promoter_gue_human/prom_core_all"
    assert main(["train", str(root / "configs/s1_dnabert_2linear.toml"), "-o", str(ft), "--init-from", str(pre),
                 "--set", f"data.train={core / 'dev.csv.gz'}", "--set", f"data.valid={core / 'test.csv.gz'}",
                 "--set", "data.test=", "--set", "train.epochs=1", "--set", "train.progress=false"]) == 0
    assert json.loads((ft / "run.json").read_text())["init_from"]["loaded"] > 0
    assert main(["evaluate", str(ft), str(core / "test.csv.gz"), "-o", str(tmp_path / "m.json")]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["auroc"] > 0.6  # one short epoch: ranks, not yet calibrated
    assert main(["predict", str(ft), str(core / "test.csv.gz"), "-o", str(tmp_path / "p.csv")]) == 0
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 5921


def test_framed_negatives_match_gue_prom_core_negatives(shared_data, tmp_path):
    """GUE prom_core negatives are bases 216-286 of 300 bp negatives with the last chunk kept; ours too."""
    core = shared_data / "promoter_gue_human/prom_core_all"
    train = Shard.open(prepare([core / "train.csv.gz"], tmp_path / "train", progress=False))
    x, y = np.asarray(train.seqs), np.asarray(train.labels)[:, 0]
    positives = x[y == 1]
    ours = chunk_shuffle(positives[:300], np.random.default_rng(0), mode="random", frame=300, offset=216,
                         keep_last=True)

    def switch_profile(negatives: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        masks = []
        for row in negatives:
            same = positives == row
            best = same.sum(1).argmax()
            if same[best].sum() >= 44:  # its source positive is in the train split
                masks.append(same[best])
        m = np.array(masks)
        return (m[:, :-1] != m[:, 1:]).mean(0), m[:, -1]

    edges = [8, 23, 38, 53]  # a switch between base i and i + 1 at the frame's chunk edges
    for negatives in (x[y == 0][:300], ours):
        switches, last = switch_profile(negatives)
        inner = np.delete(switches, edges + [68])
        assert switches[edges].min() > 2 * inner.mean()
        assert last.all()


def test_gue_prom_300_negatives_keep_their_last_chunk(shared_data, tmp_path):
    gue = shared_data / "promoter_gue_human/prom_300_all"
    dev = Shard.open(prepare([gue / "dev.csv.gz"], tmp_path / "dev", progress=False))
    pos = Shard.open(prepare([gue / "train_positives_reconstructed.csv.gz"], tmp_path / "pos", progress=False))
    x, y = np.asarray(dev.seqs), np.asarray(dev.labels)[:, 0]
    positives = np.concatenate([x[y == 1], np.asarray(pos.seqs)])
    kept = []
    for row in x[y == 0][:200]:
        same = (positives == row).reshape(len(positives), 20, 15).all(2)
        best = same.sum(1).argmax()
        if same[best].sum() == 8:  # its source positive is in the data: 8 chunks in place
            kept.append(same[best])
    kept_chunks = np.array(kept)
    assert len(kept_chunks) > 100 and kept_chunks[:, 19].all() and kept_chunks[:, :19].mean() < 0.5
    ours = chunk_shuffle(positives[:500], np.random.default_rng(0), mode="random", keep_last=True)
    assert ((ours == positives[:500]).reshape(500, 20, 15).all(2)[:, 19]).all()
