"""Genome intervals as data: BED + genome -> prepared sequences, split by chromosome or region.

    prepare_intervals("peaks.bed", "hg38.fa.gz", "data/peaks", length=500, labels=["signalValue"],
                      split=parse_split(["chr8,chr9:test", "chr10:valid"]))

BED is 0-based and half-open. Lines starting with `track`, `browser` or `#` are skipped; a `#` line just
before the first interval that names at least three columns is the header, so its names can be used as
label columns (`#chrom start end name activity`). Without one, columns 4-10 have the BED / narrowPeak
names: name, score, strand, signalValue, pValue, qValue, peak; any column is also `colN` (1-based).

The genome is read through the prepared uint8 arrays (`helixlab prepare` of the FASTA, made once into
OUT/genome when a FASTA is given): no chromosome is decoded into a Python string. Sequences are cut at
each interval, or re-centred (on the middle, or on `start + summit` with a summit column) and resized
to `length`; "-" strand intervals are reverse-complemented. Intervals that run off a chromosome or
contain N are dropped, padded with N / kept, or an error (`edge`); duplicates (same chromosome, start,
end, strand) are kept or refused.

A split names whole chromosomes (`chr8,chr9:test`) or regions of one (`chrX:60000000-70000000:test`,
0-based half-open: for a genome of one or a few chromosomes). What no split names is train. A sequence
whose window (after resizing) lies partly in a held-out region and partly outside is dropped and counted
(`straddles_split`), so no locus is shared between splits.

Written: OUT/all (one prepared directory), or OUT/train, OUT/valid, OUT/test with a split; OUT/intervals.json
(the counts); OUT/genome (the prepared genome, reused by later runs on the same OUT).
"""

from __future__ import annotations

import gzip
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from helixlab.data.genome import record_index, record_offsets
from helixlab.data.shards import Shard, prepare
from helixlab.errors import HelixError
from helixlab.paths import write_json, write_text
from helixlab.seq import alphabet

BED_NAMES = ["chrom", "start", "end", "name", "score", "strand", "signalValue", "pValue", "qValue", "peak"]
EDGES = ("drop", "pad", "error")
DUPLICATES = ("keep", "refuse")


@dataclass
class Bed:
    path: str
    chrom: list[str]
    start: np.ndarray
    end: np.ndarray
    strand: np.ndarray  # '+', '-' or '.'
    names: list[str]
    columns: dict[str, list[str]]  # every column by name, as text
    lines: np.ndarray  # 1-based line of each interval

    def __len__(self) -> int:
        return len(self.chrom)

    def numeric(self, column: str) -> np.ndarray:
        """A column as float64; a value that is not a number is an error naming the line."""
        if column not in self.columns:
            raise HelixError(f"no column {column!r} in the BED file (columns: {', '.join(self.columns)})",
                             path=self.path, record="--label-col")
        out = np.empty(len(self))
        for k, text in enumerate(self.columns[column]):
            try:
                out[k] = float(text)
            except ValueError:
                raise HelixError(f"column {column!r} holds {text!r}, not a number", path=self.path,
                                 record=f"line {self.lines[k]}") from None
            if not np.isfinite(out[k]):
                raise HelixError(f"column {column!r} holds {text!r}, not a finite number", path=self.path,
                                 record=f"line {self.lines[k]}")
        return out


def _open_text(path: str) -> io.TextIOBase:
    raw = open(path, "rb")
    head = raw.read(2)
    raw.seek(0)
    stream = gzip.open(raw) if head == b"\x1f\x8b" else raw
    return io.TextIOWrapper(stream, encoding="utf-8-sig", newline=None)  # type: ignore[arg-type]


