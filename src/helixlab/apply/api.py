"""The Python API: a trained run as an object that predicts and embeds.

    import helixlab
    model = helixlab.load("runs/my_run")
    probs = model.predict(["ACGT...", "TTGA..."])        # or a FASTA/CSV path, or (N, L) uint8 codes
    vectors = model.embed("sequences.fa")                # the representation before the head

Text goes through the same encoding, crop/padding and length checks as `helixlab predict`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from helixlab.apply.predict import check_predictable, embed, encode_records, model_inputs, output_names, predict
from helixlab.data.formats import Chunk, read_records
from helixlab.errors import HelixError
from helixlab.models.base import resolve_device, resolve_precision
from helixlab.paths import write_npy
from helixlab.run.loaded import LoadedRun, load_run
from helixlab.seq import alphabet

Inputs = str | os.PathLike[str] | np.ndarray | Sequence[str] | Sequence[np.ndarray]


class Model:
    """A loaded run: `predict` (probabilities or values), `embed` (features before the head)."""

    def __init__(self, run: LoadedRun, device: str, precision: str = "auto") -> None:
        self.run, self.device, self.precision = run, device, precision

    def __repr__(self) -> str:
        name = f"ensemble of {len(self.run.members)}" if self.run.members else self.run.config.model.name
        return (f"helixlab.Model({name}, task={self.run.task.kind}, "
                f"outputs={self.output_names}, run={str(self.run.run_dir)!r}, device={self.device!r})")

    @property
    def output_names(self) -> list[str]:
        return output_names(self.run)

    @property
    def seq_len(self) -> int | None:
        """The input length a fixed-length model reads (None: any length)."""
        return self.run.seq_len

    def inputs(self, data: Inputs, iupac: alphabet.IupacPolicy = "error") -> np.ndarray:
        """Anything `predict` takes -> the (N, L) uint8 matrix the model reads (encoded, cropped/padded like
        the training data, the centre hidden for context runs, lengths checked)."""
        return self.records(data, iupac)[0]

    def records(self, data: Inputs, iupac: alphabet.IupacPolicy = "error", *, source: str = "<sequences>",
                lines: np.ndarray | None = None) -> tuple[np.ndarray, list[str]]:
        """(model input matrix, record ids). `data`: a FASTA/table path, a sequence or list of sequences,
        or base codes (0-4) as one array per sequence or an (N, L) uint8 array of sequences as written
        (the run's crop/padding is applied to all of them). Ids come from the file, else row numbers.
        Errors name `source` and `lines` (the 1-based line of each sequence there) for in-memory input."""
        if isinstance(data, (str, os.PathLike)) and not (isinstance(data, str) and _looks_like_sequence(data)):
            path = str(data)
            if not Path(path).is_file():
                raise HelixError("input file not found", path=path)
            parts, ids = [], []
            for chunk in read_records(path):
                parts.append(encode_records(self.run, chunk, path, iupac))
                ids += chunk.ids or [str(len(ids) + k) for k in range(len(parts[-1]))]
            return _stack(parts), ids
        if isinstance(data, str) or (isinstance(data, np.ndarray) and data.ndim == 1):
            data = [data]  # type: ignore[list-item]
        seqs = [s if isinstance(s, str) else _decode_codes(s, source) for s in data]
        if not seqs:
            raise HelixError("no sequences given", path=source)
        chunk = Chunk(seqs=seqs, lines=np.arange(1, len(seqs) + 1) if lines is None else np.asarray(lines))
        return encode_records(self.run, chunk, source, iupac), [str(i) for i in range(len(seqs))]

    def predict(self, data: Inputs, *, batch_size: int = 512, rc_average: bool | None = None,
                iupac: alphabet.IupacPolicy = "error") -> np.ndarray:
        """(N, n_outputs): probabilities (classification) or values (regression), in input order.
        rc_average: average both strands (default: as the run was evaluated)."""
        return self.predict_encoded(self.inputs(data, iupac), batch_size=batch_size, rc_average=rc_average)

    def predict_encoded(self, x: np.ndarray, *, batch_size: int = 512, rc_average: bool | None = None,
                        precision: str | None = None) -> np.ndarray:
        """`predict` on the model's own input matrix (from `inputs`/`records`); precision: default the
        Model's ('fp32' for small differences, e.g. variant effects)."""
        rc = self.run.config.train.rc_average if rc_average is None else rc_average
        check_predictable(self.run, rc)
        out = predict(self.run.model, x, batch_size=batch_size, device=self.device, rc_average=rc,
                      precision=precision or self.precision)
        return self.run.task.activate(out).numpy()

    def predict_written(self, X: np.ndarray, *, batch_size: int = 512, source: str = "<sequences>") -> np.ndarray:
        """`predict` on (N, L) base codes of sequences as written (e.g. designed or edited ones): the run's
        crop / padding applied without going through text."""
        X = np.ascontiguousarray(X, dtype=np.uint8)
        if not len(X):
            return np.zeros((0, len(self.output_names)), dtype=np.float32)
        x = model_inputs(self.run, X.ravel(), np.full(len(X), X.shape[1]), path=source,
                         lines=np.arange(1, len(X) + 1))
        return self.predict_encoded(x, batch_size=batch_size)

    def embed(self, data: Inputs, *, batch_size: int = 512, iupac: alphabet.IupacPolicy = "error") -> np.ndarray:
        """(N, feature_dim) float32: the representation the head reads."""
        return embed(self.run.model, self.inputs(data, iupac), batch_size=batch_size, device=self.device).numpy()


def _stack(parts: list[np.ndarray]) -> np.ndarray:
    """Chunks of a file as one matrix; chunks of a variable-length model padded with N to one width."""
    if len(parts) == 1:
        return parts[0]
    width = max(p.shape[1] for p in parts)
    return np.concatenate([np.pad(p, ((0, 0), (0, width - p.shape[1])), constant_values=alphabet.N_CODE)
                           for p in parts])


def _decode_codes(codes: object, source: str) -> str:
    arr = np.asarray(codes)
    if arr.ndim != 1 or arr.dtype.kind not in "iu" or arr.size == 0 or arr.min() < 0 or arr.max() > alphabet.N_CODE:
        raise HelixError("base codes must be non-empty 1-d integer arrays of 0-4 (A, C, G, T, N)", path=source)
    return alphabet.decode(arr.astype(np.uint8))


_SEQUENCE_LETTERS = set("ACGTNRYSWKMBDHVUacgtnryswkmbdhvu")


def _looks_like_sequence(text: str) -> bool:
    """A bare sequence rather than a path: nothing but base letters (paths have a dot or a slash)."""
    return bool(text) and set(text) <= _SEQUENCE_LETTERS


def load(run_dir: str | os.PathLike[str], *, device: str = "auto", checkpoint: str = "best",
         precision: str = "auto") -> Model:
    """A finished run (or ensemble) directory -> Model on `device` ('auto': the GPU when there is one),
    predicting in `precision` ('auto' | 'fp32' | 'bf16')."""
    dev = torch.device(resolve_device(device))
    resolve_precision(precision, dev)  # a bad name is an error before anything loads
    return Model(load_run(run_dir, device=str(dev), checkpoint=checkpoint), str(dev), precision)


def embed_file(run_dir: str | os.PathLike[str], input_path: str | os.PathLike[str], out: str | os.PathLike[str], *,
               batch_size: int = 512, iupac: alphabet.IupacPolicy = "error", device: str = "auto") -> tuple[int, int]:
    """The representation before the head of every record of a FASTA or table, in input order, saved as
    an .npy of (records, features) float32; returns its shape."""
    vectors = load(run_dir, device=device).embed(input_path, batch_size=batch_size, iupac=iupac)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    write_npy(out, vectors)
    return vectors.shape


__all__ = ["Model", "embed_file", "load"]
