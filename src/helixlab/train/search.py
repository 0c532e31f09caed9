"""Grid (or seeded random-subset) search over any training config, resumable.

Each trial is the recipe with some `key=value` overrides, trained into OUT/trials/<id> (the id is a
hash of its overrides, so a search can be re-run with a larger grid and keeps what it has). A finished
trial's record is appended to OUT/search.json; an interrupted one resumes from its checkpoint.
Trials are ranked by the run's validation metric (test metrics are reported beside it, never used to
choose). OUT/search.md (table), OUT/search.png (metric against each searched key) and OUT/best.toml
(the best trial's full config, a recipe) are rewritten after every trial.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from helixlab.config import load_config, parse_value, to_toml
from helixlab.errors import HelixError
from helixlab.paths import CONFIG, read_json, write_json, write_text
from helixlab.run.report import pyplot, save_figure
from helixlab.tasks import HIGHER_IS_BETTER
from helixlab.train.fit import fit

RECORDS = "search.json"
BASE = "base_config.json"  # the recipe with the --set values, resolved


def _split_values(text: str) -> list[str]:
    """'a,b,[1,2]' -> ['a', 'b', '[1,2]']: commas inside brackets or braces belong to the value."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch in "[{"
        depth -= ch in "]}"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return [p.strip() for p in [*parts, cur] if p.strip()]


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """['data.flank=25,50,100', 'train.lr=1e-3,3e-4'] -> {key: [values]} (values read like --set)."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key.strip() or not _split_values(values):
            raise HelixError(f"--grid expects key=value1,value2,..., got {item!r}", record="--grid")
        grid[key.strip()] = [parse_value(v) for v in _split_values(values)]
    return grid


def trials(grid: dict[str, list[Any]], budget: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """Every combination of the grid, in order; with a budget below their number, a seeded random
    subset of `budget` of them (kept in grid order)."""
    combos = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    if budget is not None and budget < len(combos):
        pick = np.sort(np.random.default_rng([seed, 31]).choice(len(combos), budget, replace=False))
        combos = [combos[i] for i in pick]
    return combos


def trial_id(params: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:10]


def _overrides(params: dict[str, Any]) -> list[str]:
    return [f"{k}={json.dumps(v)}" for k, v in params.items()]


def load_records(out: Path) -> list[dict[str, Any]]:
    path = out / RECORDS
    if not path.exists():
        return []
    records = read_json(path, "search records")
    if not isinstance(records, list) or not all(isinstance(r, dict) and "trial" in r for r in records):
        raise HelixError("search records must be a list of trials", path=str(path))
    return records


def run_search(recipe: Path | None, grid: dict[str, list[Any]], out: Path, *, overrides: list[str] | None = None,
               budget: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """Train every trial not yet recorded in `out`, then write the summary; returns all records."""
    overrides = list(overrides or [])
    if budget is not None and budget < 1:
        raise HelixError(f"--trials must be at least 1, got {budget}", record="--trials")
    todo = trials(grid, budget, seed)
    base = load_config(recipe, overrides)  # a bad recipe or override fails before anything is written
    if not (base.data.valid or base.data.holdout):
        raise HelixError("a search ranks trials on the validation split: the recipe needs data.valid or "
                         "data.holdout", path=str(recipe), record="data.valid")
    # every trial's config is read (and so checked) before anything is trained
    configs = [load_config(recipe, [*overrides, *_overrides(params)]) for params in todo]
    out.mkdir(parents=True, exist_ok=True)
    _check_base(out, base.to_dict())
    for n, (params, cfg) in enumerate(zip(todo, configs), 1):
        tid = trial_id(params)
        if tid in {r["trial"] for r in load_records(out)}:
            continue
        rd = out / "trials" / tid
        resume = (rd / CONFIG).exists()
        if rd.exists() and not resume:
            shutil.rmtree(rd)  # killed before it wrote anything worth keeping
        print(f"== trial {n}/{len(todo)} {tid}: " + " ".join(_overrides(params)), flush=True)
        res = fit(cfg, rd, resume=resume)
        record = {"trial": tid, "params": params, "monitor": res["monitor"],
                  "valid": res["splits"]["valid"][res["monitor"]], "test": res["splits"].get("test"),
                  "model_params": res["params"], "epochs": res["epochs"], "train_seconds": res["train_seconds"]}
        write_json(out / RECORDS, [*load_records(out), record], indent=1)
        write_summary(out, recipe, overrides)
    records = load_records(out)
    write_summary(out, recipe, overrides)
    return records


def _check_base(out: Path, base: dict[str, Any]) -> None:
    """A search directory belongs to one base configuration (recipe + --set): re-running it with another
    would mix trials of different settings, so it is refused."""
    path = out / BASE
    if path.exists():
        if read_json(path, "search base config") != base:
            raise HelixError("this search directory was made from another recipe or other --set values; "
                             "use a new --out", path=str(out))
        return
    write_json(path, base, indent=1)


def ranked(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Best first by the validation metric (NaN last)."""
    if not records:
        return []
    sign = -1.0 if HIGHER_IS_BETTER[records[0]["monitor"]] else 1.0
    return sorted(records, key=lambda r: (np.isnan(r["valid"]), sign * r["valid"] if not np.isnan(r["valid"]) else 0))


def write_summary(out: Path, recipe: Path | None, overrides: list[str]) -> None:
    """search.md, search.png and best.toml from the records."""
    records = ranked(load_records(out))
    if not records:
        return
    keys = list(dict.fromkeys(k for r in records for k in r["params"]))
    monitor = records[0]["monitor"]
    test_key = monitor if records[0].get("test") else None
    head = ["rank", "trial", *keys, f"valid {monitor}", *([f"test {monitor}"] if test_key else []), "params",
            "train s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, r in enumerate(records, 1):
        cells = [str(i), r["trial"], *(json.dumps(r["params"].get(k)) for k in keys), f"{r['valid']:.4f}"]
        if test_key:
            cells.append(f"{r['test'][test_key]:.4f}")
        cells += [f"{r['model_params']:,}", f"{r['train_seconds']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    best = records[0]
    best_cfg = load_config(recipe, [*overrides, *_overrides(best["params"])])  # the recipe, not the run's files
    header = (f"The best of {len(records)} trials of a helixlab search (valid {monitor} {best['valid']:.4f}).\n"
              f"Base recipe: {recipe}; --set {' '.join(overrides) or '(none)'}; "
              f"searched: {' '.join(_overrides(best['params']))}")
    write_text(out / "best.toml", to_toml(best_cfg, header))
    _plot(records, keys, monitor, out / "search.png")
    text = [f"# Search over {', '.join(keys)}", "", f"Recipe: `{recipe}`. Trials ranked by validation {monitor}; "
            "the best configuration is saved as `best.toml`.", "", *lines, "", "![metric per key](search.png)", ""]
    write_text(out / "search.md", "\n".join(text))


def _plot(records: list[dict[str, Any]], keys: list[str], monitor: str, path: Path) -> None:
    plt = pyplot()

    fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 4), squeeze=False)
    for ax, key in zip(axes[0], keys):
        values = [r["params"].get(key) for r in records]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        labels = sorted({json.dumps(v) for v in values}, key=lambda s: (len(s), s))
        xs = values if numeric else [labels.index(json.dumps(v)) for v in values]
        ax.scatter(xs, [r["valid"] for r in records])
        if numeric:  # the best trial per value, joined
            best: dict[Any, float] = {}
            for v, r in zip(values, records):
                best.setdefault(v, r["valid"])  # records are ranked: the first per value is its best
            order = sorted(best)
            ax.plot(order, [best[v] for v in order], "-", alpha=0.6)
            if len(order) > 2 and min(order) > 0 and max(order) / min(order) >= 20:
                ax.set_xscale("log")
        else:
            ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
        ax.set(xlabel=key, ylabel=f"valid {monitor}")
    fig.suptitle("Search: each trial's validation metric")
    fig.tight_layout()
    save_figure(fig, path)
