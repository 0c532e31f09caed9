"""Motif marginalisation: what a motif does to a model's prediction, on its own and by position.

    from helixlab.interpret.marginalize import marginalize
    result, files = marginalize("runs/dream_legnet", "TTACCCGG", "marg/", background="seqs.fa", region="17-97")

A motif (an A/C/G/T consensus, or a JASPAR id: its most likely sequence) is written into N seeded
background sequences at every position of the region (or at the given positions), and the change of
the prediction against the same background without it is reported: mean and spread over backgrounds,
per position. Backgrounds are the given sequences with the region shuffled (`shuffle`: each keeps its
composition) or drawn at random with their overall base composition (`random`); without sequences,
uniform random ones of the model's length (or --length). With a second motif, the first sits at one
position (`at`, default the region's start) and the second at each spacing after it; the table then
gives the pair's effect and the sum of the two motifs' effects alone at those places.

Written: `marginalize.csv`, `marginalize.png`, `marginalize.md`.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from helixlab.apply.api import Model, load
from helixlab.data.shards import read_fixed_length
from helixlab.errors import HelixError
from helixlab.interpret.jaspar import JASPAR_ID, consensus
from helixlab.paths import write_text
from helixlab.progress import progress_bar
from helixlab.plots import pyplot, save_figure
from helixlab.seq.motifs import consensus_codes

BACKGROUNDS = ("shuffle", "random")


@dataclass
class Marginal:
    motif: str  # the inserted bases (for a pair: FIRST+SECOND)
    x: np.ndarray  # positions of the motif (or spacings of the pair)
    mean: np.ndarray  # mean change of the prediction over backgrounds
    sd: np.ndarray
    n: int
    additive: np.ndarray | None = None  # pairs: the sum of the two motifs' mean effects alone


def motif_bases(text: str, option: str = "--motif") -> str:
    """The bases of a consensus or of a JASPAR id's most likely sequence."""
    bases = consensus(text, option=option) if JASPAR_ID.match(text.strip()) else text.strip().upper()
    consensus_codes(bases, option=option)  # A/C/G/T only
    return bases


def _range(text: str | None, length: int, option: str) -> tuple[int, int]:
    if text is None:
        return 0, length
    try:
        start, end = (int(v) for v in text.split("-"))
    except ValueError:
        raise HelixError(f"{text!r} is not a range START-END (0-based, end excluded)", record=option) from None
    if not 0 <= start < end <= length:
        raise HelixError(f"range {start}-{end} is not inside the {length} bp sequences", record=option)
    return start, end


def backgrounds(source: str | os.PathLike[str] | None, n: int, length: int, region: tuple[int, int], mode: str,
                seed: int) -> np.ndarray:
    """(n, L) seeded backgrounds (see the module docstring)."""
    if mode not in BACKGROUNDS:
        raise HelixError(f"unknown background {mode!r}; choose from {', '.join(BACKGROUNDS)}", record="--mode")
    if n < 1:
        raise HelixError(f"the number of backgrounds must be at least 1, not {n}", record="--n")
    rng = np.random.default_rng(seed)
    if source is None:
        return rng.integers(0, 4, size=(n, length)).astype(np.uint8)
    seqs, _ = read_fixed_length(source, "background sequences")
    picked = seqs[rng.choice(len(seqs), size=n, replace=len(seqs) < n)].copy()
    a, b = region
    if mode == "shuffle":
        for row in picked:
            row[a:b] = rng.permutation(row[a:b])
    else:
        freq = np.bincount(seqs[:, a:b][seqs[:, a:b] < 4].ravel(), minlength=4) / max((seqs[:, a:b] < 4).sum(), 1)
        picked[:, a:b] = rng.choice(4, size=(n, b - a), p=freq)
    return picked


def _effects(model: Model, bg: np.ndarray, base: np.ndarray, inserts: list[list[tuple[int, np.ndarray]]],
             output: int, desc: str) -> np.ndarray:
    """(len(inserts), n) prediction changes: each insert is a list of (position, codes) written into
    every background."""
    out = np.zeros((len(inserts), len(bg)))
    for k, parts in enumerate(progress_bar(total=len(inserts), desc=desc, iterable=inserts)):
        x = bg.copy()
        for pos, codes in parts:
            x[:, pos : pos + len(codes)] = codes
        out[k] = model.predict_written(x)[:, output] - base
    return out


