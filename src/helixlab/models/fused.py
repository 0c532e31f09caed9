"""A network merged with a k-mer counting run (S5): the counting model's log-probabilities are an
extra input of the network's final layer. Any model family can be the network."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from helixlab.errors import HelixError
from helixlab.models.base import SequenceModel
from helixlab.models.kmer import KmerCount, KmerCountConfig
from helixlab.models.registry import REGISTRY, build_model, model_config, register
from helixlab.paths import BEST, CONFIG, atomic_path, expand_path, read_json_object


@dataclass
class FusedConfig:
    """net / net_params: the network (any model name and its parameters); kmer_run: a finished
    kmer_count run of the same task. Its counts are read when the run starts and kept in this run's
    weights (frozen); `kmer` records the counting model's parameters (set by the run).
    leave_one_out: the network trains on positions the k-mer run counted (the same genome and training
    regions), so in training each window's own count is taken out of its k-mer input; otherwise the
    network learns to trust counts that have seen the answer. Set false when it trains elsewhere."""

    net: str = "cnn"
    net_params: dict[str, Any] = field(default_factory=dict)
    kmer_run: str = ""
    kmer: dict[str, Any] = field(default_factory=dict)
    leave_one_out: bool = True


COUNTS_FILE = "kmer_counts.safetensors"


def _kmer_run(kmer_run: str) -> tuple[dict[str, Any], Path]:
    """The parameters and weights of a finished kmer_count run (an error naming the run otherwise)."""
    rd = Path(expand_path(kmer_run))
    if not kmer_run or not (rd / CONFIG).exists() or not (rd / BEST).exists():
        raise HelixError("model.params.kmer_run must be a finished kmer_count run", path=str(rd))
    model = read_json_object(rd / CONFIG, "run config").get("model")
    if not isinstance(model, dict) or not isinstance(model.get("params"), dict):
        raise HelixError("run config has no [model] section with params", path=str(rd / CONFIG), record="model")
    if model.get("name") != "kmer_count":
        raise HelixError(f"model.params.kmer_run is a {model.get('name')!r} run, not kmer_count", path=str(rd))
    return model["params"], rd / BEST


@register("fused", FusedConfig)
class Fused(SequenceModel):
    reads_one_hot = False  # the k-mer half reads base codes
    keeps_run_files = True

    @classmethod
    def prepare_run(cls, params: dict[str, Any], run_dir: Path, sequences: Callable[[], Iterator[str]]
                    ) -> dict[str, Any]:
        """A new run copies the counting run's counts beside it (RUN_DIR/kmer_counts.safetensors): from
        then on the run never reads `kmer_run` again."""
        cfg = model_config("fused", params)
        kmer_params, weights = _kmer_run(cfg.kmer_run)
        with atomic_path(run_dir / COUNTS_FILE) as tmp:
            save_file({"counts": load_file(str(weights))["counts"]}, str(tmp))
        net_params = REGISTRY[cfg.net].cls.prepare_run(cfg.net_params, run_dir, sequences)
        return {**params, "net_params": net_params, "kmer": kmer_params}

    def __init__(self, cfg: FusedConfig, seq_len: int | None, n_outputs: int, *, run_dir: Path | None = None) -> None:
        super().__init__()
        if cfg.net == "fused":
            raise ValueError("the network of a fused model cannot itself be fused")
        self.leave_one_out = cfg.leave_one_out
        self.net = build_model(cfg.net, cfg.net_params, seq_len, n_outputs, run_dir=run_dir)
        if self.net.reads_strand:
            raise ValueError(f"the network {cfg.net!r} reads a strand channel; fuse a model without one")
        self.kmer = KmerCount(KmerCountConfig(**cfg.kmer), seq_len, n_outputs)
        if run_dir is not None and (run_dir / COUNTS_FILE).exists():  # checkpoints load over these anyway
            counts = load_file(str(run_dir / COUNTS_FILE))["counts"]
            if counts.shape != self.kmer.counts.shape:
                raise ValueError(f"the k-mer run has counts of shape {tuple(counts.shape)}, this task needs "
                                 f"{tuple(self.kmer.counts.shape)} (same k and target)")
            self.kmer.counts.data = counts.float()
        head = self.net.head
        body, last = (head[:-1], head[-1]) if isinstance(head, nn.Sequential) else (nn.Identity(), head)
        if not isinstance(last, nn.Linear):
            raise ValueError(f"the network {cfg.net!r} does not end in a linear layer")
        self.net.head = body
        self.feature_dim = last.in_features + n_outputs
        self.head = nn.Linear(self.feature_dim, n_outputs)
        with torch.no_grad():  # start as the k-mer model; the network learns what it adds
            self.head.weight[:, : last.in_features].mul_(0.1)
            self.head.weight[:, last.in_features :] = torch.eye(n_outputs)
            self.head.bias.zero_()

    def features(self, x: torch.Tensor, held_out: torch.Tensor | None = None) -> torch.Tensor:
        """held_out (training, with leave_one_out): each window's class, whose own count the k-mer
        input leaves out (-1: none, e.g. a reverse-complemented window, which was not counted)."""
        kmer = self.kmer.features(x) if held_out is None else self.kmer.held_out_log_probs(x, held_out)
        return torch.cat([self.net.head(self.net.features(x)), kmer], 1)

    def train_outputs(self, x: torch.Tensor, strand: torch.Tensor | None, target: Any) -> torch.Tensor:
        """target: each window's class. With leave_one_out its own count is left out of the k-mer input,
        except for reverse-complemented windows (`strand`), which were not counted."""
        if not self.leave_one_out:
            return self.outputs(x, strand)
        held = target if strand is None else torch.where(strand.to(target.device), -1, target)
        return self.head(self.features(x, held))
