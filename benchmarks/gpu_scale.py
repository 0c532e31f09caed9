"""What more compute buys the recipes that stay below their targets on 2 CPU cores, on a lent GPU.

--study s2 (results gpu_scale.{json,md}): configs/dream_s2_bert_budget.toml (a nucleotide-token BERT trained
from scratch, two steps) for a few GPU minutes, where the minutes buy many more steps, and a larger encoder.
Validation Pearson only (the test split is not read: these are not recipes).

--study promoter (results gpu_promoter.{json,md}): the 6-mer BERT-mini MLM pretraining of
configs/pretrain_6mer_hg19_mini.toml for a few GPU minutes, then fine-tuning on GUE prom_core_all
(configs/promoter_core_bert_mini.toml for 3 epochs): the learning rate chosen on dev (seed 0, the test split
unread), then seeds 0-2 scored on test once, and the same encoder trained from scratch (seed 0). The pretrained
run is copied to --export, to be fine-tuned elsewhere (benchmarks/transformer.py, on the CPU).

    .venv/bin/python benchmarks/gpu_scale.py                         # on the GPU machine, about 6 minutes
    .venv/bin/python benchmarks/gpu_scale.py --study promoter --minutes 4 --export DIR   # about 8-9 minutes
    .venv/bin/python benchmarks/gpu_scale.py --device cpu --minutes 0.2 --small   # a dry run on a CPU
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import RESULTS, data_overrides, mean_sd, write_report  # noqa: E402
from gpu_check import gpu_header, gpu_parser, save  # noqa: E402

WORK = ROOT / "benchmarks" / "work" / "gpu_scale"
RECIPE = "configs/dream_s2_bert_budget.toml"
# name -> (overrides, share of --minutes): the recipe as it is, then a wider and deeper encoder at a larger batch
VARIANTS: dict[str, tuple[list[str], float]] = {
    "s2_recipe": ([], 0.4),
    "s2_mini_b256": (["model.params.size='mini'", "model.params.heads=16", "train.batch_size=256"], 0.6),
}


# the promoter study: its two recipes, fine-tuning epochs, learning rates tried on dev
PRETRAIN, FINETUNE = "configs/pretrain_6mer_hg19_mini.toml", "configs/promoter_core_bert_mini.toml"
FINETUNE_EPOCHS, LRS, SEEDS = 3, (5e-4, 2e-4), (0, 1, 2)
SMALL = ["model.params.layers=1", "model.params.hidden=32", "model.params.heads=2", "model.params.intermediate=32"]


def run_variant(name: str, overrides: list[str], minutes: float, device: str, small: bool) -> dict[str, Any]:
    from helixlab.config import load_config
    from helixlab.train import fit

    run = WORK / name
    shutil.rmtree(run, ignore_errors=True)
    over = [*overrides, f"train.budget='{minutes * 60:.0f}s'", f"train.device={device!r}", "train.progress=false"]
    if small:
        over += ["model.params.layers=1", "model.params.hidden=32", "model.params.heads=2",
                 "model.params.intermediate=32"]
    cfg = load_config(ROOT / RECIPE, over)
    cfg.data.test = None  # validation only: exploring compute is not a recipe, the test split stays unread
    t0 = time.perf_counter()
    res = fit(cfg, run)
    s1 = res["stage1"]
    record = {"variant": name, "overrides": overrides, "minutes": minutes, "params": res["params"],
              "stage1_steps": s1.get("budget_steps"), "stage1_epochs": s1["epochs"],
              "stage1_best_epoch": s1["best_epoch"], "stage1_seq_per_s": s1["train_seq_per_s"],
              "stage1_valid_pearson": s1["splits"]["valid"]["pearson"],
              "valid_pearson": res["splits"]["valid"]["pearson"], "wall_seconds": time.perf_counter() - t0}
    print(record, flush=True)
    return record


def pretrain_mini(minutes: float, device: str, small: bool, export: Path | None) -> tuple[Path, dict[str, Any]]:
    """The MLM pretraining of the promoter study; its run copied to `export` (what fine-tuning needs)."""
    from helixlab.config import load_config
    from helixlab.paths import BEST, CONFIG, INFO, TOKENIZER_FILE
    from helixlab.paths import RESULTS as RUN_RESULTS
    from helixlab.train import fit

    run = WORK / "pretrain_mini"
    shutil.rmtree(run, ignore_errors=True)
    over = [f"train.budget='{minutes * 60:.0f}s'", f"train.device={device!r}", "train.progress=false",
            *(SMALL if small else [])]
    t0 = time.perf_counter()
    res = fit(load_config(ROOT / PRETRAIN, over), run)
    valid = res["splits"]["valid"]
    record = {"study": "promoter", "kind": "pretrain", "recipe": PRETRAIN, "minutes": minutes,
              "params": res["params"], "steps": res.get("budget_steps"), "epochs": res["epochs"],
              "seq_per_s": res["train_seq_per_s"], "train_seconds": res["train_seconds"],
              **{f"valid_{k}": v for k, v in valid.items()}, "wall_seconds": time.perf_counter() - t0}
    print(record, flush=True)
    if export is not None:  # config, run record, results, tokenizer and the best weights: an --init-from source
        (export / "checkpoints").mkdir(parents=True, exist_ok=True)
        for name in (CONFIG, INFO, RUN_RESULTS, TOKENIZER_FILE, BEST):
            shutil.copyfile(run / name, export / name)
    return run, record


def finetune(pretrained: Path | None, lr: float, seed: int, role: str, device: str, small: bool,
             epochs: int = FINETUNE_EPOCHS) -> dict[str, Any]:
    """One prom_core_all fine-tuning run (from `pretrained`, or the same encoder from scratch). role: 'test'
    (scored on test), else a dev-only run ('lr_probe', 'dev_only'; the test split unread)."""
    from helixlab.config import load_config
    from helixlab.train import fit
    from promoter import prepared

    data = prepared("prom_core_all")
    variant = "pretrained" if pretrained else "scratch"
    run = WORK / f"prom_core_all_{variant}_lr{lr:g}_e{epochs}_seed{seed}_{role}"
    shutil.rmtree(run, ignore_errors=True)
    over = data_overrides(data)
    over += [f"train.epochs={1 if small else epochs}", f"train.lr={lr}", f"train.seed={seed}",
             f"train.device={device!r}", "train.progress=false"]
    over += SMALL if small and not pretrained else []  # a pretrained encoder's size comes with it
    cfg = load_config(ROOT / FINETUNE, over)
    if role != "test":
        cfg.data.test = None  # choosing the learning rate (or the length) reads dev only
    res = fit(cfg, run, init_from=str(pretrained) if pretrained else None)
    test = res["splits"].get("test", {})
    record = {"study": "promoter", "kind": "finetune", "role": role, "variant": variant, "lr": lr, "seed": seed,
              "params": res["params"], "epochs": res["epochs"], "best_epoch": res["best_epoch"],
              "seq_per_s": res["train_seq_per_s"], "train_seconds": res["train_seconds"],
              "valid_mcc": res["splits"]["valid"]["mcc"],
              **{f"test_{k}": test.get(k) for k in ("accuracy", "mcc", "mcc_at_threshold", "auroc")}}
    print(record, flush=True)
    return record


def promoter_study(args: Any, out: dict[str, Any]) -> None:
    """Pretrain, choose the fine-tuning learning rate on dev, then the test runs; saved after each run."""
    pretrained, record = pretrain_mini(args.minutes, args.device, args.small, args.export)
    out["records"].append(record)
    save(out, args.results)
    probes = []
    for lr in LRS:
        probes.append(finetune(pretrained, lr, 0, "lr_probe", args.device, args.small))
        out["records"].append(probes[-1])
        save(out, args.results)
    lr = max(probes, key=lambda r: r["valid_mcc"])["lr"]
    runs = [(pretrained, seed) for seed in SEEDS] + [(None, SEEDS[0])]
    for source, seed in runs:
        out["records"].append(finetune(source, lr, seed, "test", args.device, args.small))
        save(out, args.results)


def write_summary(results: Path) -> None:
    data = json.loads(results.read_text())
    if data["records"] and data["records"][0].get("study") == "promoter":
        return write_promoter_summary(results, data)
    rows = ["| variant | params | minutes | stage-1 steps | epochs (best) | seq/s | stage-1 valid Pearson | "
            "two-step valid Pearson |", "|" + "---|" * 8]
    for r in data["records"]:
        rows.append(f"| {r['variant']} | {r['params']:,} | {r['minutes']:.1f} | {r['stage1_steps'] or '—'} | "
                    f"{r['stage1_epochs']} ({r['stage1_best_epoch']}) | {r['stage1_seq_per_s']:,.0f} | "
                    f"{r['stage1_valid_pearson']:.3f} | {r['valid_pearson']:.3f} |")
    write_report(results.with_suffix(".md"), "S2 with more compute: the recipe on a lent GPU",
                 f"`benchmarks/gpu_scale.py`: `{RECIPE}` (two steps, from scratch) with its budget in GPU minutes, "
                 "and a larger encoder; validation Pearson on the dev_split's valid rows (the test split unread). "
                 "On 2 CPU cores the recipe's 28 min give valid Pearson about 0.42 (README, DREAM).", data,
                 [*rows, "", f"Command: `{data['command']}`."])


def write_promoter_summary(results: Path, data: dict[str, Any]) -> None:
    pre = [r for r in data["records"] if r["kind"] == "pretrain"]
    tuned = [r for r in data["records"] if r["kind"] == "finetune"]
    rows = ["| pretraining | params | minutes | steps | epochs | seq/s | valid masked-token accuracy | "
            "valid token loss |", "|" + "---|" * 8]
    rows += [f"| {' + '.join([r['recipe'], *r.get('overrides', [])])} | {r['params']:,} | {r['minutes']:.1f} | "
             f"{r['steps'] or '—'} | {r['epochs']} | {r['seq_per_s']:,.0f} | {r['valid_mlm_accuracy']:.3f} | "
             f"{r['valid_token_loss']:.2f} |" for r in pre]

    def fmt(v: Any) -> str:
        return "—" if v is None else f"{v:.3f}"

    rows += ["", "| encoder | lr | seed | epochs (best) | train s | seq/s | dev MCC | test accuracy | test MCC | "
             "test MCC at dev threshold | test AUROC |", "|" + "---|" * 11]
    rows += [f"| {r['variant']} | {r['lr']:g} | {r['seed']} | {r['epochs']} ({r['best_epoch']}) | "
             f"{r['train_seconds']:.0f} | {r['seq_per_s']:,.0f} | {r['valid_mcc']:.3f} | {fmt(r['test_accuracy'])} | "
             f"{fmt(r['test_mcc'])} | {fmt(r['test_mcc_at_threshold'])} | {fmt(r['test_auroc'])} |" for r in tuned]
    notes = [f"- {r['variant']}, lr {r['lr']:g}, seed {r['seed']}, {r['epochs']} epochs ({r['role']}): {r['note']}."
             + (f" Command: `{r['command']}`." if r.get("command") else "") for r in tuned if r.get("note")]
    rows += ["", *notes] if notes else []
    test = [r for r in tuned if r["variant"] == "pretrained" and r["role"] == "test"]
    if test:
        epochs = ", ".join(sorted({str(r["epochs"]) for r in test}))
        rows += ["", f"Pretrained, test MCC over {len(test)} seeds ({epochs} epochs): "
                 f"**{mean_sd([r['test_mcc'] for r in test])}**."]
    write_report(results.with_suffix(".md"), "prom_core_all with a GPU-pretrained BERT-mini",
                 f"`benchmarks/gpu_scale.py --study promoter`: `{PRETRAIN}` for a few GPU minutes, then "
                 f"`{FINETUNE}` on GUE prom_core_all "
                 f"for {FINETUNE_EPOCHS} epochs: the learning rate chosen from {', '.join(f'{v:g}' for v in LRS)} on "
                 "dev (seed 0, role lr_probe, test unread), then seeds scored on test once (role test); `scratch` "
                 "is the same encoder without pretraining, at the learning rate chosen for the pretrained one. "
                 "Runs on a GPU are not bit-for-bit repeatable (the probe and the test run of one seed and learning "
                 "rate differ a little on dev).", data,
                 [*rows, "", f"Command: `{data['command']}`."
                  + (f" Tree: {data['tree']}." if data.get("tree") else "")
                  + (f" {data['note']}" if data.get("note") else "")])


def main() -> None:
    ap = gpu_parser(__doc__, None)
    ap.add_argument("--study", choices=("s2", "promoter"), default="s2")
    ap.add_argument("--minutes", type=float, default=5.0,
                    help="training minutes shared by the S2 variants; pretraining minutes of the promoter study")
    ap.add_argument("--export", type=Path, help="promoter study: copy the pretrained run here")
    args = ap.parse_args()
    args.results = args.results or RESULTS / ("gpu_scale.json" if args.study == "s2" else "gpu_promoter.json")
    if args.summary:
        return write_summary(args.results)
    out = gpu_header(args)
    if args.study == "promoter":
        promoter_study(args, out)
    else:
        for name, (overrides, share) in VARIANTS.items():
            out["records"].append(run_variant(name, overrides, args.minutes * share, args.device, args.small))
            save(out, args.results)
    write_summary(args.results)
    print(Path(args.results).with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
