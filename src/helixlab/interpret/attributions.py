"""Attributions: how much each base of an input drives a trained model's output.

Every method is a function f(model, X, *, target, batch_size, device) over any helixlab model: X is
(N, L) uint8 codes, the result an (N, 4, L) float32 array, and the model's mode and device are
restored afterwards. The output explained is the raw output `target` (a logit, or the value).

- `ism` (helixlab.interpret.ism): in-silico saturation mutagenesis, every position x every base (any
  model family; windowed for convolutional models): out[i, b, p] = f(X_i with base b at p) - f(X_i).
- `gradient_x_input`, `integrated_gradients`, `deeplift`, `deepliftshap` (captum): gradients with
  respect to the one-hot input, for models that read one-hot bases (`SequenceModel.reads_one_hot`). The
  reference of integrated gradients and DeepLIFT is the all-N input (0.25 per base); DeepLIFT-SHAP
  averages DeepLIFT over `n_shuffles` shuffles of each sequence as references.

`position_scores` turns any of them into one score per position (how much the observed base
matters); `write_logos` and `plot_metaplot` draw them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from helixlab.apply.api import load
from helixlab.apply.predict import inference
from helixlab.errors import HelixError
from helixlab.interpret.ism import Prediction, codes, explained_model, ism, outputs
from helixlab.models.base import SequenceModel, unwrap
from helixlab.paths import write_npz
from helixlab.plots import pyplot, save_figure
from helixlab.seq.alphabet import BASES, N_CODE, one_hot


def reads_one_hot(model: nn.Module) -> bool:
    """Whether gradients can be taken with respect to the model's one-hot input (its declaration)."""
    inner = unwrap(model)
    if isinstance(inner, Prediction):
        return inner.reads_one_hot
    return isinstance(inner, SequenceModel) and inner.reads_one_hot


class _Explained(nn.Module):
    """The model as a function of its one-hot input, for captum: (N, 4, L) float -> (N,) output."""

    def __init__(self, model: nn.Module, target: int) -> None:
        super().__init__()
        self.model, self.target = model, target

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return outputs(self.model, h, self.target)


def _captum(method: Callable[[nn.Module], Any], model: nn.Module, X: np.ndarray, *, target: int, batch_size: int,
            device: str | torch.device, baseline: Callable[[torch.Tensor, int], torch.Tensor] | None = None,
            **kwargs: Any) -> np.ndarray:
    """Run a captum attribution over X in batches, with respect to the one-hot input."""
    if not reads_one_hot(model):
        raise HelixError(f"{type(unwrap(model)).__name__} reads tokens or k-mer ids, not one-hot bases: gradient "
                         "attributions do not apply; use the 'ism' method", record="--method")
    X = codes(X)
    parts = []
    with inference(model, device) as dev, torch.enable_grad(), torch.backends.cudnn.flags(enabled=False):
        # (cuDNN recurrent layers cannot run backward in eval mode)
        explainer = method(_Explained(model, target))
        for start in range(0, len(X), batch_size):
            h = one_hot(torch.from_numpy(X[start : start + batch_size]).to(dev)).requires_grad_(True)
            extra = {"baselines": baseline(h, start)} if baseline is not None else {}
            parts.append(explainer.attribute(h, **extra, **kwargs).detach().float().cpu().numpy())
    return np.concatenate(parts) if parts else np.zeros((0, 4, X.shape[1]), np.float32)


def _all_n(h: torch.Tensor, start: int) -> torch.Tensor:
    return torch.full_like(h, 0.25)


def gradient_x_input(model: nn.Module, X: np.ndarray, *, target: int = 0, batch_size: int = 256,
                     device: str | torch.device = "cpu") -> np.ndarray:
    from captum.attr import InputXGradient

    return _captum(InputXGradient, model, X, target=target, batch_size=batch_size, device=device)


def integrated_gradients(model: nn.Module, X: np.ndarray, *, target: int = 0, batch_size: int = 64,
                         device: str | torch.device = "cpu", n_steps: int = 50) -> np.ndarray:
    from captum.attr import IntegratedGradients

    return _captum(IntegratedGradients, model, X, target=target, batch_size=batch_size, device=device,
                   baseline=_all_n, n_steps=n_steps, internal_batch_size=batch_size * 8)


