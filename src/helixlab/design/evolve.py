"""The two search methods of sequence design, one round at a time.

- `greedy_round`: in-silico evolution. Every allowed single substitution of every current design is
  scored (batched ISM), and each design takes its best one if it improves the objective without
  creating a forbidden motif; a design with no improving substitution has converged.
- `ga_round`: one generation of a genetic algorithm over a population whose members each descend from
  one start (their origin): the best tenth is kept, the rest are children of tournament-chosen parents
  (uniform crossover on the free positions, then point mutations), repaired to the edit budget and
  rejected (the parent kept) where they break the GC range or gain a forbidden motif. The best member
  ever seen per origin is that start's design.

Both are deterministic given the state (the GA's random generator travels in it), so a design
stopped between rounds and resumed gives the same designs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from helixlab.design.constraints import Constraints
from helixlab.design.objective import Ensemble, Objective

TRIES = 64  # candidates looked at per design and round before it counts as converged


@dataclass
class Search:
    """What one design run optimises, and under which constraints."""

    model: Ensemble
    objective: Objective
    constraints: Constraints
    start: np.ndarray  # (N, L) the starting sequences

    def fitness(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(objective scores, predicted values) of whole sequences."""
        values = self.model.values(X)
        return self.objective.score(values), values


def greedy_round(search: Search, X: np.ndarray, score: np.ndarray, active: np.ndarray, *,
                 progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """One round of greedy design. X (N, L) current designs, score (N,) their objective, active (N,) not
    yet converged. Returns (new designs, still active)."""
    X, active = X.copy(), active.copy()
    rows = np.flatnonzero(active)
    if not len(rows):
        return X, active
    allowed = search.constraints.allowed(X[rows], search.start[rows])
    values = search.model.substitution_values(X[rows], allowed, progress=progress)
    gain = np.where(allowed, search.objective.score(np.nan_to_num(values)), -np.inf).reshape(len(rows), -1)
    order = np.argsort(-gain, axis=1, kind="stable")[:, :TRIES]
    length = X.shape[1]
    pending = np.ones(len(rows), dtype=bool)
    for rank in range(order.shape[1]):
        idx = np.flatnonzero(pending)
        if not len(idx):
            break
        choice = order[idx, rank]
        better = gain[idx, choice] > score[rows[idx]] + 1e-9
        active[rows[idx[~better]]] = False  # no improving substitution left
        pending[idx[~better]] = False
        idx, choice = idx[better], choice[better]
        base, pos = choice // length, choice % length
        cand = X[rows[idx]].copy()
        cand[np.arange(len(idx)), pos] = base
        bad = search.constraints.creates_forbidden(X[rows[idx]], cand)
        X[rows[idx[~bad]]] = cand[~bad]
        pending[idx[~bad]] = False
    active[rows[pending]] = False  # every candidate looked at made a forbidden motif
    return X, active


@dataclass
class Population:
    members: np.ndarray  # (P, L)
    origin: np.ndarray  # (P,) index of each member's start
    score: np.ndarray  # (P,) objective


def initial_population(search: Search, size: int, rng: np.random.Generator) -> Population:
    """`size` members (at least one per start): the starts, then copies of them with one random allowed
    substitution each."""
    n = len(search.start)
    origin = np.arange(max(size, n)) % n
    members = search.start[origin].copy()
    extra = np.arange(n, len(origin))
    if len(extra):
        allowed = search.constraints.allowed(members[extra], search.start[origin[extra]])
        for k, row in enumerate(extra):
            options = np.flatnonzero(allowed[k])
            if len(options):
                pick = options[rng.integers(len(options))]
                members[row, pick % members.shape[1]] = pick // members.shape[1]
    return Population(members, origin, search.fitness(members)[0])


def ga_round(search: Search, pop: Population, rng: np.random.Generator, *, mutation_rate: float,
             crossover: float = 0.5) -> Population:
    """One generation of the genetic algorithm (see the module docstring)."""
    size, length = pop.members.shape
    n_elite = max(1, size // 10)
    elite = np.argsort(-pop.score, kind="stable")[:n_elite]
    n_child = size - n_elite
    a, b = _tournament(pop.score, n_child, rng), _tournament(pop.score, n_child, rng)
    free = search.constraints.free(length)
    origin = pop.origin[a]
    start = search.start[origin]
    children = pop.members[a].copy()
    mix = (rng.random((n_child, length)) < 0.5) & (rng.random(n_child)[:, None] < crossover) & free
    children[mix] = pop.members[b][mix]
    flips = (rng.random((n_child, length)) < mutation_rate) & free & (children < 4)
    children[flips] = (children[flips] + rng.integers(1, 4, size=int(flips.sum()))) % 4
    children[:, ~free] = start[:, ~free]
    _repair_edits(children, start, search.constraints.max_edits, rng)
    bad = ~search.constraints.satisfied(children, start) | search.constraints.creates_forbidden(pop.members[a],
                                                                                                children)
    children[bad] = pop.members[a][bad]
    score = search.fitness(children)[0]
    return Population(np.concatenate([pop.members[elite], children]), np.concatenate([pop.origin[elite], origin]),
                      np.concatenate([pop.score[elite], score]))


def _tournament(score: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n winners of tournaments of two."""
    i, j = rng.integers(len(score), size=n), rng.integers(len(score), size=n)
    return np.where(score[i] >= score[j], i, j)


def _repair_edits(children: np.ndarray, start: np.ndarray, max_edits: int | None, rng: np.random.Generator) -> None:
    """Revert random edited positions of children over the edit budget back to their start."""
    if max_edits is None:
        return
    edited = children != start
    for row in np.flatnonzero(edited.sum(1) > max_edits):
        positions = np.flatnonzero(edited[row])
        back = rng.choice(positions, size=len(positions) - max_edits, replace=False)
        children[row, back] = start[row, back]


def best_per_origin(pop: Population, best: np.ndarray, best_score: np.ndarray) -> None:
    """Update each start's best design (in place) with the population's members."""
    for k in np.argsort(-pop.score, kind="stable"):
        o = pop.origin[k]
        if pop.score[k] > best_score[o]:
            best_score[o] = pop.score[k]
            best[o] = pop.members[k]
