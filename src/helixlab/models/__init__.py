"""Model families behind one contract (`helixlab.models.base`), built by name from `REGISTRY`.

One file per family; each registers its names. Importing this package imports them all.
"""

from __future__ import annotations

from helixlab.models import bert, cnn, context, fused, kmer, legnet, mixture, mlp, rnn  # noqa: F401  (each registers its names)
from helixlab.models.base import SequenceModel
from helixlab.models.registry import REGISTRY, ModelSpec, build_model, count_params, model_config, register

__all__ = ["REGISTRY", "ModelSpec", "SequenceModel", "build_model", "count_params", "model_config", "register"]
