"""In-silico saturation mutagenesis (ISM): the output change of every single-base substitution.

`ism(model, X)` -> (N, 4, L): out[i, b, p] = f(X_i with base b at p) - f(X_i); zero at the reference
base and at N positions. Two ways to compute it, with the same result (tests: within 1e-4 of the output
scale in fp32):

- plain: every mutant is a full forward pass, in batches (any model family);
- windowed (`local`): for a convolutional model (`cnn` without attention: conv stack -> pooling -> dense head),
  a substitution at position p changes only a window of each conv layer's output around p. The
  reference activations of every layer are kept, and each mutant recomputes only its window, layer by
  layer (conv on the window plus its kernel's reach, batch norm, activation, max-pool), then the global
  max / mean pooling from the reference's prefix and suffix maxima and sums. Chosen automatically where
  it applies (`local="auto"`).

ISM is the inner loop of sequence design (helixlab.design) and of motif discovery.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from helixlab.apply.predict import check_predictable, inference
from helixlab.errors import HelixError
from helixlab.models.base import SequenceModel, autocast, call, resolve_precision, unwrap
from helixlab.models.cnn import CNN
from helixlab.models.layers import POOLING_PARTS, ConvStack, pool_sequence
from helixlab.progress import progress_bar
from helixlab.seq.alphabet import N_CODE, one_hot

LOCAL_CHOICES = ("auto", "yes", "no")


def codes(X: np.ndarray) -> np.ndarray:
    """Validate an (N, L) matrix of base codes 0-4 and return it as uint8."""
    X = np.asarray(X)
    if X.ndim != 2 or X.dtype.kind not in "iu" or (X.size and (X.min() < 0 or X.max() > N_CODE)):
        raise HelixError(f"attributions take (N, L) base codes 0-4 (uint8), got an array of shape {X.shape} and "
                         f"dtype {X.dtype}")
    return X.astype(np.uint8, copy=False)


def outputs(model: nn.Module, x: torch.Tensor, target: int) -> torch.Tensor:
    """Output `target` of the model (N,) as float32; a target the model lacks is an error."""
    out = call(model, x)
    if not 0 <= target < out.shape[1]:
        raise HelixError(f"target {target} is not an output of this model (it has {out.shape[1]})", record="--target")
    return out[:, target].float()


class Prediction(nn.Module):
    """A binned-regression model as the value it predicts (the expectation over its bins), so that output 0
    is explained rather than one bin's logit."""

    def __init__(self, model: nn.Module, task: Any) -> None:
        super().__init__()
        self.model, self.task = model, task
        inner = unwrap(model)
        self.reads_one_hot = isinstance(inner, SequenceModel) and inner.reads_one_hot
        self.bf16_on_cpu = getattr(model, "bf16_on_cpu", True)
        self.bf16_on_gpu = getattr(model, "bf16_on_gpu", False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.task.activate(call(self.model, x))


def explained_model(run: Any) -> nn.Module:
    """What to attribute (or design with) for a loaded run: its model, or for binned regression its
    predicted value."""
    check_predictable(run)
    if run.task.kind == "regression" and run.task.cfg.bins:
        return Prediction(run.model, run.task)
    return run.model


def windowed_cnn(model: nn.Module) -> tuple[CNN, Prediction | None] | None:
    """(the CNN, the binned-regression wrapper around it or None) where the windowed ISM applies, else None."""
    inner = unwrap(model)
    post = None
    if isinstance(inner, Prediction):
        post, inner = inner, unwrap(inner.model)
    if type(inner) is not CNN or not isinstance(inner.convs, ConvStack) or not isinstance(inner.attention, nn.Identity):
        return None  # attention makes every position depend on every base: no window to recompute
    return inner, post


@torch.inference_mode()
def ism(model: nn.Module, X: np.ndarray, *, target: int = 0, batch_size: int | None = None,
        device: str | torch.device = "cpu", precision: str = "fp32", progress: bool = False,
        local: str = "auto", with_reference: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Saturation mutagenesis: (N, 4, L) output change for every single-base substitution (3 per position;
    N positions are not mutated); zero at the reference base.
    precision: 'fp32' (default: effects are small differences, which bf16 rounds away) | 'auto' | 'bf16'.
    local: 'auto' (windowed where the model allows it) | 'yes' (required) | 'no' (plain forward passes).
    with_reference: also return the (N,) output of the unmutated sequences."""
    if local not in LOCAL_CHOICES:
        raise HelixError(f"local must be one of {', '.join(LOCAL_CHOICES)}, not {local!r}", record="--local")
    X = codes(X)
    windowed = windowed_cnn(model) if local != "no" else None
    if local == "yes" and windowed is None:
        raise HelixError(f"windowed ISM needs a 'cnn' model without attention (conv stack, pooling, dense head); "
                         f"this is {type(unwrap(model)).__name__}", record="--local")
    with inference(model, device) as dev, autocast(dev, resolve_precision(precision, dev, model)):
        if windowed is not None:
            out, ref = _windowed(*windowed, X, target=target, batch_size=batch_size or 128, device=dev,
                                 progress=progress)
        else:
            out, ref = _plain(model, X, target=target, device=dev, progress=progress,
                              batch_size=batch_size or (128 if dev.type == "cpu" else 4096))
    return (out, ref) if with_reference else out


def _plain(model: nn.Module, X: np.ndarray, *, target: int, batch_size: int, device: torch.device,
           progress: bool) -> tuple[np.ndarray, np.ndarray]:
    # small batches are fastest on a CPU (activations stay in cache); large ones on a GPU
    n, length = X.shape
    out = np.zeros((n, 4, length), dtype=np.float32)
    seq, base, pos = np.nonzero((np.arange(4)[None, :, None] != X[:, None, :]) & (X[:, None, :] < 4))
    ref = np.concatenate([outputs(model, torch.from_numpy(X[i : i + batch_size]).to(device), target).cpu().numpy()
                          for i in range(0, n, batch_size)]) if n else np.zeros(0, np.float32)
    bar = progress_bar(progress, total=len(seq), desc="ism", unit=" mutants", unit_scale=True)
    for start in range(0, len(seq), batch_size):
        s, b, p = seq[start : start + batch_size], base[start : start + batch_size], pos[start : start + batch_size]
        x = X[s]
        x[np.arange(len(s)), p] = b
        out[s, b, p] = outputs(model, torch.from_numpy(x).to(device), target).cpu().numpy() - ref[s]
        bar.update(len(s))
    bar.close()
    return out, ref


def _conv_reach(conv: nn.Conv1d) -> tuple[int, int]:
    """(left, right): output j of a 'same' conv reads inputs j - left .. j + right."""
    total = conv.dilation[0] * (conv.kernel_size[0] - 1)
    return total // 2, total - total // 2


def _window(ref: torch.Tensor, start: int, stop: int, lo: int, hi: int, values: torch.Tensor) -> torch.Tensor:
    """The mutants' input window [start, stop) of a layer: ref (m, C, L) of the m sequences, zeros outside
    [0, L), and [lo, hi) replaced by `values` (m * 3, C, hi - lo) where the two overlap -> (m * 3, C, stop - start)."""
    m, c, length = ref.shape
    a, b = max(start, 0), min(stop, length)
    win = ref[:, None, :, a:b].repeat(1, 3, 1, 1).view(3 * m, c, b - a)
    if a > start or b < stop:
        win = F.pad(win, (a - start, stop - b))
    a, b = max(lo, start), min(hi, stop)  # (a pool drops the last bases of a length it does not divide)
    win[:, :, a - start : b - start] = values[:, :, a - lo : b - lo]
    return win


def _windowed(net: CNN, post: Prediction | None, X: np.ndarray, *, target: int, batch_size: int,
              device: torch.device, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """ISM of a CNN by recomputing each mutant's window only. batch_size: sequences per step (x 3 mutants)."""
    n, length = X.shape
    out = np.zeros((n, 4, length), dtype=np.float32)
    refs = np.zeros(n, dtype=np.float32)
    bar = progress_bar(progress, total=int(3 * (X < 4).sum()), desc="ism (windowed)", unit=" mutants",
                       unit_scale=True)
    layers = list(zip(net.convs.blocks, net.convs.pools))
    shift = torch.arange(1, 4, device=device)
    for first in range(0, n, batch_size):
        xb = torch.from_numpy(X[first : first + batch_size]).to(device)
        m = len(xb)
        # reference activations: each block's input, its output before pooling, and the final map
        inputs, blocks = [], []
        h = one_hot(xb)
        for block, pool in layers:
            inputs.append(h)
            y = block(h)
            y = y + h if net.convs.residual and y.shape == h.shape else y
            blocks.append(y)
            h = pool(y)
        final = net.bottleneck(h)  # position-wise (a 1x1 conv, or nothing)
        ref_out = _head_output(net, post, pool_sequence(final, net.pooling), target)
        refs[first : first + m] = ref_out.cpu().numpy()
        prefix, suffix, total = _pool_tables(final)
        for p in range(length):
            ref_base = xb[:, p].long()
            alt = (ref_base[:, None] + shift[None, :]) % 4  # (m, 3): the three other bases (N: any three)
            values = F.one_hot(alt.reshape(-1), 4).to(final.dtype)[:, :, None]  # (3m, 4, 1)
            lo, hi = p, p + 1
            for (block, pool), x_in, y_ref in zip(layers, inputs, blocks):
                conv = block[0]
                left, right = _conv_reach(conv)
                a, b = max(0, lo - right), min(x_in.shape[-1], hi + left)
                win = _window(x_in, a - left, b + right, lo, hi, values)
                y = F.conv1d(win, conv.weight, conv.bias, dilation=conv.dilation)
                for layer in list(block)[1:]:
                    y = layer(y)
                if net.convs.residual and y_ref.shape == x_in.shape:
                    y = y + win[:, :, left : left + (b - a)]
                lo, hi, values = a, b, y
                if isinstance(pool, nn.MaxPool1d):
                    k = int(pool.kernel_size)  # type: ignore[arg-type]
                    a2, b2 = lo // k, min(math.ceil(hi / k), y_ref.shape[-1] // k)
                    win = _window(y_ref, a2 * k, b2 * k, lo, hi, values)
                    lo, hi, values = a2, b2, F.max_pool1d(win, k, k)
            feats = _pooled(net.pooling, final, lo, hi, net.bottleneck(values), prefix, suffix, total)
            mut = _head_output(net, post, feats, target).view(m, 3)
            delta = (mut - ref_out[:, None]).float().cpu().numpy()
            clean = (X[first : first + m, p] < 4)
            alt_np = alt.cpu().numpy()
            for j in range(3):
                out[first + np.flatnonzero(clean), alt_np[clean, j], p] = delta[clean, j]
            bar.update(3 * int(clean.sum()))
    bar.close()
    return out, refs


def _pool_tables(final: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per sequence and channel: max over [0, j) (prefix, j = 0..L), max over [j, L) (suffix), sum."""
    m, c, length = final.shape
    neg = torch.full((m, c, 1), -torch.inf, dtype=final.dtype, device=final.device)
    prefix = torch.cat([neg, torch.cummax(final, -1).values], -1)
    suffix = torch.cat([torch.cummax(final.flip(-1), -1).values.flip(-1), neg], -1)
    return prefix, suffix, final.sum(-1)


def _pooled(how: str, final: torch.Tensor, lo: int, hi: int, values: torch.Tensor, prefix: torch.Tensor,
            suffix: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
    """The global pooling of the mutants' final maps (3 per sequence): the reference outside [lo, hi),
    `values` inside."""
    m, c, length = final.shape
    parts = []
    if "flatten" in POOLING_PARTS[how]:
        parts.append(_window(final, 0, length, lo, hi, values).flatten(1))
    if "max" in POOLING_PARTS[how]:
        outside = torch.maximum(prefix[:, :, lo], suffix[:, :, hi])[:, None]
        inside = values.amax(-1).view(m, 3, c) if hi > lo else outside
        parts.append(torch.maximum(outside, inside).view(3 * m, c))
    if "mean" in POOLING_PARTS[how]:
        rest = (total - final[:, :, lo:hi].sum(-1))[:, None]
        parts.append(((rest + values.sum(-1).view(m, 3, c)) / length).view(3 * m, c))
    return torch.cat(parts, 1)


def _head_output(net: CNN, post: Prediction | None, feats: torch.Tensor, target: int) -> torch.Tensor:
    out = net.head(feats)
    if post is not None:
        out = post.task.activate(out)
    if not 0 <= target < out.shape[1]:
        raise HelixError(f"target {target} is not an output of this model (it has {out.shape[1]})", record="--target")
    return out[:, target].float()
