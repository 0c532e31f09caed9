"""`helixlab design`: sequences designed toward a goal by trained runs, checked by independent ones.

    from helixlab.design import design
    result = design(["runs/dream_legnet"], "designs/", goal="max", random=100, length=110,
                    fixed="0-17,97-110", rounds=10, check=["runs/dream_legnet_seed1"])

Writes to the output directory: `designs.fa` (one design per start), `trajectory.csv` (per round and
start: objective, prediction by the design model and by each check model, edits, GC), `design.png`
(the predictions over rounds), `design.md` (the report). The state after each round is kept in
`.state/`, so a design stopped at any moment (even kill -9) resumes with the same designs.
"""

from __future__ import annotations

import csv
import io
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from helixlab.data.shards import read_fixed_length
from helixlab.design.constraints import Constraints, parse_ranges
from helixlab.design.evolve import Population, Search, best_per_origin, ga_round, greedy_round, initial_population
from helixlab.design.objective import Ensemble, Objective, Predictor
from helixlab.errors import HelixError
from helixlab.paths import read_json_object, write_json, write_npz, write_text
from helixlab.progress import progress_bar
from helixlab.plots import pyplot, save_figure
from helixlab.seq.alphabet import decode, encode
from helixlab.seq.motifs import gc_fraction

METHODS = ("greedy", "ga")
STATE = ".state"


@dataclass
class DesignResult:
    out: Path
    designs: np.ndarray  # (N, L) codes
    ids: list[str]
    values: np.ndarray  # (N,) design model's prediction
    checks: dict[str, np.ndarray]  # check run name -> (N,) prediction
    files: list[Path]


def random_starts(n: int, length: int, seed: int, template: str | None = None) -> tuple[np.ndarray, list[str]]:
    """n seeded random sequences of `length` (uniform bases); with a template, its A/C/G/T letters are
    kept and its N positions drawn at random."""
    if n < 1 or length < 1:
        raise HelixError(f"--random needs a positive number of sequences and --length ({n}, {length})",
                         record="--random")
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 4, size=(n, length)).astype(np.uint8)
    if template is not None:
        codes = encode(template.upper())
        if len(codes) != length:
            raise HelixError(f"the template has {len(codes)} bases, not --length {length}", record="--template")
        keep = codes < 4
        X[:, keep] = codes[keep]
    return X, [f"random{i}" for i in range(n)]


def design(runs: list[str | os.PathLike[str]], out: str | os.PathLike[str], *, goal: str = "max",
           inputs: str | os.PathLike[str] | None = None, random: int | None = None, length: int | None = None,
           template: str | None = None, method: str = "greedy", rounds: int = 10, population: int = 0,
           mutation_rate: float = 0.0, fixed: str | None = None, forbid: list[str] | None = None,
           gc: tuple[float, float] | None = None, max_edits: int | None = None, output: int = 0,
           check: list[str | os.PathLike[str]] | None = None, seed: int = 0, device: str = "auto",
           progress: bool = True) -> DesignResult:
    """Design sequences toward `goal` ('max', 'min' or 'target:VALUE' of the runs' mean prediction of
    `output`) from `inputs` (FASTA or table) or `random` seeded sequences of `length`; see the module
    docstring for what is written."""
    if method not in METHODS:
        raise HelixError(f"unknown design method {method!r}; choose from {', '.join(METHODS)}", record="--method")
    if rounds < 1:
        raise HelixError(f"rounds must be at least 1, not {rounds}", record="--rounds")
    if (inputs is None) == (random is None):
        raise HelixError("give the starting sequences as a file (INPUT) or --random N --length L, not both",
                         record="--random")
    objective = Objective(goal)
    constraints = Constraints(fixed=parse_ranges(fixed), forbid=list(forbid or []), gc=gc, max_edits=max_edits)
    if random is not None:
        if length is None:
            raise HelixError("--random needs --length", record="--length")
        start, ids = random_starts(random, length, seed, template)
    else:
        start, ids = read_fixed_length(inputs, "sequences to design")  # type: ignore[arg-type]
    constraints.check(start.shape[1])
    model = Ensemble([Predictor(r, output=output, device=device) for r in runs])
    checkers = [Predictor(r, output=output, device=device) for r in check or []]
    objective.check_range(*model.value_range())
    for p in model.predictors + checkers:
        p.check_length(start.shape[1])
    settings = {"runs": [str(r) for r in runs], "check": [str(r) for r in check or []], "goal": goal,
                "method": method, "population": population, "mutation_rate": mutation_rate, "fixed": fixed,
                "forbid": list(forbid or []), "gc": list(gc) if gc else None, "max_edits": max_edits,
                "output": output, "seed": seed, "starts": _digest(start)}
    search = Search(model, objective, constraints, start)
    out = Path(out)
    state = _State(out / STATE, settings, rounds)
    run_rounds(search, state, ids, checkers, method=method, population=population, mutation_rate=mutation_rate,
               seed=seed, progress=progress)
    return _finish(out, search, state, ids, checkers)


