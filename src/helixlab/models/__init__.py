"""Model registry: one dict maps a model name to its class and config dataclass."""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helixlab.errors import HelixError
from helixlab.models.base import SequenceModel
from helixlab.models.bert import Bert, BertConfig
from helixlab.models.cnn import CNN, CNNConfig
from helixlab.models.fused import Fused, FusedConfig
from helixlab.models.kmer import KmerCount, KmerCountConfig, KmerLinear, KmerLinearConfig
from helixlab.models.legnet import LegNet, LegNetConfig
from helixlab.models.mlp import MLP, MLPConfig
from helixlab.models.rnn import CNNGRUConfig, CNNLSTMConfig, GRUConfig, Recurrent, WindowGRUConfig


@dataclass(frozen=True)
class ModelSpec:
    cls: type[SequenceModel]
    config: type


REGISTRY: dict[str, ModelSpec] = {
    "cnn": ModelSpec(CNN, CNNConfig),
    "gru": ModelSpec(Recurrent, GRUConfig),
    "cnn_gru": ModelSpec(Recurrent, CNNGRUConfig),
    "window_gru": ModelSpec(Recurrent, WindowGRUConfig),
    "cnn_lstm": ModelSpec(Recurrent, CNNLSTMConfig),
    "mlp": ModelSpec(MLP, MLPConfig),
    "kmer_linear": ModelSpec(KmerLinear, KmerLinearConfig),
    "bert": ModelSpec(Bert, BertConfig),
    "legnet": ModelSpec(LegNet, LegNetConfig),
    "kmer_count": ModelSpec(KmerCount, KmerCountConfig),
    "fused": ModelSpec(Fused, FusedConfig),
}


def model_config(name: str, params: dict[str, Any], *, source: str = "config") -> Any:
    """Validate `params` against the model's config dataclass; unknown names and keys are errors."""
    spec = REGISTRY.get(name)
    if spec is None:
        close = difflib.get_close_matches(name, REGISTRY, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise HelixError(f"unknown model {name!r}{hint}; known models: {', '.join(sorted(REGISTRY))}",
                         path=source, record="model.name")
    fields = {f.name for f in dataclasses.fields(spec.config)}
    for key in params:
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise HelixError(f"unknown parameter {key!r} for model {name!r}{hint}; valid: {', '.join(sorted(fields))}",
                             path=source, record=f"model.params.{key}")
    return spec.config(**params)


def build_model(name: str, params: dict[str, Any], seq_len: int | None, n_outputs: int,
                *, source: str = "config", run_dir: Path | None = None) -> SequenceModel:
    """Instantiate a registered model: x (N, L) uint8 -> (N, n_outputs).

    `run_dir`: the run the model belongs to, for models that keep files there (a tokenizer)."""
    cfg = model_config(name, params, source=source)
    cls = REGISTRY[name].cls
    try:
        if cls.uses_run_dir:
            return cls(cfg, seq_len, n_outputs, run_dir=run_dir)  # type: ignore[call-arg]
        return cls(cfg, seq_len, n_outputs)
    except (ValueError, TypeError) as exc:
        raise HelixError(f"cannot build model {name!r}: {exc}", path=source, record="model.params") from None


def count_params(model: SequenceModel) -> int:
    return sum(p.numel() for p in model.parameters())