def marginalize(run_dir: str | os.PathLike[str], motif: str, out: str | os.PathLike[str], *,
                background: str | os.PathLike[str] | None = None, n: int = 200, mode: str = "shuffle",
                region: str | None = None, positions: list[int] | None = None, second: str | None = None,
                at: int | None = None, spacings: str | None = None, length: int | None = None, output: int = 0,
                seed: int = 0, device: str = "auto") -> tuple[Marginal, list[Path]]:
    """Insert `motif` into backgrounds and report the prediction's change by position (or, with `second`,
    by the spacing of the pair); see the module docstring."""
    first = motif_bases(motif)
    pair = motif_bases(second, "--second") if second else None
    model = load(run_dir, device=device, precision="fp32")
    names = model.output_names
    if not 0 <= output < len(names):
        raise HelixError(f"output {output} is not an output of this run ({', '.join(names)})", record="--output")
    if background is None and not (length or model.seq_len):
        raise HelixError("this model reads any length: give background sequences or --length", record="--length")
    L = read_fixed_length(background, "background sequences")[0].shape[1] if background else (length or model.seq_len)
    lo, hi = _range(region, L, "--region")
    bg = backgrounds(background, n, L, (lo, hi), mode, seed)
    base = model.predict_written(bg)[:, output]
    codes1 = consensus_codes(first)
    if len(codes1) > hi - lo:
        raise HelixError(f"the motif ({len(codes1)} bp) is longer than the region ({hi - lo} bp)", record="--motif")
    if pair is None:
        places = positions if positions is not None else list(range(lo, hi - len(codes1) + 1))
        for p in places:
            if not lo <= p <= hi - len(codes1):
                raise HelixError(f"position {p}: the motif does not fit inside {lo}-{hi} there", record="--position")
        eff = _effects(model, bg, base, [[(p, codes1)] for p in places], output, f"marginalize {first}")
        result = Marginal(first, np.array(places), eff.mean(1), eff.std(1), n)
    else:
        codes2 = consensus_codes(pair)
        at = lo if at is None else at
        s_lo, s_hi = _range(spacings, hi, "--spacings") if spacings else (0, hi - at - len(codes1) - len(codes2) + 1)
        gaps = [g for g in range(s_lo, s_hi) if at + len(codes1) + g + len(codes2) <= hi]
        if not lo <= at <= hi - len(codes1) or not gaps:
            raise HelixError(f"the pair {first} + {pair} does not fit inside {lo}-{hi} from position {at}",
                             record="--at")
        where2 = [at + len(codes1) + g for g in gaps]
        both = _effects(model, bg, base, [[(at, codes1), (p, codes2)] for p in where2], output, "pair")
        alone1 = _effects(model, bg, base, [[(at, codes1)]], output, "first")[0]
        alone2 = _effects(model, bg, base, [[(p, codes2)] for p in where2], output, "second")
        result = Marginal(f"{first}+{pair}", np.array(gaps), both.mean(1), both.std(1), n,
                          additive=alone1.mean() + alone2.mean(1))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return result, _write(out, result, run_dir, names[output], base, mode if background else "uniform random",
                          (lo, hi))


def _write(out: Path, m: Marginal, run_dir: str | os.PathLike[str], output: str, base: np.ndarray, bg: str,
           region: tuple[int, int]) -> list[Path]:
    axis = "spacing" if m.additive is not None else "position"
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([axis, "mean_change", "sd_change", "n", *(["additive"] if m.additive is not None else [])])
    for k in range(len(m.x)):
        w.writerow([int(m.x[k]), f"{m.mean[k]:.6g}", f"{m.sd[k]:.6g}", m.n,
                    *([f"{m.additive[k]:.6g}"] if m.additive is not None else [])])
    write_text(out / "marginalize.csv", buf.getvalue())
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.6))
    ax.plot(m.x, m.mean, color="C0", label=f"{m.motif}: mean change")
    ax.fill_between(m.x, m.mean - m.sd, m.mean + m.sd, color="C0", alpha=0.2, label="± sd over backgrounds")
    if m.additive is not None:
        ax.plot(m.x, m.additive, color="C1", ls="--", label="sum of the two alone")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set(xlabel=f"{axis} (0-based)" if axis == "position" else "spacing (bases between the motifs)",
           ylabel=f"change of {output}", title=f"{Path(run_dir).name}: {m.motif} in {m.n} backgrounds")
    ax.legend(fontsize=8)
    fig.tight_layout()
    plot = save_figure(fig, out / "marginalize.png")
    k = int(np.argmax(np.abs(m.mean)))
    lines = [f"# Marginalisation of {m.motif}", "",
             f"- model: {run_dir}, output {output}; {m.n} backgrounds ({bg}, region {region[0]}-{region[1]}); "
             f"background prediction mean {base.mean():.4g} (sd {base.std():.3g})",
             f"- mean change over all {axis}s: {m.mean.mean():+.4g}; largest at {axis} {int(m.x[k])}: "
             f"{m.mean[k]:+.4g} ± {m.sd[k]:.3g}; range of the means {m.mean.min():+.4g} to {m.mean.max():+.4g}",
             "", "Files: `marginalize.csv`, `marginalize.png`", "", "![effect by position](marginalize.png)", ""]
    write_text(out / "marginalize.md", "\n".join(lines))
    return [out / "marginalize.md", out / "marginalize.csv", plot]
