"""One progress bar for every long loop: shown on a terminal, silent in logs and captured output."""

from __future__ import annotations

from typing import Any


def progress_bar(enabled: bool = True, **kwargs: Any) -> Any:
    """A tqdm bar; `enabled=False` hides it, otherwise it shows only when stderr is a terminal."""
    from tqdm import tqdm

    return tqdm(disable=None if enabled else True, mininterval=1.0, dynamic_ncols=True, **kwargs)