# layers captum's DeepLift has no rescale rule for (attention: softmax, products, layer norm, functional GELU)
NO_RULE = (nn.SiLU, nn.GELU, nn.GRU, nn.LSTM, nn.MultiheadAttention, nn.LayerNorm)


def _check_rules(model: nn.Module) -> None:
    """DeepLIFT has rescale rules for ReLU-like layers only; elsewhere captum passes plain gradients."""
    missing = sorted({type(m).__name__ for m in model.modules() if isinstance(m, NO_RULE)})
    if missing:
        warnings.warn(f"DeepLIFT has no rule for {', '.join(missing)} in this model: those layers pass plain "
                      "gradients, so the result is only approximately DeepLIFT (integrated_gradients or ism "
                      "are exact alternatives)", stacklevel=3)


def deeplift(model: nn.Module, X: np.ndarray, *, target: int = 0, batch_size: int = 256,
             device: str | torch.device = "cpu") -> np.ndarray:
    from captum.attr import DeepLift

    _check_rules(model)
    return _captum(DeepLift, model, X, target=target, batch_size=batch_size, device=device, baseline=_all_n)


def deepliftshap(model: nn.Module, X: np.ndarray, *, target: int = 0, batch_size: int = 256,
                 device: str | torch.device = "cpu", n_shuffles: int = 10, seed: int = 0,
                 hypothetical: bool = False) -> np.ndarray:
    """DeepLIFT averaged over `n_shuffles` references per sequence: its bases shuffled (mononucleotide
    shuffles; N positions stay where they are). hypothetical: the contribution each base *would* make at
    each position (the multipliers projected onto every base, for motif discovery) rather than the
    observed base's."""
    from captum.attr import DeepLift

    _check_rules(model)
    X = codes(X)
    rng = np.random.default_rng(seed)
    total = np.zeros((len(X), 4, X.shape[1]), dtype=np.float64)
    for _ in range(n_shuffles):
        shuffled = X.copy()
        for i in range(len(X)):  # the bases of each sequence shuffled among its own base positions
            bases = np.flatnonzero(X[i] < 4)
            shuffled[i, bases] = X[i, rng.permutation(bases)]

        def reference(h: torch.Tensor, start: int, _s: np.ndarray = shuffled) -> torch.Tensor:
            return one_hot(torch.from_numpy(_s[start : start + len(h)]).to(h.device))

        extra = {"custom_attribution_func": _hypothetical} if hypothetical else {}
        total += _captum(DeepLift, model, X, target=target, batch_size=batch_size, device=device, baseline=reference,
                         **extra)
    return (total / n_shuffles).astype(np.float32)


def _hypothetical(multipliers: tuple[torch.Tensor, ...], inputs: tuple[torch.Tensor, ...],
                  baselines: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """captum's custom attribution: the contribution of base b at p had it been there,
    sum_c m[c, p] (onehot_b[c] - reference[c, p]) = m[b, p] - sum_c m[c, p] reference[c, p]."""
    m, ref = multipliers[0], baselines[0]
    return (m - (m * ref).sum(1, keepdim=True),)


METHODS: dict[str, Callable[..., np.ndarray]] = {
    "ism": ism, "gradient_x_input": gradient_x_input, "integrated_gradients": integrated_gradients,
    "deeplift": deeplift, "deepliftshap": deepliftshap,
}


def attribute(model: nn.Module, X: np.ndarray, method: str, **kwargs: Any) -> np.ndarray:
    """Dispatch by method name (see METHODS)."""
    if method not in METHODS:
        raise HelixError(f"unknown attribution method {method!r}; choose from {', '.join(METHODS)}", record="--method")
    return METHODS[method](model, X, **kwargs)


def position_scores(attr: np.ndarray, X: np.ndarray, method: str) -> np.ndarray:
    """(N, L): how much the observed base at each position drives the output. Gradient methods: the
    attribution of the observed base. ISM: minus the mean change over the three substitutions (positive
    where mutating the base lowers the output). N positions score 0."""
    X = np.asarray(X)
    if method == "ism":
        scores = -attr.sum(1) / 3.0
    else:
        scores = attr.sum(1)  # zero on the bases not observed (one-hot input)
    return np.where(X == N_CODE, 0.0, scores).astype(np.float32)


def write_logos(scores: np.ndarray, X: np.ndarray, ids: list[str], rows: list[int], out_stem: Path,
                title: str) -> list[Path]:
    """One sequence logo (logomaker) per chosen row: each observed base drawn with its score as height."""
    import logomaker
    import pandas as pd

    plt = pyplot()

    paths = []
    for r in rows:
        if not 0 <= r < len(X):
            raise HelixError(f"--logo {r}: there are {len(X)} records", record="--logo")
        matrix = np.zeros((X.shape[1], 4))
        observed = X[r] < 4
        matrix[np.flatnonzero(observed), X[r][observed]] = scores[r][observed]
        frame = pd.DataFrame(matrix, columns=list(BASES[:4]))
        fig, ax = plt.subplots(figsize=(max(6.0, X.shape[1] / 12), 2.6))
        logomaker.Logo(frame, ax=ax, color_scheme="classic")
        ax.axhline(0, color="grey", lw=0.5)
        ax.set(xlabel="position", ylabel="attribution", title=f"{title}: {ids[r]}")
        fig.tight_layout()
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in ids[r])[:60]
        path = out_stem.with_name(f"{out_stem.name}_logo_{r}_{safe}.png")
        paths.append(save_figure(fig, path))
    return paths


