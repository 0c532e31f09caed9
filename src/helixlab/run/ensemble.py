"""`helixlab ensemble`: several finished runs of one task as one model that averages their predictions.

The ensemble directory holds `ensemble.json` (the member runs, as paths relative to it), `results.json`
(the ensemble's metrics on the members' own valid and test splits, when they share them, beside each
member's), `MODEL_CARD.md` and `report.md`. It is built under a temporary name and renamed when complete,
so a killed build leaves no directory that looks finished. Every command that takes a run directory
(`evaluate`, `predict`, `score-variants`, `dream-score`, `interpret attributions --method ism`) and
`helixlab.load` take an ensemble directory alike (`helixlab.run.loaded.load_run`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from helixlab.data.splits import open_split
from helixlab.errors import HelixError
from helixlab.paths import ENSEMBLE, REPORT, RESULTS, read_json_object, write_json, write_text
from helixlab.run.card import write_ensemble_card
from helixlab.run.loaded import load_ensemble
from helixlab.run.records import environment, read_info
from helixlab.run.report import format_metric
from helixlab.tasks import add_threshold_metrics, evaluate_shard


def _split_key(meta: dict[str, Any]) -> tuple[Any, ...]:
    """What makes two members' copies of a split the same data (checksums, row filter, sample)."""
    return (tuple(s.get("sha256") for s in meta.get("sources", [])), meta.get("where"), meta.get("regions"),
            meta.get("records"), meta.get("subset"))


def shared_splits(infos: list[dict[str, Any]]) -> list[str]:
    """The evaluation splits (valid, test) every member (its run.json) was scored on with the same data."""
    out = []
    for split in ("valid", "test"):
        metas = [info.get("data", {}).get(split) for info in infos]
        if all(m is not None for m in metas) and len({repr(_split_key(m)) for m in metas}) == 1:  # type: ignore[arg-type]
            out.append(split)
    return out


def build_ensemble(members: list[str | os.PathLike[str]], out: str | os.PathLike[str], *, device: str = "cpu",
                   precision: str = "auto", progress: bool = True) -> dict[str, Any]:
    """Check the members (finished, of one task, labels, length and input transforms), score the ensemble on
    their shared valid/test splits, and write the ensemble directory `out` (never over an existing one)."""
    target = Path(out)
    if target.exists():
        raise HelixError("ensemble directory already exists; refusing to overwrite it", path=str(target))
    if len(members) < 2:
        raise HelixError("an ensemble needs at least two member runs", record="RUN_DIR")
    paths = [Path(m).resolve() for m in members]
    if len(set(paths)) < len(paths):
        raise HelixError("a run is given twice as an ensemble member", record="RUN_DIR")
    ens = load_ensemble(paths, device=device)
    member_results = [read_json_object(p / RESULTS, "run results") for p in paths]
    first = ens.config
    results: dict[str, Any] = {"model": "ensemble", "members": [str(p) for p in paths],
                               "member_models": [r["model"] for r in member_results], "params": ens.info["params"],
                               "splits": {}, "member_splits": [r.get("splits", {}) for r in member_results]}
    accumulators = {}
    for split in shared_splits([read_info(p) for p in paths]):
        data = open_split(first.data, paths[0], split, require_labels=True, seed=first.train.seed)
        if data is None:
            continue
        metrics, acc = evaluate_shard(ens.model, data, ens.task, batch_size=first.train.eval_batch_size,
                                      device=device, rc_average=first.train.rc_average, precision=precision,
                                      progress=progress)
        results["splits"][split], accumulators[split] = metrics, acc
    add_threshold_metrics(results, accumulators)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        write_json(tmp / ENSEMBLE, {"members": [os.path.relpath(p, target.resolve()) for p in paths],
                                    "task": first.task.kind, "labels": ens.info["labels"],
                                    "seq_len": ens.info["seq_len"], "environment": environment()})
        write_json(tmp / RESULTS, results)
        write_ensemble_card(tmp, target, first, ens.info, results, member_results)
        write_text(tmp / REPORT, ensemble_report(target, results))
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # as a plain mkdir would make it (mkdtemp makes it private)
        os.replace(tmp, target)  # the finished directory appears at once
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return results


def ensemble_report(target: Path, results: dict[str, Any]) -> str:
    """report.md: the ensemble's metrics beside each member's, split by split."""
    lines = [f"# Ensemble {target.name}", "", f"{len(results['members'])} members, {results['params']:,} "
             "parameters in all; predictions are the mean of the members' probabilities or values.", ""]
    for split, metrics in results["splits"].items():
        keys = list(metrics)
        lines += [f"## {split}", "", "| model | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys),
                  "| **ensemble** | " + " | ".join(format_metric(metrics[k]) for k in keys) + " |"]
        for path, splits in zip(results["members"], results["member_splits"]):
            row = splits.get(split, {})
            lines.append(f"| {Path(path).name} | " + " | ".join(format_metric(row[k]) if k in row else "—"
                                                                   for k in keys) + " |")
        lines.append("")
    if not results["splits"]:
        lines.append("_The members were not scored on the same valid/test data: no ensemble metrics here; use "
                     "`helixlab evaluate ENSEMBLE_DIR DATA`._")
    return "\n".join(lines) + "\n"
