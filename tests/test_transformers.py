"""Tokenizers, the BERT model, MLM pretraining -> fine-tuning, HF checkpoints and attention output (offline)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from helixlab.cli import main
from helixlab.config import config_from_dict
from helixlab.errors import HelixError
from helixlab.models import build_model
from helixlab.seq.alphabet import all_kmers
from helixlab.seq.tokenizers import SPECIALS, Tokenizer
from helixlab.tasks import mask_tokens
from helixlab.train import fit
from tests.conftest import motif_rows, write_csv

TINY = {"size": "tiny", "hidden": 32, "heads": 2, "intermediate": 64, "layers": 2, "max_tokens": 64}


def random_seqs(n: int, length: int, seed: int, n_rate: float = 0.05) -> list[str]:
    rng = random.Random(seed)
    return ["".join("N" if rng.random() < n_rate else rng.choice("ACGT") for _ in range(length)) for _ in range(n)]


@pytest.mark.parametrize("kind,k", [("nucleotide", 1), ("kmer", 3), ("kmer", 4), ("kmer", 5), ("kmer", 6),
                                    ("window", 3)])
def test_fixed_tokenizers_round_trip_sequences_with_n(tmp_path, kind, k):
    seqs = [s[:-1] + "A" for s in random_seqs(20, 30, seed=k)]  # N inside; trailing N would be padding
    tok = Tokenizer.create(kind, k)
    ids, attention = tok.encode_strings(seqs)
    assert ids.dtype == torch.long and bool(attention.all())
    assert (ids[:, 0] == tok.cls_id).all() and (ids[:, -1] == tok.sep_id).all()
    assert ids.shape[1] == tok.n_tokens(30)
    decoded = tok.decode(ids)
    if kind == "window":  # 30 = 10 windows of 3; an N makes its whole window [UNK]
        for s, d in zip(seqs, decoded):
            for w in range(10):
                window = s[3 * w : 3 * w + 3]
                assert d[3 * w : 3 * w + 3] == ("NNN" if "N" in window else window)
    elif kind == "kmer":  # every base covered by some N-free k-mer comes back
        for s, d in zip(seqs, decoded):
            assert len(d) == len(s)
            for j, (a, b) in enumerate(zip(s, d)):
                covered = any("N" not in s[i : i + k] for i in range(max(0, j - k + 1), min(j, len(s) - k) + 1))
                assert b == (a if covered else "N")
    else:
        assert decoded == seqs
    tok.save(tmp_path / "tok.json")
    again = Tokenizer.load(tmp_path / "tok.json")
    assert again.vocab == tok.vocab and torch.equal(again.encode_strings(seqs)[0], ids)


@pytest.mark.parametrize("kind", ["nucleotide", "kmer", "window", "subword"])
def test_trailing_n_is_padding_so_a_sequence_tokenizes_alike_alone_and_in_a_batch(kind):
    tok = Tokenizer.train_subword(random_seqs(100, 50, seed=1, n_rate=0), 40) if kind == "subword" \
        else Tokenizer.create(kind, 3)
    short, long_ = "ACGTTGCAAGGTCA", "TTGACGTACGATCGATCGGATCCATGCATGAC"
    alone, _ = tok.encode_strings([short])
    batch, attention = tok.encode_strings([short + "N" * (len(long_) - len(short)), long_])
    n = alone.shape[1]
    assert torch.equal(batch[0, :n], alone[0]) and (batch[0, n:] == tok.pad_id).all()
    assert attention[0].sum() == n and attention[1].all()
    assert tok.decode(batch[:1]) == tok.decode(alone)


def test_kmer_tokens_for_n_and_vocabulary_layout():
    tok = Tokenizer.create("kmer", 3)
    assert tok.vocab[:5] == list(SPECIALS) and tok.vocab_size == 4**3 + 5
    toks = tok.tokens(tok.encode_strings(["ACGNTT"])[0])[0]
    assert toks == ["[CLS]", "ACG", "[UNK]", "[UNK]", "[UNK]", "[SEP]"]
    nuc = Tokenizer.create("nucleotide")
    assert nuc.tokens(nuc.encode_strings(["ACNT"])[0])[0] == ["[CLS]", "A", "C", "N", "T", "[SEP]"]


@pytest.mark.parametrize("model", ["bpe", "wordpiece"])
def test_subword_tokenizer_trains_round_trips_and_reloads(tmp_path, model):
    train = random_seqs(200, 60, seed=1, n_rate=0.0) + ["ACGTACGTTATAAA" * 4] * 50
    tok = Tokenizer.train_subword(train, vocab_size=80, model=model)
    assert tok.vocab[:5] == list(SPECIALS) and tok.vocab_size <= 80
    seqs = random_seqs(10, 40, seed=2)  # with N, unseen in training
    ids, attention = tok.encode_strings(seqs)
    assert tok.decode(ids) == seqs
    assert "[UNK]" not in sum(tok.tokens(ids), [])
    assert ids.shape[1] < 42 or model == "wordpiece"  # merges make fewer tokens than bases
    assert (attention.sum(1) <= ids.shape[1]).all() and (ids[attention == 0] == tok.pad_id).all()
    tok.save(tmp_path / "t.json")
    assert torch.equal(Tokenizer.load(tmp_path / "t.json").encode_strings(seqs)[0], ids)


def test_dnabert_vocab_file_in_any_order_gives_the_same_tokens(tmp_path):
    vocab = list(SPECIALS) + all_kmers(4)
    random.Random(0).shuffle(vocab)
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = Tokenizer.from_vocab_file(tmp_path / "vocab.txt")
    assert tok.kind == "kmer" and tok.k == 4 and tok.vocab == vocab
    seqs = random_seqs(5, 25, seed=3)
    assert tok.tokens(tok.encode_strings(seqs)[0]) == Tokenizer.create("kmer", 4).tokens(
        Tokenizer.create("kmer", 4).encode_strings(seqs)[0])
    (tmp_path / "bad.txt").write_text("[PAD]\n[UNK]\nhello\n")
    with pytest.raises(HelixError, match="not made of k-mers"):
        Tokenizer.from_vocab_file(tmp_path / "bad.txt")
    with pytest.raises(HelixError, match="not a helixlab tokenizer"):
        (tmp_path / "x.json").write_text("{}")
        Tokenizer.load(tmp_path / "x.json")


def test_mask_tokens_masks_contiguous_spans_and_never_specials():
    tok = Tokenizer.create("kmer", 6)
    ids, _ = tok.encode_strings(random_seqs(64, 200, seed=4, n_rate=0.0))
    gen = torch.Generator().manual_seed(0)
    masked, labels = mask_tokens(ids, tokenizer=tok, prob=0.15, span=6, generator=gen)
    chosen = labels != -100
    assert not chosen[:, 0].any() and not chosen[:, -1].any()
    assert torch.equal(labels[chosen], ids[chosen])
    assert 0.08 < chosen.float().mean() < 0.25
    assert 0.7 < (masked[chosen] == tok.mask_id).float().mean() < 0.9
    assert torch.equal(masked[~chosen], ids[~chosen])
    # spans: runs of chosen tokens are mostly >= 6 long (shorter only at the edges)
    runs = []
    for row in chosen.int().tolist():
        run = 0
        for v in row + [0]:
            if v:
                run += 1
            elif run:
                runs.append(run)
                run = 0
    assert np.mean([r >= 6 for r in runs]) > 0.9
    gen2 = torch.Generator().manual_seed(0)
    assert torch.equal(mask_tokens(ids, tokenizer=tok, prob=0.15, span=6, generator=gen2)[0], masked)


@pytest.mark.parametrize("positions,conv_embed", [("learned", 0), ("rotary", 0), ("rotary", 5)])
def test_bert_regression_single_output_trains(tmp_path, positions, conv_embed):
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(300):
        s = "".join(rng.choice(list("ACGT"), 30))
        rows.append((s, f"{s.count('G') + s.count('C') / 2:.3f}"))
    data = {split: write_csv(tmp_path / f"{split}.csv", rows[a:b], header="sequence,expression")
            for split, a, b in (("train", 0, 200), ("valid", 200, 250), ("test", 250, 300))}
    cfg = config_from_dict({"data": {k: str(v) for k, v in data.items()},
                            "model": {"name": "bert", "params": {"tokenizer": "nucleotide", "pooling": "mean",
                                                                 "positions": positions,
                                                                 "conv_embed": conv_embed, **TINY}},
                            "task": {"kind": "regression"},
                            "train": {"epochs": 6, "batch_size": 32, "lr": 3e-3, "progress": False, "threads": 1}},
                           "test")
    res = fit(cfg, tmp_path / "run")
    assert res["splits"]["test"]["pearson"] > 0.5
    from helixlab.run.loaded import load_run

    run = load_run(tmp_path / "run")
    x = torch.zeros(3, 30, dtype=torch.uint8)
    assert run.model(x).shape == (3, 1)


def _pretrain_config(train: Path, valid: Path) -> dict[str, object]:
    return {"data": {"train": str(train), "valid": str(valid)},
            "model": {"name": "bert", "params": {"tokenizer": "kmer", "k": 3, **TINY}},
            "task": {"kind": "mlm"},
            "train": {"epochs": 2, "batch_size": 32, "lr": 2e-3, "progress": False, "threads": 1}}


def _fine_tune(tmp_path: Path, data: dict[str, Path], init_from: Path, params: dict[str, object]) -> dict[str, object]:
    """`helixlab train ft.json -o tmp/ft --init-from SOURCE` on the motif task, one epoch; returns the recipe."""
    ft = {"data": {k: str(v) for k, v in data.items()}, "model": {"name": "bert", "params": params},
          "task": {"kind": "binary"},
          "train": {"epochs": 1, "batch_size": 32, "lr": 1e-3, "progress": False, "threads": 1}}
    (tmp_path / "ft.json").write_text(json.dumps(ft))
    assert main(["train", str(tmp_path / "ft.json"), "-o", str(tmp_path / "ft"), "--init-from", str(init_from)]) == 0
    return ft


def test_pretrain_then_finetune_then_predict_attentions_cli(tmp_path, motif_data, capsys):
    fasta = tmp_path / "unlabelled.fa"
    fasta.write_text("".join(f">s{i}\n{s}\n" for i, (s, _) in enumerate(motif_rows(300, 40, seed=9))))
    recipe = tmp_path / "pre.json"
    recipe.write_text(json.dumps(_pretrain_config(fasta, fasta)))
    assert main(["pretrain", str(recipe), "-o", str(tmp_path / "pre")]) == 0
    hist = [json.loads(x) for x in (tmp_path / "pre" / "metrics.jsonl").read_text().splitlines()]
    assert hist[-1]["valid_mlm_accuracy"] > 1 / 64 and (tmp_path / "pre" / "tokenizer.json").exists()
    assert 0.0 <= hist[-1]["valid_mlm_accuracy_hidden"] <= 1.0
    # a pretraining run is scored on held-out unlabelled sequence, and cannot predict
    assert main(["evaluate", str(tmp_path / "pre"), str(fasta), "-o", str(tmp_path / "mlm.json")]) == 0
    assert json.loads((tmp_path / "mlm.json").read_text())["masked_tokens"] > 0
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "pre"), str(fasta), "-o", str(tmp_path / "x.csv")]) == 1
    assert "no prediction head" in capsys.readouterr().err
    # fine-tune: the encoder settings and tokenizer come from the pretrained run, the head from this recipe
    ft = _fine_tune(tmp_path, motif_data, tmp_path / "pre", {"tokenizer": "nucleotide", "head_layers": 2})
    params = json.loads((tmp_path / "ft" / "config.json").read_text())["model"]["params"]
    assert params["tokenizer"] == "kmer" and params["k"] == 3 and params["head_layers"] == 2
    info = json.loads((tmp_path / "ft" / "run.json").read_text())
    assert info["init_from"]["loaded"] > 0 and info["init_from"]["initialised"] > 0
    assert main(["predict", str(tmp_path / "ft"), str(motif_data["test"]), "-o", str(tmp_path / "p.csv"),
                 "--attentions", str(tmp_path / "att.npz"), "--attention-layer", "0"]) == 0
    att = np.load(tmp_path / "att.npz")
    assert att["attention"].shape == (160, 2, 40, 40)  # 38 3-mers + [CLS] + [SEP]
    np.testing.assert_allclose(att["attention"].astype(np.float32).sum(-1), 1.0, atol=1e-2)
    assert list(att["vocab"][att["tokens"][0, :1]]) == ["[CLS]"]
    # a non-transformer run says so
    cnn = {**ft, "model": {"name": "cnn", "params": {"channels": [8], "kernels": [5], "pools": [1], "hidden": [8]}}}
    (tmp_path / "cnn.json").write_text(json.dumps(cnn))
    assert main(["train", str(tmp_path / "cnn.json"), "-o", str(tmp_path / "cnn")]) == 0
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "cnn"), str(motif_data["test"]), "-o", str(tmp_path / "q.csv"),
                 "--attentions", str(tmp_path / "a2.npz")]) == 1
    assert "only for transformer runs" in capsys.readouterr().err
    assert not (tmp_path / "q.csv").exists() and not (tmp_path / "a2.npz").exists()


def test_pretraining_on_a_table_is_deterministic_and_resumes_exactly(tmp_path, monkeypatch):
    table = tmp_path / "u.csv"  # a sequence column and nothing else
    table.write_text("sequence\n" + "".join(f"{s}\n" for s, _ in motif_rows(96, 40, seed=5)))
    cfg = config_from_dict({**_pretrain_config(table, table),
                            "train": {"epochs": 2, "batch_size": 16, "lr": 2e-3, "progress": False, "threads": 1,
                                      "checkpoint_every": 4}}, "test")
    a, b = fit(cfg, tmp_path / "a"), fit(cfg, tmp_path / "b")
    assert a["splits"]["valid"] == b["splits"]["valid"]
    # die right after the third checkpoint (mid epoch 1), as a kill -9 there would, then resume
    from helixlab.train import loop as checkpoint  # the loop saves through this name

    real, calls = checkpoint.save_training_state, []

    def crash_after_third(*args, **kwargs):
        real(*args, **kwargs)
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "save_training_state", crash_after_third)
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, tmp_path / "c")
    monkeypatch.setattr(checkpoint, "save_training_state", real)
    assert not (tmp_path / "c" / "results.json").exists()
    c = fit(cfg, tmp_path / "c", resume=True)
    assert c["splits"]["valid"] == a["splits"]["valid"]
    hist = [[json.loads(x)["valid_token_loss"] for x in (tmp_path / r / "metrics.jsonl").read_text().splitlines()]
            for r in ("a", "c")]
    assert hist[0] == hist[1]
    trace = [(tmp_path / r / "trace.jsonl").read_text() for r in ("a", "c")]
    assert trace[0] == trace[1] and len(trace[0].splitlines()) == 12  # 6 steps per epoch: a point per step


def test_pretrain_refuses_non_token_models_and_train_refuses_mlm_recipes(tmp_path, capsys):
    cfg = _pretrain_config(tmp_path / "x.fa", tmp_path / "x.fa")
    cfg["model"] = {"name": "cnn", "params": {}}
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    assert main(["pretrain", str(tmp_path / "c.json")]) == 1
    assert "needs a token model" in capsys.readouterr().err
    (tmp_path / "m.json").write_text(json.dumps(_pretrain_config(tmp_path / "x.fa", tmp_path / "x.fa")))
    assert main(["train", str(tmp_path / "m.json")]) == 1
    assert "use `helixlab pretrain`" in capsys.readouterr().err
    fasta = tmp_path / "u.fa"
    fasta.write_text("".join(f">s{i}\n{s}\n" for i, (s, _) in enumerate(motif_rows(40, 40, seed=5))))
    (tmp_path / "a.json").write_text(json.dumps(_pretrain_config(fasta, fasta)))
    assert main(["pretrain", str(tmp_path / "a.json"), "--set", "train.monitor=auroc", "-o", str(tmp_path / "r")]) == 1
    assert "not a metric of a mlm task" in capsys.readouterr().err and not (tmp_path / "r").exists()


def _hf_checkpoint(path: Path, k: int = 3) -> tuple[list[str], object]:
    """A tiny DNABERT-like checkpoint written by transformers itself: BertForMaskedLM + shuffled vocab.txt."""
    from transformers import BertConfig, BertForMaskedLM

    vocab = list(SPECIALS) + all_kmers(k)
    random.Random(1).shuffle(vocab)
    torch.manual_seed(0)
    hf = BertForMaskedLM(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                                    num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                                    pad_token_id=vocab.index("[PAD]")))
    hf.save_pretrained(path)
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return vocab, hf


def test_hugging_face_checkpoint_loads_offline_and_fine_tunes(tmp_path, motif_data, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    vocab, hf = _hf_checkpoint(tmp_path / "dnabert")
    ft = _fine_tune(tmp_path, motif_data, tmp_path / "dnabert", {"head_layers": 2})
    params = json.loads((tmp_path / "ft" / "config.json").read_text())["model"]["params"]
    assert (params["k"], params["hidden"], params["layers"], params["heads"]) == (3, 32, 2, 2)
    # before any training step, our encoder computes exactly what the HF model computes
    from helixlab.train.pretrained import adopt, load_init

    cfg = adopt(config_from_dict(ft, "t"), tmp_path / "dnabert", tmp_path)
    model = build_model("bert", cfg.model.params, 40, 1, run_dir=tmp_path).eval()
    load_init(model, tmp_path / "dnabert")
    x = torch.from_numpy(np.stack([np.frombuffer(s.encode(), np.uint8) for s, _ in motif_rows(4, 40, 1)]))
    from helixlab.seq.alphabet import LUTS

    x = torch.from_numpy(LUTS["error"][x.numpy()])
    ids, attention = model.tokenizer.encode(x)
    assert model.tokenizer.vocab == vocab
    hf.eval()
    with torch.no_grad():
        ours = model.encode(ids, attention).last_hidden_state
        theirs = hf.bert(input_ids=ids, attention_mask=attention).last_hidden_state
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)


def test_pickled_checkpoints_are_refused(tmp_path):
    from helixlab.train.pretrained import load_init

    _hf_checkpoint(tmp_path / "ck")
    (tmp_path / "ck" / "model.safetensors").rename(tmp_path / "ck" / "pytorch_model.bin")
    model = build_model("bert", {"tokenizer": "kmer", "k": 3, **TINY, "max_tokens": 64}, 40, 1)
    with pytest.raises(HelixError, match="pickled weights are never loaded"):
        load_init(model, tmp_path / "ck")


def test_init_from_names_what_it_cannot_use(tmp_path, motif_data):
    from helixlab.train.pretrained import adopt, source_kind

    with pytest.raises(HelixError, match="--init-from must be"):
        source_kind(tmp_path)
    (tmp_path / "gpt").mkdir()
    (tmp_path / "gpt" / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(HelixError, match="only BERT checkpoints"):
        source_kind(tmp_path / "gpt")
    _hf_checkpoint(tmp_path / "ck")
    cnn = config_from_dict({"data": {"train": str(motif_data["train"])}, "model": {"name": "cnn", "params": {}}},
                           "t")
    with pytest.raises(HelixError, match="needs model.name = 'bert'"):
        adopt(cnn, tmp_path / "ck", tmp_path)
    model = build_model("bert", {"tokenizer": "kmer", "k": 4, **TINY}, 40, 1)  # 4-mers: other vocabulary size
    from helixlab.train.pretrained import load_init

    with pytest.raises(HelixError, match="has shape"):
        load_init(model, tmp_path / "ck")


def test_a_run_killed_before_its_first_checkpoint_resumes_from_the_pretrained_weights(tmp_path, motif_data,
                                                                                       monkeypatch):
    from helixlab.train import loop as checkpoint  # the loop saves through this name
    from helixlab.train.pretrained import source_kind

    _hf_checkpoint(tmp_path / "ck")
    cfg = config_from_dict({"data": {k: str(v) for k, v in motif_data.items()},
                            "model": {"name": "bert", "params": {"head_layers": 1}}, "task": {"kind": "binary"},
                            "train": {"epochs": 1, "batch_size": 32, "lr": 1e-3, "progress": False, "threads": 1}}, "t")
    straight = fit(cfg, tmp_path / "a", init_from=str(tmp_path / "ck"))

    def die(*args, **kwargs):
        raise KeyboardInterrupt  # as a kill -9 before anything was saved

    monkeypatch.setattr(checkpoint, "save_training_state", die)
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, tmp_path / "b", init_from=str(tmp_path / "ck"))
    monkeypatch.undo()
    assert not (tmp_path / "b" / "checkpoints" / "last.safetensors").exists()
    resumed = fit(cfg, tmp_path / "b", resume=True)  # the source is in the recorded config
    assert resumed["splits"] == straight["splits"]
    assert json.loads((tmp_path / "b" / "config.json").read_text())["train"]["init_from"] == str(tmp_path / "ck")
    # a checkpoint file inside a run counts as that run (its tokenizer and encoder settings are adopted)
    assert source_kind(tmp_path / "a" / "checkpoints" / "best.safetensors") == "run"


def test_sequences_too_long_for_the_encoder_are_refused_before_training(tmp_path):
    rows = [(s, i % 2) for i, s in enumerate(random_seqs(40, 30, seed=1, n_rate=0) + random_seqs(40, 60, seed=2,
                                                                                                n_rate=0))]
    train = write_csv(tmp_path / "train.csv", rows)
    cfg = config_from_dict({"data": {"train": str(train)},
                            "model": {"name": "bert", "params": {"tokenizer": "nucleotide", **TINY,
                                                                 "max_tokens": 40}},
                            "train": {"epochs": 1, "progress": False}}, "t")
    with pytest.raises(HelixError, match="up to 60 bp make 62 tokens, more than max_tokens=40"):
        fit(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_mlm_accuracy_hidden_leaves_out_the_tokens_the_model_could_copy():
    from helixlab.tasks.metrics import MaskedLMMetrics

    m = MaskedLMMetrics()
    true = np.arange(10)
    hidden = np.array([True] * 8 + [False] * 2)  # the last two were shown unchanged
    pred = np.where(hidden, -1, true)  # a model that only copies its input
    m.update((pred, true, 0.0, hidden), np.zeros((10, 0)))
    out = m.compute()
    assert out["mlm_accuracy"] == 0.2 and out["mlm_accuracy_hidden"] == 0.0


@pytest.mark.parametrize("kind,k", [("nucleotide", 1), ("kmer", 3), ("window", 2)])
def test_base_matrix_one_hot_encodes_each_tokens_bases(kind, k):
    tok = Tokenizer.create(kind, k)
    m = tok.base_matrix()
    assert m.shape == (tok.vocab_size, 4 * k)
    for t, token in enumerate(tok.vocab):
        if token in SPECIALS or "N" in token:
            assert not m[t].any()
        else:
            assert m[t].sum() == k and all(m[t, 4 * j + "ACGT".index(b)] == 1 for j, b in enumerate(token))
    with pytest.raises(HelixError, match="subword"):
        Tokenizer.train_subword(random_seqs(50, 40, seed=2, n_rate=0), 30).base_matrix()


def test_composed_bases_share_vectors_between_kmers_and_tie_the_mlm_decoder():
    model = build_model("bert", {"tokenizer": "kmer", "k": 3, **TINY, "compose_bases": True}, 40, 0)
    tok = model.tokenizer
    assert "base_embeddings" in model.state_dict() and "token_bases" not in model.state_dict()
    table = model.token_table()
    word = model.bert.embeddings.word_embeddings.weight
    acg, act = tok.vocab.index("ACG"), tok.vocab.index("ACT")
    base = model.base_embeddings  # blocks of 4 rows per k-mer position, in ACGT order
    torch.testing.assert_close(table[acg] - word[acg], base[0] + base[4 + 1] + base[8 + 2])
    torch.testing.assert_close((table[acg] - word[acg]) - (table[act] - word[act]), base[8 + 2] - base[8 + 3])
    # the MLM logits score against the composed table, so a masked-token loss trains the base vectors
    h = torch.randn(5, TINY["hidden"])
    logits = model.lm_head(h, model.token_table())
    assert logits.shape == (5, tok.vocab_size)
    nn_loss = torch.nn.functional.cross_entropy(logits, torch.tensor([acg, act, acg, act, acg]))
    nn_loss.backward()
    assert model.base_embeddings.grad is not None and model.base_embeddings.grad.abs().sum() > 0
    # a classifier with composed bases encodes a batch (the embedding goes in as inputs_embeds)
    clf = build_model("bert", {"tokenizer": "kmer", "k": 3, **TINY, "compose_bases": True}, 40, 1)
    x = torch.randint(0, 4, (3, 40), dtype=torch.uint8)
    assert clf(x).shape == (3, 1)


def test_sinusoidal_position_init_and_bad_values_named():
    from helixlab.models.bert import sinusoids

    s = sinusoids(50, 8)
    assert torch.equal(s[0, 0::2], torch.zeros(4)) and torch.equal(s[0, 1::2], torch.ones(4))
    torch.testing.assert_close(s[7, 0], torch.tensor(np.sin(7.0), dtype=torch.float32))
    model = build_model("bert", {"tokenizer": "nucleotide", **TINY, "position_init": "sinusoidal"}, 40, 1)
    torch.testing.assert_close(model.bert.embeddings.position_embeddings.weight,
                               0.1 * sinusoids(TINY["max_tokens"], TINY["hidden"]))
    with pytest.raises(HelixError, match="position_init must be one of random, sinusoidal, got 'sine'") as exc:
        build_model("bert", {"tokenizer": "nucleotide", **TINY, "position_init": "sine"}, 40, 1)
    assert "model.params" in str(exc.value)
    with pytest.raises(HelixError, match="compose_bases needs nucleotide, k-mer or window tokens"):
        build_model("bert", {"tokenizer": "subword", **TINY, "compose_bases": True}, 40, 1)


def test_rotary_positions_make_attention_depend_on_the_offset_alone():
    def score_ratios(model: torch.nn.Module) -> torch.Tensor:
        """Layer 0 on a run of one base: attention of token i to i+d over its attention to itself
        (softmax ratios cancel the row's normaliser), for interior tokens i = 5..14 and d = -3..3."""
        _, weights = model.eval().attentions(torch.zeros(1, 40, dtype=torch.uint8), layer=0)
        w = weights[0, 0].double()
        return torch.stack([w[i, i - 3:i + 4] / w[i, i] for i in range(5, 15)])

    torch.manual_seed(0)
    rotary = score_ratios(build_model("bert", {"tokenizer": "nucleotide", **TINY, "positions": "rotary"}, 40, 1))
    torch.testing.assert_close(rotary, rotary[:1].expand_as(rotary))  # the same at every position
    learned = score_ratios(build_model("bert", {"tokenizer": "nucleotide", **TINY}, 40, 1))
    assert not torch.allclose(learned, learned[:1].expand_as(learned), rtol=1e-3, atol=1e-6)
    with pytest.raises(HelixError, match="positions must be one of learned, rotary, got 'alibi'"):
        build_model("bert", {"tokenizer": "nucleotide", **TINY, "positions": "alibi"}, 40, 1)
    with pytest.raises(HelixError, match="rotary positions have none"):
        build_model("bert", {"tokenizer": "nucleotide", **TINY, "positions": "rotary", "position_init": "sinusoidal"},
                    40, 1)


def test_conv_embed_mixes_neighbours_within_its_width_and_never_padding():
    torch.manual_seed(0)
    model = build_model("bert", {"tokenizer": "nucleotide", **TINY, "conv_embed": 5}, 40, 1).eval()
    with torch.no_grad():  # a [PAD] vector that would show wherever padding leaked into the convolution
        model.bert.embeddings.word_embeddings.weight[model.tokenizer.pad_id] = 1.0
    seen: list[torch.Tensor] = []
    model.bert.register_forward_pre_hook(lambda _m, _a, kw: seen.append(kw["inputs_embeds"]), with_kwargs=True)
    x = torch.randint(0, 4, (1, 40), dtype=torch.uint8)
    y = x.clone()
    y[0, 20] = (y[0, 20] + 1) % 4  # token 21 ([CLS] is token 0)
    short = x.clone()
    short[0, 30:] = 4  # trailing N: padding once batched with a full-length row
    for batch in (x, y, torch.cat([x, short]), x[:, :30]):
        model(batch)
    changed = (seen[0] - seen[1]).abs().sum(-1)[0] > 0
    assert changed.nonzero().flatten().tolist() == list(range(19, 24))  # tokens 21-2 .. 21+2
    assert seen[2].shape[1] == 42
    torch.testing.assert_close(seen[2][0], seen[0][0])
    torch.testing.assert_close(seen[2][1, :32], seen[3][0])  # [CLS], 30 bases, [SEP]: no trace of the pads
    with pytest.raises(HelixError, match="conv_embed must be 0 or an odd kernel width, got 4"):
        build_model("bert", {"tokenizer": "nucleotide", **TINY, "conv_embed": 4}, 40, 1)


def test_fine_tuning_adopts_composed_bases_from_the_pretrained_encoder(tmp_path, motif_data):
    from safetensors.torch import load_file

    fasta = tmp_path / "unlabelled.fa"
    fasta.write_text("".join(f">s{i}\n{s}\n" for i, (s, _) in enumerate(motif_rows(96, 40, seed=3))))
    cfg = _pretrain_config(fasta, fasta)
    cfg["model"]["params"].update(compose_bases=True, position_init="sinusoidal")  # type: ignore[index]
    cfg["train"]["epochs"] = 1  # type: ignore[index]
    (tmp_path / "pre.json").write_text(json.dumps(cfg))
    assert main(["pretrain", str(tmp_path / "pre.json"), "-o", str(tmp_path / "pre")]) == 0
    _fine_tune(tmp_path, motif_data, tmp_path / "pre", {"tokenizer": "nucleotide"})
    params = json.loads((tmp_path / "ft" / "config.json").read_text())["model"]["params"]
    assert params["compose_bases"] is True and params["k"] == 3
    weights = {r: next((tmp_path / r).rglob("*.safetensors")) for r in ("pre", "ft")}
    pre, ft = (load_file(str(weights[r])) for r in ("pre", "ft"))
    base = [k for k in pre if k.endswith("base_embeddings")]
    assert base and not torch.equal(pre[base[0]], ft[base[0]])  # adopted, then fine-tuned


def test_fine_tuning_adopts_rotary_positions_and_the_conv_embedding(tmp_path, motif_data):
    fasta = tmp_path / "unlabelled.fa"
    fasta.write_text("".join(f">s{i}\n{s}\n" for i, (s, _) in enumerate(motif_rows(64, 40, seed=3))))
    cfg = _pretrain_config(fasta, fasta)
    cfg["model"]["params"].update(tokenizer="nucleotide", positions="rotary", conv_embed=3)  # type: ignore[index]
    cfg["train"]["epochs"] = 1  # type: ignore[index]
    (tmp_path / "pre.json").write_text(json.dumps(cfg))
    assert main(["pretrain", str(tmp_path / "pre.json"), "-o", str(tmp_path / "pre")]) == 0
    with pytest.warns(UserWarning, match=r"model.params.conv_embed = 9 becomes 3"):
        _fine_tune(tmp_path, motif_data, tmp_path / "pre", {"tokenizer": "nucleotide", "conv_embed": 9})
    params = json.loads((tmp_path / "ft" / "config.json").read_text())["model"]["params"]
    assert params["positions"] == "rotary" and params["conv_embed"] == 3
