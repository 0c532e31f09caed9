"""Variant effects: the predicted output of the alternative sequence minus that of the reference.

A variants table (CSV or TSV, header required) is one of:
  - `sequence, position, ref, alt`: `position` is 0-based in the sequence as written; `ref` must match
    the bases there (case-insensitive); `alt` replaces them (single bases or equal-length blocks; for
    models of any length, other lengths too);
  - `id, position, ref, alt` with the sequences given apart (FASTA or table, by record id);
  - `ref_sequence, alt_sequence`: pairs of whole sequences.
An optional `id` column names the variants in the output (else the 0-based row number).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from helixlab.data.formats import open_text, read_records
from helixlab.apply.api import load
from helixlab.errors import HelixError
from helixlab.paths import atomic_path

BASES = set("ACGTN")


@dataclass
class Variants:
    ids: list[str]
    ref: list[str]  # the reference sequences
    alt: list[str]  # the alternative sequences
    lines: np.ndarray  # the line of each variant in its file (for messages)
    source: str


def _table(path: str) -> tuple[list[str], list[dict[str, str]], list[int]]:
    """Header, rows and their line numbers of a CSV/TSV(.gz) table; blank lines skipped."""
    sep = "\t" if any(ext in Path(path).name for ext in (".tsv", ".txt")) else ","
    with open_text(path) as fh:
        reader = csv.reader(fh, delimiter=sep)
        header = next(reader, None)
        if not header:
            raise HelixError("the variants table has no header", path=path)
        columns = [c.strip() for c in header]
        rows, lines = [], []
        for values in reader:
            if not any(v.strip() for v in values):
                continue
            if len(values) != len(columns):
                raise HelixError(f"{len(values)} fields where the header has {len(columns)}", path=path,
                                 record=f"line {reader.line_num}")
            rows.append({c: v.strip() for c, v in zip(columns, values)})
            lines.append(reader.line_num)
    if not rows:
        raise HelixError("the variants table has no rows", path=path)
    return columns, rows, lines


def _sequences(path: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for chunk in read_records(path):
        if chunk.ids is None or chunk.seqs is None:
            raise HelixError("the sequences file needs record ids (FASTA headers or an id column)", path=path)
        for rid, seq in zip(chunk.ids, chunk.seqs):
            out[rid.split()[0]] = seq
    return out


def read_variants(path: str | os.PathLike[str], sequences: str | os.PathLike[str] | None = None) -> Variants:
    """Reference and alternative sequences of every row; errors name the file and line."""
    path = str(path)
    columns, rows, line_numbers = _table(path)
    have = set(columns)
    lines = np.array(line_numbers)
    ids = [r["id"] if "id" in have and r["id"] else str(i) for i, r in enumerate(rows)]
    if {"ref_sequence", "alt_sequence"} <= have:
        return Variants(ids, [r["ref_sequence"] for r in rows], [r["alt_sequence"] for r in rows], lines, path)
    if not {"position", "ref", "alt"} <= have or not ({"sequence"} & have or ("id" in have and sequences)):
        raise HelixError("a variants table needs the columns sequence,position,ref,alt (or id,position,ref,alt "
                         f"with --sequences, or ref_sequence,alt_sequence); found {', '.join(columns)}", path=path)
    by_id = _sequences(str(sequences)) if "sequence" not in have and sequences else {}
    refs, alts = [], []
    for r, n in zip(rows, line_numbers):
        line = f"line {n}"
        if "sequence" in have:
            seq = r["sequence"]
        elif r["id"] in by_id:
            seq = by_id[r["id"]]
        else:
            raise HelixError(f"no sequence with id {r['id']!r} in {sequences}", path=path, record=line)
        try:
            pos = int(r["position"])
        except ValueError:
            raise HelixError(f"position {r['position']!r} is not an integer", path=path, record=line) from None
        ref, alt = r["ref"].upper(), r["alt"].upper()
        if not ref or not alt or not set(ref + alt) <= BASES:
            raise HelixError(f"ref {r['ref']!r} and alt {r['alt']!r} must be bases (A, C, G, T, N)", path=path,
                             record=line)
        if not 0 <= pos <= len(seq) - len(ref):
            raise HelixError(f"position {pos} (0-based) with ref {ref!r} is outside the {len(seq)}-base sequence",
                             path=path, record=line)
        found = seq[pos : pos + len(ref)].upper()
        if found != ref:
            raise HelixError(f"ref {ref!r} does not match the sequence, which has {found!r} at position {pos} "
                             "(positions are 0-based)", path=path, record=line)
        refs.append(seq)
        alts.append(seq[:pos] + alt + seq[pos + len(ref) :])
    return Variants(ids, refs, alts, lines, path)


def score_variants(model: object, variants: Variants, *, batch_size: int = 512, rc_average: bool | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(reference predictions, alternative predictions), each (N, n_outputs), with a `helixlab.apply.api.Model`,
    in float32 (no bf16 autocast: effects are small differences). Bad sequences are errors naming the
    variants file and line."""
    out = []
    for seqs in (variants.ref, variants.alt):
        x, _ = model.records(seqs, source=variants.source, lines=variants.lines)  # type: ignore[attr-defined]
        out.append(model.predict_encoded(x, batch_size=batch_size, rc_average=rc_average, precision="fp32"))  # type: ignore[attr-defined]
    return out[0], out[1]


def write_scores(out: str | os.PathLike[str], variants: Variants, names: list[str], ref: np.ndarray,
                 alt: np.ndarray, *, overwrite: bool = True) -> None:
    """id, then ref_<output>, alt_<output>, effect_<output> (alt - ref) for every output."""
    with atomic_path(out, overwrite=overwrite) as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["id", *(f"{kind}_{n}" for n in names for kind in ("ref", "alt", "effect"))])
            for i, rid in enumerate(variants.ids):
                w.writerow([rid, *(f"{v:.6g}" for j in range(len(names))
                                   for v in (ref[i, j], alt[i, j], alt[i, j] - ref[i, j]))])


def score_variants_file(run_dir: str | os.PathLike[str], variants: str | os.PathLike[str],
                        out: str | os.PathLike[str], *, sequences: str | os.PathLike[str] | None = None,
                        batch_size: int = 512, rc_average: bool | None = None, device: str = "auto") -> int:
    """`helixlab score-variants`: the effect (alt - ref) of every variant of a table, with a run's model,
    written as a CSV (`write_scores`); returns how many."""
    model = load(run_dir, device=device)
    table = read_variants(variants, sequences)
    ref, alt = score_variants(model, table, batch_size=batch_size, rc_average=rc_average)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    write_scores(out, table, model.output_names, ref, alt)
    return len(table.ids)
