"""A network merged with a counting run (S5): the counting model's predictions (kmer_count,
context_count), or a small network over its per-depth counts (context_count with `count_hidden`:
learned smoothing), are an extra input of the network's final layer. Any model family can be the
network; net = "none" leaves the counts alone (the learned-smoothing model)."""

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
from helixlab.models.context import ContextCount, ContextCountConfig
from helixlab.models.kmer import KmerCount, KmerCountConfig
from helixlab.models.layers import mlp
from helixlab.models.registry import REGISTRY, build_model, model_config, register
from helixlab.models.weights import finished_run_config
from helixlab.paths import BEST, atomic_path

COUNTERS: dict[str, type] = {"kmer_count": KmerCountConfig, "context_count": ContextCountConfig}  # name -> config
NO_NET = "none"


@dataclass
class FusedConfig:
    """net / net_params: the network (any model name and its parameters, or "none"); count_run: a
    finished kmer_count or context_count run of the same task. Its counts are copied into this run
    when it starts (frozen); `counter` records the counting model's name and parameters (set by the run).
    count_hidden: hidden layers of a network over the per-depth counts of a context_count run (learned
    smoothing; empty: the counting model's own log-probabilities). leave_one_out: the network trains on
    positions the counting run counted (the same genome and training regions), so in training each
    window's own count is taken out of its count input; otherwise the network learns to trust counts
    that have seen the answer. Set false when it trains elsewhere."""

    net: str = "cnn"
    net_params: dict[str, Any] = field(default_factory=dict)
    count_run: str = ""
    counter: dict[str, Any] = field(default_factory=dict)
    count_hidden: list[int] = field(default_factory=list)
    dropout: float = 0.0
    leave_one_out: bool = True


COUNTS_FILE = "counts.safetensors"
LEGACY_COUNTS_FILE = "kmer_counts.safetensors"  # fused runs made before context_count


def _count_run(count_run: str) -> tuple[dict[str, Any], Path]:
    """The counting model (name, params) and weights of a finished counting run (an error naming it otherwise)."""
    cfg, rd = finished_run_config(count_run, "model.params.count_run must be a finished kmer_count or "
                                             "context_count run")
    model = cfg["model"]
    if model.get("name") not in COUNTERS:
        raise HelixError(f"model.params.count_run is a {model.get('name')!r} run, not kmer_count or context_count",
                         path=str(rd))
    return {"name": model["name"], "params": model["params"]}, rd / BEST


