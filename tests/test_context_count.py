"""The variable-order two-sided context model (context_count): sorted keys against a direct count,
the bucketed (chunked) sort, leave-one-out, smoothing chosen on valid, learned smoothing and fusion,
the repeat target, the repeat-gated mixture, and bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from helixlab.cli import main
from helixlab.config import config_from_dict
from helixlab.data import contexts
from helixlab.data.contexts import sorted_contexts
from helixlab.data.genome import parse_regions
from helixlab.data.shards import Shard
from helixlab.errors import HelixError
from helixlab.models import build_model
from helixlab.run.loaded import load_run
from helixlab.seq import alphabet
from helixlab.seq.context_keys import pack, prefix_range, window_digits
from helixlab.train import fit
from tests.conftest import synthetic_genome
from tests.test_context import context_config

BASE_CLASSES = np.array([0, 1, 2, 3])


def direct_depth_counts(flat: np.ndarray, lo: int, hi: int, k: int, query: np.ndarray,
                        how: str = "interleaved") -> np.ndarray:
    """(2k + 1, 4) counts, by brute force, of the positions of [lo, hi) (k clean bases each side, both
    strands) whose context shares each depth's first bases in order `how` with the window `query`."""
    def order(w: np.ndarray) -> list[int]:  # interleaved: 1 left, 1 right, 2 left, ...; left: all left first
        left, right = [int(w[k - i]) for i in range(1, k + 1)], [int(w[k + i]) for i in range(1, k + 1)]
        return {"interleaved": [v for pair in zip(left, right) for v in pair], "left": left + right,
                "right": right + left}[how]

    q = order(query)
    out = np.zeros((2 * k + 1, 4), np.int64)
    for p in range(lo + k, hi - k):
        w = flat[p - k : p + k + 1]
        if (w == alphabet.N_CODE).any():
            continue
        for ctx, centre in ((order(w), w[k]), (order(3 - w[::-1]), 3 - w[k])):
            same = 0
            while same < 2 * k and ctx[same] == q[same]:
                same += 1
            out[: same + 1, centre] += 1
    return out


def fitted(shard: Shard, region: str, k: int, orders: tuple[str, ...] = ("interleaved",)):
    regions = parse_regions([region], shard, "cfg")
    per_order = [sorted_contexts(shard, regions, k, BASE_CLASSES, order=o) for o in orders]
    model = build_model("context_count", {"k": k, "concentration": 8.0, "orders": list(orders)}, 2 * k + 1, 4)
    model.fit_counts((per_order, np.array([3, 2, 1, 0])))
    return model


def test_prefix_ranges_count_like_a_direct_count(genome_dir):
    shard = Shard.open(genome_dir)
    flat = np.asarray(shard.seqs).reshape(-1)
    k, lo, hi = 3, 29000, 31000  # across the run of N
    orders = ("interleaved", "left", "right")
    model = fitted(shard, f"chrT:{lo}-{hi}", k, orders)
    rng = np.random.default_rng(0)
    windows = [flat[p - k : p + k + 1].copy() for p in rng.integers(lo + k, hi - k, 40)]
    windows += [flat[p - k : p + k + 1].copy() for p in rng.integers(0, 60_000 - 2 * k, 20)]  # elsewhere
    x = np.stack(windows)
    x[:, k] = alphabet.N_CODE
    got = model.depth_counts(torch.from_numpy(x))
    for w, counts in zip(x, got):
        for i, how in enumerate(orders):
            expect = direct_depth_counts(flat, lo, hi, k, w, how)
            usable = window_digits(w[None], k, how)[2][0]
            expect[usable + 1 :] = 0  # past the first N: no counts
            assert np.array_equal(counts[i], expect), how
    p = np.exp(model.log_probs_of(torch.from_numpy(x)).numpy())
    assert np.allclose(p.sum(1), 1, atol=1e-5)  # the orders' geometric mean, normalised


def test_keys_are_prefixes_and_reverse_strand_keys_complement():
    x = np.array([[0, 1, 4, 2, 3]], dtype=np.uint8)  # A C [N] G T: nearest C, G; then A, T
    fwd, rev, depth = window_digits(x, 2)
    assert [int(d[0]) for d in fwd] == [1, 2, 0, 3] and depth[0] == 4
    assert [int(d[0]) for d in rev] == [1, 2, 0, 3]  # its reverse complement reads the same context
    keys = np.sort(pack([np.array([0, 0, 1, 3]), np.array([1, 2, 0, 0])]))
    lo, hi = prefix_range(keys, pack([np.array([0]), np.array([3])]), 1)
    assert (lo[0], hi[0]) == (0, 2)  # both keys starting with A


