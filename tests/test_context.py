"""Genome context (S5): centre windows, exact k-mer counts, the counting model, metrics with the repeat
split, CLI training/evaluation/prediction, fusion, flank ablation, search, resume."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from helixlab.cli import main
from helixlab.config import config_from_dict, load_config, to_toml
from helixlab.data.genome import CentreWindows, clean, context_counts, n_runs, parse_regions
from helixlab.data.shards import Shard, prepare
from helixlab.errors import HelixError
from helixlab.models import build_model
from helixlab.run.loaded import load_run
from helixlab.seq import alphabet
from helixlab.tasks.metrics import ContextMetrics
from tests.conftest import kill_and_resume, synthetic_genome, tiny_config

REGIONS = {"train": ["chrT:0-40000"], "valid": ["chrT:40000-50000"], "test": ["chrT:50000-60000"]}


def context_config(data: str | Path, model: str = "kmer_count", params: dict | None = None, flank: int = 10,
                   **train: object) -> dict:
    return {"data": {"train": str(data), "valid": str(data), "test": str(data), "flank": flank, "clearance": 20,
                     "regions": {k: list(v) for k, v in REGIONS.items()},
                     "samples": {"train": 3000, "valid": 1000, "test": 2000}},
            "task": {"kind": "context"},
            "model": {"name": model, "params": params if params is not None else {"k": 3}},
            "train": {"epochs": 2, "batch_size": 64, "lr": 3e-3, "progress": False, "threads": 1, **train}}


def test_centre_windows_hide_the_centre_and_share_positions_across_flanks(genome_dir, genome_fa):
    shard = Shard.open(genome_dir)
    regions = parse_regions(["chrT:20000-40000"], shard, "cfg")
    a = CentreWindows(shard, 5, regions, 500, seed=2, clearance=20)
    b = CentreWindows(shard, 20, regions, 500, seed=2, clearance=20)
    assert np.array_equal(a.anchors, b.anchors)  # the same positions for every flank up to the clearance
    raw = gzip.open(genome_fa, "rt").read().split("\n", 1)[1].replace("\n", "")
    x = b.codes(np.arange(20))
    assert x.shape == (20, 41) and (x[:, 20] == alphabet.N_CODE).all()
    for row, centre, y in zip(x, b.anchors[:20], b.labels[:20]):
        window = raw[centre - 20 : centre + 21]
        assert alphabet.decode(row) == (window[:20] + "N" + window[21:]).upper()
        assert alphabet.BASES[int(y[0])] == window[20].upper() and y[1] == window[20].islower()
    assert (b.anchors >= 20000 + 20).all() and (b.anchors < 40000 - 20).all()
    assert not ((b.anchors > 30000 - 21) & (b.anchors < 30300 + 20)).any()  # no window touches the N run
    first = b.anchors.copy()
    b.draw(1)
    assert not np.array_equal(b.anchors, first)  # the training split sees new positions every epoch
    b.draw(0)
    assert np.array_equal(b.anchors, first)


def test_n_runs_across_chunk_boundaries_and_clean_ranges():
    rng = np.random.default_rng(1)
    for _ in range(100):
        n = int(rng.integers(1, 300))
        flat = ((rng.random(n) < rng.random() * 0.5) * alphabet.N_CODE).astype(np.uint8)
        runs = n_runs(flat, chunk=int(rng.integers(1, 50)))
        assert (runs[1] - runs[0]).sum() == (flat == alphabet.N_CODE).sum() and (runs[0][1:] > runs[1][:-1]).all()
        lo = rng.integers(0, n, 50)
        hi = np.minimum(lo + rng.integers(0, 20, 50), n - 1)
        expect = [not (flat[a : b + 1] == alphabet.N_CODE).any() for a, b in zip(lo, hi)]
        assert clean(runs, lo, hi).tolist() == expect


def test_reverse_complemented_windows_get_the_complementary_centre():
    from helixlab.tasks import TaskConfig, make_task

    y = np.array([[0, 0], [1, 0]], dtype=np.float32)  # centres A and C
    x = torch.zeros((2, 5), dtype=torch.uint8)
    # both windows flipped: the centres read T and G
    for target, classes in (("base", [3, 2]), ("purine", [1, 0]), ("pair", [0, 1])):
        task = make_task(TaskConfig(kind="context", target=target), 2)
        logits = torch.randn(2, task.n_outputs)
        loss, _ = task.step(lambda _x, out=logits: out, x, y, key=(0,), reverse=torch.tensor([True, True]))
        assert float(loss) == pytest.approx(float(torch.nn.functional.cross_entropy(logits, torch.tensor(classes))))
        plain, _ = task.step(lambda _x, out=logits: out, x, y, key=(0,))
        unflipped = [task.classes[0], task.classes[1]]
        assert float(plain) == pytest.approx(float(torch.nn.functional.cross_entropy(logits, torch.tensor(unflipped))))


def test_context_counts_match_a_direct_count(genome_dir):
    shard = Shard.open(genome_dir)
    regions = parse_regions(["chrT:29000-31000"], shard, "cfg")  # across the N run
    classes = np.array([0, 1, 1, 0])  # A/T vs C/G
    counts = context_counts(shard, regions, 2, classes, chunk=333)
    flat = np.asarray(shard.seqs).reshape(-1).astype(np.int64)
    expect = np.zeros((16, 16, 2), dtype=np.int64)
    for p in range(29002, 30998):
        w = flat[p - 2 : p + 3]
        if (w == alphabet.N_CODE).any():
            continue
        left, right = w[0] * 4 + w[1], w[3] * 4 + w[4]
        expect[left, right, classes[w[2]]] += 1
    assert np.array_equal(counts, expect) and counts.sum() > 1000


def test_kmer_count_model_smooths_counts_and_reads_only_the_nearest_bases():
    model = build_model("kmer_count", {"k": 1, "pseudocount": 1.0}, 7, 4)
    counts = torch.zeros(4, 4, 4)
    counts[0, 3, 2] = 6  # left A, right T: G six times
    counts[1, 1, 0] = 2
    model.counts.data = counts
    x = torch.tensor([[1, 1, 0, 4, 3, 2, 2]], dtype=torch.uint8)  # left of centre A, right T
    p = torch.softmax(model(x), -1)[0]
    assert torch.allclose(p, torch.tensor([1, 1, 7, 1]) / 10.0)
    x2 = x.clone()
    x2[0, [0, 1, 5, 6]] = torch.tensor([3, 2, 0, 1], dtype=torch.uint8)  # farther bases do not matter
    assert torch.allclose(model(x2), model(x))
    x3 = x.clone()
    x3[0, 2] = 4  # a context with N: the class frequencies (smoothed)
    assert torch.allclose(torch.softmax(model(x3), -1)[0], torch.tensor([3, 1, 7, 1]) / 12.0)
    back = build_model("kmer_count", {"k": 2, "smoothing": "backoff"}, 9, 4)
    back.counts.data = torch.rand(16, 16, 4) * 5
    table = back.log_probs().exp()
    assert torch.allclose(table.sum(1), torch.ones(len(table)), atol=1e-5)
    with pytest.raises(HelixError, match="odd length"):
        build_model("kmer_count", {"k": 5}, 9, 4)


@pytest.mark.parametrize("smoothing", ["pseudocount", "backoff"])
def test_leave_one_out_kmer_input_is_the_model_without_that_count(smoothing):
    torch.manual_seed(0)
    model = build_model("kmer_count", {"k": 2, "smoothing": smoothing}, 9, 4)
    model.counts.data = torch.randint(1, 6, (16, 16, 4)).float()
    x = torch.randint(0, 4, (6, 9), dtype=torch.uint8)
    target = torch.tensor([0, 1, 2, 3, 2, -1])
    held = model.held_out_log_probs(x, target)
    assert torch.equal(held[5], model.features(x)[5])  # -1: not counted, left as is
    for i in range(5):
        left, right = int(x[i, 2]) * 4 + int(x[i, 3]), int(x[i, 5]) * 4 + int(x[i, 6])
        without = build_model("kmer_count", {"k": 2, "smoothing": smoothing}, 9, 4)
        without.counts.data = model.counts.data.clone()
        without.counts.data[left, right, target[i]] -= 1
        # the same up to the class prior, which keeps the count (1 of 4,000 here)
        assert torch.allclose(held[i], without.features(x[i : i + 1])[0], atol=1e-3)
        assert not torch.allclose(held[i], model.features(x[i : i + 1])[0], atol=1e-3)


def test_context_metrics_by_hand():
    m = ContextMetrics(["A", "C", "G", "T"], np.arange(4))
    prob = np.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.6, 0.2, 0.1], [0.25, 0.25, 0.25, 0.25], [0.1, 0.1, 0.1, 0.7]])
    y = np.array([[0, 1], [2, 1], [2, 0], [3, 0]], dtype=np.float32)  # (base, repeat)
    m.update(prob, y)
    out = m.compute()
    assert out["accuracy"] == pytest.approx(0.5)  # rows 0 and 3 right; row 2 ties -> class 0
    assert out["cross_entropy"] == pytest.approx(-np.log([0.7, 0.2, 0.25, 0.7]).mean())
    assert out["bits_per_base"] == pytest.approx(out["cross_entropy"] / np.log(2))
    assert out["accuracy_repeat"] == pytest.approx(0.5) and out["accuracy_nonrepeat"] == pytest.approx(0.5)
    assert out["accuracy_G"] == 0.0 and out["accuracy_T"] == 1.0 and out["positions_repeat"] == 2
    assert m.confusion["all"][2, 1] == 1 and m.confusion["nonrepeat"][2, 0] == 1


def test_kmer_model_and_network_from_the_cli(genome_fa, tmp_path, capsys):
    cfg = tmp_path / "kmer.json"
    cfg.write_text(json.dumps(context_config(genome_fa)))
    assert main(["train", str(cfg), "-o", str(tmp_path / "kmer")]) == 0
    res = json.loads((tmp_path / "kmer" / "results.json").read_text())["splits"]["test"]
    assert res["accuracy"] > 0.5 and res["positions"] == 2000
    assert res["accuracy_repeat"] > res["accuracy_nonrepeat"]  # the repeat copies are predictable
    assert "plots/confusion_test.png" in (tmp_path / "kmer" / "report.md").read_text()
    # evaluate on the genome FASTA: the same seeded positions give the same metrics
    out = tmp_path / "eval.json"
    assert main(["evaluate", str(tmp_path / "kmer"), str(genome_fa), "-o", str(out)]) == 0
    assert json.loads(out.read_text())["accuracy"] == pytest.approx(res["accuracy"])
    assert main(["evaluate", str(tmp_path / "kmer"), str(genome_fa), "--region", "chrT:0-20000", "--samples", "500",
                 "-o", str(out)]) == 0
    assert json.loads(out.read_text())["positions"] == 500
    # predict: 21-base windows; the centre base given does not change the prediction
    seq = synthetic_genome()[1000:1021].upper()
    other = seq[:10] + ("A" if seq[10] != "A" else "C") + seq[11:]
    (tmp_path / "q.fa").write_text(f">a\n{seq}\n>b\n{other}\n")
    assert main(["predict", str(tmp_path / "kmer"), str(tmp_path / "q.fa"), "-o", str(tmp_path / "p.csv")]) == 0
    lines = (tmp_path / "p.csv").read_text().splitlines()
    assert lines[0] == "id,prob_A,prob_C,prob_G,prob_T" and lines[1].split(",")[1:] == lines[2].split(",")[1:]
    # a network on the same positions, the purine/pyrimidine target
    net = context_config(genome_fa, "mlp", {"hidden": [32]})
    net["task"]["target"] = "purine"
    cfg.write_text(json.dumps(net))
    assert main(["train", str(cfg), "-o", str(tmp_path / "mlp")]) == 0
    res = json.loads((tmp_path / "mlp" / "results.json").read_text())["splits"]["test"]
    assert {"accuracy_AG", "accuracy_CT", "accuracy_repeat"} <= set(res) and res["accuracy"] > 0.5


NETWORK_RECIPES = ["context_mlp", "context_cnn", "context_cnn_bilstm", "context_transformer"]


@pytest.mark.parametrize("recipe", NETWORK_RECIPES)
def test_each_context_recipe_trains_its_network_on_a_genome(recipe, genome_dir, tmp_path):
    """The recipes' own models (S5 shapes, centre pooling, nucleotide-token BERT), on the test genome with
    20-base flanks: each learns the 2nd-order dependency well above chance (0.25)."""
    import tomllib

    from helixlab.train import fit

    values = tomllib.loads((Path(__file__).resolve().parents[1] / "configs" / f"{recipe}.toml").read_text())
    small = context_config(genome_dir, flank=20, epochs=2, lr=2e-3)
    values["data"], values["train"] = small["data"], {**values["train"], **small["train"]}
    res = fit(config_from_dict(values, recipe), tmp_path / recipe)["splits"]["test"]
    assert res["positions"] == 2000 and res["accuracy"] > 0.35


def test_fused_network_reads_the_kmer_model_and_stands_alone(genome_dir, tmp_path):
    from helixlab.train import fit

    fit(config_from_dict(context_config(genome_dir), "test"), tmp_path / "kmer")
    kmer_acc = json.loads((tmp_path / "kmer" / "results.json").read_text())["splits"]["test"]["accuracy"]
    fused = context_config(genome_dir, "fused", {"net": "mlp", "net_params": {"hidden": [16]},
                                                 "count_run": str(tmp_path / "kmer")}, epochs=1, lr=1e-3)
    res = fit(config_from_dict(fused, "test"), tmp_path / "fused")["splits"]["test"]
    assert res["accuracy"] > kmer_acc - 0.05  # it starts as the k-mer model
    run = load_run(tmp_path / "fused")
    x = torch.randint(0, 4, (5, 21), dtype=torch.uint8)
    before = run.model(x)
    shutil.rmtree(tmp_path / "kmer")  # the fused run keeps the counts in its own weights
    assert torch.allclose(load_run(tmp_path / "fused").model(x), before)


def test_ablate_flanks_finds_the_bases_the_model_reads(genome_dir, tmp_path, capsys):
    from helixlab.train import fit

    fit(config_from_dict(context_config(genome_dir, params={"k": 2}), "test"), tmp_path / "kmer")
    assert main(["interpret", "ablate-flanks", str(tmp_path / "kmer"), "--band", "2", "--samples", "1000",
                 "--mode", "random"]) == 0
    out = tmp_path / "kmer" / "interpret"
    result = json.loads((out / "ablate_flanks_random.json").read_text())
    by = {(b["side"], b["near"]): b["loss_increase"] for b in result["bands"]}
    assert by[("left", 1)] > 0.02 and by[("right", 1)] > 0.02  # a k = 2 model reads 2 bases each side
    assert all(abs(v) < 1e-6 for (side, near), v in by.items() if near > 2)
    assert (out / "ablate_flanks_random.png").exists()
    assert "| left | 1-2 |" in (out / "ablate_flanks_random.md").read_text()


def test_search_is_resumable_and_saves_the_best_recipe(genome_dir, tmp_path, monkeypatch):
    from helixlab.train import search

    cfg = tmp_path / "base.json"
    cfg.write_text(json.dumps(context_config(genome_dir, "mlp", {"hidden": [16]}, epochs=1)))
    argv = ["search", str(cfg), "--grid", "data.flank=3,8", "--grid", "model.params.hidden=[8],[16,16]",
            "--trials", "3", "-o", str(tmp_path / "s")]
    assert main(argv) == 0
    records = json.loads((tmp_path / "s" / "search.json").read_text())
    assert len(records) == 3 and (tmp_path / "s" / "search.png").exists()
    best = load_config(tmp_path / "s" / "best.toml")
    top = max(records, key=lambda r: r["valid"])
    assert best.data.flank == top["params"]["data.flank"] and best.model.params["hidden"] == top["params"][
        "model.params.hidden"]
    monkeypatch.setattr(search, "fit", lambda *a, **k: pytest.fail("a finished trial was trained again"))
    assert main(argv) == 0  # everything recorded: nothing to train
    assert main([*argv, "--set", "train.lr=0.1"]) == 1  # other base settings: refused, not mixed in


def test_search_works_on_a_table_task(motif_data, tmp_path):
    from helixlab.train.search import parse_grid, run_search

    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(tiny_config(motif_data, epochs=1)))
    assert parse_grid(["model.params.kernels=[4],[8]"]) == {"model.params.kernels": [[4], [8]]}
    records = run_search(cfg, parse_grid(["train.lr=1e-3,5e-3"]), tmp_path / "s")
    assert [r["monitor"] for r in records] == ["auroc", "auroc"] and (tmp_path / "s" / "best.toml").exists()
    with pytest.raises(HelixError, match="--grid expects"):
        parse_grid(["train.lr"])


def test_recipes_round_trip_through_toml(tmp_path):
    for recipe in sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.toml")):
        cfg = load_config(recipe)
        (tmp_path / "r.toml").write_text(to_toml(cfg, "header"))
        assert load_config(tmp_path / "r.toml").to_dict() == cfg.to_dict(), recipe.name


def test_context_errors_name_the_problem(genome_fa, tmp_path):
    from helixlab.train import fit

    bad = context_config(genome_fa)
    bad["task"]["kind"] = "multiclass"
    with pytest.raises(HelixError, match="go together"):
        config_from_dict(bad, "cfg.toml")
    plain = tmp_path / "plain"
    prepare([str(genome_fa)], plain, length="variable", iupac="n", unique_ids=False, progress=False)
    with pytest.raises(HelixError, match="--keep-mask"):
        fit(config_from_dict(context_config(plain), "cfg"), tmp_path / "r1")
    with pytest.raises(HelixError, match="odd length >= 2k"):
        fit(config_from_dict(context_config(genome_fa, params={"k": 6}, flank=5), "cfg"), tmp_path / "r2")
    assert not (tmp_path / "r2").exists()  # a refused run leaves nothing behind
    wrong = context_config(genome_fa)
    wrong["data"]["regions"]["test"] = ["chrT:50000-90000"]
    with pytest.raises(HelixError, match="outside record"):
        fit(config_from_dict(wrong, "cfg"), tmp_path / "r3")
    net = context_config(genome_fa, "fused", {"net": "mlp", "count_run": str(tmp_path / "nowhere")})
    with pytest.raises(HelixError, match="finished kmer_count or context_count run"):
        fit(config_from_dict(net, "cfg"), tmp_path / "r4")


def test_sigkill_mid_epoch_of_a_context_run_then_resume(genome_dir, tmp_path):
    cfg = context_config(genome_dir, "mlp", {"hidden": [32], "dropout": 0.3}, epochs=4, batch_size=16,
                         checkpoint_every=10)
    straight, run = kill_and_resume(cfg, tmp_path)
    a = json.loads((straight / "results.json").read_text())["splits"]["test"]
    b = json.loads((run / "results.json").read_text())["splits"]["test"]
    assert a == b


@pytest.mark.data
def test_ecoli_genome_kmer_model(tmp_path):
    from helixlab.paths import data_root
    from helixlab.train import fit

    fasta = data_root() / "genome_ecoli_536" / "NC_008253.1_Ecoli_536.fna.gz"
    if not fasta.exists():
        pytest.skip(f"E. coli genome not found at {fasta} (set HELIXLAB_DATA to the shared data directory)")
    cfg = context_config(fasta, params={"k": 4})
    cfg["data"]["regions"] = {"train": ["NC_008253.1:0-4000000"], "valid": ["NC_008253.1:4000000-4500000"],
                              "test": ["NC_008253.1:4500000-4938920"]}
    res = fit(config_from_dict(cfg, "cfg"), tmp_path / "run")
    test = res["splits"]["test"]
    assert test["accuracy"] > 0.3 and test["positions_repeat"] == 0  # no soft mask in this genome
