"""Hyper-parameter search over any training config, on Optuna, resumable and shareable.

    helixlab search RECIPE -o OUT --grid train.lr=1e-3,3e-4               # every combination (grid sampler)
    helixlab search RECIPE -o OUT --space train.lr=float:1e-4,1e-2,log \
        --space model.params.hidden=choice:[64],[128,128] --trials 30 --pruner median   # TPE by default

Each trial is the recipe with `key=value` overrides, trained into OUT/trials/<id> (the id is a hash of
its overrides). The study lives in OUT/study.db (SQLite): a search killed at any moment resumes when run
again (finished and pruned trials are kept; the interrupted one is re-run from its checkpoint once
its heartbeat is stale), and several processes, on this machine or others sharing the file system, can
run one study at once by pointing at the same OUT (or `--storage`). The base configuration (recipe +
--set) is stored in the study; another one on the same storage is refused.

Trials are ranked by the run's validation metric (the test metrics are reported beside it, never used
to choose). With `--pruner median` the training loop reports the validation metric after every epoch
and hopeless trials stop early (recorded as pruned). OUT/search.md (table), OUT/search.png (metric
against each searched key and against trials), OUT/search.json (the records) and OUT/best.toml (the
best trial's full config, a recipe) are rewritten after every trial.

`optuna-dashboard sqlite:///OUT/study.db` opens the study (`pip install optuna-dashboard`; not a
dependency of helixlab).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import json
import os
import shutil
import socket
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from helixlab.config import load_config, parse_value, to_toml
from helixlab.errors import HelixError
from helixlab.paths import CONFIG, read_json, write_json, write_text
from helixlab.plots import pyplot, save_figure
from helixlab.tasks import HIGHER_IS_BETTER, make_task
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


def parse_space(items: list[str]) -> dict[str, tuple[str, Any]]:
    """['train.lr=float:1e-4,1e-2,log', 'x=int:1,8', 'y=choice:a,b'] -> {key: (kind, spec)}."""
    space: dict[str, tuple[str, Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        kind, colon, spec = text.partition(":")
        key, kind = key.strip(), kind.strip()
        if not sep or not key or not colon or kind not in ("float", "int", "choice"):
            raise HelixError(f"--space expects KEY=float:LOW,HIGH[,log] | int:LOW,HIGH[,log] | choice:V1,V2,...; "
                             f"got {item!r}", record="--space")
        values = _split_values(spec)
        if kind == "choice":
            if not values:
                raise HelixError(f"--space {key}: choice needs at least one value", record="--space")
            space[key] = ("choice", [parse_value(v) for v in values])
            continue
        log = len(values) == 3 and values[2] == "log"
        try:
            low, high = (float(v) if kind == "float" else int(v) for v in values[:2])
        except ValueError:
            raise HelixError(f"--space {key}: {kind} bounds must be numbers, got {spec!r}", record="--space") from None
        if len(values) not in (2, 3) or (len(values) == 3 and not log) or not low < high or (log and low <= 0):
            raise HelixError(f"--space {key}: expected {kind}:LOW,HIGH[,log] with LOW < HIGH (and LOW > 0 for "
                             f"log), got {spec!r}", record="--space")
        space[key] = (kind, (low, high, log))
    return space


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


def _suggest(trial: Any, grid: dict[str, list[Any]], space: dict[str, tuple[str, Any]]) -> dict[str, Any]:
    """The trial's overrides: grid keys (JSON-encoded choices: Optuna's choices are plain values) and
    sampled keys."""
    params: dict[str, Any] = {}
    for key, values in grid.items():
        params[key] = json.loads(trial.suggest_categorical(key, [json.dumps(v) for v in values]))
    for key, (kind, spec) in space.items():
        if kind == "choice":
            params[key] = json.loads(trial.suggest_categorical(key, [json.dumps(v) for v in spec]))
        elif kind == "float":
            params[key] = trial.suggest_float(key, spec[0], spec[1], log=spec[2])
        else:
            params[key] = trial.suggest_int(key, spec[0], spec[1], log=spec[2])
    return params


def run_search(recipe: Path | None, grid: dict[str, list[Any]], out: Path, *, overrides: list[str] | None = None,
               budget: int | None = None, seed: int = 0, space: dict[str, tuple[str, Any]] | None = None,
               sampler: str | None = None, pruner: str = "none", timeout: float | None = None,
               storage: str | None = None, startup: int | None = None,
               heartbeat: tuple[int, int] = (10, 30)) -> list[dict[str, Any]]:
    """Run trials of the study in `out` until it has `budget` finished (complete or pruned) ones (default:
    the whole grid), or `timeout` seconds have passed; write the summary; return the records.
    sampler: 'grid' (default with a grid alone), 'tpe' (default otherwise) or 'random'. startup: random
    trials before TPE models the results (default: a third of the budget, 2 to 10). heartbeat:
    (interval, grace) seconds after which a trial whose process died is re-run."""
    overrides, space = list(overrides or []), dict(space or {})
    if not grid and not space:
        raise HelixError("give what to search: --grid KEY=V1,V2,... or --space KEY=KIND:...", record="--grid")
    both = sorted(set(grid) & set(space))
    if both:
        raise HelixError(f"{', '.join(both)} given both in --grid and --space", record="--space")
    sampler = sampler or ("grid" if not space else "tpe")
    if sampler not in SAMPLERS:
        raise HelixError(f"unknown sampler {sampler!r}; choose from {', '.join(SAMPLERS)}", record="--sampler")
    if sampler == "grid" and space:
        raise HelixError("the grid sampler takes --grid values only; sample --space keys with tpe or random",
                         record="--sampler")
    if pruner not in PRUNERS:
        raise HelixError(f"unknown pruner {pruner!r}; choose from {', '.join(PRUNERS)}", record="--pruner")
    if budget is not None and budget < 1:
        raise HelixError(f"--trials must be at least 1, got {budget}", record="--trials")
    if startup is not None and startup < 1:
        raise HelixError(f"--startup must be at least 1, got {startup}", record="--startup")
    if startup is None:
        startup = 10 if budget is None else max(2, min(10, budget // 3))
    n_grid = int(np.prod([len(v) for v in grid.values()])) if grid else 0
    if budget is None:
        if space and timeout is None:
            raise HelixError("a sampled space needs --trials N (or --timeout)", record="--trials")
        budget = None if space else n_grid
    base = load_config(recipe, overrides)  # a bad recipe or override fails before anything is written
    if not (base.data.valid or base.data.holdout or base.data.bed):
        raise HelixError("a search ranks trials on the validation split: the recipe needs data.valid or "
                         "data.holdout", path=str(recipe), record="data.valid")
    for key in [*grid, *space]:  # every key is checked against the recipe up front
        example = grid[key][0] if key in grid else (space[key][1][0] if space[key][0] == "choice" else space[key][1][0])
        load_config(recipe, [*overrides, *_overrides({key: example})])
    monitor = base.train.monitor or make_task(base.task, 1).default_monitor
    out.mkdir(parents=True, exist_ok=True)
    url = storage or f"sqlite:///{(out / STUDY).resolve()}"
    with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        store = _PopLockedStorage(out / "study.lock", url, heartbeat_interval=heartbeat[0],
                                  grace_period=heartbeat[1],
                                  heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3),
                                  engine_kwargs={"connect_args": {"timeout": 120}}
                                  if url.startswith("sqlite") else None)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="helixlab", storage=store, load_if_exists=True,
                                direction="maximize" if HIGHER_IS_BETTER[monitor] else "minimize",
                                sampler=_sampler(sampler, grid, seed, startup),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
                                if pruner == "median" else optuna.pruners.NopPruner())
    _check_base(study, out, base.to_dict(), {"grid": grid, "space": {k: list(v) for k, v in space.items()},
                                             "sampler": sampler})

    _recover_dead(study, out)
    if sampler == "grid" and not study.user_attrs.get("enqueued"):
        # the grid is a queue of trials in seeded order: processes sharing the study pop distinct ones
        for params in _grid_order(grid, seed):
            study.enqueue_trial({k: json.dumps(v) for k, v in params.items()})
        study.set_user_attr("enqueued", True)

    def objective(trial: Any) -> float:
        if sampler == "grid" and "fixed_params" not in trial.storage.get_trial_system_attrs(trial._trial_id):
            trial.set_user_attr("unused", True)  # the queue is empty: the rest is running elsewhere
            study.stop()
            raise optuna.TrialPruned("the grid is exhausted")
        params = _suggest(trial, grid, space)
        tid = trial_id(params)
        trial.set_user_attr("trial", tid)
        trial.set_user_attr("params", params)
        rd = out / "trials" / tid
        with _trial_lock(rd) as owner:
            if not owner or (rd / "results.json").exists():  # the same params trained by another trial
                res = _wait_for(rd)
            else:
                resume = (rd / CONFIG).exists()
                if rd.exists() and not resume:
                    shutil.rmtree(rd)  # killed before it wrote anything worth keeping
                print(f"== trial {trial.number} {tid}: " + " ".join(_overrides(params)), flush=True)

                def report(epoch: int, value: float) -> None:
                    trial.report(value, epoch)
                    if trial.should_prune():
                        raise optuna.TrialPruned(f"pruned after epoch {epoch}")

                res = fit(load_config(recipe, [*overrides, *_overrides(params)]), rd, resume=resume,
                          on_epoch=report)
        trial.set_user_attr("result", {"test": res["splits"].get("test"), "model_params": res["params"],
                                       "epochs": res["epochs"], "train_seconds": res["train_seconds"]})
        return float(res["splits"]["valid"][monitor])

    def after(study_: Any, trial: Any) -> None:
        _export(study_, out, monitor)
        write_summary(out, recipe, overrides)

    def enough(study_: Any, trial: Any) -> None:
        if budget is not None and _finished(study_) >= budget:
            study_.stop()

    if budget is None or _finished(study) < budget:
        study.optimize(objective, timeout=timeout, callbacks=[enough, after], catch=())
    _export(study, out, monitor)
    write_summary(out, recipe, overrides)
    return load_records(out)


class _PopLockedStorage(RDBStorage):
    """Optuna's RDB storage with the taking of a queued trial (WAITING -> RUNNING) made atomic between
    the processes that share OUT. On SQLite the storage's check-then-set is not: the driver starts a
    transaction only at the write, so two processes can both read the same trial as waiting and both run
    it, and the second to finish fails with "Cannot tell a COMPLETE trial" (optuna issues 4002, 4621).
    Under an exclusive lock on OUT/study.lock the second one sees the trial running and takes the next."""

    def __init__(self, lock: Path, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = lock

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Any = None) -> bool:
        if state != TrialState.RUNNING:
            return super().set_trial_state_values(trial_id, state, values)
        with open(self._lock, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
            return super().set_trial_state_values(trial_id, state, values)


SAMPLERS = ("grid", "tpe", "random")
PRUNERS = ("none", "median")
STUDY = "study.db"


def _sampler(name: str, grid: dict[str, list[Any]], seed: int, startup: int) -> Any:
    if name == "grid":
        return optuna.samplers.GridSampler({k: [json.dumps(v) for v in vals] for k, vals in grid.items()}, seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    # Optuna's default of 10 random start-up trials would make a 10-trial TPE study a random search
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)


def _finished(study: Any) -> int:
    """Trials that count toward the budget: complete or pruned (not the placeholders of an empty grid)."""
    return sum(not t.user_attrs.get("unused")
               for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def _grid_order(grid: dict[str, list[Any]], seed: int) -> list[dict[str, Any]]:
    """Every combination of the grid, in a seeded random order (so that --trials N is a random subset)."""
    combos = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    order = np.random.default_rng([seed, 31]).permutation(len(combos))
    return [combos[i] for i in order]


@contextlib.contextmanager
def _trial_lock(rd: Path) -> Iterator[bool]:
    """Whether this process owns the trial directory for the block (a lock file with its host and pid; a
    lock left by a process of this host that has died is taken over)."""
    rd.parent.mkdir(parents=True, exist_ok=True)
    lock = rd.with_name(rd.name + ".lock")
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            if not _lock_alive(lock):
                lock.unlink(missing_ok=True)  # its process is gone
                continue
            yield False
            return
        os.write(fd, f"{socket.gethostname()} {os.getpid()}".encode())
        os.close(fd)
        try:
            yield True
        finally:
            lock.unlink(missing_ok=True)
        return
    yield False


def _recover_dead(study: Any, out: Path) -> None:
    """Re-queue the running trials whose process on this machine has died (kill -9): their lock names a
    pid here that is gone. Trials of other machines are left to the heartbeat."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        lock = out / "trials" / f"{t.user_attrs.get('trial')}.lock"
        if "trial" in t.user_attrs and lock.exists() and not _lock_alive(lock):
            study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
            lock.unlink(missing_ok=True)


