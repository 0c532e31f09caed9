"""The data of a run's splits: the [data] section, and each split opened as something the loop reads.

A split is a file (FASTA/CSV/TSV/DREAM, prepared on first use into the run directory), a list of
files (prepared together) or a `helixlab prepare` directory; or windows sampled from a genome.
Whatever it is, the result offers the same interface as a `Shard` (len, codes, labels, meta, length).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from helixlab.data.genome import CentreWindows, GenomeWindows, parse_regions
from helixlab.data.intervals import parse_split, prepare_intervals
from helixlab.data.shards import Shard, prepare
from helixlab.errors import HelixError
from helixlab.paths import expand_path
from helixlab.seq.transforms import SeqOptions

DEFAULT_SAMPLES = {"train": 100_000, "valid": 5_000, "test": 5_000}  # genome windows per split (data.samples)
SPLITS = ("train", "valid", "test")


@dataclass
class DataConfig:
    """Each split is a file (FASTA/CSV/TSV/DREAM, prepared on first use), a list of files (prepared
    together) or a `helixlab prepare` directory.

    window > 0: instead of the records as they are, sample `samples[split]` windows of `window`
    bases without N from `regions[split]` (e.g. ["chrX:0-50000000"]; default: whole records):
    how a genome is read for pretraining. The sample is fixed by the split, not the training seed;
    the training split draws a new sample every epoch.

    flank > 0: the context task (task.kind = 'context'): windows of `flank` bases each side of a
    centre sampled from `regions[split]` (2 * flank + 1 bases, the centre hidden), labelled with the
    centre base and its repeat (lowercase) bit. Centres need max(flank, clearance) N-free bases each
    side inside the region, so every run with flank <= clearance sees the same positions.

    where: per split, 'column=value' rows of a table (e.g. {train = "dev_split=train"}), so the
    splits can come from one file.
    drop_n / lengths: drop training rows with N / of other lengths (valid and test are kept whole).
    crop / pad_to / pad_context: reshape every sequence, in training and in prediction (see
    helixlab.seq.transforms; e.g. crop = [17, -13] keeps the DREAM random region).
    per_bin: train on at most this many rows from each of `bins` equal-width label bins (a near-
    uniform subset, seeded; 0 = all rows): the second stage of two-stage training.
    holdout: with no data.valid, this fraction of the training rows (fixed, not by the seed) is the
    validation split and is not trained on (S2: 0.01, S4: 0.015).
    bed / genome / intervals: instead of train/valid/test, the sequences of a BED file's intervals cut from
    a genome (helixlab.data.intervals), prepared once into RUN_DIR/data/intervals; `intervals` holds the
    options of `prepare --bed`: length, summit, labels (columns) or label (a constant), edge, duplicates,
    strand, and split (e.g. ["chr8,chr9:test", "chr10:valid"]; the other chromosomes are train)."""

    train: str | list[str] = ""
    valid: str | list[str] | None = None
    test: str | list[str] | None = None
    format: str = "auto"
    seq_col: str | None = None
    label_cols: list[str] | None = None
    iupac: str = "error"
    window: int = 0
    flank: int = 0
    clearance: int = 200
    regions: dict[str, list[str]] = field(default_factory=dict)
    samples: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_SAMPLES))
    where: dict[str, str] = field(default_factory=dict)
    drop_n: bool = False
    lengths: list[int] | None = None
    crop: list[int] | None = None
    pad_to: int = 0
    pad_context: str | list[str] | None = None
    per_bin: int = 0
    bins: int = 18
    holdout: float = 0.0
    bed: str | None = None
    genome: str | None = None
    intervals: dict[str, Any] = field(default_factory=dict)

    def seq_options(self) -> SeqOptions:
        """The per-record filters and transforms of this section (helixlab.seq.transforms)."""
        ctx = self.pad_context
        return SeqOptions(drop_n=self.drop_n, lengths=tuple(self.lengths) if self.lengths else None,
                          crop=tuple(self.crop) if self.crop else None,  # type: ignore[arg-type]
                          pad_to=self.pad_to, pad_context=tuple(ctx) if isinstance(ctx, list) else ctx)  # type: ignore[arg-type]

    def files(self, split: str) -> list[str]:
        """The configured file(s) of a split with variables expanded; [] when the split is not given."""
        value = getattr(self, split) or []
        return [expand_path(p) for p in ([value] if isinstance(value, str) else value)]

    def source(self, split: str) -> str:
        """The configured path(s) of a split, for messages."""
        return ", ".join(self.files(split))



def open_data(paths: str | list[str], cache_dir: Path | None, *, fmt: str = "auto", seq_col: str | None = None,
              label_cols: list[str] | None = None, iupac: str = "error", require_labels: bool = True,
              progress: bool = True, where: str | None = None, options: SeqOptions | None = None) -> Shard:
    """A prepared directory as is, or sequence files (one or a list) prepared once into `cache_dir`
    (`where` and `options` as in `shards.prepare`)."""
    files = [paths] if isinstance(paths, str) else list(paths)
    if len(files) == 1 and Path(files[0]).is_dir():
        return Shard.open(files[0])
    for f in files:
        if not Path(f).is_file():
            raise HelixError("data file not found" + (" (a prepared directory must be given alone)"
                                                      if Path(f).is_dir() else ""), path=f)
    if cache_dir is None:
        raise HelixError("raw data files need a directory to prepare into", path=files[0])
    if not (cache_dir / "meta.json").exists():
        prepare(files, cache_dir, fmt=fmt, seq_col=seq_col, label_cols=label_cols, iupac=iupac,  # type: ignore[arg-type]
                require_labels=require_labels, unique_ids=False, overwrite=cache_dir.exists(), progress=progress,
                where=where, options=options)
    return Shard.open(cache_dir)


def per_bin_rows(values: np.ndarray, per_bin: int, bins: int, seed: int = 0) -> np.ndarray:
    """Sorted row indices: at most `per_bin` rows drawn (seeded) from each of `bins` equal-width bins
    of `values` between their min and max: a near-uniform subset over the label range."""
    values = np.asarray(values, dtype=np.float64)
    lo, hi = float(values.min()), float(values.max())
    which = np.minimum(((values - lo) / max(hi - lo, 1e-12) * bins).astype(np.int64), bins - 1)
    rng = np.random.default_rng([seed, 17])
    picked = []
    for b in range(bins):
        members = np.flatnonzero(which == b)
        if len(members) > per_bin:
            members = rng.choice(members, per_bin, replace=False)
        picked.append(members)
    return np.sort(np.concatenate(picked))


def holdout_rows(n: int, fraction: float) -> np.ndarray:
    """Sorted indices of a fixed `fraction` of n rows (at least one): the validation rows held out of a
    training file. Fixed by n alone, not by the training seed, so every run holds out the same rows."""
    return np.sort(np.random.default_rng([n, 99]).permutation(n)[: max(1, round(fraction * n))])


class RowSubset:
    """Some rows of a shard, read like a shard (the per-bin training subset)."""

    def __init__(self, shard: Shard, rows: np.ndarray, note: dict[str, object]) -> None:
        self.shard, self.rows = shard, rows
        self.labels = np.asarray(shard.labels[rows]) if shard.labels is not None else None
        self.meta = {**shard.meta, "records": len(rows), "subset": {**note, "of_records": len(shard)}}
        self.length = shard.length

    def __len__(self) -> int:
        return len(self.rows)

    def codes(self, idx: np.ndarray, pad_to: int | None = None) -> np.ndarray:
        return self.shard.codes(self.rows[idx], pad_to)

    def ids(self) -> list[str]:
        every = self.shard.ids()
        return [every[i] for i in self.rows]



Split = Shard | GenomeWindows | RowSubset


def open_split(d: DataConfig, run_dir: Path, split: str, *, require_labels: bool = True, seed: int = 0,
               progress: bool = False) -> Split | None:
    """Split `split` of a run's data (None when it is not given), raw files prepared once into
    RUN_DIR/data/<split>. `seed`: the training seed, which draws the per-bin subset (data.per_bin)."""
    if d.bed:
        return interval_split(d, run_dir, split)
    files = d.files(split)
    if split == "valid" and not files and d.holdout:  # a fixed fraction of the training rows
        train = open_split(replace(d, holdout=0.0, per_bin=0), run_dir, "train", require_labels=require_labels)
        assert isinstance(train, Shard)
        return RowSubset(train, holdout_rows(len(train), d.holdout), {"holdout": d.holdout})
    if not files:
        return None
    cache = run_dir / "data" / split
    if d.window or d.flank:  # windows sampled from long records (a genome), prepared once as one flat array
        if split != "train" and files == d.files("train"):
            if split not in d.regions or "train" not in d.regions:
                raise HelixError(f"data.{split} is the training file: give data.regions for train and {split} "
                                 "so their windows come from different parts of it", record="data.regions")
            cache = run_dir / "data" / "train"  # the same file is prepared once
        shard = open_genome(files, cache, d, progress=progress)
        return genome_split(d, shard, split, source=d.source(split))
    options = d.seq_options()
    if split != "train":  # row filters shape the training set; valid and test are scored whole
        options = options.transforms_only()
    shard = open_data(files, cache, fmt=d.format, seq_col=d.seq_col, label_cols=d.label_cols, iupac=d.iupac,
                      require_labels=require_labels, progress=progress, where=d.where.get(split), options=options)
    if split != "train" or not (d.per_bin or d.holdout and not d.valid):
        return shard
    rows = np.arange(len(shard))
    note: dict[str, object] = {}
    if d.holdout and not d.valid:  # the rows held out for validation are not trained on
        rows = np.setdiff1d(rows, holdout_rows(len(shard), d.holdout))
        note["holdout"] = d.holdout
    if d.per_bin:
        if shard.labels is None:
            raise HelixError("data.per_bin needs labelled training data", path=d.source(split))
        rows = rows[per_bin_rows(shard.labels[rows, 0], d.per_bin, d.bins, seed=seed)]
        note.update(per_bin=d.per_bin, bins=d.bins)
    return RowSubset(shard, rows, note)


INTERVAL_OPTIONS = ("length", "summit", "labels", "label", "edge", "duplicates", "strand", "split")


def interval_split(d: DataConfig, run_dir: Path, split: str) -> Shard | None:
    """Split `split` of data given as BED intervals of a genome (prepared once, all splits together);
    without a split every interval is training data."""
    root = run_dir / "data" / "intervals"
    if not (root / "intervals.json").exists():
        opts = dict(d.intervals)
        unknown = sorted(set(opts) - set(INTERVAL_OPTIONS))
        if unknown:
            raise HelixError(f"unknown key data.intervals.{unknown[0]}; valid keys: {', '.join(INTERVAL_OPTIONS)}",
                             record=f"data.intervals.{unknown[0]}")
        specs = opts.pop("split", None)
        prepare_intervals(expand_path(d.bed or ""), expand_path(d.genome or ""), root, overwrite=True,
                          split=parse_split([specs] if isinstance(specs, str) else specs), **opts)
    path = root / ("all" if split == "train" and (root / "all").is_dir() else split)
    return Shard.open(path) if (path / "meta.json").exists() else None


def open_genome(files: list[str], cache: Path, d: DataConfig, *, progress: bool = False) -> Shard:
    """A genome as a prepared shard: a prepared directory as it is, else the files prepared once into
    `cache` (all bases in one array, IUPAC codes as N, soft-mask bits kept for the context task)."""
    if len(files) == 1 and Path(files[0]).is_dir():
        return Shard.open(files[0])
    if not (cache / "meta.json").exists():
        prepare(files, cache, fmt=d.format, length="variable", iupac="n", unique_ids=False,
                overwrite=cache.exists(), progress=progress, keep_mask=bool(d.flank))
    return Shard.open(cache)


def genome_split(d: DataConfig, shard: Shard, split: str, *, regions: list[str] | None = None,
                 samples: int | None = None, source: str = "") -> GenomeWindows:
    """The windows of `split` from a prepared genome per the run's data section (regions and sample
    size as configured unless given): centre windows for the context task, else plain windows."""
    specs = regions or d.regions.get(split) or [n.split()[0] for n in shard.ids()]
    parsed = parse_regions(specs, shard, source or str(shard.path))
    n = samples or d.samples.get(split, DEFAULT_SAMPLES[split])
    seed = SPLITS.index(split)
    if d.flank:
        if not shard.meta.get("has_mask"):
            raise HelixError("the context task reports repeats apart: prepare the genome with --keep-mask",
                             path=str(shard.path))
        return CentreWindows(shard, d.flank, parsed, n, seed, clearance=d.clearance)
    return GenomeWindows(shard, d.window, parsed, n, seed=seed)