def read_bed(path: str | os.PathLike[str]) -> Bed:
    """Read a BED file (plain or gzipped; see the module docstring)."""
    path = str(path)
    if not Path(path).is_file():
        raise HelixError("BED file not found", path=path)
    header: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        with _open_text(path) as fh:
            for number, line in enumerate(fh, 1):
                text = line.rstrip("\n").rstrip("\r")
                if not text.strip():
                    continue
                if text.startswith(("track", "browser")):
                    continue
                if text.startswith("#"):
                    names = text.lstrip("#").split("\t") if "\t" in text else text.lstrip("#").split()
                    if not rows and len(names) >= 3:
                        header = [n.strip() for n in names]
                    continue
                fields = text.split("\t") if "\t" in text else text.split()
                if len(fields) < 3:
                    raise HelixError(f"a BED line needs at least 3 columns (chrom, start, end); this one has "
                                     f"{len(fields)}", path=path, record=f"line {number}")
                rows.append(fields)
                lines.append(number)
    except (UnicodeDecodeError, gzip.BadGzipFile, EOFError) as exc:
        raise HelixError(f"not a readable BED text file ({exc})", path=path) from None
    if not rows:
        raise HelixError("the BED file holds no intervals", path=path)
    width = max(len(r) for r in rows)
    names = list(header or []) + [n for n in BED_NAMES[len(header or []):]]
    names = (names + [f"col{k + 1}" for k in range(len(names), width)])[:width]
    columns: dict[str, list[str]] = {}
    for k in range(width):
        values = [r[k] if k < len(r) else "" for r in rows]
        columns[names[k]] = values
        columns.setdefault(f"col{k + 1}", values)
    starts, ends = np.empty(len(rows), np.int64), np.empty(len(rows), np.int64)
    for i, r in enumerate(rows):
        try:
            starts[i], ends[i] = int(r[1]), int(r[2])
        except ValueError:
            raise HelixError(f"start and end must be whole numbers, got {r[1]!r} and {r[2]!r}", path=path,
                             record=f"line {lines[i]}") from None
        if starts[i] < 0 or starts[i] > ends[i]:
            raise HelixError(f"interval {r[0]}:{r[1]}-{r[2]} has start > end or a negative start", path=path,
                             record=f"line {lines[i]}")
    strand = np.array([r[5] if len(r) > 5 and r[5] in "+-." and r[5] else "." for r in rows])
    ids = [f"{r[0]}:{r[1]}-{r[2]}({s})" for r, s in zip(rows, strand)]
    names_col = [r[3] if len(r) > 3 and r[3] not in ("", ".") else ids[i] for i, r in enumerate(rows)]
    return Bed(path, [r[0] for r in rows], starts, ends, strand, names_col, columns, np.array(lines))


def open_genome(genome: str | os.PathLike[str], work: Path) -> Shard:
    """A genome as prepared uint8 arrays: a `helixlab prepare` directory, or a FASTA prepared once into
    `work` (reused when it is there)."""
    g = Path(genome)
    if g.is_dir():
        return Shard.open(g)
    if not g.is_file():
        raise HelixError("genome not found (a FASTA or a prepared directory)", path=str(g), record="--genome")
    if not (work / "meta.json").exists():
        prepare([str(g)], work, fmt="fasta", length="variable", overwrite=True, unique_ids=False)
    return Shard.open(work)


@dataclass
class Cut:
    """Sequences cut from a genome: codes (N, L) for fixed length (else a list), the intervals kept and
    what was dropped."""

    seqs: list[np.ndarray]
    kept: np.ndarray  # indices into the BED
    dropped: dict[str, int] = field(default_factory=dict)
    # the chromosome span (start, end) each kept sequence covers, after resizing, without padding off the ends
    windows: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))


def cut(shard: Shard, bed: Bed, *, length: int | None = None, summit: str | None = None, edge: str = "drop",
        strand: bool = True) -> Cut:
    """The bases of every interval (see the module docstring)."""
    if edge not in EDGES:
        raise HelixError(f"unknown edge policy {edge!r}; choose from {', '.join(EDGES)}", record="--edge")
    index = record_index(shard)
    unknown = sorted({c for c in bed.chrom if c not in index})
    if unknown:
        k = bed.chrom.index(unknown[0])
        raise HelixError(f"chromosome {unknown[0]!r} is not in the genome ({len(unknown)} unknown names; the genome "
                         f"has {', '.join(list(index)[:5])}{', ...' if len(index) > 5 else ''})", path=bed.path,
                         record=f"line {bed.lines[k]}")
    offsets = record_offsets(shard)
    flat = shard.seqs.reshape(-1)  # one flat array of bases in either layout
    start, end = bed.start.copy(), bed.end.copy()
    if length is not None:
        if length < 1:
            raise HelixError(f"--length must be positive, not {length}", record="--length")
        centre = start + bed.numeric(summit).astype(np.int64) if summit else (start + end) // 2
        start, end = centre - length // 2, centre - length // 2 + length
    seqs, kept, windows = [], [], []
    dropped = {"off_chromosome": 0, "with_n": 0, "empty": 0}
    for i, chrom in enumerate(bed.chrom):
        r = index[chrom]
        size = int(offsets[r + 1] - offsets[r])
        a, b = int(start[i]), int(end[i])
        if b <= a:
            dropped["empty"] += 1
            continue
        off = a < 0 or b > size
        if off and edge != "pad":
            if edge == "error":
                raise HelixError(f"interval {chrom}:{a}-{b} runs off the chromosome ({size:,} bp)", path=bed.path,
                                 record=f"line {bed.lines[i]}")
            dropped["off_chromosome"] += 1
            continue
        seq = np.full(b - a, alphabet.N_CODE, dtype=np.uint8)
        lo, hi = max(a, 0), min(b, size)
        if hi > lo:
            seq[lo - a : hi - a] = flat[offsets[r] + lo : offsets[r] + hi]
        if (seq[lo - a : hi - a] == alphabet.N_CODE).any() and edge != "pad":
            if edge == "error":
                raise HelixError(f"interval {chrom}:{a}-{b} contains N", path=bed.path, record=f"line {bed.lines[i]}")
            dropped["with_n"] += 1
            continue
        if strand and bed.strand[i] == "-":
            seq = alphabet.reverse_complement(seq)  # type: ignore[assignment]
        seqs.append(seq)
        kept.append(i)
        windows.append((min(lo, size), max(hi, 0)))  # the chromosome's bases; N padding off its ends is none
    return Cut(seqs, np.array(kept, dtype=np.int64), dropped, np.array(windows, dtype=np.int64).reshape(-1, 2))


