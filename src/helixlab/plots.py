"""The one way to make a figure file: matplotlib on the file-only Agg backend, PNGs written whole."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helixlab.paths import atomic_path


def pyplot() -> Any:
    """matplotlib.pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path) -> Path:
    """Write a figure as PNG (whole or not at all) and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    pyplot().close(fig)
    return path
