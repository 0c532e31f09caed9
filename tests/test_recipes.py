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
    params = dict(cfg.model.params)
    # what a run records from the runs such a recipe reads (prepare_run): fresh stand-ins here
    if cfg.model.name == "fused" and params.get("count_hidden"):
        params["counter"] = {"name": "context_count", "params": {"k": 16}}
    if cfg.model.name == "repeat_mixture":
        part = {"name": "mlp", "params": {"hidden": [8]}, "flank": cfg.data.flank}
        params["parts"] = [{**part, "target": "repeat"}, part, part]
    model = build_model(cfg.model.name, params, seq_len, n_outputs)
    assert sum(p.numel() for p in [*model.parameters(), *model.buffers()]) > 0  # counting models: buffers
