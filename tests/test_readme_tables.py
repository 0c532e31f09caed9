"""The README's marked results tables are the benchmark results files' tables (benchmarks/readme_tables.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from readme_tables import README, StaleBlock, render, tables  # noqa: E402


def test_the_readme_results_tables_are_up_to_date():
    text = README.read_text(encoding="utf-8")
    assert "<!-- results: promoter.md table 1 -->" in text
    assert render(text) == text, "run .venv/bin/python benchmarks/readme_tables.py after a benchmark"


def test_a_block_is_refilled_from_its_file_and_a_bad_block_is_named(tmp_path):
    (tmp_path / "x.md").write_text("# X\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\ntext\n\n| c |\n|---|\n| 3 |\n")
    assert tables((tmp_path / "x.md").read_text())[1] == "| c |\n|---|\n| 3 |\n"
    stale = "intro\n<!-- results: x.md table 2 -->\n| c |\n|---|\n| old |\n<!-- /results -->\nend\n"
    fresh = "intro\n<!-- results: x.md table 2 -->\n| c |\n|---|\n| 3 |\n<!-- /results -->\nend\n"
    assert render(stale, tmp_path) == fresh
    with pytest.raises(StaleBlock, match="x.md table 3"):
        render(stale.replace("table 2", "table 3"), tmp_path)
    with pytest.raises(StaleBlock, match="y.md"):
        render(stale.replace("x.md", "y.md"), tmp_path)
