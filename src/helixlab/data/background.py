"""GC-matched background: genome windows whose GC content has the distribution of a set of positives.

    gc_matched("genome/", "peaks.bed", "background.csv", length=500, seed=0)

The positives are a BED file (cut from the same genome; their intervals are excluded from the
background) or sequences (FASTA or table). Their GC fractions are binned in steps of 2 %; windows
of the genome without N (none overlapping a positive interval, none spanning two chromosomes) are
drawn at random, seeded, and kept while their GC bin still needs windows, until every bin has its
share of `count`. A background that cannot be met in `max_draws` windows is an error saying how many
were found. Written: a CSV (`id,sequence,label` with label 0, ids chrom:start-end) or, for an output
named *.bed, the windows as BED intervals (score 0, to join with positives for `prepare --bed`); and a
plot of both GC histograms (`<out>.gc.png`).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from helixlab.data.genome import record_index, record_offsets
from helixlab.data.intervals import Bed, cut, open_genome, read_bed
from helixlab.data.shards import read_sequences
from helixlab.errors import HelixError
from helixlab.paths import atomic_path
from helixlab.plots import pyplot, save_figure
from helixlab.seq import alphabet
from helixlab.seq.motifs import gc_fraction

BIN = 0.02
N_BINS = int(round(1 / BIN))


@dataclass
class Matched:
    count: int
    positives_gc: np.ndarray
    background_gc: np.ndarray
    draws: int
    plot: Path


def _bins(gc: np.ndarray) -> np.ndarray:
    return np.minimum((gc / BIN).astype(np.int64), N_BINS - 1)


def quotas(gc: np.ndarray, count: int) -> np.ndarray:
    """Windows wanted per GC bin: `count` split like the positives' bins (largest remainders)."""
    share = np.bincount(_bins(gc), minlength=N_BINS) / len(gc) * count
    out = np.floor(share).astype(np.int64)
    out[np.argsort(-(share - out), kind="stable")[: count - out.sum()]] += 1
    return out


def _positives(source: str, shard, length: int | None) -> tuple[list[np.ndarray], Bed | None]:  # type: ignore[no-untyped-def]
    if source.endswith((".bed", ".bed.gz")):
        bed = read_bed(source)
        return cut(shard, bed, length=length, edge="drop").seqs, bed
    return read_sequences(source, "positives (a BED file or sequences)")[0], None


def gc_matched(genome: str | os.PathLike[str], positives: str | os.PathLike[str], out_csv: str | os.PathLike[str],
               *, count: int | None = None, length: int | None = None, seed: int = 0, max_draws: int = 20_000_000,
               overwrite: bool = False) -> Matched:
    """Write a GC-matched background of `count` windows (default: as many as the positives) of `length`
    bases (default: the positives' length, which must then be one) to `out_csv`; see the module docstring."""
    out = Path(out_csv)
    if out.exists() and not overwrite:
        raise HelixError("output file already exists; choose another name or remove it", path=str(out))
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as work:
        shard = open_genome(genome, Path(work) / "genome")
        seqs, bed = _positives(str(positives), shard, length)
        if not seqs:
            raise HelixError("no positive sequences to match", path=str(positives), record="--matched")
        lengths = {len(s) for s in seqs}
        if length is None:
            if len(lengths) > 1:
                raise HelixError(f"the positives have {len(lengths)} lengths: give the window --length",
                                 record="--length")
            length = lengths.pop()
        count = len(seqs) if count is None else count
        if count < 1:
            raise HelixError(f"--count must be at least 1, not {count}", record="--count")
        pos_gc = np.array([gc_fraction(s[None])[0] for s in seqs])
        want = quotas(pos_gc, count)
        rows, where, draws = _draw(shard, bed, want, length, seed, max_draws)
    gc = gc_fraction(np.stack(rows)) if rows else np.zeros(0)
    with atomic_path(out, overwrite=overwrite) as tmp:
        if out.name.endswith(".bed"):  # intervals (score 0), to join with positives for `prepare --bed`
            tmp.write_text("".join(f"{c}\t{a}\t{a + length}\tbackground{k}\t0\t+\n" for k, (c, a) in enumerate(where)))
        else:
            tmp.write_text("id,sequence,label\n" + "".join(f"{c}:{a}-{a + length},{alphabet.decode(r)},0\n"
                                                            for (c, a), r in zip(where, rows)))
    plot = _plot(out.with_suffix(".gc.png"), pos_gc, gc)
    return Matched(len(rows), pos_gc, gc, draws, plot)


