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

from helixlab import alphabet
from helixlab.errors import HelixError
from helixlab.io import Chunk, read_records
from helixlab.predict import embed, encode_records, output_names, predict
from helixlab.runs import LoadedRun, load_run

Inputs = str | os.PathLike[str] | np.ndarray | Sequence[str] | Sequence[np.ndarray]


class Model:
    """A loaded run: `predict` (probabilities or values), `embed` (features before the head)."""

    def __init__(self, run: LoadedRun, device: str) -> None:
        self.run, self.device = run, device

    def __repr__(self) -> str:
        return (f"helixlab.Model({self.run.config.model.name}, task={self.run.task.kind}, "
                f"outputs={self.output_names}, run={str(self.run.run_dir)!r}, device={self.device!r})")

    @property
    def output_names(self) -> list[str]:
        return output_names(self.run)

    @property
    def seq_len(self) -> int | None:
        """The input length a fixed-length model reads (None: any length)."""
        return self.run.seq_len

    def inputs(self, data: Inputs, iupac: alphabet.IupacPolicy = "error") -> np.ndarray:
        """Anything `predict` takes -> the (N, L) uint8 matrix the model reads. A 2-d uint8 array is taken
        as already encoded model input; strings, arrays of codes and files are encoded, cropped/padded
        like the training data and checked against the model's input length."""
        return self.records(data, iupac)[0]

    def records(self, data: Inputs, iupac: alphabet.IupacPolicy = "error") -> tuple[np.ndarray, list[str]]:
        """(model input matrix, record ids): ids from the file, else row numbers from 0."""
        if isinstance(data, np.ndarray) and data.ndim == 2:
            if data.dtype != np.uint8 or (data > alphabet.N_CODE).any():
                raise HelixError("a 2-d array input must hold uint8 base codes 0-4 (A, C, G, T, N)")
            if self.seq_len is not None and data.shape[1] != self.seq_len:
                raise HelixError(f"inputs of {data.shape[1]} bases; this model reads {self.seq_len}")
            return data, [str(i) for i in range(len(data))]
        if isinstance(data, (str, os.PathLike)) and not (isinstance(data, str) and _looks_like_sequence(data)):
            path = str(data)
            if not Path(path).is_file():
                raise HelixError("input file not found", path=path)
            parts, ids = [], []
            for chunk in read_records(path):
                parts.append(encode_records(self.run, chunk, path, iupac))
                ids += chunk.ids or [str(len(ids) + k) for k in range(len(parts[-1]))]
            return (np.concatenate(parts) if len(parts) != 1 else parts[0]), ids
        if isinstance(data, str):
            data = [data]
        seqs = [s if isinstance(s, str) else alphabet.decode(np.asarray(s, dtype=np.uint8)) for s in data]
        if not seqs:
            raise HelixError("no sequences given")
        chunk = Chunk(seqs=seqs, lines=np.arange(1, len(seqs) + 1))
        return encode_records(self.run, chunk, "<sequences>", iupac), [str(i) for i in range(len(seqs))]

    def predict(self, data: Inputs, *, batch_size: int = 512, rc_average: bool | None = None) -> np.ndarray:
        """(N, n_outputs): probabilities (classification) or values (regression), in input order.
        rc_average: average both strands (default: as the run was evaluated)."""
        rc = self.run.config.train.rc_average if rc_average is None else rc_average
        if self.run.task.kind == "mlm":
            raise HelixError("a pretraining run has no prediction head: fine-tune it first", path=str(self.run.run_dir))
        if rc and self.run.task.kind == "context":
            raise HelixError("rc_average is not available for a context run (the strands predict complementary "
                             "bases)", path=str(self.run.run_dir))
        out = predict(self.run.model, self.inputs(data), batch_size=batch_size, device=self.device, rc_average=rc)
        return self.run.task.activate(out).numpy()

    def embed(self, data: Inputs, *, batch_size: int = 512) -> np.ndarray:
        """(N, feature_dim) float32: the representation the head reads."""
        return embed(self.run.model, self.inputs(data), batch_size=batch_size, device=self.device).numpy()


def _looks_like_sequence(text: str) -> bool:
    """A bare sequence rather than a path: only letters, and no such file."""
    return text.isalpha() and not Path(text).exists()


def load(run_dir: str | os.PathLike[str], *, device: str = "auto", checkpoint: str = "best") -> Model:
    """A finished run directory -> Model on `device` ('auto': the GPU when there is one)."""
    from helixlab.engine import resolve_device

    dev = str(resolve_device(device))
    return Model(load_run(run_dir, device=dev, checkpoint=checkpoint), dev)


__all__ = ["Model", "load"]
