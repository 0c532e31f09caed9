"""Training: the loop, `fit` (one dispatcher, two-stage included), devices and DDP, resumable
checkpoints, pretrained starts and hyper-parameter search."""

from __future__ import annotations

from helixlab.train.fit import fit

__all__ = ["fit"]
