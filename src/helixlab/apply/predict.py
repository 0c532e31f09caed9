"""Batch inference on tensors and on sequence files."""

from __future__ import annotations

import contextlib
import csv
import os
from collections.abc import Iterator

import numpy as np
import torch

from helixlab.data.formats import Chunk, read_records
from helixlab.data.shards import encode_chunk
from helixlab.errors import HelixError
from helixlab.models.base import autocast, model_outputs, resolve_precision
from helixlab.models.bert import Bert
from helixlab.paths import atomic_path
from helixlab.progress import progress_bar
from helixlab.run.loaded import LoadedRun
from helixlab.seq import alphabet


@contextlib.contextmanager
def inference(model: torch.nn.Module, device: str | torch.device) -> Iterator[torch.device]:
    """The model in eval mode on `device` for the block; its mode and device restored afterwards, also
    after an error."""
    device = torch.device(device)
    was_training = model.training
    first = next(model.parameters(), None)
    original = first.device if first is not None else torch.device("cpu")
    model.eval().to(device)
    try:
        yield device
    finally:
        model.train(was_training).to(original)


def predict(model: torch.nn.Module, x: torch.Tensor | np.ndarray, *, batch_size: int = 512,
            device: str | torch.device = "cpu", rc_average: bool = False, precision: str = "auto") -> torch.Tensor:
    """Raw outputs of any model on x: (N, L) uint8 -> (N, n_outputs) float32 on the CPU, computed in
    `precision` ('auto' | 'fp32' | 'bf16', `resolve_precision`). The model's training mode and device are
    restored afterwards."""
    x = torch.as_tensor(x)
    with inference(model, device) as dev:
        precision = resolve_precision(precision, dev, model)
        outs = []
        for start in range(0, len(x), batch_size):
            with torch.inference_mode(), autocast(dev, precision):
                outs.append(model_outputs(model, x[start : start + batch_size].to(dev), rc_average=rc_average).cpu())
        return torch.cat(outs) if outs else torch.empty(0)


@torch.no_grad()
def embed(model: torch.nn.Module, x: torch.Tensor | np.ndarray, *, batch_size: int = 512,
          device: str | torch.device = "cpu") -> torch.Tensor:
    """The representation before the head of any model: (N, L) uint8 -> (N, feature_dim) float32 on the
    CPU. The model's training mode and device are restored afterwards."""
    x = torch.as_tensor(x)
    with inference(model, device) as dev:
        outs = [model.features(x[start : start + batch_size].to(dev)).float().cpu()  # type: ignore[operator]
                for start in range(0, len(x), batch_size)]
        return torch.cat(outs) if outs else torch.empty(0)


def check_predictable(run: LoadedRun, rc_average: bool = False) -> None:
    """Refuse what a run cannot predict: a pretraining run has no head; a context run cannot average
    strands (the two strands predict complementary bases)."""
    if run.task.kind == "mlm":
        raise HelixError("a pretraining run has no prediction head: fine-tune it first with "
                         "`helixlab train RECIPE --init-from RUN_DIR`", path=str(run.run_dir))
    if rc_average and run.task.kind == "context":
        raise HelixError("strand averaging (rc_average) is not available for a context run (the strands predict "
                         "complementary bases)", path=str(run.run_dir), record="rc_average")


def encode_records(run: LoadedRun, chunk: Chunk, path: str, iupac: alphabet.IupacPolicy = "error") -> np.ndarray:
    """A chunk of records -> the (N, L) uint8 matrix the run's model reads (the one path from text to
    model input, for the CLI and the Python API)."""
    codes, lens, _ = encode_chunk(chunk, path, iupac)
    return model_inputs(run, codes, lens, path=path, lines=chunk.lines)