def test_bucketed_sort_equals_the_in_memory_sort_and_cleans_up(genome_dir, tmp_path):
    shard = Shard.open(genome_dir)
    regions = parse_regions(["chrT:0-60000"], shard, "cfg")
    keys, cls = sorted_contexts(shard, regions, 8, BASE_CLASSES)
    work = tmp_path / "work"
    (work / "buckets").mkdir(parents=True)
    (work / "buckets" / "7.keys").write_bytes(b"left by a killed run")
    bk, bc = sorted_contexts(shard, regions, 8, BASE_CLASSES, max_memory=1e4, work_dir=work, chunk=5000)
    assert np.array_equal(keys, bk) and bc.dtype == np.uint8
    # within runs of equal keys the class order may differ; the classes of every key may not
    assert np.array_equal(cls[np.lexsort((cls, keys))], bc[np.lexsort((bc, bk))])
    assert not list((work / "buckets").iterdir())
    with pytest.raises(HelixError, match="bucketed path"):
        sorted_contexts(shard, regions, 8, BASE_CLASSES, max_memory=1e4)


def test_a_genome_too_large_for_this_machine_is_refused_with_the_options(genome_dir, monkeypatch):
    shard = Shard.open(genome_dir)
    regions = parse_regions(["chrT:0-60000"], shard, "cfg")
    monkeypatch.setattr(contexts, "machine_memory", lambda: 100_000)
    with pytest.raises(HelixError, match="strands"):
        sorted_contexts(shard, regions, 8, BASE_CLASSES)


def test_leave_one_out_takes_out_both_strands_of_the_own_position(genome_dir):
    shard = Shard.open(genome_dir)
    flat = np.asarray(shard.seqs).reshape(-1)
    k, lo, hi = 2, 1000, 3000
    model = fitted(shard, f"chrT:{lo}-{hi}", k)
    x = np.stack([flat[p - k : p + k + 1].copy() for p in range(lo + k, lo + k + 200)])
    centre = x[:, k].astype(np.int64)
    x[:, k] = alphabet.N_CODE
    full = model.depth_counts(torch.from_numpy(x))[:, 0]
    held = model.depth_counts(torch.from_numpy(x), torch.from_numpy(centre))[:, 0]
    removed = full - held
    assert (removed[:, 0].sum(1) == 2).all()  # at depth 0 (every position) both strands' counts go
    assert (removed >= 0).all() and (removed[np.arange(200), :, centre] >= 1).all()
    # the reverse strand shares the context where the window is its own reverse complement
    palindromic = np.array([w[0] == 3 - w[4] and w[1] == 3 - w[3] for w in x])
    assert (removed[palindromic, -1].sum(1) == 2).all() and (removed[~palindromic, -1].sum(1) == 1).all()
    with_rc = model.depth_counts(torch.from_numpy(x), torch.full((200,), -1))[:, 0]
    assert np.array_equal(with_rc, full)  # -1: not counted, nothing taken out


def test_context_count_trains_evaluates_predicts_and_ablates_from_the_cli(genome_dir, genome_fa, tmp_path):
    cfg = tmp_path / "ctx.json"
    cfg.write_text(json.dumps(context_config(genome_dir, "context_count",
                                             {"k": 8, "orders": ["interleaved", "left", "right"]}, flank=10)))
    run = tmp_path / "ctx"
    assert main(["train", str(cfg), "-o", str(run)]) == 0
    history = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert history["concentration"] in (4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0)  # chosen on valid
    res = json.loads((run / "results.json").read_text())["splits"]["test"]
    assert res["accuracy"] > 0.6 and res["accuracy_repeat"] > res["accuracy_nonrepeat"]
    loaded = load_run(run)  # the chosen concentration travels with the weights
    assert float(loaded.model.concentration) == history["concentration"]
    assert main(["evaluate", str(run), str(genome_fa), "--region", "chrT:50000-60000", "--samples", "500",
                 "-o", str(tmp_path / "ev.json")]) == 0
    assert json.loads((tmp_path / "ev.json").read_text())["accuracy"] > 0.55
    seq = synthetic_genome()[1000:1021].upper()  # predict and embed 21-base windows; the centre is not read
    other = seq[:10] + ("A" if seq[10] != "A" else "C") + seq[11:]
    (tmp_path / "q.fa").write_text(f">a\n{seq}\n>b\n{other}\n")
    assert main(["predict", str(run), str(tmp_path / "q.fa"), "-o", str(tmp_path / "p.csv")]) == 0
    lines = (tmp_path / "p.csv").read_text().splitlines()
    assert lines[0] == "id,prob_A,prob_C,prob_G,prob_T" and lines[1].split(",")[1:] == lines[2].split(",")[1:]
    assert main(["embed", str(run), str(tmp_path / "q.fa"), "-o", str(tmp_path / "e.npy")]) == 0
    assert np.load(tmp_path / "e.npy").shape == (2, 4)
    import helixlab

    probs = helixlab.load(run).predict([seq])
    assert np.allclose(np.asarray(probs).sum(-1), 1, atol=1e-5)
    assert main(["interpret", "ablate-flanks", str(run), "--band", "4", "--samples", "500", "--mode", "random"]) == 0
    bands = json.loads((run / "interpret" / "ablate_flanks_random.json").read_text())["bands"]
    by = {(b["side"], b["near"]): b["loss_increase"] for b in bands}
    assert by[("left", 1)] > 0.02 and by[("right", 1)] > 0.02
    assert all(abs(v) < 1e-6 for (_, near), v in by.items() if near > 8)  # k = 8 reads 8 bases each side


