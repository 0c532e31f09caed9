"""`prepare`: encode sequence files once into uint8 memory-mapped arrays + labels + meta.json.

A prepared directory holds
  seqs.u8      the bases as uint8 codes, all records back to back
  offsets.i64  (N + 1,) record start offsets (variable length only)
  labels.f32   (N, T) float32 labels (labelled data only)
  mask.u8      lowercase (soft-mask) bits, one per base (only with keep_mask)
  ids.txt      one record id per line (when the source has ids)
  meta.json    counts, lengths, label statistics, sources with sha256
It is written under a temporary name and renamed when complete, so a failed or interrupted
prepare never leaves a half-written directory behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from helixlab.data.formats import Chunk, Format, detect_format, label_names, read_records
from helixlab.errors import HelixError
from helixlab.progress import progress_bar
from helixlab.seq import alphabet
from helixlab.seq.transforms import SeqOptions

LengthMode = Literal["auto", "fixed", "variable"]
FORMAT_VERSION = 1


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _LabelStats:
    """Streaming count / min / max / mean / sd per label column, plus value counts when few."""

    def __init__(self, n_cols: int) -> None:
        self.n = 0
        self.sum = np.zeros(n_cols)
        self.sumsq = np.zeros(n_cols)
        self.min = np.full(n_cols, np.inf)
        self.max = np.full(n_cols, -np.inf)
        self.counts: list[dict[float, int] | None] = [{} for _ in range(n_cols)]

    def update(self, y: np.ndarray) -> None:
        self.n += len(y)
        self.sum += y.sum(0)
        self.sumsq += (y * y).sum(0)
        self.min = np.minimum(self.min, y.min(0))
        self.max = np.maximum(self.max, y.max(0))
        for j, counts in enumerate(self.counts):
            if counts is None:
                continue
            values, n = np.unique(y[:, j], return_counts=True)
            for v, c in zip(values.tolist(), n.tolist()):
                counts[v] = counts.get(v, 0) + c
            if len(counts) > 20:
                self.counts[j] = None

    def as_dict(self, names: list[str]) -> dict[str, dict[str, object]]:
        mean = self.sum / max(self.n, 1)
        var = np.maximum(self.sumsq / max(self.n, 1) - mean**2, 0.0)
        out: dict[str, dict[str, object]] = {}
        for j, name in enumerate(names):
            counts = self.counts[j]
            out[name] = {
                "min": float(self.min[j]), "max": float(self.max[j]),
                "mean": float(mean[j]), "sd": float(np.sqrt(var[j])),
                "value_counts": ({f"{k:g}": v for k, v in sorted(counts.items())} if counts is not None else None),
            }
        return out


def prepare(
    inputs: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    fmt: Format = "auto",
    seq_col: str | None = None,
    label_cols: list[str] | None = None,
    id_col: str | None = None,
    length: LengthMode = "auto",
    iupac: alphabet.IupacPolicy = "error",
    keep_mask: bool = False,
    require_labels: bool = False,
    unique_ids: bool = True,
    overwrite: bool = False,
    progress: bool = True,
    where: str | None = None,
    options: SeqOptions | None = None,
) -> Path:
    """Encode `inputs` into a prepared directory `out_dir` and return its path.

    where: 'column=value' keeps only the table rows with that value (e.g. 'dev_split=train').
    options: filters (drop N, keep lengths) and transforms (crop, pad) applied per record."""
    out = Path(out_dir)
    if out.exists():
        if not overwrite:
            raise HelixError("output directory already exists; choose another or remove it", path=str(out))
    if not inputs:
        raise HelixError("no input files given")
    if length not in ("auto", "fixed", "variable"):
        raise HelixError(f"length must be auto, fixed or variable, got {length!r}")
    if fmt not in ("auto", "fasta", "csv", "tsv", "dream"):
        raise HelixError(f"format must be auto, fasta, csv, tsv or dream, got {fmt!r}")
    if iupac not in alphabet.LUTS:
        raise HelixError(f"iupac must be 'error' or 'n', got {iupac!r}")
    options = options or SeqOptions()
    options.check()
    if keep_mask and options.transforms:
        raise HelixError("keep_mask cannot be combined with crop or pad_to")
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        meta = _write(inputs, tmp, fmt=fmt, seq_col=seq_col, label_cols=label_cols, id_col=id_col,
                      length=length, iupac=iupac, keep_mask=keep_mask, require_labels=require_labels,
                      unique_ids=unique_ids, bar=progress_bar(progress, unit=" seqs", desc="prepare"),
                      where=where, options=options)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def encode_chunk(chunk: Chunk, path: str, iupac: alphabet.IupacPolicy = "error"
                 ) -> tuple[np.ndarray, np.ndarray, bytes]:
    """Encode a chunk's sequences back to back: (codes (sum L,) uint8, lengths (n,), raw bytes).

    Raises HelixError naming the file, the line, the record id and the offending character.
    """
    if chunk.raw is not None and chunk.lengths is not None:
        lens, raw = chunk.lengths, chunk.raw
    else:
        assert chunk.seqs is not None
        lens = np.fromiter((len(s) for s in chunk.seqs), dtype=np.int64, count=len(chunk.seqs))
        raw = "".join(chunk.seqs).encode("ascii", errors="replace")
    if (lens == 0).any():
        i = int(np.flatnonzero(lens == 0)[0])
        raise HelixError("empty sequence", path=path, record=f"line {chunk.lines[i]}")
    codes = alphabet.LUTS[iupac][np.frombuffer(raw, dtype=np.uint8)]
    bad = alphabet.first_invalid(codes)
    if bad >= 0:
        ends = np.cumsum(lens)
        i = int(np.searchsorted(ends, bad, side="right"))
        pos = bad - (int(ends[i - 1]) if i else 0)
        char = chr(raw[bad])
        rid = f" ({chunk.ids[i]})" if chunk.ids else ""
        hint = " (an IUPAC ambiguity code; use iupac='n' to read it as N)" \
            if char.upper() in alphabet.IUPAC_AMBIGUOUS else ""
        raise HelixError(f"invalid character {char!r} at position {pos + 1}; expected A, C, G, T or N" + hint,
                         path=path, record=f"line {chunk.lines[i]}{rid}")
    return codes, lens, raw


def _write(inputs: Sequence[str | os.PathLike[str]], tmp: Path, *, fmt: Format, seq_col: str | None,
           label_cols: list[str] | None, id_col: str | None, length: LengthMode, iupac: alphabet.IupacPolicy,
           keep_mask: bool, require_labels: bool, unique_ids: bool, bar: object, where: str | None,
           options: SeqOptions) -> dict[str, object]:
    n_total = 0
    n_bases = 0
    first_len: int | None = None
    min_len, max_len = np.iinfo(np.int64).max, 0
    offsets: list[np.ndarray] = [np.zeros(1, dtype=np.int64)]
    names: list[str] | None = None
    stats: _LabelStats | None = None
    seen_ids: set[str] = set()
    sources = []
    has_ids: bool | None = None
    dropped = 0
    with open(tmp / "seqs.u8", "wb") as fseq, open(tmp / "labels.f32", "wb") as flab, \
            open(tmp / "ids.txt", "w") as fids, open(tmp / "mask.u8", "wb") as fmask, ThreadPoolExecutor(1) as hasher:
        for path in inputs:
            path = str(path)
            these = label_names(path, fmt, label_cols) if fmt != "fasta" else []
            if names is None:
                names = these
                stats = _LabelStats(len(names)) if names else None
            elif these != names:
                raise HelixError(f"label columns {these} differ from the first file's {names}", path=path)
            n_file = 0
            digest = hasher.submit(sha256_file, path)  # on another core while the file is parsed
            for chunk in read_records(path, fmt, **({} if _is_fasta(path, fmt) else dict(
                    seq_col=seq_col, label_cols=label_cols, id_col=id_col, require_labels=require_labels,
                    where=where))):
                codes, lens, raw = encode_chunk(chunk, path, iupac)
                if options.drop_n or options.lengths is not None:
                    keep = options.keep(codes, lens)
                    if not keep.all():
                        dropped += int((~keep).sum())
                        chunk, codes, raw, lens = _subset(chunk, keep, codes, raw if keep_mask else None, lens)
                        if not len(lens):
                            continue
                codes, lens = options.apply(codes, lens, path=path, lines=chunk.lines)
                if length == "fixed":
                    first_len = int(lens[0]) if first_len is None else first_len
                    ragged = np.flatnonzero(lens != first_len)
                    if ragged.size:
                        i = int(ragged[0])
                        raise HelixError(f"sequence length {lens[i]} differs from {first_len}; fixed length "
                                         "required", path=path, record=f"line {chunk.lines[i]}")
                min_len, max_len = min(min_len, int(lens.min())), max(max_len, int(lens.max()))
                fseq.write(codes.tobytes())
                if keep_mask:
                    fmask.write(alphabet.lowercase_mask(np.frombuffer(raw, dtype=np.uint8)).tobytes())
                offsets.append(n_bases + np.cumsum(lens))
                n_bases += int(lens.sum())
                if names:
                    assert chunk.labels is not None and stats is not None
                    stats.update(chunk.labels)
                    flab.write(chunk.labels.astype(np.float32).tobytes())
                chunk_has_ids = chunk.ids is not None
                if has_ids is None:
                    has_ids = chunk_has_ids
                elif has_ids != chunk_has_ids:
                    raise HelixError("some inputs have record ids and others do not", path=path)
                if chunk.ids is not None:
                    if unique_ids:
                        for k, rid in enumerate(chunk.ids):
                            if rid in seen_ids:
                                raise HelixError(f"duplicate record id {rid!r}", path=path,
                                                 record=f"line {chunk.lines[k]}")
                            seen_ids.add(rid)
                    fids.write("\n".join(chunk.ids) + "\n")
                n_file += len(lens)
                bar.update(len(lens))  # type: ignore[attr-defined]
            n_total += n_file
            sources.append({"path": os.path.abspath(path), "records": n_file, "sha256": digest.result()})
    bar.close()  # type: ignore[attr-defined]
    if n_total == 0:
        raise HelixError("no records left" + (f" after dropping {dropped:,} by the filters" if dropped else "")
                         + (f" with {where}" if where else ""), path=str(inputs[0]))
    fixed = min_len == max_len
    if not fixed:
        np.concatenate(offsets).tofile(tmp / "offsets.i64")
    for name, keep in (("labels.f32", bool(names)), ("ids.txt", bool(has_ids)), ("mask.u8", keep_mask)):
        if not keep:
            (tmp / name).unlink()
    return {
        "format_version": FORMAT_VERSION,
        "records": n_total,
        "bases": n_bases,
        "length": int(min_len) if fixed else None,
        "min_length": int(min_len),
        "max_length": int(max_len),
        "labels": names or [],
        "label_stats": stats.as_dict(names) if stats and names else {},
        "has_ids": bool(has_ids),
        "has_mask": keep_mask,
        "iupac": iupac,
        "where": where,
        "options": options.as_dict(),
        "dropped": dropped,
        "sources": sources,
    }


def _subset(chunk: Chunk, keep: np.ndarray, codes: np.ndarray, raw: bytes | None, lens: np.ndarray
            ) -> tuple[Chunk, np.ndarray, bytes | None, np.ndarray]:
    """The records of a chunk where `keep` is true, with their codes and (if given) raw bytes."""
    per_base = np.repeat(keep, lens)
    rows = np.flatnonzero(keep)
    sub = Chunk(seqs=[chunk.seqs[i] for i in rows] if chunk.seqs is not None else None, lines=chunk.lines[keep],
                labels=chunk.labels[keep] if chunk.labels is not None else None,
                ids=[chunk.ids[i] for i in rows] if chunk.ids is not None else None)
    sub_raw = np.frombuffer(raw, dtype=np.uint8)[per_base].tobytes() if raw is not None else None
    return sub, codes[per_base], sub_raw, lens[keep]


def _is_fasta(path: str, fmt: Format) -> bool:
    return (fmt if fmt != "auto" else detect_format(path)) == "fasta"


@dataclass
class Shard:
    """A prepared directory opened read-only as memory maps."""

    path: Path
    meta: dict[str, object]
    seqs: np.ndarray
    offsets: np.ndarray | None
    labels: np.ndarray | None

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Shard:
        p = Path(path)
        meta_path = p / "meta.json"
        if not meta_path.exists():
            raise HelixError("not a prepared directory (no meta.json); run `helixlab prepare` first", path=str(p))
        meta = json.loads(meta_path.read_text())
        n = int(meta["records"])
        length = meta["length"]
        if length is not None:
            seqs = np.memmap(p / "seqs.u8", dtype=np.uint8, mode="r", shape=(n, int(length)))
            offsets = None
        else:
            seqs = np.memmap(p / "seqs.u8", dtype=np.uint8, mode="r")
            offsets = np.fromfile(p / "offsets.i64", dtype=np.int64)
        labels = None
        if meta["labels"]:
            labels = np.memmap(p / "labels.f32", dtype=np.float32, mode="r", shape=(n, len(meta["labels"])))
        return cls(p, meta, seqs, offsets, labels)

    def __len__(self) -> int:
        return int(self.meta["records"])  # type: ignore[arg-type]

    @property
    def length(self) -> int | None:
        return self.meta["length"]  # type: ignore[return-value]

    def codes(self, idx: np.ndarray, pad_to: int | None = None) -> np.ndarray:
        """Sequences `idx` as (n, L) uint8; variable lengths are right-padded with N."""
        if self.offsets is None:
            return np.asarray(self.seqs[idx])
        starts = self.offsets[idx]
        return alphabet.pad_batch(self.seqs, starts, self.offsets[idx + 1] - starts, pad_to)

    @property
    def mask(self) -> np.ndarray | None:
        """The soft-mask bit of every base (1 = lowercase), flat like `seqs`; None unless kept."""
        if not self.meta.get("has_mask"):
            return None
        return np.memmap(self.path / "mask.u8", dtype=np.uint8, mode="r")

    def ids(self) -> list[str]:
        """Record ids from ids.txt, or 0-based row numbers as strings."""
        if self.meta["has_ids"]:
            return (self.path / "ids.txt").read_text().splitlines()
        return [str(i) for i in range(len(self))]


def read_sequences(path: str | os.PathLike[str], what: str = "sequences", *,
                   same_length: bool = False) -> tuple[list[np.ndarray], list[str]]:
    """Every record of a FASTA or table as written: one code array per record, and ids (from the file,
    else seq0, seq1, ...). With `same_length`, ragged lengths are an error naming the record; a file
    without records is always one."""
    path = str(path)
    if not Path(path).is_file():
        raise HelixError(f"{what}: file not found", path=path)
    rows: list[np.ndarray] = []
    ids: list[str] = []
    for chunk in read_records(path):
        codes, lens, _ = encode_chunk(chunk, path)
        if not len(lens):
            continue
        ends = np.cumsum(lens)
        rows += [codes[e - n : e] for e, n in zip(ends, lens)]
        ids += chunk.ids or [f"seq{len(ids) + k}" for k in range(len(lens))]
        if same_length:
            for k, n in enumerate(lens):
                if n != len(rows[0]):
                    raise HelixError(f"{what} must share one length: {n} bp here, {len(rows[0])} bp in "
                                     "the first", path=path, record=f"line {chunk.lines[k]}")
    if not rows:
        raise HelixError(f"no {what} in the file", path=path)
    return rows, ids


def read_fixed_length(path: str | os.PathLike[str], what: str = "sequences") -> tuple[np.ndarray, list[str]]:
    """Sequences of one length from a FASTA or table, as written: (N, L) codes and ids (see read_sequences)."""
    rows, ids = read_sequences(path, what, same_length=True)
    return np.stack(rows).astype(np.uint8), ids
