"""The official DREAM 2022 (Random Promoter Challenge) test-set scores.

Nine parts: correlations on all sequences and on five subsets (high, low, yeast, random,
challenging), and correlations of predicted vs measured *differences* (alt - ref) over three sets of
pairs (SNVs, motif perturbation, motif tiling). Each score is a weighted mean of the parts:

    score = sum(w_part * c_part) / sum(w_part)     (sum of the weights = 4.65)

with c = Pearson r for the Pearson score and Spearman rho for the Spearman score. The data README
writes r-squared for the Pearson score; the published team scores (autosome.org 0.818 etc.) are
reproduced only with r, so r is what `pearson_score` uses; `pearson_score_r2` gives the r-squared
variant too. The official score leaves out the 9,045 public-leaderboard sequences (`rows="private"`).

Files (see the data README): test_set_maude_expression.tsv.gz, official_test_subset_ids/*.csv.gz,
official_public_leaderboard_ids/ground.json.gz, test_set_hamming1_pairs.tsv.gz. The official SNV
pair list is not available; `snv="hamming1"` (default) uses every test pair at Hamming distance 1
(a superset of it), `snv="public"` the 4,670 public-leaderboard SNV pairs.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from helixlab.apply.predict import model_inputs, predict
from helixlab.data.formats import open_text
from helixlab.errors import HelixError
from helixlab.models.base import resolve_device
from helixlab.paths import data_root
from helixlab.run.loaded import load_run
from helixlab.seq import alphabet
from helixlab.tasks.metrics import pearson, spearman

WEIGHTS: dict[str, float] = {"all": 1.0, "high": 0.3, "low": 0.3, "yeast": 0.3, "random": 0.3, "challenging": 0.5,
                             "SNVs": 1.25, "motif_perturbation": 0.3, "motif_tiling": 0.4}
SINGLE_FILES = {"high": "high_exp_seqs.csv.gz", "low": "low_exp_seqs.csv.gz", "yeast": "yeast_seqs.csv.gz",
                "random": "all_random_seqs.csv.gz", "challenging": "challenging_seqs.csv.gz"}
PAIR_FILES = {"motif_perturbation": "motif_perturbation_seqs.csv.gz", "motif_tiling": "motif_tiling_seqs.csv.gz"}
TEST_FILE = "test_set_maude_expression.tsv.gz"
ROWS = ("private", "all", "dev-test", "dev-valid")


def weighted(parts: dict[str, float]) -> float:
    """The weighted mean of the parts that are present (all nine: the official score)."""
    present = [k for k in WEIGHTS if k in parts and np.isfinite(parts[k])]
    if not present:
        return float("nan")
    return float(sum(WEIGHTS[k] * parts[k] for k in present) / sum(WEIGHTS[k] for k in present))


@dataclass
class DreamTest:
    """The test set: measured expression by idx, the subsets (idx arrays) and pairs ((alt, ref) idx arrays)."""

    expression: np.ndarray
    public: np.ndarray
    dev_split: np.ndarray
    singles: dict[str, np.ndarray]
    pairs: dict[str, tuple[np.ndarray, np.ndarray]]
    public_parts: dict[str, set[tuple[int, ...]]]  # each part's public-leaderboard members (idx or pairs)

    @classmethod
    def load(cls, data_dir: str | Path, snv: str = "hamming1") -> DreamTest:
        """The official test set and its subsets and pairs, from the DREAM 2022 data directory."""
        import pandas as pd

        try:
            return cls._load(Path(data_dir), snv)
        except (OSError, KeyError, ValueError, json.JSONDecodeError, pd.errors.ParserError,
                pd.errors.EmptyDataError) as exc:
            raise HelixError(f"cannot read the DREAM 2022 files ({type(exc).__name__}: {exc})",
                             path=str(data_dir)) from None

    @classmethod
    def _load(cls, d: Path, snv: str) -> DreamTest:
        import pandas as pd

        test = d / TEST_FILE
        if not test.exists():
            raise HelixError(f"no DREAM test set here (expected {TEST_FILE})", path=str(d))
        table = pd.read_csv(test, sep="\t", usecols=["idx", "expression", "public_leaderboard", "dev_split"])
        if not np.array_equal(table["idx"].to_numpy(), np.arange(len(table))):
            raise HelixError("idx column must be 0..n-1 in order", path=str(test))
        singles = {name: pd.read_csv(d / "official_test_subset_ids" / f)["pos"].to_numpy(np.int64)
                   for name, f in SINGLE_FILES.items()}
        pairs = {}
        for name, f in PAIR_FILES.items():
            t = pd.read_csv(d / "official_test_subset_ids" / f)
            pairs[name] = (t["alt_pos"].to_numpy(np.int64), t["ref_pos"].to_numpy(np.int64))
        if snv == "hamming1":
            t = pd.read_csv(d / "test_set_hamming1_pairs.tsv.gz", sep="\t")
            pairs["SNVs"] = (t["idx_a"].to_numpy(np.int64), t["idx_b"].to_numpy(np.int64))
        elif snv == "public":
            with gzip.open(d / "official_public_leaderboard_ids" / "SNVs_exp_indices.json.gz") as fh:
                keys = [tuple(int(v) for v in k.split(",")) for k in json.load(fh)]
            pairs["SNVs"] = (np.array([k[0] for k in keys]), np.array([k[1] for k in keys]))  # all public
        else:
            raise HelixError(f"snv must be hamming1 or public, got {snv!r}")
        public_parts = {}
        for name in (*SINGLE_FILES, *PAIR_FILES, "SNVs"):
            with gzip.open(d / "official_public_leaderboard_ids" / f"{name}_exp_indices.json.gz") as fh:
                members = {tuple(int(v) for v in k.split(",")) for k in json.load(fh)}
            public_parts[name] = members | {m[::-1] for m in members}  # pairs in either order
        return cls(table["expression"].to_numpy(np.float64), table["public_leaderboard"].to_numpy().astype(bool),
                   table["dev_split"].astype(str).to_numpy(), singles, pairs, public_parts)

    def rows(self, which: str) -> np.ndarray:
        """Boolean mask of the test rows scored: private (the official score: each part then also leaves
        out its own public-leaderboard members), all, or a dev_split part."""
        if which == "private":
            return ~self.public
        if which == "all":
            return np.ones(len(self.expression), dtype=bool)
        if which in ("dev-test", "dev-valid"):
            return self.dev_split == which.split("-")[1]
        raise HelixError(f"rows must be one of {', '.join(ROWS)}, got {which!r}")

    def score(self, pred: np.ndarray, rows: str = "private") -> dict[str, object]:
        """Per-part Pearson/Spearman and n, and the weighted scores, for predictions indexed by idx
        (NaN where a sequence was not predicted; those rows are left out)."""
        pred = np.asarray(pred, dtype=np.float64)
        if pred.shape != self.expression.shape:
            raise HelixError(f"expected {len(self.expression)} predictions (one per test idx), got {pred.shape}")
        keep = self.rows(rows) & np.isfinite(pred)
        parts: dict[str, dict[str, float]] = {}

        def add(name: str, p: np.ndarray, y: np.ndarray) -> None:
            ok = len(p) >= 3 and np.ptp(p) > 0 and np.ptp(y) > 0
            parts[name] = {"n": int(len(p)), "pearson": pearson(p, y) if ok else float("nan"),
                           "spearman": spearman(p, y) if ok else float("nan")}

        official = rows == "private"
        if official:  # a part's members count unless that part lists them as public (refs of pairs may be)
            keep = np.isfinite(pred)

        def private(name: str, members: list[tuple[int, ...]]) -> np.ndarray:
            public = self.public_parts.get(name, set())
            return np.fromiter((m not in public for m in members), dtype=bool, count=len(members))

        idx = np.flatnonzero(keep & (~self.public if official else True))
        add("all", pred[idx], self.expression[idx])
        for name, members in self.singles.items():
            ok = keep[members] & (private(name, [(int(i),) for i in members]) if official else True)
            m = members[ok]
            add(name, pred[m], self.expression[m])
        for name, (alt, ref) in self.pairs.items():
            both = keep[alt] & keep[ref]
            if official:
                both &= private(name, list(zip(alt.tolist(), ref.tolist())))
            a, r = alt[both], ref[both]
            add(name, pred[a] - pred[r], self.expression[a] - self.expression[r])
        order = [k for k in WEIGHTS if k in parts]
        return {
            "rows": rows, "parts": {k: parts[k] for k in order},
            "pearson_score": weighted({k: parts[k]["pearson"] for k in order}),
            "spearman_score": weighted({k: parts[k]["spearman"] for k in order}),
            "pearson_score_r2": weighted({k: parts[k]["pearson"] ** 2 for k in order}),
            "complete": all(np.isfinite(parts[k]["pearson"]) for k in WEIGHTS if k in parts) and len(order) == 9,
        }


def read_predictions(path: str | Path, n: int) -> np.ndarray:
    """A `helixlab predict` CSV (id = test idx, prediction) -> (n,) array indexed by idx, NaN where absent."""
    import pandas as pd

    with open_text(path) as fh:
        try:
            table = pd.read_csv(fh, dtype=str, keep_default_na=False)
        except (pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
            raise HelixError(f"malformed predictions table ({' '.join(str(exc).split())})", path=str(path)) from None
    table.columns = [str(c).strip() for c in table.columns]
    if "id" not in table.columns or "prediction" not in table.columns:
        raise HelixError(f"expected columns id,prediction; got {list(table.columns)}", path=str(path), record="line 1")
    text = table["prediction"].str.strip()
    values = pd.to_numeric(text, errors="coerce").to_numpy(np.float64)
    # blank or NaN: no prediction for that row (the score leaves it out); anything else must be a number
    bad = np.isnan(values) & ~text.str.lower().isin(["", "nan"]).to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise HelixError(f"prediction {table['prediction'].iloc[i]!r} is not a number", path=str(path),
                         record=f"line {i + 2}")
    ids = pd.to_numeric(table["id"].str.strip(), errors="coerce").to_numpy()
    bad = ~np.isfinite(ids) | (ids < 0) | (ids >= n) | (ids != np.round(ids))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise HelixError(f"id {table['id'].iloc[i]!r} is not a test idx 0..{n - 1}", path=str(path),
                         record=f"line {i + 2}")
    out = np.full(n, np.nan)
    out[ids.astype(np.int64)] = values
    return out


def format_score(result: dict[str, object]) -> str:
    """A markdown table of the parts and the two scores."""
    parts = result["parts"]
    assert isinstance(parts, dict)
    lines = ["| part | weight | n | Pearson r | Spearman rho |", "|---|---|---|---|---|"]
    for k, v in parts.items():
        lines.append(f"| {k} | {WEIGHTS[k]} | {v['n']:,} | {v['pearson']:.4f} | {v['spearman']:.4f} |")
    lines.append(f"| **score** | {sum(WEIGHTS.values()):.2f} | | **{result['pearson_score']:.4f}** | "
                 f"**{result['spearman_score']:.4f}** |")
    return "\n".join(lines)


def predict_test(run: object, data_dir: str | Path, rows: np.ndarray, *, batch_size: int = 256,
                 device: str = "cpu", precision: str = "auto") -> np.ndarray:
    """Predictions of a trained run (`helixlab.run.loaded.load_run`) for the test rows in `rows` (boolean mask by idx),
    through the same input path as `helixlab predict` (the run's crop/padding, strand averaging); NaN elsewhere."""
    import pandas as pd

    path = Path(data_dir) / TEST_FILE
    seqs = pd.read_csv(path, sep="\t", usecols=["sequence"])["sequence"].to_numpy()[rows]
    lens = np.array([len(s) for s in seqs], dtype=np.int64)
    x = model_inputs(run, alphabet.encode("".join(seqs)), lens, path=str(path),  # type: ignore[arg-type]
                     lines=np.flatnonzero(rows) + 2)
    out = predict(run.model, x, batch_size=batch_size, device=device,  # type: ignore[attr-defined]
                  rc_average=run.config.train.rc_average, precision=precision)  # type: ignore[attr-defined]
    pred = np.full(len(rows), np.nan)
    pred[rows] = run.task.activate(out).numpy()[:, 0]  # type: ignore[attr-defined]
    return pred


def dream_score(source: str | Path, data_dir: str | Path | None = None, *, rows: str = "private",
                snv: str = "hamming1", device: str = "auto", precision: str = "auto") -> dict[str, object]:
    """The official weighted scores of a run directory (its predictions on the test set, on `device`) or
    of a predictions CSV (id = test idx, prediction); `rows` and `snv` as in `DreamTest`."""
    if snv == "public" and rows == "private":
        raise HelixError("--snv public pairs are all public-leaderboard pairs: none is left in the private score; "
                         "use --snv hamming1 or --rows all", record="--snv")
    d = Path(data_dir) if data_dir is not None else data_root() / "dream2022_yeast"
    test = DreamTest.load(d, snv=snv)
    if Path(source).is_dir():
        # the private score also counts pair members and subset rows that only other parts list as public
        wanted = test.rows("all" if rows == "private" else rows)
        dev = str(resolve_device(device))
        pred = predict_test(load_run(source, device=dev), d, wanted, device=dev, precision=precision)
    else:
        pred = read_predictions(source, len(test.expression))
    return test.score(pred, rows=rows)