def test_learned_smoothing_and_fusion_read_the_context_counts_and_stand_alone(genome_dir, tmp_path):
    counting = fit(config_from_dict(context_config(genome_dir, "context_count", {"k": 8}, flank=10), "t"),
                   tmp_path / "ctx")["splits"]["test"]["accuracy"]
    smooth = context_config(genome_dir, "fused", {"net": "none", "count_run": str(tmp_path / "ctx"),
                                                  "count_hidden": [32]}, flank=10, epochs=2, lr=3e-3)
    learned = fit(config_from_dict(smooth, "t"), tmp_path / "smooth")["splits"]["test"]["accuracy"]
    assert learned > counting - 0.05
    fused = context_config(genome_dir, "fused", {"net": "mlp", "net_params": {"hidden": [16]}, "count_hidden": [32],
                                                 "count_run": str(tmp_path / "ctx")}, flank=10, epochs=1, lr=3e-3)
    res = fit(config_from_dict(fused, "t"), tmp_path / "fused")["splits"]["test"]
    assert res["accuracy"] > counting - 0.08
    weights = tmp_path / "fused" / "checkpoints" / "best.safetensors"
    assert weights.stat().st_size < (tmp_path / "fused" / "counts.safetensors").stat().st_size  # arrays kept once
    x = torch.randint(0, 4, (5, 21), dtype=torch.uint8)
    before = load_run(tmp_path / "fused").model(x)
    shutil.rmtree(tmp_path / "ctx")  # the fused run keeps the counts in its own directory
    assert torch.allclose(load_run(tmp_path / "fused").model(x), before)


