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

from helixlab.errors import HelixError
from helixlab.io import atomic_path, read_records

BASES = set("ACGTN")


@dataclass
class Variants:
    ids: list[str]
    ref: list[str]  # the reference sequences
    alt: list[str]  # the alternative sequences


def _table(path: str) -> tuple[list[str], list[dict[str, str]]]:
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise HelixError("variants file not found", path=path)
    sep = "\t" if ".tsv" in p.name or ".txt" in p.name else ","
    try:
        frame = pd.read_csv(p, sep=sep, dtype=str, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise HelixError(f"cannot read the variants table: {exc}", path=path) from None
    if frame.empty:
        raise HelixError("the variants table has no rows", path=path)
    return [c.strip() for c in frame.columns], [{k.strip(): v.strip() for k, v in r.items()}
                                                for r in frame.to_dict("records")]


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
    columns, rows = _table(path)
    have = set(columns)
    ids = [r["id"] if "id" in have and r["id"] else str(i) for i, r in enumerate(rows)]
    if {"ref_sequence", "alt_sequence"} <= have:
        return Variants(ids, [r["ref_sequence"] for r in rows], [r["alt_sequence"] for r in rows])
    if not {"position", "ref", "alt"} <= have or not ({"sequence"} & have or ("id" in have and sequences)):
        raise HelixError("a variants table needs the columns sequence,position,ref,alt (or id,position,ref,alt "
                         f"with --sequences, or ref_sequence,alt_sequence); found {', '.join(columns)}", path=path)
    by_id = _sequences(str(sequences)) if "sequence" not in have and sequences else {}
    refs, alts = [], []
    for i, r in enumerate(rows):
        line = f"line {i + 2}"
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
    return Variants(ids, refs, alts)


def score_variants(model: object, variants: Variants, *, batch_size: int = 512, rc_average: bool | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(reference predictions, alternative predictions), each (N, n_outputs), with a `helixlab.api.Model`."""
    ref = model.predict(variants.ref, batch_size=batch_size, rc_average=rc_average)  # type: ignore[attr-defined]
    alt = model.predict(variants.alt, batch_size=batch_size, rc_average=rc_average)  # type: ignore[attr-defined]
    return ref, alt


def write_scores(out: str | os.PathLike[str], variants: Variants, names: list[str], ref: np.ndarray,
                 alt: np.ndarray, *, overwrite: bool = False) -> None:
    """id, then ref_<output>, alt_<output>, effect_<output> (alt - ref) for every output."""
    with atomic_path(out, overwrite=overwrite) as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["id", *(f"{kind}_{n}" for n in names for kind in ("ref", "alt", "effect"))])
            for i, rid in enumerate(variants.ids):
                w.writerow([rid, *(f"{v:.6g}" for j in range(len(names))
                                   for v in (ref[i, j], alt[i, j], alt[i, j] - ref[i, j]))])
