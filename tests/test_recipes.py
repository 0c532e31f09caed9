"""Every recipe in configs/ parses and builds its model (no data needed)."""

from pathlib import Path

import pytest

from helixlab.config import load_config
from helixlab.models import build_model

RECIPES = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.toml"))


@pytest.mark.parametrize("recipe", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_parses_and_builds(recipe):
    cfg = load_config(recipe)
    n_outputs = {"mlm": 0, "context": 4}.get(cfg.task.kind, 1)
    seq_len = 300 if "prom" in str(cfg.data.train) or cfg.data.window else 110
    if cfg.data.flank:
        seq_len = 2 * cfg.data.flank + 1
    model = build_model(cfg.model.name, cfg.model.params, seq_len, n_outputs)
    assert sum(p.numel() for p in model.parameters()) > 0
