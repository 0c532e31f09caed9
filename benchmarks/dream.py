"""DREAM 2022 benchmark: S4 cnn_lstm, the LegNet-class model, S2 two-step nucleotide BERT and S3 6-mer
BERT, trained on the official test set's `dev_split == train`, early-stopped on `valid`, scored on
`test`: Pearson, Spearman and the official DREAM parts restricted to the dev-test rows. Resumable;
results to benchmarks/results/dream.{json,md}.

    .venv/bin/python benchmarks/dream.py                              # the standard list of runs
    .venv/bin/python benchmarks/dream.py --models legnet --seeds 0 1 2

A finished (model, seed) is skipped on restart; an interrupted run resumes from its checkpoint.
The S2 record of stage 1 alone ("s2_bert_stage1") comes from the same run's RUN_DIR/stage1;
cnn_lstm_2step / legnet_2step add stage 2 to the finished cnn_lstm / legnet run of the same seed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import RESULTS, append_record, averages, load_records, provenance, run_script, summary_table, write_report  # noqa: E402

from helixlab.apply.dream import DreamTest, predict_test  # noqa: E402
from helixlab.config import load_config  # noqa: E402
from helixlab.paths import data_root, write_json  # noqa: E402
from helixlab.run.loaded import load_run  # noqa: E402
from helixlab.run.records import environment  # noqa: E402
from helixlab.train import fit  # noqa: E402

WORK = ROOT / "benchmarks" / "work" / "dream"
# S3 variants -> the pretraining run they start from (made by benchmarks/transformer.py)
PRETRAINED = {"s3_bert6": ROOT / "benchmarks" / "work" / "runs" / "pretrain_6mer_hg19",
              "s3_bert6_30min": ROOT / "benchmarks" / "work" / "runs" / "pretrain_6mer_hg19_short"}
# model -> (recipe, overrides). CPU budget: 3 epochs for the convolutional models, 1 (+ stage 2) for BERTs.
MODELS: dict[str, tuple[str, list[str]]] = {
    "legnet": ("configs/dream_legnet.toml", ["train.epochs=3"]),
    "legnet_30min": ("configs/dream_legnet_budget.toml", []),  # a 30 min time budget (issue 14)
    # 8 epochs in place of 3: about 27 min of training in bf16 on a CPU with AVX512-BF16 (200 s per epoch
    # measured there), inside the 30 min limit; kept or dropped on its valid rows
    "legnet_e8": ("configs/dream_legnet.toml", ["train.epochs=8"]),
    "cnn_lstm": ("configs/dream_cnn_lstm.toml", ["train.epochs=3"]),
    "s2_bert": ("configs/dream_s2_bert.toml", ["train.epochs=1"]),
    "s3_bert6": ("configs/dream_s3_bert6.toml", ["train.epochs=1"]),
    # 30 min budgets (issue 14): S2 stage 1 for 28 min + stage 2; S3 from the 128 bp pretraining
    "s2_bert_30min": ("configs/dream_s2_bert_budget.toml", []),
    "s3_bert6_30min": ("configs/dream_s3_bert6_budget.toml", []),
    # the same with a convolutional token embedding (width 9) and rotary positions, chosen on valid
    "s2_bert_conv_30min": ("configs/dream_s2_bert_conv_budget.toml", []),
    # stage 2 (Huber / per-bin subset) on top of the finished one-stage run of the same seed, which is
    # reused as stage 1: the comparison shows what the second step adds
    "cnn_lstm_2step": ("configs/dream_cnn_lstm.toml", ["train.epochs=3", "stage2.per_bin=500", "stage2.epochs=2",
                                                      "stage2.lr=1e-4"]),
    "legnet_2step": ("configs/dream_legnet.toml", ["train.epochs=3", "stage2.per_bin=500", "stage2.epochs=2",
                                                  "stage2.lr=3e-4"]),
}
DEFAULT_RUNS = [("legnet", 0), ("cnn_lstm", 0), ("s2_bert", 0), ("s3_bert6", 0),
                ("legnet", 1), ("cnn_lstm", 1), ("legnet", 2), ("cnn_lstm", 2)]
OUT_JSON = RESULTS / "dream.json"
OUT_MD = RESULTS / "dream.md"
PARTS = ("all", "high", "low", "yeast", "random", "challenging", "SNVs")


def score_fields(run_dir: Path, test: DreamTest) -> dict[str, Any]:
    """Per-part Pearson/Spearman on the dev-test rows and the (partial) weighted scores."""
    run = load_run(run_dir)
    result = test.score(predict_test(run, data_root() / "dream2022_yeast", test.rows("dev-test"), batch_size=256),
                        rows="dev-test")
    out: dict[str, Any] = {"dream_pearson_score_partial": result["pearson_score"],
                           "dream_spearman_score_partial": result["spearman_score"]}
    for name, part in result["parts"].items():  # type: ignore[union-attr]
        out[f"{name}_pearson"], out[f"{name}_spearman"], out[f"{name}_n"] = part["pearson"], part["spearman"], part["n"]
    return out


def record_of(res: dict[str, Any], run_dir: Path, test: DreamTest, fields: dict[str, Any],
              env: dict[str, Any]) -> dict[str, Any]:
    t = res["splits"]["test"]
    return {**fields, "params": res["params"], "epochs": res["epochs"], "best_epoch": res["best_epoch"],
            "train_seconds": res["train_seconds"], "train_seq_per_s": res["train_seq_per_s"],
            "pearson": t["pearson"], "spearman": t["spearman"], "valid_pearson": res["splits"]["valid"]["pearson"],
            "train_precision": res.get("precision"), "budget_steps": res.get("budget_steps"),
            "budget_probe_steps": res.get("budget_probe_steps"),
            **score_fields(run_dir, test), **provenance(env)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", choices=list(MODELS))
    ap.add_argument("--seeds", nargs="+", type=int)
    args = ap.parse_args()
    runs = DEFAULT_RUNS
    if args.models or args.seeds:
        runs = [(m, s) for s in (args.seeds or [0]) for m in (args.models or list(MODELS))]
    env = environment()
    test = DreamTest.load(data_root() / "dream2022_yeast")
    for model, seed in runs:
        if (model, seed) in {(r["model"], r["seed"]) for r in load_records(OUT_JSON)}:
            continue
        recipe, overrides = MODELS[model]
        run_dir = WORK / model / f"seed{seed}"
        cfg = load_config(ROOT / recipe, [*overrides, f"train.seed={seed}", "train.progress=false"])
        resume = (run_dir / "config.json").exists()
        if model.endswith("_2step") and not resume:
            base = WORK / model.removesuffix("_2step") / f"seed{seed}"
            if not (base / "results.json").exists():
                print(f"== {model} seed {seed}: needs the finished {base.parent.name} run first; skipped")
                continue
            run_dir.mkdir(parents=True)
            shutil.copytree(base, run_dir / "stage1")
            write_json(run_dir / "config.json", cfg.to_dict())
            resume = True
        pre = PRETRAINED.get(model)
        if pre is not None and not (pre / "results.json").exists():
            print(f"== {model} seed {seed}: needs the finished pretraining run {pre.relative_to(ROOT)} "
                  "(benchmarks/transformer.py makes it); skipped")
            continue
        init_from = str(pre) if pre is not None else None
        print(f"== {model} seed {seed} ({'resume' if resume else 'start'})", flush=True)
        res = fit(cfg, run_dir, resume=resume, init_from=init_from)
        fields = {"dataset": "dream_dev_split", "model": model, "recipe": recipe, "seed": seed,
                  "pretrained": init_from is not None}
        if "stage1" in res and not model.endswith("_2step"):  # two-step: stage 1 alone, scored the same way
            append_record(OUT_JSON, {**record_of(res["stage1"], run_dir / "stage1", test,
                                                 {**fields, "model": f"{model}_stage1"}, env)})
        record = record_of(res, run_dir, test, fields, env)
        append_record(OUT_JSON, record)
        print({k: record[k] for k in ("pearson", "spearman", "high_pearson", "low_pearson", "train_seconds")},
              flush=True)
        write_summary()
    write_summary()


def write_summary() -> None:
    """Rewrite dream.md from the JSON records (safe to run at any time)."""
    records = load_records(OUT_JSON)
    if not records:
        return
    env = records[-1]
    main_cols = ("pearson", "spearman", "params", "epochs", "train_seconds", "train_seq_per_s")
    table = summary_table(records, ("model",), main_cols, fmt=averages("train_seconds", "train_seq_per_s"))
    parts = summary_table(records, ("model",), [f"{p}_pearson" for p in PARTS] + ["dream_pearson_score_partial"])
    n = {p: records[-1].get(f"{p}_n") for p in PARTS}
    lines = [table, "",
             "Official DREAM parts on the dev-test rows (Pearson r; pairs: predicted vs measured alt - ref). "
             "Members per part: " + ", ".join(f"{p} {v:,}" for p, v in n.items() if v is not None) + ". "
             "The motif perturbation / tiling pairs all fall in dev_split train, so the weighted score is over "
             "the seven parts present (weights renormalised) and is not comparable with the published scores.",
             "", parts, "",
             "Published (trained on all 6.7 M training rows, scored on the whole private test set): LegNet "
             "Pearson r 0.946 on all sequences, Pearson score 0.818, Spearman score 0.854; S4 validation "
             "Pearson ~0.73 (training-set scale).", ""]
    write_report(OUT_MD, "DREAM 2022 benchmark (dev_split of the official test set)",
                 "Trained on `dev_split == train` (57,549 rows), best epoch by validation Pearson on `valid` "
                 "(7,065), scored on `test` (6,489). Generated by `benchmarks/dream.py`.", env, lines)
    print(table)
    print(parts)


if __name__ == "__main__":
    run_script(main, write_summary)
