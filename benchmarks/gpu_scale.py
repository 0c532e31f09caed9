"""What more compute buys the S2 recipe (configs/dream_s2_bert_budget.toml: a nucleotide-token BERT trained from
scratch, two steps), which stays far below its target on 2 CPU cores: the same recipe for a few minutes on a
lent GPU, where the minutes buy many more steps, and a larger encoder. Validation Pearson only (the test split
is not read: these are not recipes); results to benchmarks/results/gpu_scale.{json,md}.

    .venv/bin/python benchmarks/gpu_scale.py                         # on the GPU machine, about 6 minutes
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

from common import RESULTS, write_report  # noqa: E402
from gpu_check import gpu_header, gpu_parser, save  # noqa: E402

WORK = ROOT / "benchmarks" / "work" / "gpu_scale"
RECIPE = "configs/dream_s2_bert_budget.toml"
# name -> (overrides, share of --minutes): the recipe as it is, then a wider and deeper encoder at a larger batch
VARIANTS: dict[str, tuple[list[str], float]] = {
    "s2_recipe": ([], 0.4),
    "s2_mini_b256": (["model.params.size='mini'", "model.params.heads=16", "train.batch_size=256"], 0.6),
}


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


def write_summary(results: Path) -> None:
    data = json.loads(results.read_text())
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


def main() -> None:
    ap = gpu_parser(__doc__, RESULTS / "gpu_scale.json")
    ap.add_argument("--minutes", type=float, default=5.0, help="training minutes shared by the variants")
    args = ap.parse_args()
    if args.summary:
        return write_summary(args.results)
    out = gpu_header(args)
    for name, (overrides, share) in VARIANTS.items():
        out["records"].append(run_variant(name, overrides, args.minutes * share, args.device, args.small))
        save(out, args.results)
    write_summary(args.results)
    print(Path(args.results).with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
