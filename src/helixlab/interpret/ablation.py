"""Interpretation of trained runs. Flank ablation (S5): which parts of the input the model relies on.

`ablate_flanks` perturbs one band of bases at a time, at increasing distance from the centre, on one
side of fixed-length inputs, and measures how much the loss rises: 'shuffle' permutes the bases inside
the band (the composition is kept, the order lost); 'random' replaces them with uniform random bases.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from helixlab.apply.predict import predict
from helixlab.data.splits import open_split
from helixlab.errors import HelixError
from helixlab.paths import write_json, write_text
from helixlab.progress import progress_bar
from helixlab.run.loaded import LoadedRun, load_run
from helixlab.plots import pyplot, save_figure

MODES = ("shuffle", "random")


@dataclass(frozen=True)
class Band:
    side: str  # 'left' or 'right' of the centre
    near: int  # distances from the centre, 1 = the adjacent base; the band is near..far inclusive
    far: int

    def positions(self, centre: int) -> np.ndarray:
        d = np.arange(self.near, self.far + 1)
        return centre - d if self.side == "left" else centre + d


def bands(length: int, width: int) -> list[Band]:
    """Bands of `width` bases covering each side of a centred input of `length` bases."""
    if width < 1:
        raise HelixError(f"the band width must be at least 1, got {width}", record="--band")
    reach = length // 2
    return [Band(side, near, min(near + width - 1, reach)) for side in ("left", "right")
            for near in range(1, reach + 1, width)]


def perturb(x: np.ndarray, band: Band, mode: str, rng: np.random.Generator) -> np.ndarray:
    """A copy of x (N, L) uint8 with the band shuffled (per row) or randomised."""
    pos = band.positions(x.shape[1] // 2)
    out = x.copy()
    if mode == "shuffle":
        order = rng.random((len(x), len(pos))).argsort(1)
        out[:, pos] = np.take_along_axis(x[:, pos], order, 1)
    elif mode == "random":
        out[:, pos] = rng.integers(0, 4, (len(x), len(pos)), dtype=np.uint8)
    else:
        raise HelixError(f"unknown ablation mode {mode!r}; expected one of {', '.join(MODES)}", record="--mode")
    return out


def score(run: LoadedRun, x: np.ndarray, y: np.ndarray, *, batch_size: int, device: str) -> dict[str, float]:
    """The run's loss and metrics on inputs x with labels y."""
    out = predict(run.model, x, batch_size=batch_size, device=device)
    task = run.task
    loss = float(task.loss(out, task.target(y)))
    acc = task.metrics()
    acc.update(task.activate(out).numpy(), y)
    return {"loss": loss, **acc.compute()}


def ablate_flanks(run: LoadedRun, x: np.ndarray, y: np.ndarray, *, width: int = 10, mode: str = "shuffle",
                  seed: int = 0, batch_size: int = 1024, device: str = "cpu", progress: bool = True
                  ) -> dict[str, Any]:
    """Loss increase per band and side; x: (N, L) centred inputs as the model reads them, y: labels."""
    if mode not in MODES:
        raise HelixError(f"unknown ablation mode {mode!r}; expected one of {', '.join(MODES)}", record="--mode")
    if x.shape[1] % 2 == 0:
        raise HelixError(f"flank ablation needs centred inputs of odd length; this run reads {x.shape[1]} bases",
                         path=str(run.run_dir))
    metric = run.info.get("monitor", "loss")
    base = score(run, x, y, batch_size=batch_size, device=device)
    rows = []
    todo = bands(x.shape[1], width)
    bar = progress_bar(progress, total=len(todo), desc=f"ablate ({mode})")
    for i, band in enumerate(todo):
        rng = np.random.default_rng([seed, i])
        s = score(run, perturb(x, band, mode, rng), y, batch_size=batch_size, device=device)
        rows.append({"side": band.side, "near": band.near, "far": band.far, "loss": s["loss"],
                     "loss_increase": s["loss"] - base["loss"], metric: s.get(metric, float("nan"))})
        bar.update(1)
    bar.close()
    return {"mode": mode, "width": width, "positions": len(x), "length": int(x.shape[1]), "seed": seed,
            "metric": metric, "baseline": {"loss": base["loss"], metric: base.get(metric, float("nan"))},
            "bands": rows}


