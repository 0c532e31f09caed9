"""Motif discovery: which motifs a trained model has learned, named by a motif database.

    from helixlab.interpret.motifs import discover_motifs
    result = discover_motifs("runs/promoter_cnn", "promoters.fa", "motifs/", database=["jaspar:vertebrates"])

Hypothetical contributions of every base (ISM, mean-centred per position, or DeepLIFT-SHAP's
multipliers projected onto each base) -> TF-MoDISco (`modisco-lite`): seqlets clustered into motifs
-> each motif trimmed to its high-contribution core (the contiguous span around its peak) and
matched against the database with TOMTOM (`memelite`), q-values by Benjamini-Hochberg over the
database.

Written: `motifs.md` (table, logos), `logos/*.png` (contribution and sequence logo per motif),
`seqlets.csv` (record, start, end, strand, motif), `motifs.meme` (the discovered motifs), and
`contributions.npz` (the hypothetical contributions, so a second run with other clustering settings
starts from them). The same seed gives the same motifs.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from helixlab.apply.api import load
from helixlab.errors import HelixError
from helixlab.interpret.attributions import deepliftshap
from helixlab.interpret.ism import explained_model, ism
from helixlab.interpret.jaspar import Motif, load_database, write_meme
from helixlab.paths import write_npz, write_text
from helixlab.plots import pyplot, save_figure

CONTRIBUTIONS = ("ism", "deepliftshap")


@dataclass
class Found:
    """One discovered motif: its id, strand of effect, seqlets, matrices and database matches."""

    id: str
    sign: int
    seqlets: list[tuple[int, int, int, bool]]  # (record, start, end, reverse strand)
    ppm: np.ndarray  # (4, W) trimmed
    cwm: np.ndarray  # (4, W) trimmed contribution weight matrix
    matches: list[dict[str, Any]] = field(default_factory=list)

    @property
    def contribution(self) -> float:
        return float(self.cwm.sum())


@dataclass
class MotifResult:
    motifs: list[Found]
    files: list[Path]


def hypothetical_contributions(model: Any, X: np.ndarray, method: str, *, target: int = 0, seed: int = 0,
                               device: str = "cpu") -> np.ndarray:
    """(N, 4, L) hypothetical contributions: what each base would contribute at each position."""
    if method == "ism":
        effect = ism(model, X, target=target, device=device)
        return effect - effect.mean(1, keepdims=True)
    if method == "deepliftshap":
        return deepliftshap(model, X, target=target, device=device, seed=seed, hypothetical=True)
    raise HelixError(f"unknown contribution method {method!r}; choose from {', '.join(CONTRIBUTIONS)}",
                     record="--method")


def trim(ppm: np.ndarray, cwm: np.ndarray, threshold: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """The core of a motif: the contiguous span around its peak position whose |contribution| stays at
    least `threshold` of the peak's (the peak position alone if its neighbours fall below)."""
    score = np.abs(cwm).sum(0)
    peak = int(np.argmax(score))
    lo, hi = peak, peak + 1
    while lo > 0 and score[lo - 1] >= threshold * score[peak]:
        lo -= 1
    while hi < len(score) and score[hi] >= threshold * score[peak]:
        hi += 1
    return ppm[:, lo:hi], cwm[:, lo:hi]


def match(motifs: list[Found], database: list[Motif], top: int = 3) -> None:
    """TOMTOM of every motif against the database (both strands): the `top` best matches with p- and
    q-values (Benjamini-Hochberg over the database, per motif), in place."""
    from memelite import tomtom

    if not motifs:
        return
    pvals = tomtom([m.ppm.astype(np.float64) for m in motifs], [t.ppm for t in database], n_jobs=1)[0]
    for m, p in zip(motifs, pvals):
        q = _bh(p)
        order = np.argsort(p, kind="stable")[:top]
        m.matches = [{"id": database[j].id, "name": database[j].name, "p": float(p[j]), "q": float(q[j])}
                     for j in order]