class _State:
    """The designs after the last finished round, saved whole after each round."""

    def __init__(self, root: Path, settings: dict[str, Any], rounds: int) -> None:
        self.root, self.settings, self.rounds = root, settings, rounds
        self.info: dict[str, Any] = {"settings": settings, "round": 0, "rows": [], "seconds": [], "rng": None}
        self.arrays: dict[str, np.ndarray] = {}
        if (root / "state.json").is_file():
            info = read_json_object(root / "state.json", "design state")
            if info.get("settings") != settings:
                old = info.get("settings") or {}
                diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
                raise HelixError(f"this directory holds a different design (differs in: {', '.join(diff)}); use "
                                 "another output directory or remove it", path=str(root.parent))
            arrays = root / str(info.get("arrays", ""))
            if not arrays.is_file():
                raise HelixError("the design state names arrays that are missing; remove the directory to start "
                                 "again", path=str(root / "state.json"), record="arrays")
            with np.load(arrays) as z:
                self.arrays = {k: z[k] for k in z.files}
            self.info = info

    @property
    def round(self) -> int:
        return int(self.info["round"])

    def save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        # the arrays of each round go to their own file, and the JSON, written last, names it: a kill between
        # the two writes leaves the previous round's JSON and arrays together
        name = f"state-{self.round:05d}.npz"
        write_npz(self.root / name, **self.arrays)
        self.info["arrays"] = name
        write_json(self.root / "state.json", self.info)
        for old in self.root.glob("state-*.npz"):
            if old.name != name:
                old.unlink()


def run_rounds(search: Search, state: _State, ids: list[str], checkers: list[Predictor], *, method: str,
               population: int, mutation_rate: float, seed: int, progress: bool) -> None:
    """Run the rounds that `state` has not finished, saving it after each."""
    n, length = search.start.shape
    rng = np.random.default_rng(seed)
    if not state.arrays:  # round 0: the starts
        score, values = search.fitness(search.start)
        state.arrays = {"best": search.start.copy(), "best_score": score, "active": np.ones(n, dtype=bool)}
        if method == "ga":
            size = population or max(2 * n, 64)
            pop = initial_population(search, size, rng)
            state.arrays.update(members=pop.members, origin=pop.origin, score=pop.score)
            best_per_origin(pop, state.arrays["best"], state.arrays["best_score"])
        state.info["rows"] = _rows(0, search, state.arrays["best"], ids, checkers,
                                   (score, values) if method == "greedy" else None)
        state.info["rng"] = rng.bit_generator.state
        state.save()
    rng.bit_generator.state = state.info["rng"]
    free = int(search.constraints.free(length).sum())
    rate = mutation_rate or 1.0 / free
    bar = progress_bar(progress, total=state.rounds, initial=min(state.round, state.rounds), desc=f"design ({method})",
                       unit=" rounds")
    while state.round < state.rounds:
        t0 = time.perf_counter()
        a = state.arrays
        fitted = None
        if method == "greedy":
            best, active = greedy_round(search, a["best"], a["best_score"], a["active"], progress=progress)
            a["best"], a["active"] = best, active
            fitted = search.fitness(best)
            a["best_score"] = fitted[0]
        else:
            pop = ga_round(search, Population(a["members"], a["origin"], a["score"]), rng, mutation_rate=rate)
            a.update(members=pop.members, origin=pop.origin, score=pop.score)
            best_per_origin(pop, a["best"], a["best_score"])
        state.info["round"] = state.round + 1
        state.info["seconds"].append(round(time.perf_counter() - t0, 3))
        state.info["rows"] += _rows(state.round, search, a["best"], ids, checkers, fitted)
        state.info["rng"] = rng.bit_generator.state
        state.save()
        bar.update(1)
        if method == "greedy" and not a["active"].any():
            state.info["round"] = state.rounds  # every design has converged
            state.save()
    bar.close()