def _lock_alive(lock: Path) -> bool:
    """Whether the process named in a trial lock ("host pid") may still run: on another host, or alive here."""
    try:
        host, pid = lock.read_text().split()
    except (ValueError, FileNotFoundError):
        return False
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


def _wait_for(rd: Path) -> dict[str, Any]:
    """The results of a trial directory another process is training (or has trained)."""
    while not (rd / "results.json").exists():
        if not rd.with_name(rd.name + ".lock").exists() and not (rd / "results.json").exists():
            raise HelixError("a trial with the same settings stopped without results", path=str(rd))
        time.sleep(2)
    return read_json(rd / "results.json", "trial results")


def _export(study: Any, out: Path, monitor: str) -> None:
    """OUT/search.json: one record per finished trial (complete or pruned), in trial order."""
    records = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        if "params" not in t.user_attrs or t.user_attrs.get("unused"):
            continue
        pruned = t.state == TrialState.PRUNED
        value = t.value if not pruned else (t.intermediate_values[max(t.intermediate_values)]
                                            if t.intermediate_values else float("nan"))
        result = t.user_attrs.get("result", {})
        records.append({"trial": t.user_attrs["trial"], "number": t.number, "params": t.user_attrs["params"],
                        "monitor": monitor, "valid": value, "state": "pruned" if pruned else "complete",
                        "test": result.get("test"), "model_params": result.get("model_params"),
                        "epochs": result.get("epochs", len(t.intermediate_values)),
                        "train_seconds": result.get("train_seconds")})
    write_json(out / RECORDS, records, indent=1)


