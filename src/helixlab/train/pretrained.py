"""Starting a run from pretrained weights (`train --init-from SOURCE`).

SOURCE is one of
  - a helixlab run directory (e.g. a `helixlab pretrain` run): its encoder settings and tokenizer
    are adopted, its weights loaded except the task head; a run of the same model and the same task
    (kind and bins, e.g. stage 1 of two-stage training) gives its head too;
  - a Hugging Face BERT checkpoint directory on disk (config.json + model.safetensors + vocab.txt
    or tokenizer.json, as DNABERT publishes them); read offline, never unpickled;
  - a .safetensors file of this very model (all weights must match).
"""

from __future__ import annotations

import json
import shutil
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from helixlab.config import RunConfig
from helixlab.errors import HelixError
from helixlab.models.bert import BertConfig
from helixlab.models.weights import load_weights, model_tensors, read
from helixlab.paths import CONFIG, TOKENIZER_FILE, best_or_last, is_run_dir, read_json_object
from helixlab.seq.tokenizers import Tokenizer

# Model params that define a BERT encoder (adopted from the source); the rest (head) stay the user's.
ENCODER_KEYS = ("tokenizer", "k", "subword_model", "subword_vocab", "vocab", "size", "layers", "hidden", "heads",
                "intermediate", "max_tokens", "compose_bases", "positions", "conv_embed")
TASK_HEADS = ("head.", "lm_head.")
HF_KEYS = ("vocab_size", "num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size",
           "max_position_embeddings")


def _run_model(run: Path) -> dict[str, Any]:
    """The [model] section (name, params) a helixlab run recorded."""
    model = read_json_object(run / CONFIG, "run config").get("model")
    if not (isinstance(model, dict) and isinstance(model.get("name"), str) and isinstance(model.get("params"), dict)):
        raise HelixError("run config has no [model] section with a name and params", path=str(run / CONFIG),
                         record="model")
    return model


def _run_of(p: Path) -> Path | None:
    """The run directory a checkpoint file belongs to (RUN/checkpoints/x.safetensors), if any."""
    run = p.parent.parent
    return run if p.parent.name == "checkpoints" and (run / CONFIG).exists() else None


def source_kind(source: str | Path) -> str:
    """'run', 'hf' or 'file'; a clear error for anything else. A checkpoint file inside a run counts as the run."""
    p = Path(source)
    if p.is_file() and p.suffix == ".safetensors":
        return "run" if _run_of(p) else "file"
    if p.is_dir() and (p / CONFIG).exists():  # a helixlab run and a Hugging Face checkpoint both have one
        if is_run_dir(p):
            return "run"
        config = read_json_object(p / CONFIG, "checkpoint config")
        if config.get("model_type") == "bert":
            return "hf"
        raise HelixError(f"config.json has model_type {config.get('model_type')!r}; only BERT checkpoints "
                         "can be loaded", path=str(p))
    raise HelixError("--init-from must be a helixlab run directory, a Hugging Face BERT directory or a "
                     ".safetensors file", path=str(p))


def adopt(cfg: RunConfig, source: str | Path, run_dir: Path) -> RunConfig:
    """The run config with the encoder settings of `source`; its tokenizer saved into `run_dir`."""
    kind, p = source_kind(source), Path(source)
    if kind == "file":
        return cfg
    p = _run_of(p) or p
    if kind == "run":
        src = _run_model(p)
        if src["name"] != cfg.model.name:
            raise HelixError(f"pretrained run has model {src['name']!r}, this config {cfg.model.name!r}", path=str(p))
        if cfg.model.name != "bert":
            return cfg  # same model: its weights are loaded as they are (load_init)
    elif cfg.model.name != "bert":
        raise HelixError(f"--init-from a BERT checkpoint needs model.name = 'bert', not {cfg.model.name!r}",
                         path=str(p))
    if kind == "run":
        encoder = {k: v for k, v in src["params"].items() if k in ENCODER_KEYS}
        if (p / TOKENIZER_FILE).exists():
            shutil.copyfile(p / TOKENIZER_FILE, run_dir / TOKENIZER_FILE)
            encoder["vocab"] = TOKENIZER_FILE
    else:
        encoder = _hf_encoder(p, run_dir)
    # the source's effective settings: what it recorded, BertConfig's defaults for the rest (a Hugging Face
    # BERT: learned absolute positions, no conv_embed)
    defaults = BertConfig()
    encoder = {**{k: getattr(defaults, k) for k in ENCODER_KEYS}, **encoder}
    replaced = {k: v for k, v in cfg.model.params.items() if k in ENCODER_KEYS and k != "vocab" and v != encoder[k]}
    if replaced:
        warnings.warn("--init-from adopts the pretrained encoder's settings; "
                      + ", ".join(f"model.params.{k} = {v!r} becomes {encoder[k]!r}" for k, v in replaced.items()),
                      stacklevel=2)
    params = {**{k: v for k, v in cfg.model.params.items() if k not in ENCODER_KEYS}, **encoder}
    return replace(cfg, model=replace(cfg.model, params=params))


