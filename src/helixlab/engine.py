"""`helixlab.engine.fit`, the path documented before the package was grouped by capability; the
training code lives in `helixlab.train`."""

from __future__ import annotations

from helixlab.train.fit import fit

__all__ = ["fit"]