def write_ablation(result: dict[str, Any], out_dir: Path, title: str) -> list[Path]:
    """ablate_flanks_<mode>.json / .md / .png in out_dir (each written whole or not at all)."""
    plt = pyplot()

    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"ablate_flanks_{result['mode']}"
    metric = result["metric"]
    lines = [f"# Flank ablation ({result['mode']}): {title}", "",
             f"{result['positions']:,} inputs of {result['length']} bases; bands of {result['width']} bases; "
             f"baseline loss {result['baseline']['loss']:.4f}, {metric} {result['baseline'][metric]:.4f}.", "",
             f"| side | distance from centre | loss | loss increase | {metric} |", "|---|---|---|---|---|"]
    lines += [f"| {r['side']} | {r['near']}-{r['far']} | {r['loss']:.4f} | {r['loss_increase']:+.4f} | "
              f"{r[metric]:.4f} |" for r in result["bands"]]
    fig, ax = plt.subplots(figsize=(7, 4))
    for side in ("left", "right"):
        rows = [r for r in result["bands"] if r["side"] == side]
        ax.plot([(r["near"] + r["far"]) / 2 for r in rows], [r["loss_increase"] for r in rows], "o-", label=side)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(xlabel="distance of the band from the centre (bases)", ylabel="loss increase (nats)",
           title=f"Flank ablation ({result['mode']}, {result['width']}-base bands)")
    ax.legend(title="flank")
    fig.tight_layout()
    save_figure(fig, stem.with_suffix(".png"))
    write_json(stem.with_suffix(".json"), result, indent=1)
    write_text(stem.with_suffix(".md"), "\n".join([*lines, "", f"![loss increase per band]({stem.name}.png)", ""]))
    return [stem.with_suffix(s) for s in (".md", ".json", ".png")]


def split_inputs(run: LoadedRun, split: str, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `samples` inputs and labels of a split of the run's own data (genome windows are a
    random sample already; a table's rows are taken in file order)."""
    if run.seq_len is None:
        raise HelixError("flank ablation needs a fixed-length model input", path=str(run.run_dir))
    if split not in ("train", "valid", "test"):
        raise HelixError(f"--split must be train, valid or test, got {split!r}", record="--split")
    if samples < 1:
        raise HelixError(f"--samples must be at least 1, got {samples}", record="--samples")
    data = open_split(run.config.data, run.run_dir, split, require_labels=run.task.needs_labels,
                      seed=run.config.train.seed)
    if data is None:
        raise HelixError(f"the run has no {split} data", path=str(run.run_dir))
    idx = np.arange(min(samples, len(data)))
    if data.labels is None:
        raise HelixError(f"the {split} data of the run has no labels", path=str(run.run_dir))
    return data.codes(idx), np.asarray(data.labels[idx])



def ablate_run(run_dir: str | Path, *, split: str = "test", samples: int = 20000, width: int = 10,
               mode: str = "shuffle", seed: int = 0, batch_size: int = 1024, device: str = "cpu",
               out: str | Path | None = None) -> list[Path]:
    """`helixlab interpret ablate-flanks`: flank ablation on the first `samples` inputs of a split of the
    run's own data, written to `out` (default RUN_DIR/interpret); returns the files (.md, .json, .png)."""
    run = load_run(run_dir, device=device)
    x, y = split_inputs(run, split, samples)
    result = ablate_flanks(run, x, y, width=width, mode=mode, seed=seed, batch_size=batch_size, device=device)
    return write_ablation(result, Path(out) if out is not None else run.run_dir / "interpret",
                          f"{run.run_dir.name} ({split})")