def _hf_encoder(p: Path, run_dir: Path) -> dict[str, Any]:
    hf = read_json_object(p / CONFIG, "Hugging Face config")
    missing = [k for k in HF_KEYS if not isinstance(hf.get(k), int)]
    if missing:
        raise HelixError(f"BERT config lacks integer {', '.join(missing)}", path=str(p / CONFIG), record=missing[0])
    unsupported = {key: hf[key] for key, ok in (("hidden_act", "gelu"), ("position_embedding_type", "absolute"),
                                                 ("type_vocab_size", 2)) if key in hf and hf[key] != ok}
    if unsupported:
        raise HelixError(f"BERT settings helixlab's encoder does not reproduce: {unsupported}", path=str(p))
    kmer_vocab = None
    if (p / "vocab.txt").exists():  # DNABERT ships k-mers in vocab.txt (and sometimes a WordPiece tokenizer.json)
        try:
            kmer_vocab = Tokenizer.from_vocab_file(p / "vocab.txt")
        except HelixError:
            kmer_vocab = None
    if kmer_vocab is not None:
        tok = kmer_vocab
    elif (p / "tokenizer.json").exists():
        tokenizer = read_json_object(p / "tokenizer.json", "Hugging Face tokenizer")
        tj = json.dumps(tokenizer)
        model = tokenizer.get("model", {}) if isinstance(tokenizer.get("model"), dict) else {}
        vocab = [t for t, _ in sorted(model.get("vocab", {}).items(), key=lambda kv: kv[1])] \
            if isinstance(model.get("vocab"), dict) else []
        tok = Tokenizer("subword", vocab, subword_json=tj)
    else:
        raise HelixError("checkpoint has neither a k-mer vocab.txt nor a tokenizer.json", path=str(p))
    if tok.vocab_size != hf["vocab_size"]:
        raise HelixError(f"vocabulary has {tok.vocab_size} tokens, config.json says {hf['vocab_size']}", path=str(p))
    tok.save(run_dir / TOKENIZER_FILE)
    return {"tokenizer": tok.kind, "k": tok.k, "vocab": TOKENIZER_FILE, "layers": hf["num_hidden_layers"],
            "hidden": hf["hidden_size"], "heads": hf["num_attention_heads"],
            "intermediate": hf["intermediate_size"], "max_tokens": hf["max_position_embeddings"]}


def _hf_weights(p: Path) -> dict[str, torch.Tensor]:
    path = p / "model.safetensors"
    if not path.exists():
        bins = [b.name for b in p.glob("*.bin")]
        raise HelixError("no model.safetensors" + (f" (found {', '.join(bins)}: pickled weights are never loaded; "
                                                   "convert them to safetensors first)" if bins else ""), path=str(p))
    tensors, _ = read(path)
    out = {}
    for key, value in tensors.items():
        if key.startswith(("embeddings.", "encoder.")):
            key = "bert." + key
        buffer = key.endswith(("position_ids", "token_type_ids"))  # non-persistent buffers in older checkpoints
        if key.startswith("bert.") and not key.startswith("bert.pooler.") and not buffer:
            out[key] = value
    return out


def same_task(source_run: Path, task: Any) -> bool:
    """Whether a helixlab run was trained for the same task (kind and bins) as `task` (a TaskConfig)."""
    src = read_json_object(source_run / CONFIG, "run config").get("task", {})
    return src.get("kind") == task.kind and src.get("bins", 0) == task.bins


def load_init(model: torch.nn.Module, source: str | Path, task: Any = None) -> dict[str, int]:
    """Load pretrained weights into `model`; returns counts of loaded and newly initialised tensors.
    From a run, the task head is loaded only when the run had the same `task` (a TaskConfig)."""
    kind, p = source_kind(source), Path(source)
    if kind == "file":
        load_weights(model, p)  # names and shapes that do not fit this model are an error naming the file
        n = len(model.state_dict())
        return {"loaded": n, "initialised": 0}
    if kind == "run":
        tensors = model_tensors(read(p if p.is_file() else best_or_last(p))[0])
        run = _run_of(p) or p
        own = model.state_dict()
        head = {k: v for k, v in tensors.items() if k.startswith(TASK_HEADS)}
        fits = all(k in own and own[k].shape == v.shape for k, v in head.items())
        if task is None or not same_task(run, task) or not fits:  # another task (or outputs): a new head
            tensors = {k: v for k, v in tensors.items() if k not in head}
    else:
        tensors = _hf_weights(p)
    own = model.state_dict()
    for key, value in tensors.items():
        if key not in own:
            raise HelixError(f"pretrained tensor {key!r} has no place in this model", path=str(p))
        if own[key].shape != value.shape:
            raise HelixError(f"pretrained tensor {key!r} has shape {tuple(value.shape)}, the model "
                             f"{tuple(own[key].shape)}", path=str(p))
    if not tensors:
        raise HelixError("no encoder weights found", path=str(p))
    model.load_state_dict(tensors, strict=False)
    return {"loaded": len(tensors), "initialised": len(own) - len(tensors)}