def _rows(round_: int, search: Search, X: np.ndarray, ids: list[str], checkers: list[Predictor],
          fitted: tuple[np.ndarray, np.ndarray] | None = None) -> list[dict[str, Any]]:
    """The trajectory rows of one round; `fitted`: the designs' (scores, values) when already predicted."""
    score, values = fitted if fitted is not None else search.fitness(X)
    checks = {p.name: p.values(X) for p in checkers}
    edits = (X != search.start).sum(1)
    gc = gc_fraction(X)
    return [{"round": round_, "id": ids[i], "objective": float(score[i]), "prediction": float(values[i]),
             **{f"check_{name}": float(v[i]) for name, v in checks.items()}, "edits": int(edits[i]),
             "gc": round(float(gc[i]), 4)} for i in range(len(X))]


def _digest(X: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(X).tobytes() + str(X.shape).encode()).hexdigest()[:16]


def _finish(out: Path, search: Search, state: _State, ids: list[str], checkers: list[Predictor]) -> DesignResult:
    designs = state.arrays["best"]
    rows = state.info["rows"]
    last = [r for r in rows if r["round"] == max(r["round"] for r in rows)]
    values = np.array([r["prediction"] for r in last])
    checks = {p.name: np.array([r[f"check_{p.name}"] for r in last]) for p in checkers}
    fasta = "".join(f">{ids[i]}_design prediction={values[i]:.4g} edits={last[i]['edits']}\n{decode(designs[i])}\n"
                    for i in range(len(designs)))
    write_text(out / "designs.fa", fasta)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text(out / "trajectory.csv", buf.getvalue())
    plot = _plot(out / "design.png", rows, search.model.name, [p.name for p in checkers], search.objective)
    report = _report(out, search, state, rows, checkers)
    return DesignResult(out, designs, ids, values, checks, [out / "designs.fa", out / "trajectory.csv", plot, report])


def _by_round(rows: list[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rounds = sorted({r["round"] for r in rows})
    vals = [np.array([r[key] for r in rows if r["round"] == k]) for k in rounds]
    return np.array(rounds), np.array([v.mean() for v in vals]), np.array([v.std() for v in vals])


def _plot(path: Path, rows: list[dict[str, Any]], model: str, checks: list[str], objective: Objective) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for k, (key, label) in enumerate([("prediction", f"design model ({model})"),
                                      *[(f"check_{c}", f"check: {c}") for c in checks]]):
        x, mean, sd = _by_round(rows, key)
        ax.plot(x, mean, marker="o", ms=3, color=f"C{k}", label=label)
        ax.fill_between(x, mean - sd, mean + sd, color=f"C{k}", alpha=0.15)
    if objective.target is not None:
        ax.axhline(objective.target, ls="--", color="grey", lw=0.8, label="target")
    ax.set(xlabel="round", ylabel="mean prediction (± sd over designs)",
           title=f"design toward {objective.goal}: {len({r['id'] for r in rows})} sequences")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return save_figure(fig, path)


def _report(out: Path, search: Search, state: _State, rows: list[dict[str, Any]], checkers: list[Predictor]) -> Path:
    s = state.settings
    first = [r for r in rows if r["round"] == 0]
    final_round = max(r["round"] for r in rows)
    last = [r for r in rows if r["round"] == final_round]
    cols = ["prediction", *[f"check_{p.name}" for p in checkers]]
    names = [f"design model ({search.model.name})", *[f"check: {p.name}" for p in checkers]]
    lines = [f"# Sequence design: {s['goal']} ({s['method']})", "",
             f"- design model: {', '.join(s['runs'])} (mean prediction of output {s['output']})",
             f"- check models: {', '.join(s['check']) or 'none'}",
             f"- {len(first)} starting sequences of {search.start.shape[1]} bp; {final_round} rounds run of "
             f"{state.rounds}; seed {s['seed']}",
             f"- constraints: {'; '.join(search.constraints.describe())}",
             f"- seconds per round: mean {np.mean(state.info['seconds'] or [0]):.2f} "
             f"({sum(state.info['seconds']):.1f} s in all)", "",
             "| model | starts: mean | designs: mean | designs: max |", "|---|---|---|---|"]
    for col, name in zip(cols, names):
        a, b = np.array([r[col] for r in first]), np.array([r[col] for r in last])
        lines.append(f"| {name} | {a.mean():.4g} | {b.mean():.4g} | {b.max():.4g} |")
    edits = np.array([r["edits"] for r in last])
    lines += ["", f"Edits per design: mean {edits.mean():.1f}, max {edits.max()}. A design the check models do not "
              "rate near the design model's prediction may fool the design model only.", "",
              "Files: `designs.fa`, `trajectory.csv`, `design.png`", "", "![predictions over rounds](design.png)", ""]
    path = out / "design.md"
    write_text(path, "\n".join(lines))
    return path
