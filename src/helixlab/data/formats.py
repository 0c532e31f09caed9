"""Streaming readers for FASTA(.gz), CSV/TSV(.gz) tables and DREAM `sequence<TAB>value` lines.

Every reader yields `Chunk`s of at most `chunk_rows` records, so a 10 M-row file is never held
as Python strings all at once. Problems raise `HelixError` naming the file and the line.
"""

from __future__ import annotations

import gzip
import io
import os
import zlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

import numpy as np

from helixlab.errors import HelixError

Format = Literal["auto", "fasta", "csv", "tsv", "dream"]
FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".fas")
SEQ_COLUMNS = ("sequence", "seq")
LABEL_COLUMNS = ("label", "expression", "promoter_presence", "target", "y")
ID_COLUMNS = ("id", "name", "idx")


@dataclass
class Chunk:
    """Up to `chunk_rows` records: sequences as str (or, from the DREAM reader, their raw bytes back to
    back in `raw` with `lengths`), labels (n, T) float64, source line numbers, record ids."""

    seqs: list[str] | None
    lines: np.ndarray
    labels: np.ndarray | None = None
    ids: list[str] | None = None
    raw: bytes | None = None
    lengths: np.ndarray | None = None


def _strip_gz(path: Path) -> str:
    name = path.name.lower()
    return name[:-3] if name.endswith(".gz") else name


def detect_format(path: str | os.PathLike[str]) -> Format:
    """Guess the format from the file name; headerless tab files are DREAM lines."""
    p = Path(path)
    name = _strip_gz(p)
    if name.endswith(FASTA_SUFFIXES):
        return "fasta"
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".tsv", ".txt")):
        with open_text(p) as fh:
            first = next((line for line in fh if line.strip()), "").split("\t")[0].strip()
        if first and set(first.upper()) <= set("ACGTN"):
            return "dream"
        return "tsv"
    raise HelixError("cannot tell the format from the name; expected .fa/.fasta/.fna, .csv, .tsv or .txt "
                     "(optionally .gz), or pass the format explicitly", path=str(path))


UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")  # (UTF-32 little-endian starts like UTF-16 little-endian)