def _check_base(study: Any, out: Path, base: dict[str, Any], search: dict[str, Any]) -> None:
    """A study belongs to one base configuration (recipe + --set) and one search space: another one on
    the same storage would mix trials of different settings, so it is refused."""
    known = study.user_attrs.get("base")
    if known is None:
        study.set_user_attr("base", base)
        study.set_user_attr("search", json.loads(json.dumps(search)))
        write_json(out / BASE, base, indent=1)
        return
    if known != base:
        raise HelixError("this search's study was made from another recipe or other --set values; use a new "
                         "--out (or --storage)", path=str(out))
    if study.user_attrs.get("search") != json.loads(json.dumps(search)):
        raise HelixError("this search's study searches other keys, values or another sampler; use a new --out",
                         path=str(out))


def ranked(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Complete trials best first by the validation metric (NaN last), then the pruned ones."""
    if not records:
        return []
    sign = -1.0 if HIGHER_IS_BETTER[records[0]["monitor"]] else 1.0
    return sorted(records, key=lambda r: (r.get("state") == "pruned", np.isnan(r["valid"]),
                                          sign * r["valid"] if not np.isnan(r["valid"]) else 0))


def write_summary(out: Path, recipe: Path | None, overrides: list[str]) -> None:
    """search.md, search.png and best.toml from the records."""
    records = ranked(load_records(out))
    if not records:
        return
    keys = list(dict.fromkeys(k for r in records for k in r["params"]))
    monitor = records[0]["monitor"]
    test_key = monitor if records[0].get("test") else None
    head = ["rank", "trial", *keys, f"valid {monitor}", *([f"test {monitor}"] if test_key else []), "params",
            "train s", "state"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, r in enumerate(records, 1):
        cells = [str(i), r["trial"], *(json.dumps(r["params"].get(k)) for k in keys), f"{r['valid']:.4f}"]
        if test_key:
            cells.append(f"{r['test'][test_key]:.4f}" if r.get("test") else "—")
        cells += [f"{r['model_params']:,}" if r.get("model_params") else "—",
                  f"{r['train_seconds']:.0f}" if r.get("train_seconds") is not None else "—",
                  r.get("state", "complete")]
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


def _plot_history(ax: Any, records: list[dict[str, Any]], monitor: str) -> None:
    """Each trial's validation metric in trial order, pruned ones hollow, and the best so far."""
    done = sorted((r for r in records if "number" in r), key=lambda r: r["number"])
    if not done:
        return
    higher = HIGHER_IS_BETTER[monitor]
    best, curve = None, []
    for r in done:
        if r.get("state") != "pruned" and not np.isnan(r["valid"]):
            best = r["valid"] if best is None else (max if higher else min)(best, r["valid"])
        curve.append(np.nan if best is None else best)
    xs = [r["number"] for r in done]
    full = [r.get("state") != "pruned" for r in done]
    ax.scatter([x for x, f in zip(xs, full) if f], [r["valid"] for r, f in zip(done, full) if f], label="trial")
    if not all(full):
        ax.scatter([x for x, f in zip(xs, full) if not f], [r["valid"] for r, f in zip(done, full) if not f],
                   facecolors="none", edgecolors="C0", label="pruned (last epoch)")
    ax.step(xs, curve, where="post", color="C1", label="best so far")
    ax.set(xlabel="trial", ylabel=f"valid {monitor}")
    ax.legend(fontsize=7)


def _plot(records: list[dict[str, Any]], keys: list[str], monitor: str, path: Path) -> None:
    plt = pyplot()

    fig, axes = plt.subplots(1, len(keys) + 1, figsize=(4.5 * (len(keys) + 1), 4), squeeze=False)
    _plot_history(axes[0][-1], records, monitor)
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