def model_inputs(run: LoadedRun, codes: np.ndarray, lens: np.ndarray, *, path: str, lines: np.ndarray
                 ) -> np.ndarray:
    """Encoded records (flat codes + lengths) -> the (N, L) uint8 matrix the run's model reads: the run's
    crop / padding applied, lengths checked against a fixed-length model. Errors name the record."""
    codes, lens = run.config.data.seq_options().transforms_only().apply(codes, lens, path=path, lines=lines)
    if run.seq_len is not None:
        bad = np.flatnonzero(lens != run.seq_len)
        if bad.size:
            raise HelixError(f"sequence length {lens[bad[0]]} differs from the model's input length "
                             f"{run.seq_len}" + ("" if run.config.data.pad_to else
                                                 " (a recipe can pad shorter ones: data.pad_to with "
                                                 "data.pad_context, or N)"), path=path, record=f"line {lines[bad[0]]}")
        matrix = codes.reshape(-1, run.seq_len)
        if run.task.kind == "context":  # the centre base is what the model predicts: it never sees it
            matrix = matrix.copy()
            matrix[:, run.seq_len // 2] = alphabet.N_CODE
        return matrix
    return alphabet.pad_batch(codes, np.cumsum(lens) - lens, lens)


def output_names(run: LoadedRun) -> list[str]:
    """Column names of the prediction columns of a run."""
    if run.task.kind == "context":
        return [f"prob_{name}" for name in run.task.class_names]  # type: ignore[attr-defined]
    if run.task.kind == "multiclass":
        return [f"prob_class{k}" for k in range(run.task.n_outputs)]
    labels = run.info["labels"]
    return ["prediction"] if len(labels) == 1 else [f"prediction_{name}" for name in labels]


class AttentionWriter:
    """Collects one layer's attention weights (heads kept) of a transformer run, saved as one .npz:
    `attention` (N, heads, T, T) float16, `tokens` (N, T) token ids ([PAD] after the end), `vocab`, `ids`."""

    def __init__(self, run: LoadedRun, path: str | os.PathLike[str], layer: int, device: str) -> None:
        if not isinstance(run.model, Bert):
            raise HelixError("attention weights exist only for transformer runs; this run is "
                             f"{run.config.model.name!r}",
                             path=str(run.run_dir))
        self.model, self.path, self.layer, self.device = run.model, path, layer, device
        self.tokens: list[np.ndarray] = []
        self.weights: list[np.ndarray] = []
        self.ids: list[str] = []

    def add(self, x: np.ndarray, ids: list[str], batch_size: int) -> None:
        self.model.eval().to(self.device)
        for start in range(0, len(x), batch_size):
            tok, att = self.model.attentions(torch.as_tensor(x[start : start + batch_size]).to(self.device), self.layer)
            self.tokens.append(tok.cpu().numpy().astype(np.int32))
            self.weights.append(att.float().cpu().numpy().astype(np.float16))
        self.ids += ids

    def save(self, overwrite: bool) -> None:
        width = max((t.shape[1] for t in self.tokens), default=0)
        pad = self.model.tokenizer.pad_id
        tokens = np.concatenate([np.pad(t, ((0, 0), (0, width - t.shape[1])), constant_values=pad)
                                 for t in self.tokens]) if self.tokens else np.zeros((0, 0), np.int32)
        weights = np.concatenate([np.pad(w, ((0, 0), (0, 0), (0, width - w.shape[2]), (0, width - w.shape[3])))
                                  for w in self.weights]) if self.weights else np.zeros((0, 0, 0, 0), np.float16)
        with atomic_path(self.path, overwrite=overwrite) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, attention=weights, tokens=tokens, vocab=np.array(self.model.tokenizer.vocab),
                         ids=np.array(self.ids), layer=np.array(self.layer))


def predict_file(run: LoadedRun, input_path: str | os.PathLike[str], out_csv: str | os.PathLike[str], *,
                 rc_average: bool = False, batch_size: int = 512, device: str = "cpu", precision: str = "auto",
                 iupac: alphabet.IupacPolicy = "error", overwrite: bool = False,
                 attentions: str | os.PathLike[str] | None = None, attention_layer: int = -1) -> int:
    """Write `id,prediction...` rows for every record of a FASTA or table; returns the row count.

    Predictions are probabilities for classification and values for regression. With `attentions`
    (transformer runs), one layer's attention weights of every record go to that .npz file too
    (kept in memory until the end: about heads x T^2 x 2 bytes per record).
    """
    check_predictable(run, rc_average)
    n = 0
    path = str(input_path)
    writer_att = AttentionWriter(run, attentions, attention_layer, device) if attentions else None
    with atomic_path(out_csv, overwrite=overwrite) as tmp:
        with open(tmp, "w", newline="") as fh, progress_bar(desc="predict", unit=" seqs") as bar:
            writer = csv.writer(fh)
            writer.writerow(["id", *output_names(run)])
            for chunk in read_records(path):
                matrix = encode_records(run, chunk, path, iupac)
                out_raw = predict(run.model, matrix, batch_size=batch_size, device=device, rc_average=rc_average,
                                  precision=precision)
                values = run.task.activate(out_raw).numpy()
                ids = chunk.ids or [str(n + k) for k in range(len(matrix))]
                writer.writerows([rid, *(f"{v:.6g}" for v in row)] for rid, row in zip(ids, values.tolist()))
                if writer_att is not None:
                    writer_att.add(matrix, ids, min(batch_size, 64))
                n += len(matrix)
                bar.update(len(matrix))
        if writer_att is not None:
            writer_att.save(overwrite)
    return n