def open_binary(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open a file for reading bytes, gunzipping .gz, after a UTF-8 byte-order mark if there is one.
    Missing or empty files and UTF-16/32 text (which no reader here can parse) are errors naming the file."""
    p = Path(path)
    if not p.exists():
        raise HelixError("file not found", path=str(p))
    if p.is_dir():
        raise HelixError("expected a file, found a directory", path=str(p))
    if p.stat().st_size == 0:
        raise HelixError("file is empty", path=str(p))
    fh: IO[bytes] = _CheckedGzip(p) if p.name.endswith(".gz") else open(p, "rb")
    head = fh.peek(4)[:4]  # type: ignore[attr-defined]
    if head.startswith(UTF8_BOM):
        fh.read(len(UTF8_BOM))
    elif head[:2] in UTF16_BOMS:
        fh.close()
        raise HelixError("file is UTF-16 or UTF-32 text; save it as UTF-8 (or ASCII) text", path=str(p))
    return fh


def open_text(path: str | os.PathLike[str]) -> IO[str]:
    """`open_binary` as text; bytes outside ASCII become U+FFFD, which every reader reports as a bad
    character on its line."""
    return io.TextIOWrapper(open_binary(path), encoding="ascii", errors="replace", newline="")


class _CheckedGzip(gzip.GzipFile):
    """A GzipFile whose truncation and corruption errors name the file."""

    def __init__(self, path: Path) -> None:
        super().__init__(filename=str(path), mode="rb")
        self._path = str(path)

    def read(self, size: int = -1) -> bytes:
        try:
            return super().read(size)
        except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
            raise HelixError(f"gzip stream is truncated or corrupt ({exc})", path=self._path) from None

    def read1(self, size: int = -1) -> bytes:
        try:
            return super().read1(size)
        except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
            raise HelixError(f"gzip stream is truncated or corrupt ({exc})", path=self._path) from None

    def peek(self, n: int) -> bytes:
        try:
            return super().peek(n)
        except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
            raise HelixError(f"gzip stream is truncated or corrupt ({exc})", path=self._path) from None


def read_fasta(path: str | os.PathLike[str], chunk_rows: int = 100_000) -> Iterator[Chunk]:
    """Stream FASTA records as chunks; ids are the first word of each header."""
    ids: list[str] = []
    seqs: list[str] = []
    lines: list[int] = []
    parts: list[str] = []
    with open_text(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            line = line.strip()
            if not line:
                continue
            if line.startswith(">"):
                if ids:
                    if not parts:
                        raise HelixError("record has no sequence", path=str(path),
                                         record=f"line {lines[-1]} (>{ids[-1]})")
                    seqs.append("".join(parts))
                    parts = []
                    if len(seqs) >= chunk_rows:
                        yield Chunk(seqs=seqs, lines=np.array(lines[: len(seqs)]), ids=ids[: len(seqs)])
                        ids, seqs, lines = ids[len(seqs):], [], lines[len(seqs):]
                name = line[1:].split(maxsplit=1)
                if not name:
                    raise HelixError("header has no id", path=str(path), record=f"line {lineno}")
                ids.append(name[0])
                lines.append(lineno)
            else:
                if not ids:
                    raise HelixError("sequence before the first '>' header: not a FASTA file?",
                                     path=str(path), record=f"line {lineno}")
                parts.append(line)
    if not ids:
        raise HelixError("no FASTA records found", path=str(path))
    if not parts:
        raise HelixError("record has no sequence", path=str(path), record=f"line {lines[-1]} (>{ids[-1]})")
    seqs.append("".join(parts))
    yield Chunk(seqs=seqs, lines=np.array(lines), ids=ids)


def _pick(columns: list[str], wanted: str | None, defaults: tuple[str, ...], what: str, path: str) -> str | None:
    if wanted is not None:
        if wanted not in columns:
            raise HelixError(f"no {what} column {wanted!r}; columns are {columns}", path=path, record="line 1")
        return wanted
    return next((c for c in defaults if c in columns), None)


def read_table(
    path: str | os.PathLike[str],
    fmt: Format = "auto",
    seq_col: str | None = None,
    label_cols: list[str] | None = None,
    id_col: str | None = None,
    chunk_rows: int = 200_000,
    require_labels: bool = False,
    where: str | None = None,
) -> Iterator[Chunk]:
    """Stream a CSV/TSV (header row) table as chunks; DREAM lines go to the fast `read_dream`.

    `seq_col` defaults to sequence/seq; `label_cols` to the first of label/expression/
    promoter_presence/target/y present (none for an unlabelled table). `where` = 'column=value'
    keeps only the rows with that value (line numbers stay those of the file).
    """
    path = str(path)
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt == "fasta":
        raise HelixError("read_table got a FASTA file; use read_fasta", path=path)
    where_col, where_value = parse_where(where, path)
    if fmt == "dream":
        if where_col is not None:
            raise HelixError("DREAM lines have no named columns to select rows by (where)", path=path)
        yield from read_dream(path, require_labels=require_labels)
        return
    import pandas as pd

    sep = "," if fmt == "csv" else "\t"
    with open_text(path) as fh:
        try:
            reader = pd.read_csv(fh, sep=sep, header=0, chunksize=chunk_rows,
                                 dtype=str, keep_default_na=False, na_values=[""], engine="c")
            first = True
            row0 = 0
            for frame in reader:
                frame.columns = [str(c).strip() for c in frame.columns]  # 'sequence , label ' names them too
                if first:
                    columns = list(frame.columns)
                    scol = _pick(columns, seq_col, SEQ_COLUMNS, "sequence", path)
                    if scol is None:
                        raise HelixError(f"no sequence column (looked for {list(SEQ_COLUMNS)}); columns are "
                                         f"{columns}", path=path, record="line 1")
                    if label_cols:
                        lcols = [_pick(columns, c, (), "label", path) for c in label_cols]
                    else:
                        found = _pick(columns, None, LABEL_COLUMNS, "label", path)
                        lcols = [found] if found else []
                    if require_labels and not lcols:
                        raise HelixError(f"no label column (looked for {list(LABEL_COLUMNS)}); columns are "
                                         f"{columns}: name one with --label-col (data.label_cols in a recipe), or "
                                         "prepare with --unlabelled for sequences without labels", path=path,
                                         record="line 1")
                    icol = _pick(columns, id_col, ID_COLUMNS, "id", path)
                    if where_col is not None:
                        _pick(columns, where_col, (), "selection", path)
                    first = False
                n = len(frame)
                if n == 0:
                    continue
                lines = np.arange(row0, row0 + n) + 2  # line 1 is the header
                row0 += n
                if where_col is not None:
                    sel = (frame[where_col] == where_value).to_numpy()
                    frame, lines, n = frame[sel], lines[sel], int(sel.sum())
                    if n == 0:
                        continue
                seq_series = frame[scol].str.strip()  # trailing spaces are not bases
                missing = (seq_series.isna() | (seq_series == "")).to_numpy()
                if missing.any():
                    i = int(np.flatnonzero(missing)[0])
                    raise HelixError(f"missing sequence in column {scol!r}", path=path, record=f"line {lines[i]}")
                labels = None
                if lcols:
                    labels = np.empty((n, len(lcols)), dtype=np.float64)
                    for j, c in enumerate(lcols):
                        values = pd.to_numeric(frame[c].str.strip(), errors="coerce").to_numpy(dtype=np.float64)
                        bad = ~np.isfinite(values)
                        if bad.any():
                            i = int(np.flatnonzero(bad)[0])
                            raw = frame[c].iloc[i]
                            what = "missing" if pd.isna(raw) else f"not a finite number ({raw!r})"
                            raise HelixError(f"label in column {c!r} is {what}", path=path, record=f"line {lines[i]}")
                        labels[:, j] = values
                ids = frame[icol].astype(str).tolist() if icol else None
                yield Chunk(seqs=seq_series.tolist(), lines=lines, labels=labels, ids=ids)
            if row0 == 0:
                raise HelixError("table has a header but no records", path=path)
        except pd.errors.EmptyDataError:
            raise HelixError("file has no header and no records", path=path) from None
        except pd.errors.ParserError as exc:
            raise HelixError(f"malformed table ({' '.join(str(exc).split())})", path=path) from None


def parse_where(where: str | None, path: str) -> tuple[str | None, str | None]:
    """'column=value' -> (column, value); None -> (None, None)."""
    if where is None:
        return None, None
    col, sep, value = where.partition("=")
    if not sep or not col.strip():
        raise HelixError(f"row selection must be 'column=value', got {where!r}", path=path)
    return col.strip(), value.strip()


def read_dream(path: str | os.PathLike[str], *, require_labels: bool = False, block_bytes: int = 1 << 23,
               workers: int = 2) -> Iterator[Chunk]:
    """Stream headerless DREAM lines `sequence<TAB>value` (a file of bare sequences, one per line, is
    read unlabelled) in blocks of about `block_bytes`, parsed with numpy: no Python object per row.
    Blocks are parsed by `workers` threads (numpy releases the GIL) and yielded in file order."""
    path = str(path)
    labelled: bool | None = None
    found = False
    with open_binary(path) as fh, ThreadPoolExecutor(workers) as pool:
        pending: deque[Future[tuple[Chunk | None, int]]] = deque()

        def ready() -> Iterator[Chunk]:
            nonlocal found
            chunk, _ = pending.popleft().result()
            if chunk is not None:
                found = True
                if require_labels and chunk.labels is None:
                    raise HelixError("expected DREAM lines 'sequence<TAB>value'; no value column (prepare with "
                                     "--unlabelled for bare sequences)", path=path, record=f"line {chunk.lines[0]}")
                yield chunk

        for body, line0 in _line_blocks(fh, block_bytes):
            if labelled is None:  # fixed by the first record, for every block
                labelled = _first_has_tab(body)
            pending.append(pool.submit(_parse_dream_block, body, path, line0, labelled))
            if len(pending) > workers:
                yield from ready()
        while pending:
            yield from ready()
    if not found:
        raise HelixError("file has no records", path=path)


def _line_blocks(fh: IO[bytes], block_bytes: int) -> Iterator[tuple[bytes, int]]:
    """(whole lines of about block_bytes, the first line's number), the last line completed with a newline."""
    carry, line0 = b"", 1
    while True:
        data = fh.read(block_bytes)
        buf = carry + data
        if not data and buf and not buf.endswith(b"\n"):
            buf += b"\n"
        cut = buf.rfind(b"\n") + 1
        carry, body = buf[cut:], buf[:cut]
        if body:
            yield body, line0
            line0 += body.count(b"\n")
        if not data:
            return


def _first_has_tab(body: bytes) -> bool | None:
    """Whether the first non-blank line has a tab; None when the block is blank."""
    for line in body.split(b"\n", 1000):
        if line.strip():
            return b"\t" in line
    return None


def _parse_dream_block(body: bytes, path: str, line0: int, labelled: bool | None) -> tuple[Chunk | None, int]:
    a = np.frombuffer(body, dtype=np.uint8)
    ends = np.flatnonzero(a == 10)
    starts = np.concatenate([[0], ends[:-1] + 1])
    lines = np.arange(line0, line0 + len(ends))
    ends = ends - ((ends > starts) & (a[np.maximum(ends - 1, 0)] == 13))  # CRLF
    while True:  # trailing spaces (rare: usually no pass at all)
        space = (ends > starts) & (a[np.maximum(ends - 1, 0)] == 32)
        if not space.any():
            break
        ends = ends - space
    rows = ends > starts  # blank lines are skipped
    starts, ends, lines = starts[rows], ends[rows], lines[rows]
    n_lines = len(rows)
    if not len(starts):
        return None, n_lines
    tabs = np.flatnonzero(a == 9)
    if len(tabs):
        k = np.searchsorted(tabs, starts)
        tab = tabs[np.minimum(k, len(tabs) - 1)]
        tab = np.where((k < len(tabs)) & (tab < ends), tab, ends)
    else:
        tab = ends.copy()
    has_tab = tab < ends
    if labelled is None:
        labelled = bool(has_tab[0])
    if labelled and not has_tab.all():
        i = int(np.flatnonzero(~has_tab)[0])
        raise HelixError("expected 'sequence<TAB>value'; this line has no value", path=path, record=f"line {lines[i]}")
    if not labelled and has_tab.any():
        i = int(np.flatnonzero(has_tab)[0])
        raise HelixError("this line has a value column but the first record has none", path=path,
                         record=f"line {lines[i]}")
    seq_end = tab if labelled else np.where(has_tab, tab, ends)
    lens = seq_end - starts
    if (lens == 0).any():
        i = int(np.flatnonzero(lens == 0)[0])
        raise HelixError("empty sequence", path=path, record=f"line {lines[i]}")
    mark = np.zeros(len(a) + 1, dtype=np.int8)  # +1 at each sequence start, -1 after its end: cumsum > 0 inside
    mark[starts] = 1
    mark[seq_end] = -1
    raw = a[np.cumsum(mark[:-1], dtype=np.int8) > 0].tobytes()
    labels = None
    if labelled:
        v0 = tab + 1
        k2 = np.searchsorted(tabs, v0)
        nxt = tabs[np.minimum(k2, len(tabs) - 1)]
        v1 = np.where((k2 < len(tabs)) & (nxt < ends), nxt, ends)  # extra columns are ignored
        labels = _parse_floats(a, v0, v1, path, lines)[:, None]
    return Chunk(seqs=None, lines=lines, labels=labels, raw=raw, lengths=lens.astype(np.int64)), n_lines


def _parse_floats(a: np.ndarray, v0: np.ndarray, v1: np.ndarray, path: str, lines: np.ndarray) -> np.ndarray:
    """Decimal text fields a[v0:v1] -> float64, vectorised; errors name the first bad line."""
    width = int((v1 - v0).max())
    if width > MAX_VALUE_WIDTH:
        i = int(np.flatnonzero(v1 - v0 > MAX_VALUE_WIDTH)[0])
        raise HelixError(f"label field of {int(v1[i] - v0[i])} characters is not a number", path=path,
                         record=f"line {lines[i]}")
    empty = v1 <= v0
    if empty.any():
        i = int(np.flatnonzero(empty)[0])
        raise HelixError("label is missing", path=path, record=f"line {lines[i]}")
    cols = np.arange(width)
    idx = np.minimum(v0[:, None] + cols, len(a) - 1)
    field = np.where(cols < (v1 - v0)[:, None], a[idx], 0).astype(np.uint8)
    text = np.ascontiguousarray(field).view(f"S{width}").ravel()
    try:
        values = text.astype(np.float64)
    except ValueError:
        values = np.array([_to_float(t) for t in text.tolist()])
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise HelixError(f"label is not a finite number ({text[i].decode(errors='replace')!r})",
                         path=path, record=f"line {lines[i]}")
    return values


MAX_VALUE_WIDTH = 64


def _to_float(text: bytes) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


def read_records(path: str | os.PathLike[str], fmt: Format = "auto", **kwargs: object) -> Iterator[Chunk]:
    """Stream any supported file as chunks (FASTA or table)."""
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt == "fasta":
        return read_fasta(path, chunk_rows=int(kwargs.get("chunk_rows", 100_000)))  # type: ignore[arg-type]
    return read_table(path, fmt, **kwargs)  # type: ignore[arg-type]


def label_names(path: str | os.PathLike[str], fmt: Format = "auto", label_cols: list[str] | None = None) -> list[str]:
    """The label column names read_table would use for this file (empty for FASTA/unlabelled)."""
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt == "fasta":
        return []
    if label_cols:
        return list(label_cols)
    if fmt == "dream":  # labelled when the first record has a value column
        with open_text(path) as fh:
            first = next((line for line in fh if line.strip()), "")
        return ["expression"] if "\t" in first else []
    with open_text(path) as fh:
        header = [c.strip() for c in fh.readline().rstrip("\r\n").split("," if fmt == "csv" else "\t")]
    found = next((c for c in LABEL_COLUMNS if c in header), None)
    return [found] if found else []