def test_repeat_target_and_the_repeat_gated_mixture(genome_dir, tmp_path):
    gate = context_config(genome_dir, "context_count", {"k": 8}, flank=10)
    gate["task"]["target"] = "repeat"  # is the centre soft-masked? 20 % of the genome is the repeat element
    res = fit(config_from_dict(gate, "t"), tmp_path / "gate")["splits"]["test"]
    assert res["accuracy"] > 0.9 and res["accuracy_non-repeat_nonrepeat"] > 0.9
    fit(config_from_dict(context_config(genome_dir, "context_count", {"k": 8}, flank=10), "t"), tmp_path / "ctx")
    fit(config_from_dict(context_config(genome_dir, "mlp", {"hidden": [16]}, flank=10, epochs=1), "t"),
        tmp_path / "mlp")
    alone = json.loads((tmp_path / "ctx" / "results.json").read_text())["splits"]["test"]["accuracy"]
    mix = context_config(genome_dir, "repeat_mixture", {"gate_run": str(tmp_path / "gate"),
                                                        "experts": [str(tmp_path / "ctx"), str(tmp_path / "mlp")]},
                         flank=12, epochs=1, lr=1e-3)
    res = fit(config_from_dict(mix, "t"), tmp_path / "mix")["splits"]["test"]
    assert res["accuracy"] > alone - 0.08
    with pytest.raises(HelixError, match="not 'repeat'"):
        bad = context_config(genome_dir, "repeat_mixture", {"gate_run": str(tmp_path / "ctx"),
                                                            "experts": [str(tmp_path / "ctx")] * 2}, flank=12)
        fit(config_from_dict(bad, "t"), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
    for run in ("gate", "ctx", "mlp"):
        shutil.rmtree(tmp_path / run)  # the mixture keeps its parts
    model = load_run(tmp_path / "mix").model
    p = model(torch.randint(0, 4, (4, 25), dtype=torch.uint8)).exp().sum(1)
    assert torch.allclose(p, torch.ones(4), atol=1e-5)
    with pytest.raises(HelixError, match="itself a mixture"):
        bad = context_config(genome_dir, "repeat_mixture", {"gate_run": str(tmp_path / "mix"),
                                                            "experts": [str(tmp_path / "mix")] * 2}, flank=12)
        fit(config_from_dict(bad, "t"), tmp_path / "bad")


def test_context_count_errors_name_the_problem(genome_dir, tmp_path):
    with pytest.raises(HelixError, match="data.flank >= 12"):
        fit(config_from_dict(context_config(genome_dir, "context_count", {"k": 12}, flank=10), "t"), tmp_path / "a")
    assert not (tmp_path / "a").exists()
    with pytest.raises(HelixError, match="strands"):
        fit(config_from_dict(context_config(genome_dir, "context_count", {"strands": "up"}, flank=16), "t"),
            tmp_path / "b")
    only_n = context_config(genome_dir, "context_count", {"k": 4}, flank=10)
    only_n["data"]["regions"]["train"] = ["chrT:30000-30300"]  # the run of N
    with pytest.raises(HelixError, match="without N in the regions"):
        fit(config_from_dict(only_n, "t"), tmp_path / "c")
    shard = Shard.open(genome_dir)
    with pytest.raises(HelixError, match="no usable position"):
        sorted_contexts(shard, parse_regions(["chrT:30000-30300"], shard, "cfg"), 4, BASE_CLASSES)
    kmer = context_config(genome_dir, "kmer_count", {"k": 3})
    kmer["task"]["target"] = "repeat"
    with pytest.raises(HelixError, match="context_count"):
        fit(config_from_dict(kmer, "t"), tmp_path / "d")


def test_a_count_killed_part_way_is_redone_cleanly_on_resume(genome_dir, tmp_path, monkeypatch):
    import sys

    fit_module = sys.modules["helixlab.train.fit"]  # the module (helixlab.train.fit is also the function's name)
    cfg = context_config(genome_dir, "context_count", {"k": 8, "max_memory_gb": 1e-5}, flank=10)  # bucketed
    straight = fit(config_from_dict(cfg, "t"), tmp_path / "straight")

    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # as a kill after the counts, before the run's state was written

    monkeypatch.setattr(fit_module, "save_training_state", killed)
    with pytest.raises(KeyboardInterrupt):
        fit(config_from_dict(cfg, "t"), tmp_path / "killed")
    monkeypatch.undo()
    run = tmp_path / "killed"
    assert not (run / "results.json").exists()
    (run / ".counting" / "buckets").mkdir(parents=True, exist_ok=True)
    (run / ".counting" / "buckets" / "3.keys").write_bytes(b"half a bucket")
    resumed = fit(None, run, resume=True)
    assert resumed["splits"] == straight["splits"] and not (run / ".counting").exists()


def test_fused_runs_recorded_with_kmer_run_still_read(tmp_path):
    from helixlab.run.records import read_config

    values = config_from_dict(context_config(tmp_path, "fused", {"net": "mlp", "count_run": "runs/k",
                                                                "counter": {"name": "kmer_count", "params": {"k": 3}}}),
                              "t").to_dict()
    params = values["model"]["params"]
    params["kmer_run"], params["kmer"] = params.pop("count_run"), params.pop("counter")["params"]
    (tmp_path / "config.json").write_text(json.dumps(values))
    cfg = read_config(tmp_path)
    assert cfg.model.params["count_run"] == "runs/k"
    assert cfg.model.params["counter"] == {"name": "kmer_count", "params": {"k": 3}}


def test_counts_of_one_order_saved_as_flat_arrays_still_load(genome_dir):
    model = fitted(Shard.open(genome_dir), "chrT:1000-3000", 2)
    state = {k: (v[0] if k in ("keys", "classes") else v) for k, v in model.state_dict().items()}  # (N,) arrays
    again = build_model("context_count", {"k": 2, "concentration": 8.0}, 5, 4)
    again.load_state_dict(state)
    x = torch.randint(0, 4, (6, 5), dtype=torch.uint8)
    assert torch.equal(again(x), model(x))
