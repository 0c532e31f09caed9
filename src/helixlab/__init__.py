"""helixlab: train, evaluate, interpret and apply deep models of DNA sequence function.

    import helixlab
    model = helixlab.load("runs/my_run")      # see helixlab.apply.api
    model.predict(["ACGT..."]); model.embed("sequences.fa")
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def load(run_dir: Any, *, device: str = "auto", checkpoint: str = "best", precision: str = "auto") -> Any:
    """A trained run (or ensemble) as a `helixlab.apply.api.Model` (predict, embed). Imported on first use
    so that `import helixlab` stays light."""
    from helixlab.apply.api import load as _load

    return _load(run_dir, device=device, checkpoint=checkpoint, precision=precision)
