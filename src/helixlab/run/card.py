"""MODEL_CARD.md: what a finished run is, written from what the run recorded (never by hand).

Task and outputs, the data of every split with its checksums, the metrics with the test set named,
the training budget and hardware, how to use it, what it is for and its known limits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helixlab.config import RunConfig, TrainConfig
from helixlab.paths import CARD, write_text
from helixlab.run.report import format_metric

TASKS = {
    "binary": "binary classification (probability of label 1 per output)",
    "multiclass": "multi-class classification (a probability per class)",
    "regression": "regression (a value per output)",
    "context": "the base at the centre of a genome window, from its flanks (a probability per class)",
    "mlm": "masked-language-model pretraining (no prediction head)",
}
KEY_METRICS = ("accuracy", "auroc", "auprc", "mcc", "f1", "pearson", "spearman", "mse", "cross_entropy",
               "bits_per_base", "accuracy_repeat", "accuracy_nonrepeat", "mlm_accuracy", "mlm_accuracy_hidden",
               "perplexity", "loss")


def _data(split: str, meta: dict[str, Any]) -> list[str]:
    sources = meta.get("sources") or []
    lines = [f"- **{split}**: {int(meta['records']):,} " + ("windows" if "window" in meta else "records")
             + (f" of {meta['window']} bases" if "window" in meta else
                f", {meta['min_length']}-{meta['max_length']} bases")]
    if "regions" in meta:
        lines.append(f"  - sampled (seed {meta['seed']}) from regions (record, start, end) {meta['regions']}"
                     + (f"; flank {meta['flank']} bases each side, centre hidden" if meta.get("flank") else ""))
    if meta.get("where"):
        lines.append(f"  - rows where {meta['where']}")
    if meta.get("subset"):
        lines.append(f"  - subset: {meta['subset']}")
    for s in sources:
        lines.append(f"  - source `{s['path']}` ({int(s['records']):,} records), sha256 `{s['sha256']}`")
    return lines


def _limits(cfg: RunConfig, info: dict[str, Any], task: str) -> list[str]:
    d = cfg.data
    out = []
    if info.get("seq_len"):
        out.append(f"- Reads sequences of exactly {info['seq_len']} bases (after the run's crop/padding); others are "
                   "refused.")
    if d.crop or d.pad_to:
        out.append(f"- Inputs are cropped/padded as in training (crop {d.crop}, pad to {d.pad_to} with "
                   f"{d.pad_context or 'N'}); `helixlab predict` and `helixlab.load` do it for you.")
    if d.pad_to and info.get("seq_len"):
        out.append(f"- Shorter sequences are accepted: extended to {d.pad_to} bases with "
                   f"{'the ' + str(d.pad_context) + ' context' if d.pad_context else 'N on the right'}"
                   f"{' (after the crop)' if d.crop else ''}; longer ones are refused.")
    if task == "context":
        out.append("- Accuracy differs strongly between repeat (soft-masked) and non-repeat positions; the metrics "
                   "give both. Trained on the regions above only: other genomes or chromosomes are untested.")
    else:
        out.append("- Evaluated only on the test data named above; other species, assays or sequence contexts are "
                   "untested.")
    out.append("- Predictions are associations learned from data, not measurements; check them experimentally "
               "before relying on them.")
    if info.get("init_from"):
        out.append(f"- Fine-tuned from pretrained weights: {info['init_from'].get('source')}.")
    return out


def _augmentation(cfg: RunConfig) -> str:
    """What the training added to the data and labels, as a clause of the Training line."""
    t, parts = cfg.train, []
    if t.rc_augment:
        parts.append("reverse-complement augmentation")
    if t.shift_augment:
        parts.append(f"shifts of up to {t.shift_augment} bases")
    if t.mask_augment:
        parts.append(f"{t.mask_augment:.0%} of bases masked as N")
    if cfg.task.label_smoothing:
        parts.append(f"label smoothing {cfg.task.label_smoothing:g}")
    return "".join(", " + p for p in parts)


def _averaging(t: TrainConfig) -> str:
    if t.ema:
        return f"an exponential moving average of the weights (decay {t.ema:g})"
    if t.swa:
        return f"the mean of the weights over the last {t.swa:.0%} of the schedule (SWA)"
    return "as trained"


def _usage(rd: Path, task: str) -> list[str]:
    if task == "mlm":
        return ["Pretrained weights without a prediction head: fine-tune them on a task with", "",
                "```bash", f"helixlab train RECIPE.toml --init-from {rd}", "```", ""]
    return ["```bash", f"helixlab predict {rd} INPUT.fa -o predictions.csv",
            f"helixlab score-variants {rd} VARIANTS.csv -o effects.csv", "```", "",
            "```python", "import helixlab", f"model = helixlab.load({str(rd)!r})",
            "model.predict(['ACGT...'])   # or a FASTA path; model.embed(...) for features", "```", ""]


def write_model_card(rd: Path, cfg: RunConfig, info: dict[str, Any], results: dict[str, Any]) -> Path:
    task = cfg.task.kind
    env = info.get("environment", {})
    t = cfg.train
    lines = [f"# Model card: {rd.name}", "",
             f"- **Model**: `{cfg.model.name}`, {results['params']:,} parameters; settings in `config.json`.",
             f"- **Task**: {TASKS.get(task, task)}; labels {info['labels']}"
             + (f"; target '{cfg.task.target}'" if task == "context" else "")
             + f"; {info['n_outputs']} outputs.",
             f"- **Made by**: helixlab, commit {env.get('commit')}, torch {env.get('torch')}.", "",
             "## Data", ""]
    for split, meta in info.get("data", {}).items():
        lines += _data(split, meta)
    lines += ["", "## Metrics (best checkpoint, chosen on the validation split)", ""]
    for split, metrics in results.get("splits", {}).items():
        named = ", ".join(f"`{s['path']}`" for s in info.get("data", {}).get(split, {}).get("sources", []))
        shown = {k: v for k, v in metrics.items() if k in KEY_METRICS}
        lines.append(f"- **{split}** ({named or 'see Data'}): "
                     + ", ".join(f"{k} {format_metric(v)}" for k, v in shown.items()))
    lines += ["", "## Training", "",
              f"- {results['epochs']} epochs (best {results['best_epoch']}), batch {t.batch_size}, lr {t.lr} "
              f"({t.schedule}), seed {t.seed}{_augmentation(cfg)}.",
              f"- Weights kept: {_averaging(t)}; {results.get('precision', 'fp32')} training steps.",
              f"- {results['train_seconds']:.0f} s of training, {results['train_seq_per_s']:.0f} sequences/s, on "
              f"{env.get('processor')} x{env.get('cpus')} CPUs, GPU: {env.get('cuda') or 'none'}, "
              f"{info.get('world_size', 1)} process(es).", "",
              "## Use", "", *_usage(rd, task),
              "## Intended use", "",
              f"Research use: scoring DNA sequences like the training data for {TASKS.get(task, task)}, comparing "
              "variants, and interpreting what the model learned (`helixlab interpret`).", "",
              "## Known limits", "", *_limits(cfg, info, task), ""]
    path = rd / CARD
    write_text(path, "\n".join(lines))
    return path


def write_ensemble_card(rd: Path, name: Path, cfg: RunConfig, info: dict[str, Any], results: dict[str, Any],
                        member_results: list[dict[str, Any]]) -> Path:
    """MODEL_CARD.md of an ensemble (written into `rd`, to be renamed `name`): its members, the data and
    metrics of the ensemble beside each member's, use and limits (those of its first member's data)."""
    task = cfg.task.kind
    lines = [f"# Model card: {name.name} (ensemble)", "",
             f"- **Model**: the mean of {len(results['members'])} members' predictions (probabilities or values), "
             f"{results['params']:,} parameters in all; members listed in `ensemble.json`.",
             f"- **Task**: {TASKS.get(task, task)}; labels {info['labels']}; {info['n_outputs']} outputs.", "",
             "## Members", ""]
    for path, res in zip(results["members"], member_results):
        test = {k: v for k, v in res.get("splits", {}).get("test", {}).items() if k in KEY_METRICS}
        lines.append(f"- `{path}`: `{res['model']}`, {res['params']:,} parameters, {res['epochs']} epochs; test "
                     + (", ".join(f"{k} {format_metric(v)}" for k, v in test.items()) or "not scored"))
    lines += ["", "## Data (first member; every member was checked to read the same inputs)", ""]
    for split, meta in info.get("data", {}).items():
        lines += _data(split, meta)
    lines += ["", "## Metrics of the ensemble", ""]
    for split, metrics in results.get("splits", {}).items():
        shown = {k: v for k, v in metrics.items() if k in KEY_METRICS}
        lines.append(f"- **{split}**: " + ", ".join(f"{k} {format_metric(v)}" for k, v in shown.items()))
    if not results.get("splits"):
        lines.append("- not scored: the members' valid/test data differ (`helixlab evaluate` scores it on any data)")
    lines += ["", "Report ensembles as their own rows, never mixed with single models.", "",
              "## Use", "", *_usage(name, task),
              "## Known limits", "", *_limits(cfg, info, task),
              "- A member that is moved or deleted breaks the ensemble (members are referenced, not copied).", ""]
    path = rd / CARD
    write_text(path, "\n".join(lines))
    return path