def _bh(p: np.ndarray) -> np.ndarray:
    n = len(p)
    order = np.argsort(p)
    ranked = p[order] * n / np.arange(1, n + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(n)
    out[order] = np.minimum(q, 1.0)
    return out


def run_modisco(X: np.ndarray, hyp: np.ndarray, *, seed: int = 0, window: int = 21, flank: int = 10,
                max_seqlets: int = 20000, min_seqlets: int = 100) -> list[Found]:
    """TF-MoDISco on codes X (N, L) and hypothetical contributions (N, 4, L): the motifs it finds, both
    signs (positive: raise the output)."""
    from modiscolite.tfmodisco import TFMoDISco

    if X.shape[1] < window + 2 * flank:
        raise HelixError(f"sequences of {X.shape[1]} bp are too short for seqlets of {window} bp with {flank} bp "
                         "flanks (a smaller --window or --flank)", record="--window")
    onehot = np.zeros((*X.shape, 4), dtype=np.float32)
    clean = X < 4
    onehot[np.nonzero(clean) + (X[clean],)] = 1.0
    hyp_t = np.ascontiguousarray(hyp.transpose(0, 2, 1), dtype=np.float32)
    np.random.seed(seed)  # modisco's own sampling uses numpy's global generator
    pos, neg = TFMoDISco(onehot, hyp_t, sliding_window_size=window, flank_size=flank, min_metacluster_size=min_seqlets,
                         max_seqlets_per_metacluster=max_seqlets, final_min_cluster_size=max(10, min_seqlets // 5),
                         trim_to_window_size=window + flank, initial_flank_to_add=flank, target_seqlet_fdr=0.2,
                         n_leiden_runs=10, verbose=False)
    found = []
    for sign, patterns in ((1, pos), (-1, neg)):
        for k, pat in enumerate(patterns or []):
            ppm, cwm = trim(np.asarray(pat.sequence).T, np.asarray(pat.contrib_scores).T)
            seqlets = [(int(s.example_idx), int(s.start), int(s.end), bool(s.is_revcomp)) for s in pat.seqlets]
            found.append(Found(f"{'pos' if sign > 0 else 'neg'}_{k}", sign, seqlets, ppm, cwm))
    return found


def discover_motifs(run_dir: str | os.PathLike[str], data: str | os.PathLike[str], out: str | os.PathLike[str], *,
                    database: list[str] | None = None, method: str = "ism", target: int = 0, limit: int | None = 2000,
                    seed: int = 0, window: int = 21, flank: int = 10, min_seqlets: int = 100, device: str = "auto",
                    iupac: str = "error") -> MotifResult:
    """Discover the motifs a run has learned on the records of `data` (FASTA or table), match them to
    `database` (default jaspar:vertebrates) and write the report (see the module docstring)."""
    if method not in CONTRIBUTIONS:
        raise HelixError(f"unknown contribution method {method!r}; choose from {', '.join(CONTRIBUTIONS)}",
                         record="--method")
    db = load_database(database or ["jaspar:vertebrates"])  # a bad database is an error before the long work
    model = load(run_dir, device=device)
    X, ids = model.records(data, iupac=iupac)  # type: ignore[arg-type]
    if limit is not None:
        X, ids = X[:limit], ids[:limit]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cache = out / "contributions.npz"
    hyp = _cached(cache, X, method, target, seed)
    if hyp is None:
        hyp = hypothetical_contributions(explained_model(model.run), X, method, target=target, seed=seed,
                                         device=model.device)
        write_npz(cache, compressed=True, hypothetical=hyp, codes=X, method=method, target=target, seed=seed)
    found = run_modisco(X, hyp, seed=seed, window=window, flank=flank, min_seqlets=min_seqlets)
    match(found, db)
    files = _write(out, found, ids, X, run_dir, method, database or ["jaspar:vertebrates"])
    return MotifResult(found, [cache, *files])


def _cached(path: Path, X: np.ndarray, method: str, target: int, seed: int) -> np.ndarray | None:
    if not path.is_file():
        return None
    with np.load(path) as z:
        same = (z["codes"].shape == X.shape and (z["codes"] == X).all() and str(z["method"]) == method
                and int(z["target"]) == target and int(z["seed"]) == seed)
        return z["hypothetical"] if same else None


def _write(out: Path, found: list[Found], ids: list[str], X: np.ndarray, run_dir: Any, method: str,
           database: list[str]) -> list[Path]:
    logos = out / "logos"
    logos.mkdir(exist_ok=True)
    files = []
    rows = ["| motif | seqlets | contribution | width | consensus | best matches (q-value) | logos |",
            "|---|---|---|---|---|---|---|"]
    for m in found:
        path = _logo(logos / f"{m.id}.png", m)
        files.append(path)
        best = "; ".join(f"{x['id']} {x['name']} ({x['q']:.2g})" for x in m.matches) or "—"
        cons = "".join("ACGT"[i] for i in m.ppm.argmax(0))
        rows.append(f"| {m.id} | {len(m.seqlets)} | {m.contribution:.3g} | {m.ppm.shape[1]} | {cons} | {best} | "
                    f"![{m.id}](logos/{m.id}.png) |")
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["record", "id", "start", "end", "strand", "motif"])
    for m in found:
        for rec, start, end, rev in m.seqlets:
            writer.writerow([rec, ids[rec], start, end, "-" if rev else "+", m.id])
    write_text(out / "seqlets.csv", buf.getvalue())
    write_meme(out / "motifs.meme", [Motif(m.id, f"seqlets={len(m.seqlets)}", m.ppm) for m in found])
    text = [f"# Motifs learned by {Path(run_dir).name}", "",
            f"- {len(X):,} records of {X.shape[1]} bp; hypothetical contributions by {method}; TF-MoDISco "
            f"(modisco-lite); matches by TOMTOM (memelite) against {', '.join(database)}",
            f"- {len(found)} motifs ({sum(m.sign > 0 for m in found)} raise the output, "
            f"{sum(m.sign < 0 for m in found)} lower it)", "", *rows, "",
            "Files: `seqlets.csv` (record, start, end, strand, motif), `motifs.meme`, `logos/`, "
            "`contributions.npz`", ""]
    write_text(out / "motifs.md", "\n".join(text))
    return [out / "motifs.md", out / "seqlets.csv", out / "motifs.meme", *files]


def _logo(path: Path, m: Found) -> Path:
    import logomaker
    import pandas as pd

    plt = pyplot()
    fig, axes = plt.subplots(2, 1, figsize=(max(4.0, m.ppm.shape[1] * 0.45), 3.6))
    logomaker.Logo(pd.DataFrame(m.cwm.T, columns=list("ACGT")), ax=axes[0], color_scheme="classic")
    axes[0].set(ylabel="contribution", title=f"{m.id}: {len(m.seqlets)} seqlets"
                + (f"; best match {m.matches[0]['name']}" if m.matches else ""))
    ic = m.ppm * (2 + (m.ppm * np.log2(np.maximum(m.ppm, 1e-9))).sum(0, keepdims=True))
    logomaker.Logo(pd.DataFrame(ic.T, columns=list("ACGT")), ax=axes[1], color_scheme="classic")
    axes[1].set(ylabel="bits", ylim=(0, 2))
    fig.tight_layout()
    return save_figure(fig, path)
