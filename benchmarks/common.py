"""Shared plumbing for benchmark scripts: resumable result files, environment, markdown tables."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def load_records(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text()) if path.exists() else []


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Add one finished run's record; the file is rewritten atomically so a kill never corrupts it."""
    records = load_records(path)
    records.append(record)
    from helixlab.paths import write_json

    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, records, indent=1)


def mean_sd(values: Sequence[float]) -> str:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def summary_table(records: list[dict[str, Any]], group: Sequence[str], columns: Sequence[str],
                  fmt: dict[str, Callable[[list[float]], str]] | None = None) -> str:
    """Markdown table: one row per group (e.g. dataset, model), mean ± sd over seeds per column."""
    fmt = fmt or {}
    keys: list[tuple[Any, ...]] = []
    for r in records:
        k = tuple(r[g] for g in group)
        if k not in keys:
            keys.append(k)
    lines = ["| " + " | ".join([*group, "seeds", *columns]) + " |", "|" + "---|" * (len(group) + 1 + len(columns))]
    for k in keys:
        rows = [r for r in records if tuple(r[g] for g in group) == k]
        cells = [fmt.get(c, mean_sd)([r.get(c) for r in rows]) for c in columns]  # type: ignore[misc]
        lines.append("| " + " | ".join([*map(str, k), str(len(rows)), *cells]) + " |")
    return "\n".join(lines)


def machine_line(env: dict[str, Any]) -> str:
    """The provenance line of a summary, from a record's environment fields."""
    threads = f" ({env['threads']} torch threads)" if env.get("threads") else ""
    cpu = f" ({env['cpu_model']})" if env.get("cpu_model") else ""
    gpu = f"GPU {env['gpu']}" if env.get("gpu") else "no GPU"
    return (f"Machine: {env['machine']}{cpu}, {env['cpus']} CPUs{threads}, {gpu}; torch {env['torch']}; "
            f"commit {env['commit']}.")


def provenance(env: dict[str, Any]) -> dict[str, Any]:
    """The fields every benchmark record carries about where and how it was measured (`environment()`)."""
    return {"commit": env["commit"], "torch": env["torch"], "machine": env["processor"],
            "cpu_model": env.get("cpu_model"), "cpus": env["cpus"], "threads": env["torch_threads"],
            "command": env["command"]}


def write_report(path: Path, title: str, intro: str, env: dict[str, Any], body: Sequence[str]) -> str:
    """Write a benchmark's markdown summary: title, what was measured, the machine line, then `body`."""
    text = "\n".join([f"# {title}", "", intro, "", machine_line(env), "", *body])
    path.write_text(text)
    return text


def averages(*columns: str) -> dict[str, Callable[[list[float]], str]]:
    """summary_table formats: the mean, rounded, for these columns (params: the first value)."""
    fmt: dict[str, Callable[[list[float]], str]] = {c: (lambda v: f"{sum(v) / len(v):.0f}") for c in columns}
    fmt["params"] = lambda v: f"{int(v[0]):,}"
    fmt["epochs"] = lambda v: f"{sum(v) / len(v):.1f}"
    return fmt


CLASSIFICATION = ("accuracy", "precision", "recall", "f1", "mcc", "auroc", "auprc")


def run_fields(res: dict[str, Any], env: dict[str, Any]) -> dict[str, Any]:
    """The record fields every classification benchmark run shares: size, budget, test metrics, provenance."""
    test = res["splits"]["test"]
    return {"params": res["params"], "epochs": res["epochs"], "best_epoch": res["best_epoch"],
            "train_seconds": res["train_seconds"], "train_seq_per_s": res["train_seq_per_s"],
            **{k: test[k] for k in CLASSIFICATION}, "valid_accuracy": res["splits"]["valid"]["accuracy"],
            "mcc_at_threshold": test.get("mcc_at_threshold"), "threshold": res.get("threshold"),
            "budget_steps": res.get("budget_steps"), "budget_probe_steps": res.get("budget_probe_steps"),
            "train_precision": res.get("precision"),
            **provenance(env)}


def data_overrides(paths: Mapping[str, Any]) -> list[str]:
    """`data.<split>="<path>"` overrides (TOML strings) that point a recipe at these files or prepared directories."""
    return [f"data.{split}={json.dumps(str(path))}" for split, path in paths.items()]


def fit_run(recipe: Path, overrides: list[str], run_dir: Path, label: str,
            init_from: str | None = None) -> dict[str, Any]:
    """Train one benchmark run from a recipe and overrides, resuming it if it was interrupted; its results."""
    from helixlab.config import load_config
    from helixlab.train import fit

    resume = (run_dir / "config.json").exists()
    print(f"== {label} ({'resume' if resume else 'start'})", flush=True)
    return fit(load_config(recipe, overrides), run_dir, resume=resume, init_from=init_from)


def fit_and_record(recipe: Path, overrides: list[str], run_dir: Path, out_json: Path, label: str,
                   fields: dict[str, Any], env: dict[str, Any], init_from: str | None = None) -> dict[str, Any]:
    """Train one benchmark run (`fit_run`) and append its record to `out_json`.

    `fields`: the record's own keys (data set, model, seed, ...), put before the shared ones."""
    res = fit_run(recipe, overrides, run_dir, label, init_from)
    record = {**fields, "arch": res["model"], **run_fields(res, env)}
    append_record(out_json, record)
    print({k: record[k] for k in ("accuracy", "mcc", "auroc", "train_seconds")}, flush=True)
    return record


def run_script(main: Callable[[], None], write_summary: Callable[[], None]) -> None:
    """A benchmark's entry point: `--summary` only rewrites the markdown from the JSON records."""
    import sys

    if sys.argv[1:] == ["--summary"]:
        write_summary()
    else:
        main()
