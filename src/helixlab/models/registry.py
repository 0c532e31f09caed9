"""Model registry: one dict maps a model name to its class and config dataclass.

Each family module registers its names (`register`); `helixlab.models` imports every family, so
`REGISTRY` is complete whenever `helixlab.models` (or any module in it) has been imported.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from helixlab.errors import HelixError
from helixlab.fields import check_fields
from helixlab.models.base import SequenceModel


@dataclass(frozen=True)
class ModelSpec:
    cls: type[SequenceModel]
    config: type


REGISTRY: dict[str, ModelSpec] = {}
M = TypeVar("M", bound=type[SequenceModel])


def register(name: str, config: type) -> Callable[[M], M]:
    """Class decorator: `name` in recipes builds this class from a `config` dataclass."""

    def add(cls: M) -> M:
        if name in REGISTRY:
            raise ValueError(f"model name {name!r} is registered twice")
        REGISTRY[name] = ModelSpec(cls, config)
        return cls

    return add


def model_config(name: str, params: dict[str, Any], *, source: str = "config") -> Any:
    """Validate `params` against the model's config dataclass; unknown names and keys are errors."""
    spec = REGISTRY.get(name)
    if spec is None:
        close = difflib.get_close_matches(name, REGISTRY, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise HelixError(f"unknown model {name!r}{hint}; known models: {', '.join(sorted(REGISTRY))}",
                         path=source, record="model.name")
    if not isinstance(params, dict):
        raise HelixError(f"model.params must be a table, got {type(params).__name__}", path=source,
                         record="model.params")
    fields = {f.name for f in dataclasses.fields(spec.config)}
    for key in params:
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise HelixError(f"unknown parameter {key!r} for model {name!r}{hint}; valid: {', '.join(sorted(fields))}",
                             path=source, record=f"model.params.{key}")
    check_fields(spec.config, params, "model.params", source)
    return spec.config(**params)


def build_model(name: str, params: dict[str, Any], seq_len: int | None, n_outputs: int,
                *, source: str = "config", run_dir: Path | None = None) -> SequenceModel:
    """Instantiate a registered model: x (N, L) uint8 -> (N, n_outputs).

    `run_dir`: the run the model belongs to, for models that keep files there (a tokenizer)."""
    cfg = model_config(name, params, source=source)
    cls = REGISTRY[name].cls
    try:
        if cls.keeps_run_files:
            return cls(cfg, seq_len, n_outputs, run_dir=run_dir)  # type: ignore[call-arg]
        return cls(cfg, seq_len, n_outputs)  # type: ignore[call-arg]
    except (ValueError, TypeError) as exc:
        raise HelixError(f"cannot build model {name!r}: {exc}", path=source, record="model.params") from None


def count_params(model: SequenceModel) -> int:
    return sum(p.numel() for p in model.parameters())