def plot_metaplot(scores: np.ndarray, path: Path, title: str, *, origin: int = 0,
                  marks: dict[str, int] | None = None) -> Path:
    """Mean score and mean |score| per position over all records; x relative to `origin` (e.g. the
    TSS); `marks` labels positions (relative coordinates) with dashed lines."""
    plt = pyplot()
    x = np.arange(scores.shape[1]) - origin
    fig, axes = plt.subplots(2, 1, figsize=(10, 5), sharex=True)
    axes[0].plot(x, scores.mean(0), lw=1)
    axes[0].axhline(0, color="grey", lw=0.5)
    axes[0].set(ylabel="mean attribution", title=f"{title} ({len(scores):,} sequences)")
    axes[1].plot(x, np.abs(scores).mean(0), lw=1, color="C1")
    axes[1].set(ylabel="mean |attribution|", xlabel="position" + (" relative to the origin" if origin else ""))
    for label, pos in (marks or {}).items():
        for ax in axes:
            ax.axvline(pos, ls="--", color="grey", lw=0.8)
        axes[0].text(pos, axes[0].get_ylim()[1], f" {label}", va="top", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def attribute_file(run_dir: str | Path, input_path: str | Path, out: str | Path, *, method: str = "ism",
                   target: int = 0, logos: list[int] | None = None, metaplot: bool = True, origin: int = 0,
                   limit: int | None = None, iupac: str = "error", batch_size: int | None = None,
                   device: str = "auto", precision: str = "fp32") -> tuple[int, list[Path]]:
    """Attributions of a run's output `target` for every record of a FASTA or table, saved as one .npz
    (attributions (N, 4, L), scores (N, L), codes, ids), with logos of the `logos` records and a metaplot.
    Returns (records, the plot files)."""
    model = load(run_dir, device=device)
    X, ids = model.records(input_path, iupac=iupac)  # type: ignore[arg-type]
    if limit is not None:
        X, ids = X[:limit], ids[:limit]
    kwargs: dict[str, Any] = {"progress": True, "precision": precision} if method == "ism" else {}
    if batch_size is not None:
        kwargs["batch_size"] = batch_size
    attr = attribute(explained_model(model.run), X, method, target=target, device=model.device, **kwargs)
    scores = position_scores(attr, X, method)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_npz(out, compressed=True, attributions=attr, scores=scores, codes=X, ids=np.array(ids), method=method,
              target=target)
    stem = out.with_suffix("")
    made = write_logos(scores, X, ids, list(logos or []), stem, f"{method}, output {target}")
    if metaplot and len(X):
        made.append(plot_metaplot(scores, stem.with_name(stem.name + "_metaplot.png"),
                                  f"{Path(run_dir).name}: {method}, output {target}", origin=origin))
    return len(X), made