@register("fused", FusedConfig)
class Fused(SequenceModel):
    reads_one_hot = False  # the counting half reads base codes
    keeps_run_files = True

    @classmethod
    def prepare_run(cls, params: dict[str, Any], run_dir: Path, sequences: Callable[[], Iterator[str]]
                    ) -> dict[str, Any]:
        """A new run copies the counting run's arrays beside it (RUN_DIR/counts.safetensors): from then
        on the run never reads `count_run` again."""
        cfg = model_config("fused", params)
        counter, weights = _count_run(cfg.count_run)
        with atomic_path(run_dir / COUNTS_FILE) as tmp:
            save_file(load_file(str(weights)), str(tmp))
        net_params = cfg.net_params if cfg.net == NO_NET else REGISTRY[cfg.net].cls.prepare_run(
            cfg.net_params, run_dir, sequences)
        return {**params, "net_params": net_params, "counter": counter}

    def __init__(self, cfg: FusedConfig, seq_len: int | None, n_outputs: int, *, run_dir: Path | None = None) -> None:
        super().__init__()
        if cfg.net == "fused":
            raise ValueError("the network of a fused model cannot itself be fused")
        name = cfg.counter.get("name", "kmer_count")
        if name not in COUNTERS:
            raise ValueError(f"unknown counting model {name!r}")
        if cfg.count_hidden and name != "context_count":
            raise ValueError("count_hidden reads the per-depth counts of a context_count run")
        self.leave_one_out = cfg.leave_one_out
        counter_cfg = COUNTERS[name](**cfg.counter.get("params", {}))
        self.counter = (ContextCount(counter_cfg, seq_len, n_outputs, persistent=False) if name == "context_count"
                        else KmerCount(counter_cfg, seq_len, n_outputs))
        if run_dir is not None:  # checkpoints load over the k-mer counts anyway; context arrays live only here
            self._load_counts(run_dir)
        if cfg.count_hidden:
            assert isinstance(self.counter, ContextCount)
            self.count_net: nn.Module = mlp(self.counter.depth_feature_dim, cfg.count_hidden, n_outputs,
                                            dropout=cfg.dropout)
        else:
            self.count_net = nn.Identity()
        net_dim = 0
        if cfg.net != NO_NET:
            self.net: SequenceModel | None = build_model(cfg.net, cfg.net_params, seq_len, n_outputs, run_dir=run_dir)
            if self.net.reads_strand:
                raise ValueError(f"the network {cfg.net!r} reads a strand channel; fuse a model without one")
            head = self.net.head
            body, last = (head[:-1], head[-1]) if isinstance(head, nn.Sequential) else (nn.Identity(), head)
            if not isinstance(last, nn.Linear):
                raise ValueError(f"the network {cfg.net!r} does not end in a linear layer")
            self.net.head = body
            net_dim = last.in_features
        else:
            self.net = None
        self.feature_dim = net_dim + n_outputs
        self.head = nn.Linear(self.feature_dim, n_outputs)
        with torch.no_grad():  # start as the counting model; the network learns what it adds
            self.head.weight[:, :net_dim].mul_(0.1)
            self.head.weight[:, net_dim:] = torch.eye(n_outputs)
            self.head.bias.zero_()

    def _load_counts(self, run_dir: Path) -> None:
        path = run_dir / COUNTS_FILE
        if not path.exists() and (run_dir / LEGACY_COUNTS_FILE).exists():
            path = run_dir / LEGACY_COUNTS_FILE
        if not path.exists():
            return
        tensors = load_file(str(path))
        if isinstance(self.counter, ContextCount):
            self.counter.load_arrays(tensors)
            return
        counts = tensors["counts"]
        if counts.shape != self.counter.counts.shape:
            raise ValueError(f"the k-mer run has counts of shape {tuple(counts.shape)}, this task needs "
                             f"{tuple(self.counter.counts.shape)} (same k and target)")
        self.counter.counts.data = counts.float()

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        if prefix + "kmer.counts" in state_dict:  # a fused run made before the counter was renamed
            state_dict[prefix + "counter.counts"] = state_dict.pop(prefix + "kmer.counts")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def count_features(self, x: torch.Tensor, target: torch.Tensor | None = None,
                       strand: torch.Tensor | None = None) -> torch.Tensor:
        """(N, n_outputs): the counting half. target (training, with leave_one_out): each window's class,
        whose own count is left out (-1: none)."""
        c = self.counter
        if isinstance(c, ContextCount):
            if isinstance(self.count_net, nn.Identity):
                return c.log_probs_of(x, target, strand)
            return self.count_net(c.depth_features(x, target, strand))
        return c.features(x) if target is None else c.train_outputs(x, strand, target)

    def features(self, x: torch.Tensor, target: torch.Tensor | None = None,
                 strand: torch.Tensor | None = None) -> torch.Tensor:
        counts = self.count_features(x, target, strand)
        if self.net is None:
            return counts
        return torch.cat([self.net.head(self.net.features(x)), counts], 1)

    def train_outputs(self, x: torch.Tensor, strand: torch.Tensor | None, target: Any) -> torch.Tensor:
        """target: each window's class. With leave_one_out its own count is left out of the count input."""
        if not self.leave_one_out:
            return self.outputs(x, strand)
        return self.head(self.features(x, target, strand))
