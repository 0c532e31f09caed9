"""Motif databases, offline: JASPAR collections (the `pyjaspar` package ships the SQLite database) and
MEME-format files (read with `memelite`).

    motifs = load_database(["jaspar:vertebrates"])      # list[Motif]: id, name, ppm (4, L)
    jaspar_motif("MA0108")                               # one matrix by id (latest version)
    consensus("MA0108")                                  # its most likely sequence, 'TATAAAA'

Names: `jaspar:vertebrates`, `jaspar:fungi`, `jaspar:insects`, `jaspar:plants`, `jaspar:nematodes`,
`jaspar:urochordates`, `jaspar:all` (the CORE collection of that taxon), optionally with a release,
`jaspar2024:fungi`; anything else is a MEME file path.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from helixlab.errors import HelixError
from helixlab.paths import write_text

TAXA = ("vertebrates", "fungi", "insects", "plants", "nematodes", "urochordates", "all")
RELEASE = "JASPAR2024"
JASPAR_ID = re.compile(r"^MA\d{4}(\.\d+)?$", re.IGNORECASE)


@dataclass
class Motif:
    id: str
    name: str
    ppm: np.ndarray  # (4, L) base probabilities, rows A C G T


def _db(release: str = RELEASE):  # type: ignore[no-untyped-def]
    try:
        from pyjaspar import jaspardb
    except ImportError:
        raise HelixError("the JASPAR database needs the pyjaspar package (pip install pyjaspar)") from None
    try:
        return jaspardb(release=release)
    except Exception as exc:  # a release pyjaspar does not ship
        raise HelixError(f"JASPAR release {release!r} is not available offline ({exc})", record="--database") from None


def _from_jaspar(m) -> Motif:  # type: ignore[no-untyped-def]
    counts = np.array([m.counts[b] for b in "ACGT"], dtype=np.float64)
    return Motif(m.matrix_id, m.name, counts / np.maximum(counts.sum(0, keepdims=True), 1e-9))


def jaspar_motif(matrix_id: str, *, option: str = "--motif") -> Motif:
    """One JASPAR matrix by id ('MA0108' is its latest version, 'MA0108.2' that version)."""
    if not JASPAR_ID.match(matrix_id):
        raise HelixError(f"{matrix_id!r} is not a JASPAR matrix id (MA followed by 4 digits)", record=option)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = _db().fetch_motif_by_id(matrix_id.upper())
    if m is None:
        raise HelixError(f"unknown JASPAR matrix id {matrix_id!r} (not in {RELEASE})", record=option)
    return _from_jaspar(m)


def consensus(matrix_id: str, *, option: str = "--motif") -> str:
    """The most likely sequence of a JASPAR matrix."""
    return "".join("ACGT"[i] for i in jaspar_motif(matrix_id, option=option).ppm.argmax(0))


def load_database(names: list[str]) -> list[Motif]:
    """The motifs of every named collection or MEME file, in order."""
    motifs: list[Motif] = []
    for name in names:
        if ":" in name and name.split(":", 1)[0].lower().startswith("jaspar"):
            motifs += _collection(name)
        else:
            motifs += read_meme(name)
    if not motifs:
        raise HelixError("the motif database is empty", record="--database")
    return motifs


def _collection(name: str) -> list[Motif]:
    head, taxon = name.split(":", 1)
    release = RELEASE if head.lower() == "jaspar" else head.upper()
    taxon = taxon.lower()
    if taxon not in TAXA:
        raise HelixError(f"unknown JASPAR taxon {taxon!r}; choose from {', '.join(TAXA)}", record="--database")
    kwargs = {"collection": "CORE", "all_versions": False}
    if taxon != "all":
        kwargs["tax_group"] = [taxon]
    return [_from_jaspar(m) for m in _db(release).fetch_motifs(**kwargs)]


def read_meme(path: str | Path) -> list[Motif]:
    """Motifs of a MEME-format file (letter-probability matrices)."""
    p = Path(path)
    if not p.is_file():
        raise HelixError("motif database not found (a MEME file, or jaspar:TAXON)", path=str(p), record="--database")
    from memelite.io import read_meme as _read

    try:
        table = _read(str(p))
    except Exception as exc:
        raise HelixError(f"not a readable MEME motif file ({exc})", path=str(p)) from None
    out = []
    for key, pwm in table.items():
        parts = key.split()
        ppm = np.asarray(pwm, dtype=np.float64)
        ppm = ppm if ppm.shape[0] == 4 else ppm.T
        out.append(Motif(parts[0] if parts else key, " ".join(parts[1:]) or key, ppm))
    return out


def write_meme(path: Path, motifs: list[Motif]) -> None:
    """A MEME-format file of the motifs (probabilities), e.g. the discovered ones for other tools."""
    lines = ["MEME version 4", "", "ALPHABET= ACGT", "", "strands: + -", "",
             "Background letter frequencies", "A 0.25 C 0.25 G 0.25 T 0.25", ""]
    for m in motifs:
        lines += [f"MOTIF {m.id} {m.name}", "", f"letter-probability matrix: alength= 4 w= {m.ppm.shape[1]}"]
        lines += [" ".join(f"{v:.6f}" for v in col) for col in m.ppm.T]
        lines.append("")
    write_text(path, "\n".join(lines) + "\n")