@dataclass(frozen=True)
class Region:
    """A part of a split: a whole chromosome (start = end = None) or [start, end) of one."""

    chrom: str
    split: str
    start: int | None = None
    end: int | None = None

    def overlaps(self, a: int, b: int) -> bool:
        return self.start is None or (a < self.end and b > self.start)  # type: ignore[operator]


SPLIT_FORM = "CHROM[,CHROM...]:valid|test|train, or CHROM:START-END:valid|test|train"


_SPAN = re.compile(r"^(?P<chrom>.+):(?P<start>[0-9_]+)-(?P<end>[0-9_]+)$", re.ASCII)


def parse_split(specs: list[str] | None) -> list[Region]:
    """['chr8,chr9:test', 'chrX:0-5000000:valid'] -> the regions, checked not to overlap across splits.
    An item is a region when it ends in :START-END (digits, `_` allowed); otherwise the whole item is a
    chromosome name, which may itself hold ':' (e.g. HLA-A*01:01:01:01)."""
    out: list[Region] = []
    for spec in specs or []:
        items, sep, split = spec.rpartition(":")
        if not sep or split not in ("train", "valid", "test") or not items.strip():
            raise HelixError(f"--split expects {SPLIT_FORM}, got {spec!r}", record="--split")
        for item in (i.strip() for i in items.split(",")):
            m = _SPAN.match(item)
            if not m:
                out.append(Region(item, split))
                continue
            a, b = int(m["start"].replace("_", "")), int(m["end"].replace("_", ""))
            if a >= b:
                raise HelixError(f"--split region {item!r} is not CHROM:START-END with START < END", record="--split")
            out.append(Region(m["chrom"], split, a, b))
    check_overlaps(out)
    return out


def check_overlaps(regions: list[Region]) -> None:
    """Refuse bases given to two splits."""
    for i, r in enumerate(regions):
        for q in regions[:i]:
            if r.chrom == q.chrom and r.split != q.split and (
                    r.start is None or q.start is None or q.overlaps(r.start, r.end)):  # type: ignore[arg-type]
                raise HelixError(f"{r.chrom} is given to two splits ({q.split}, {r.split}) over the same bases",
                                 record="--split")


def assign_split(regions: list[Region], chrom: str, start: int, end: int) -> str | None:
    """The split of a window: that of the held-out (valid / test) regions holding it, train if none touches
    it, None if it straddles a held-out region's edge (train regions only document the default)."""
    touched = [r for r in regions if r.chrom == chrom and r.split != "train" and r.overlaps(start, end)]
    if not touched:
        return "train"
    if len({r.split for r in touched}) > 1:
        return None
    covered = start  # the window must be covered by the union of the split's regions
    for r in sorted(touched, key=lambda r: -1 if r.start is None else r.start):
        if r.start is None:
            return r.split
        if r.start > covered:
            return None
        covered = max(covered, r.end)  # type: ignore[type-var]
    return touched[0].split if covered >= end else None


def _canonical(regions: list[Region], index: dict[str, int], sizes: np.ndarray) -> list[Region]:
    """Regions named by record number (a genome's aliases, e.g. an NCBI id and its accession, are one
    chromosome), checked against the genome."""
    missing = sorted({r.chrom for r in regions} - set(index))
    if missing:
        raise HelixError(f"--split names chromosomes not in the genome: {', '.join(missing)}", record="--split")
    for r in regions:
        if r.end is not None and r.end > sizes[index[r.chrom]]:
            raise HelixError(f"--split region {r.chrom}:{r.start}-{r.end} ends past the chromosome's end "
                             f"({int(sizes[index[r.chrom]]):,} bp)", record="--split")
    out = [Region(str(index[r.chrom]), r.split, r.start, r.end) for r in regions]
    check_overlaps(out)
    return out


