"""Motif marginalisation with the DREAM LegNet-class model (the design benchmark's legnet_s0): known
yeast motifs (JASPAR 2024 fungi: REB1 MA0363, ABF1 MA0265, RAP1 MA0359; the TATA box TATAAAA) and a
scrambled control written into 200 dev-test sequences whose 80 designed bases are shuffled, at every
4th position of those 80 bases. Results to benchmarks/results/marginalize.{json,md,png}; one record per
finished motif.

    .venv/bin/python benchmarks/marginalize.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import RESULTS, append_record, load_records, provenance, run_script, write_report  # noqa: E402

from helixlab.run.records import environment  # noqa: E402

OUT_JSON = RESULTS / "marginalize.json"
OUT_MD = RESULTS / "marginalize.md"
WORK = ROOT / "benchmarks" / "work" / "marginalize"
MOTIFS = {"REB1": "MA0363", "ABF1": "MA0265", "RAP1": "MA0359", "TATA box": "TATAAAA",
          "control (scrambled REB1)": "CTCGATATC"}
REGION = "17-97"
STEP = 4  # every 4th position of the 80 designed bases (CPU time: ~120 strand-averaged predictions/s here)


def res_bases(motif: str) -> str:
    from helixlab.interpret.marginalize import motif_bases

    return motif_bases(motif)


def main() -> None:
    import pandas as pd
    from design import trained

    from helixlab.interpret.marginalize import marginalize
    from helixlab.paths import data_root

    env = environment()
    done = {r["motif"] for r in load_records(OUT_JSON) if r.get("commit") == env["commit"]}
    run = trained("legnet_s0")
    WORK.mkdir(parents=True, exist_ok=True)
    bg = WORK / "backgrounds.fa"
    table = pd.read_csv(data_root() / "dream2022_yeast" / "test_set_maude_expression.tsv.gz", sep="\t")
    test = table[(table["dev_split"] == "test") & (table["sequence"].str.len() == 110)].head(1000)
    bg.write_text("".join(f">t{i}\n{s}\n" for i, s in zip(test["idx"], test["sequence"])))
    for name, motif in MOTIFS.items():
        if name in done:
            continue
        positions = list(range(17, 97 - len(res_bases(motif)) + 1, STEP))
        res, _ = marginalize(run, motif, WORK / name.split()[0], background=bg, n=200, mode="shuffle", region=REGION,
                             positions=positions, seed=0, device="cpu")
        k = int(np.argmax(np.abs(res.mean)))
        append_record(OUT_JSON, {"motif": name, "given": motif, "bases": res.motif, "n": res.n,
                                 "positions": res.x.tolist(), "mean": [round(float(v), 5) for v in res.mean],
                                 "sd": [round(float(v), 5) for v in res.sd], "mean_effect": float(res.mean.mean()),
                                 "largest_at": int(res.x[k]), "largest": float(res.mean[k]),
                                 "range": [float(res.mean.min()), float(res.mean.max())], "run": str(run),
                                 **provenance(env)})
        print(name, res.motif, f"{res.mean.mean():+.3f}", flush=True)
    write_summary()


def write_summary() -> None:
    records = load_records(OUT_JSON)
    if not records:
        return
    from helixlab.plots import pyplot, save_figure

    last = {r["motif"]: r for r in records}
    lines = ["| motif | inserted | mean change over positions | largest change (position) | range of the position "
             "means |", "|---|---|---|---|---|"]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 4))
    for k, r in enumerate(last.values()):
        lines.append(f"| {r['motif']} | {r['bases']} | {r['mean_effect']:+.3f} | {r['largest']:+.3f} "
                     f"({r['largest_at']}) | {r['range'][0]:+.3f} to {r['range'][1]:+.3f} |")
        x, mean, sd = np.array(r["positions"]), np.array(r["mean"]), np.array(r["sd"])
        ax.plot(x, mean, color=f"C{k}", label=f"{r['motif']} ({r['bases']})")
        ax.fill_between(x, mean - sd, mean + sd, color=f"C{k}", alpha=0.1)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set(xlabel="motif start in the 110 bp sequence (designed bases 17-96)",
           ylabel="change of predicted expression", title="DREAM LegNet (seed 0): motifs in 200 shuffled backgrounds")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3)
    fig.tight_layout()
    save_figure(fig, RESULTS / "marginalize.png")
    r = records[-1]
    write_report(OUT_MD, "Motif marginalisation with the DREAM model",
                 f"`helixlab interpret marginalize` on the design benchmark's legnet_s0: each motif written into "
                 f"{r['n']} dev-test sequences with their 80 designed bases (17-96) shuffled, at every 4th "
                 "position there; the change of the strand-averaged predicted expression (MAUDE units) against "
                 "the same background without the motif, mean ± sd over backgrounds. JASPAR ids are inserted as "
                 "their most "
                 "likely sequence. Generated by `benchmarks/marginalize.py`.", r,
                 ["\n".join(lines), "", "![effect by position](marginalize.png)", ""])
    print("\n".join(lines))


if __name__ == "__main__":
    run_script(main, write_summary)
