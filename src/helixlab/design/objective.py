"""What a design optimises: one or more trained runs' prediction for sequences as written, and a goal.

    predictor = Predictor("runs/dream_legnet")          # a run or an ensemble directory
    predictor.values(X)                                  # (N,) probability (binary) or value (regression)
    predictor.substitution_values(X, allowed)            # (N, 4, L) the same for every single substitution
    Objective("max").score(values)                       # higher is better: max, min or target:VALUE

Sequences "as written" are the full records (e.g. DREAM's 110 bp with the constant flanks); each run
applies its own crop / padding, and averages strands if it was evaluated that way. Substitution values
use the windowed ISM of helixlab.interpret.ism where the model allows it (a `cnn` run that reads the
sequences as written, one strand), else every mutant is predicted.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from helixlab.apply.api import Model, load
from helixlab.errors import HelixError
from helixlab.interpret.ism import explained_model, ism, windowed_cnn
from helixlab.progress import progress_bar

GOALS = "max, min or target:VALUE"


class Predictor:
    """One run's prediction of output `output` for sequences as written: (N, L) uint8 -> (N,) float64."""

    def __init__(self, run_dir: str | os.PathLike[str], *, output: int = 0, device: str = "auto",
                 batch_size: int = 512) -> None:
        self.run_dir = str(run_dir)
        self.model: Model = load(run_dir, device=device, precision="fp32")
        run = self.model.run
        if run.task.kind not in ("binary", "regression"):
            raise HelixError(f"design optimises a probability (binary) or a value (regression); this run's task is "
                             f"{run.task.kind!r}", path=self.run_dir)
        n_outputs = len(self.model.output_names)
        if not 0 <= output < n_outputs:
            raise HelixError(f"output {output} is not an output of this run (it has {n_outputs}: "
                             f"{', '.join(self.model.output_names)})", path=self.run_dir, record="--output")
        self.output, self.batch_size = output, batch_size
        self.name = os.path.basename(os.path.normpath(self.run_dir))
        self.kind = run.task.kind
        rc = run.config.train.rc_average
        reads_as_written = not run.config.data.seq_options().transforms_only().transforms
        self.explained = None if run.members else explained_model(run)
        self.windowed = (self.explained is not None and not rc and reads_as_written
                         and windowed_cnn(self.explained) is not None)

    def value_range(self) -> tuple[float, float]:
        """The values the model can output: (0, 1) for a probability, the bin centres' range for binned
        regression, else unbounded."""
        task = self.model.run.task
        if self.kind == "binary":
            return 0.0, 1.0
        if getattr(task.cfg, "bins", 0):
            centres = task.centres(torch.device("cpu"))  # type: ignore[attr-defined]
            return float(centres.min()), float(centres.max())
        return -np.inf, np.inf

    def check_length(self, length: int) -> None:
        """Refuse written sequences this run cannot read."""
        self.values(np.zeros((1, length), dtype=np.uint8), source="the designs")

    def values(self, X: np.ndarray, *, source: str = "<design>") -> np.ndarray:
        return self.model.predict_written(X, batch_size=self.batch_size, source=source)[:, self.output].astype(
            np.float64)

    def substitution_values(self, X: np.ndarray, allowed: np.ndarray, *, progress: bool = False) -> np.ndarray:
        """(N, 4, L): the prediction for every allowed single substitution (NaN where not allowed)."""
        out = np.full(allowed.shape, np.nan)
        if self.windowed:
            delta, ref = ism(self.explained, X, target=self.output, device=self.model.device, with_reference=True)
            raw = ref[:, None, None].astype(np.float64) + delta
            vals = 1.0 / (1.0 + np.exp(-raw)) if self.kind == "binary" else raw
            out[allowed] = vals[allowed]
            return out
        i, b, p = np.nonzero(allowed)
        chunk = max(self.batch_size * 8, 4096)
        bar = progress_bar(progress and len(i) > chunk, total=len(i), desc=f"mutants ({self.name})",
                           unit=" seqs", unit_scale=True)
        for start in range(0, len(i), chunk):
            s = slice(start, start + chunk)
            mutants = X[i[s]].copy()
            mutants[np.arange(len(mutants)), p[s]] = b[s]
            out[i[s], b[s], p[s]] = self.values(mutants)
            bar.update(len(mutants))
        bar.close()
        return out


class Objective:
    """A goal for predicted values: 'max', 'min' or 'target:VALUE' (closeness to VALUE); `score` is higher
    for better designs."""

    def __init__(self, goal: str) -> None:
        text = goal.strip().lower()
        self.goal, self.target = text, None
        if text.startswith("target:"):
            try:
                self.target = float(text.split(":", 1)[1])
            except ValueError:
                raise HelixError(f"{goal!r}: the target must be a number, e.g. target:0.8", record="--goal") from None
            if not np.isfinite(self.target):
                raise HelixError(f"{goal!r}: the target must be finite", record="--goal")
        elif text not in ("max", "min"):
            raise HelixError(f"unknown goal {goal!r}; use {GOALS}", record="--goal")

    def check_range(self, low: float, high: float) -> None:
        if self.target is not None and not low <= self.target <= high:
            raise HelixError(f"target {self.target:g} is outside the model's output range {low:g} to {high:g}",
                             record="--goal")

    def score(self, values: np.ndarray) -> np.ndarray:
        if self.target is not None:
            return -np.abs(values - self.target)
        return values if self.goal == "max" else -values


class Ensemble:
    """Several predictors as one objective model: the mean of their predictions."""

    def __init__(self, predictors: list[Predictor]) -> None:
        if not predictors:
            raise HelixError("give at least one run to design with")
        self.predictors = predictors
        kinds = {p.kind for p in predictors}
        if len(kinds) > 1:
            raise HelixError(f"the design runs predict different kinds of output ({', '.join(sorted(kinds))})",
                             record="RUN_DIR")

    @property
    def name(self) -> str:
        return " + ".join(p.name for p in self.predictors)

    def value_range(self) -> tuple[float, float]:
        ranges = [p.value_range() for p in self.predictors]
        return min(r[0] for r in ranges), max(r[1] for r in ranges)

    def values(self, X: np.ndarray) -> np.ndarray:
        return np.mean([p.values(X) for p in self.predictors], axis=0)

    def substitution_values(self, X: np.ndarray, allowed: np.ndarray, *, progress: bool = False) -> np.ndarray:
        return np.mean([p.substitution_values(X, allowed, progress=progress) for p in self.predictors], axis=0)