def _draw(shard, bed: Bed | None, want: np.ndarray, length: int, seed: int, max_draws: int  # type: ignore[no-untyped-def]
          ) -> tuple[list[np.ndarray], list[tuple[str, int]], int]:
    offsets = record_offsets(shard)
    sizes = np.diff(offsets)
    usable = np.maximum(sizes - length + 1, 0)
    if usable.sum() == 0:
        raise HelixError(f"no chromosome is as long as the {length} bp windows", record="--length")
    names = [n.split()[0] for n in shard.ids()]
    excluded = _exclusion(bed, record_index(shard))
    flat = shard.seqs.reshape(-1)
    rng = np.random.default_rng(seed)
    need = want.copy()
    rows: list[np.ndarray] = []
    where: list[tuple[str, int]] = []
    draws = 0
    while need.sum() > 0 and draws < max_draws:
        n = min(100_000, max_draws - draws)
        draws += n
        rec = rng.choice(len(sizes), size=n, p=usable / usable.sum())
        start = (rng.random(n) * usable[rec]).astype(np.int64)
        windows = flat[(offsets[rec] + start)[:, None] + np.arange(length)]
        ok = ~(windows == alphabet.N_CODE).any(1)
        for r, (starts, ends_max) in excluded.items():
            sel = np.flatnonzero(ok & (rec == r))
            k = np.searchsorted(starts, start[sel] + length) - 1  # the last positive starting before the end
            ok[sel[(k >= 0) & (ends_max[np.maximum(k, 0)] > start[sel])]] = False
        bins = _bins(gc_fraction(windows))
        good = np.flatnonzero(ok)
        for b in np.flatnonzero(need):
            take = good[bins[good] == b][: need[b]]
            need[b] -= len(take)
            rows += list(windows[take])
            where += [(names[rec[i]], int(start[i])) for i in take]
    if need.sum() > 0:
        short = [f"{100 * BIN * b:.0f}-{100 * BIN * (b + 1):.0f} % GC: {want[b] - need[b]} of {want[b]}"
                 for b in np.flatnonzero(need)]
        raise HelixError(f"found {len(rows)} of {want.sum()} GC-matched windows in {draws:,} draws; short bins: "
                         + "; ".join(short[:6]) + ("; ..." if len(short) > 6 else ""), record="--matched")
    order = rng.permutation(len(rows))
    return [rows[i] for i in order], [where[i] for i in order], draws


def _exclusion(bed: Bed | None, index: dict[str, int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per chromosome: positive interval starts (sorted) and the running maximum of their ends."""
    if bed is None:
        return {}
    out = {}
    for chrom in set(bed.chrom):
        if chrom not in index:
            continue
        rows = np.array([i for i, c in enumerate(bed.chrom) if c == chrom])
        order = np.argsort(bed.start[rows], kind="stable")
        out[index[chrom]] = (bed.start[rows][order], np.maximum.accumulate(bed.end[rows][order]))
    return out


def _plot(path: Path, positives: np.ndarray, background: np.ndarray) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    edges = np.arange(N_BINS + 1) * BIN
    ax.hist(positives, bins=edges, alpha=0.5, label=f"positives ({len(positives):,})", density=True)
    ax.hist(background, bins=edges, histtype="step", lw=1.5, label=f"background ({len(background):,})", density=True)
    ax.set(xlabel="GC fraction", ylabel="density", title="GC-matched background")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)
