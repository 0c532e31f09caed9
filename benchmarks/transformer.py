"""Transformer benchmark: BERT fine-tuning on GUE promoters, with and without MLM pretraining,
1 vs 2 linear layers, and four tokenizations; resumable; results to benchmarks/results/transformer.*

Protocol: as benchmarks/promoter.py (same prepared splits; the best-validation-MCC checkpoint is
scored on the official test set). Pretraining: configs/pretrain_6mer_hg19.toml (6-mer BERT-tiny,
300 bp windows of hg19 chrX 0-50 Mb) or configs/pretrain_6mer_hg19_short.toml (128 bp windows, a 20 min
budget), each run once and shared by the variants that start from it. Variant 6mer_scratch_2lin_equal
trains from scratch for as long as 6mer_pre128_2lin's pretraining and fine-tuning together (same seed):
what pretraining buys at an equal total budget. Variant 6mer_gpumini_2lin_6ep fine-tunes a BERT-mini pretrained on
a GPU (benchmarks/gpu_scale.py --study promoter --export DIR; copy DIR to benchmarks/work/runs/pretrain_gpu_mini).

    .venv/bin/python benchmarks/transformer.py                  # everything, seed 0
    .venv/bin/python benchmarks/transformer.py --datasets prom_core_all --variants 6mer_pre_2lin

A finished (dataset, variant, seed) is skipped on restart; an interrupted run resumes from its checkpoint.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import (RESULTS, append_record, averages, data_overrides, fit_and_record, load_records, provenance,  # noqa: E402
                    run_script, summary_table, write_report)
from promoter import WORK, prepared  # noqa: E402

from helixlab.config import load_config  # noqa: E402
from helixlab.run.records import environment  # noqa: E402
from helixlab.train import fit  # noqa: E402

PRETRAIN, PRETRAIN_SHORT = "configs/pretrain_6mer_hg19.toml", "configs/pretrain_6mer_hg19_short.toml"
# a pretraining run elsewhere: PRETRAIN_SHORT at BERT-mini size, 4 min on a lent H200 (results/gpu_promoter.md);
# its exported run is unpacked into EXTERNAL[GPU_MINI] before the variants that start from it
GPU_MINI = "benchmarks/gpu_scale.py --study promoter"
EXTERNAL = {GPU_MINI: WORK / "runs" / "pretrain_gpu_mini"}
S1_1, S1_2 = "configs/s1_dnabert_1linear.toml", "configs/s1_dnabert_2linear.toml"
CORE_MINI = "configs/promoter_core_bert_mini.toml"
# the encoder options of PRETRAIN_SHORT, for the scratch model that it is compared with at an equal budget
SHORT_ENCODER = ["model.params.compose_bases=true", "model.params.position_init='sinusoidal'"]
# variant -> (recipe, overrides, pretraining recipe or None, tokenizer, linear head layers)
VARIANTS: dict[str, tuple[str, list[str], str | None, str, int]] = {
    "6mer_pre_2lin": (S1_2, [], PRETRAIN, "kmer-6", 2),
    "6mer_pre_1lin": (S1_1, [], PRETRAIN, "kmer-6", 1),
    "6mer_pre128_2lin": (S1_2, [], PRETRAIN_SHORT, "kmer-6", 2),
    "6mer_pre128_2lin_10min": (S1_2, [], PRETRAIN_SHORT, "kmer-6", 2),
    # the GPU-pretrained BERT-mini fine-tuned by its recipe (lr 2e-4, 6 epochs: chosen on dev on the GPU); the
    # records before this name S1_2 with train.lr=2e-4 train.epochs=6: the same run, as --init-from adopts the
    # encoder (size, tokenizer, composed bases) and its weights (positions too) from the pretrained run
    "6mer_gpumini_2lin_6ep": (CORE_MINI, [], GPU_MINI, "kmer-6", 2),
    "6mer_scratch_2lin": (S1_2, [], None, "kmer-6", 2),
    "6mer_scratch_2lin_equal": (S1_2, SHORT_ENCODER, None, "kmer-6", 2),
    "6mer_scratch_1lin": (S1_1, [], None, "kmer-6", 1),
    "nucleotide_scratch_2lin": (S1_2, ["model.params.tokenizer=nucleotide"], None, "nucleotide", 2),
    "3mer_scratch_2lin": (S1_2, ["model.params.k=3"], None, "kmer-3", 2),
    "subword_scratch_2lin": (S1_2, ["model.params.tokenizer=subword"], None, "subword-bpe-512", 2),
}
EQUAL_BUDGET = {"6mer_scratch_2lin_equal": "6mer_pre128_2lin"}  # variant -> the pretrained variant it matches
# variant -> fine-tuning budget in place of EPOCHS: with the 20 min pretraining, the 30 min per model
BUDGET = {"6mer_pre128_2lin_10min": "10min"}
OWN_LENGTH = {"6mer_gpumini_2lin_6ep"}  # variants that train as long as their recipe says
# CPU budget per fine-tuning run: epochs per data set (prom_300_all ~10 min per epoch for BERT-tiny here)
EPOCHS = {"prom_300_all": 1, "prom_core_all": 2, "prom_300_tata": 3}
DEFAULT_RUNS = [("prom_300_all", v) for v in VARIANTS if v not in ("6mer_scratch_1lin", "6mer_gpumini_2lin_6ep")] + \
    [("prom_core_all", "6mer_pre_2lin"), ("prom_core_all", "6mer_scratch_2lin")]
OUT_JSON = RESULTS / "transformer.json"
OUT_MD = RESULTS / "transformer.md"
PRETRAIN_JSON = RESULTS / "transformer_pretrain.json"
COLUMNS = ("accuracy", "mcc", "auroc", "params", "epochs", "train_seconds", "train_seq_per_s", "pretrain_seconds")


def pretrain(recipe: str, env: dict[str, object], overrides: list[str]) -> tuple[Path, float]:
    """A shared pretraining run (resumed if interrupted); its record goes to transformer_pretrain.json.
    One run elsewhere (EXTERNAL) is used as it is, with its own training time."""
    if recipe in EXTERNAL:
        run_dir = EXTERNAL[recipe]
        if not (run_dir / "results.json").exists():
            raise SystemExit(f"no pretrained run in {run_dir}: run {recipe} on a GPU and unpack its --export there")
        return run_dir, json.loads((run_dir / "results.json").read_text())["train_seconds"]
    run_dir = WORK / "runs" / Path(recipe).stem
    done = [r for r in load_records(PRETRAIN_JSON) if r["recipe"] == recipe]
    if done and (run_dir / "results.json").exists():
        return run_dir, done[-1]["train_seconds"]
    resume = (run_dir / "config.json").exists()
    print(f"== pretrain {recipe} ({'resume' if resume else 'start'})", flush=True)
    cfg = load_config(ROOT / recipe, ["train.progress=false", *overrides])
    res = fit(cfg, run_dir, resume=resume)
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    record = {"recipe": recipe, "params": res["params"], "epochs": res["epochs"],
              "windows": cfg.data.samples.get("train"), "window": cfg.data.window,
              "train_seconds": res["train_seconds"], "train_seq_per_s": res["train_seq_per_s"],
              **{f"valid_{k}": v for k, v in res["splits"]["valid"].items()}, "history": history,
              **provenance(env)}
    append_record(PRETRAIN_JSON, record)
    print({k: record[k] for k in ("valid_mlm_accuracy", "valid_token_loss", "train_seconds")}, flush=True)
    return run_dir, res["train_seconds"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", help="data sets (default: the standard list of runs)")
    ap.add_argument("--variants", nargs="+", help="variants (default: the standard list of runs)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--set", nargs="*", default=[], dest="overrides", help="extra fine-tuning overrides")
    ap.add_argument("--pretrain-set", nargs="*", default=[], help="extra pretraining overrides")
    args = ap.parse_args()
    runs = DEFAULT_RUNS
    if args.datasets or args.variants:
        runs = [(d, v) for d in (args.datasets or list(EPOCHS)) for v in (args.variants or list(VARIANTS))]
    env = environment()
    paths = {d: prepared(d) for d in {d for d, _ in runs}}
    for seed in args.seeds:
        for dataset, variant in runs:
            done = {(r["dataset"], r["variant"], r["seed"]): r for r in load_records(OUT_JSON)}
            if (dataset, variant, seed) in done:
                continue
            recipe, extra, pre_recipe, tokenizer, head_layers = VARIANTS[variant]
            pre_dir, pre_seconds = pretrain(pre_recipe, env, args.pretrain_set) if pre_recipe else (None, 0.0)
            if variant in OWN_LENGTH:
                length = []
            elif variant in BUDGET:
                length = [f"train.budget='{BUDGET[variant]}'"]
            else:
                length = [f"train.epochs={EPOCHS[dataset]}"]
            if variant in EQUAL_BUDGET:  # run after the pretrained variant it matches (an error otherwise)
                matched = done[(dataset, EQUAL_BUDGET[variant], seed)]
                length = [f"train.budget='{matched['pretrain_seconds'] + matched['train_seconds']:.0f}s'"]
            run_dir = WORK / "runs" / dataset / f"bert_{variant}" / f"seed{seed}"
            overrides = data_overrides(paths[dataset])
            overrides += [f"train.seed={seed}", *length, "train.progress=false", *extra, *args.overrides]
            fields = {"dataset": dataset, "variant": variant, "model": "bert", "recipe": recipe, "seed": seed,
                      "tokenizer": tokenizer, "head_layers": head_layers, "pretrained": pre_recipe is not None,
                      "pretrain_recipe": pre_recipe, "pretrain_seconds": pre_seconds}
            fit_and_record(ROOT / recipe, overrides, run_dir, OUT_JSON, f"{dataset} {variant} seed {seed}", fields,
                           env, init_from=str(pre_dir) if pre_dir else None)
            write_summary()
    write_summary()


def write_summary() -> None:
    """Rewrite transformer.md from the JSON records (safe to run at any time)."""
    records = load_records(OUT_JSON)
    pre = load_records(PRETRAIN_JSON)
    if not records and not pre:
        return
    env = (records or pre)[-1]
    table = summary_table(records, ("dataset", "variant", "tokenizer", "head_layers", "pretrained"), COLUMNS,
                          fmt=averages("train_seconds", "train_seq_per_s", "pretrain_seconds")) \
        if records else "(no runs yet)"
    lines: list[str] = []
    for p in {r["recipe"]: r for r in pre}.values():  # the last record of each pretraining recipe
        hidden = p.get("valid_mlm_accuracy_hidden")
        steps = p["history"][-1]["step"] if p.get("history") else None
        lines += [f"Pretraining (`{p['recipe']}`): {p['params']:,} parameters, {p['window']} bp windows, "
                  + (f"{steps:,} steps, " if steps else "") + f"{p['train_seconds']:.0f} s; validation "
                  f"masked-token accuracy {p['valid_mlm_accuracy']:.3f}"
                  + (f" ({hidden:.3f} on the tokens hidden from the model)" if hidden is not None else "")
                  + f", token loss {p['valid_token_loss']:.3f} (perplexity {p['valid_perplexity']:.0f} over 4,101 "
                  "tokens).", ""]
    if any(r.get("pretrain_recipe") in EXTERNAL for r in records):
        lines += [f"Variants pretrained by `{GPU_MINI}` ran that pretraining on a GPU: their pretrain_seconds are "
                  "GPU seconds (an H200; benchmarks/results/gpu_promoter.md).", ""]
    if pre:
        lines += ["BERT masking leaves 10 % of the chosen tokens unchanged, so copying the input alone scores a "
                  "masked-token accuracy of about 0.10; the accuracy on hidden tokens has no such floor (the most "
                  "frequent 6-mer alone would score 0.003, and the 6-mer frequencies alone give a token loss of 8.00 "
                  "nats: hg19 chrX 50-60 Mb, the validation region).", ""]
    lines += [table, "",
              "Published: S1 DNABERT + 2 linear 0.90 accuracy (5 epochs, 180 min, GPU); DNABERT-2 0.935 / MCC 0.870. "
              "prom_core_all MCC: DNABERT 0.709.", ""]
    write_report(OUT_MD, "Transformer benchmark (BERT on GUE promoters)",
                 "Test-set metrics of the best-validation-MCC checkpoint. Same splits as `promoter.md`. "
                 "Generated by `benchmarks/transformer.py`.", env, lines)
    print(table)


if __name__ == "__main__":
    run_script(main, write_summary)