def duplicate_rows(bed: Bed) -> np.ndarray:
    """Indices of intervals equal (chromosome, start, end, strand) to an earlier one."""
    seen: dict[tuple[str, int, int, str], int] = {}
    dup = []
    for i, key in enumerate(zip(bed.chrom, bed.start.tolist(), bed.end.tolist(), bed.strand.tolist())):
        if key in seen:
            dup.append(i)
        else:
            seen[key] = i
    return np.array(dup, dtype=np.int64)


def prepare_intervals(bed_path: str | os.PathLike[str], genome: str | os.PathLike[str], out: str | os.PathLike[str],
                      *, length: int | None = None, summit: str | None = None, labels: list[str] | None = None,
                      label: float | None = None, edge: str = "drop", duplicates: str = "keep",
                      split: list[Region] | None = None, strand: bool = True, overwrite: bool = False
                      ) -> dict[str, Any]:
    """Prepare the sequences of a BED file's intervals (one prepared directory, or one per split under
    `out` with a split: `parse_split`); returns the counts (also written to OUT/intervals.json)."""
    out = Path(out)
    if duplicates not in DUPLICATES:
        raise HelixError(f"unknown duplicates policy {duplicates!r}; choose from {', '.join(DUPLICATES)}",
                         record="--duplicates")
    if (labels and label is not None) or (not labels and label is None):
        raise HelixError("give the labels as --label-col COLUMN (repeat for several) or one constant --label VALUE",
                         record="--label-col")
    if (out / "intervals.json").exists() and not overwrite:
        raise HelixError("output directory already holds prepared intervals; choose another or remove it",
                         path=str(out))
    bed = read_bed(bed_path)
    values = np.stack([bed.numeric(c) for c in labels], 1) if labels else np.full((len(bed), 1), float(label))
    names = list(labels) if labels else ["label"]
    dups = duplicate_rows(bed)
    if len(dups) and duplicates == "refuse":
        raise HelixError(f"{len(dups)} duplicate intervals (the same chromosome, start, end and strand), the first "
                         f"at line {bed.lines[dups[0]]}; --duplicates keep to keep them", path=bed.path)
    out.mkdir(parents=True, exist_ok=True)
    shard = open_genome(genome, out / "genome")
    index = record_index(shard)
    regions = _canonical(split or [], index, np.diff(record_offsets(shard)))
    got = cut(shard, bed, length=length, summit=summit, edge=edge, strand=strand)
    report: dict[str, Any] = {"bed": str(bed_path), "genome": str(genome), "intervals": len(bed),
                              "kept": len(got.kept), "dropped": got.dropped, "duplicates": int(len(dups)),
                              "length": length, "labels": names, "splits": {}}
    parts: dict[str, list[int]] = {}
    straddling = 0
    for k, i in enumerate(got.kept):
        name = assign_split(regions, str(index[bed.chrom[i]]), *got.windows[k].tolist()) if regions else "all"
        if name is None:
            straddling += 1
            continue
        parts.setdefault(name, []).append(k)
    if regions:
        report["dropped"]["straddles_split"] = straddling
        report["kept"] -= straddling
    if not parts:
        raise HelixError("no interval is left to prepare (all were dropped; see --edge and --split)",
                         path=bed.path)
    tmp = out / ".intervals"
    tmp.mkdir(exist_ok=True)
    for name, ks in sorted(parts.items()):
        table = tmp / f"{name}.csv"
        rows = ["id,sequence," + ",".join(names)]
        for k in ks:
            i = got.kept[k]
            rows.append(f"{bed.names[i].replace(',', ';')},{alphabet.decode(got.seqs[k])},"
                        + ",".join(f"{v:.10g}" for v in values[i]))
        write_text(table, "\n".join(rows) + "\n")
        prepare([str(table)], out / name, fmt="csv", seq_col="sequence",
                label_cols=names, id_col="id", length="auto", require_labels=True, unique_ids=False,
                overwrite=True, progress=False)
        report["splits"][name] = {"records": len(ks),
                                  "chromosomes": sorted({bed.chrom[got.kept[k]] for k in ks})}
    if regions:
        report["regions"] = [[r.chrom, r.start, r.end, r.split] for r in split or []]
    write_json(out / "intervals.json", report)
    return report
