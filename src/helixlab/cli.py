"""`helixlab` commands: each one a thin call into the library.

The library is imported inside each command, not here: it imports torch (and a command may need
transformers, captum or onnx), so `helixlab --help` and argument errors answer without loading them.
These are the only function-level imports of helixlab modules besides `helixlab.load`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from helixlab.errors import HelixError
from helixlab.paths import REPORT, write_json

app = typer.Typer(help="helixlab: deep learning on DNA sequence.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)


def _print_metrics(rows: dict[str, dict[str, float]]) -> None:
    from helixlab.run.report import format_metric

    keys = list(next(iter(rows.values())).keys())
    width = max(len(k) for k in keys)
    typer.echo(f"{'metric':<{width}}  " + "  ".join(f"{s:>10}" for s in rows))
    for k in keys:
        typer.echo(f"{k:<{width}}  " + "  ".join(f"{format_metric(rows[s][k]):>10}" for s in rows))


@app.command()
def prepare(
    inputs: Annotated[Optional[list[Path]], typer.Argument(help="FASTA(.gz), CSV/TSV(.gz) or DREAM files")] = None,
    out: Annotated[Path, typer.Option("-o", "--out", help="output directory (must not exist)")] = Path("prepared"),
    bed: Annotated[Optional[Path], typer.Option(help="intervals (BED, 0-based half-open) to cut from --genome "
                                                     "instead of INPUTS")] = None,
    genome: Annotated[Optional[Path], typer.Option(help="genome FASTA(.gz) or prepared directory, for --bed")] = None,
    summit_col: Annotated[Optional[str], typer.Option(help="--bed: centre on start + this column (e.g. peak) "
                                                           "instead of the middle")] = None,
    label: Annotated[Optional[float], typer.Option(help="--bed: one constant label for every interval")] = None,
    edge: Annotated[str, typer.Option(help="--bed: intervals off a chromosome or with N: drop, pad (with N) or "
                                           "error")] = "drop",
    duplicates: Annotated[str, typer.Option(help="--bed: identical intervals: keep or refuse")] = "keep",
    split: Annotated[Optional[list[str]], typer.Option(help="--bed: CHROM,...:test or :valid, or "
                                                            "CHROM:START-END:test (repeat); the rest is train")] = None,
    strand: Annotated[bool, typer.Option(help="--bed: reverse-complement '-' strand intervals")] = True,
    fmt: Annotated[str, typer.Option("--format", help="auto, fasta, csv, tsv or dream")] = "auto",
    seq_col: Annotated[Optional[str], typer.Option(help="sequence column")] = None,
    label_col: Annotated[Optional[list[str]], typer.Option(help="label column (repeat for several)")] = None,
    id_col: Annotated[Optional[str], typer.Option(help="record id column")] = None,
    length: Annotated[str, typer.Option(help="auto, fixed (ragged lengths are an error) or variable")] = "auto",
    iupac: Annotated[str, typer.Option(help="IUPAC ambiguity codes: error, or n to read them as N")] = "error",
    keep_mask: Annotated[bool, typer.Option(help="keep the lowercase (soft-mask) bit")] = False,
    unlabelled: Annotated[bool, typer.Option(help="tables without a label column (or DREAM-style lines without "
                                                  "a value) hold sequences only, for pretraining or prediction; "
                                                  "otherwise that is an error")] = False,
    where: Annotated[Optional[str], typer.Option(help="only the table rows with column=value, "
                                                      "e.g. dev_split=train")] = None,
    drop_n: Annotated[bool, typer.Option(help="drop records containing N")] = False,
    keep_length: Annotated[Optional[list[int]], typer.Option(help="keep only records of this length "
                                                                  "(repeat for several)")] = None,
    crop: Annotated[Optional[str], typer.Option(help="START,END slice of every record (END < 0 counts from "
                                                     "the end), e.g. 17,-13 for the DREAM random region")] = None,
    pad_to: Annotated[int, typer.Option(help="pad every record to this length with --pad-context")] = 0,
    pad_context: Annotated[Optional[str], typer.Option(help="pTpA (the DREAM plasmid) or UPSTREAM,DOWNSTREAM "
                                                            "bases [default: N]")] = None,
) -> None:
    """Encode sequence files once into uint8 memory-mapped arrays + labels + meta.json; or, with --bed and
    --genome, the sequences of genome intervals (one directory per split, by chromosome or region)."""
    if bed is not None:
        _prepare_bed(bed, genome, out, length, summit_col, label_col, label, edge, duplicates, split, strand)
        return
    if not inputs:
        raise HelixError("give input files, or --bed with --genome", record="INPUTS")
    from helixlab.data.shards import Shard
    from helixlab.data.shards import prepare as run_prepare
    from helixlab.seq.transforms import SeqOptions

    crop_range = None
    if crop is not None:
        try:
            start, end = (int(v) for v in crop.split(","))
        except ValueError:
            raise HelixError(f"--crop expects START,END, got {crop!r}", record="--crop") from None
        crop_range = (start, end)
    context = tuple(pad_context.split(",")) if pad_context and "," in pad_context else pad_context
    options = SeqOptions(drop_n=drop_n, lengths=tuple(keep_length) if keep_length else None, crop=crop_range,
                         pad_to=pad_to, pad_context=context)  # type: ignore[arg-type]
    path = run_prepare([str(p) for p in inputs], out, fmt=fmt, seq_col=seq_col, label_cols=label_col,  # type: ignore[arg-type]
                       id_col=id_col, length=length, iupac=iupac, keep_mask=keep_mask,  # type: ignore[arg-type]
                       where=where, options=options, require_labels=not unlabelled)
    meta = Shard.open(path).meta
    dropped = f", {meta['dropped']:,} dropped by the filters" if meta.get("dropped") else ""
    typer.echo(f"wrote {meta['records']:,} records ({meta['min_length']}-{meta['max_length']} bp, labels "
               f"{meta['labels']}{dropped}) to {path}")


def _prepare_bed(bed: Path, genome: Optional[Path], out: Path, length: str, summit_col: Optional[str],
                 label_col: Optional[list[str]], label: Optional[float], edge: str, duplicates: str,
                 split: Optional[list[str]], strand: bool) -> None:
    from helixlab.data.intervals import parse_split, prepare_intervals

    if genome is None:
        raise HelixError("--bed needs --genome (a FASTA or a prepared directory)", record="--genome")
    size = None
    if length not in ("auto", "variable"):
        try:
            size = int(length)
        except ValueError:
            raise HelixError(f"--length with --bed is a number of bases, got {length!r}", record="--length") from None
    report = prepare_intervals(bed, genome, out, length=size, summit=summit_col, labels=label_col, label=label,
                               edge=edge, duplicates=duplicates, split=parse_split(split), strand=strand)
    dropped = ", ".join(f"{v:,} {k.replace('_', ' ')}" for k, v in report["dropped"].items() if v) or "none"
    typer.echo(f"{report['intervals']:,} intervals: {report['kept']:,} kept; dropped: {dropped}; "
               f"{report['duplicates']:,} duplicates kept")
    for name, part in report["splits"].items():
        typer.echo(f"  {out / name}: {part['records']:,} records from {', '.join(part['chromosomes'][:6])}"
                   + (" ..." if len(part["chromosomes"]) > 6 else ""))


@app.command()
def negatives(
    positives: Annotated[Path, typer.Argument(help="positive sequences (FASTA or table), one length")],
    out: Annotated[Path, typer.Option("-o", "--out", help="output CSV (sequence,label)")],
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    chunks: Annotated[int, typer.Option(help="chunks per sequence")] = 20,
    shuffled: Annotated[int, typer.Option(help="chunks shuffled per sequence")] = 12,
    mode: Annotated[str, typer.Option(help="shuffle: permute the chosen chunks; random: replace them by random "
                                           "bases (what the GUE prom_300 negatives contain)")] = "shuffle",
    frame: Annotated[Optional[int], typer.Option(help="the positives are windows of a sequence this long that the "
                                                      "chunks cut (random mode; GUE prom_core: 300)")] = None,
    offset: Annotated[int, typer.Option(help="where the window starts in --frame (GUE prom_core: 216)")] = 0,
    keep_last: Annotated[bool, typer.Option(help="never choose the last chunk (GUE's negatives all keep it)")] = False,
    include_positives: Annotated[bool, typer.Option(help="also write the positives (label 1)")] = False,
) -> None:
    """Make negatives from positives the GUE/DeePromoter way (12 of 20 chunks shuffled or randomised)."""
    from helixlab.data.negatives import write_negatives

    if offset and frame is None:
        raise HelixError("--offset needs --frame (the length of the sequence the window was cut from)",
                         record="--offset")
    n_in, n_out = write_negatives(positives, out, seed=seed, n_chunks=chunks, n_shuffled=shuffled, mode=mode,
                                  frame=frame, offset=offset, keep_last=keep_last,
                                  include_positives=include_positives)
    typer.echo(f"read {n_in:,} positives, wrote {n_out:,} rows to {out}")


@app.command()
def background(
    genome: Annotated[Path, typer.Argument(help="genome FASTA(.gz)")],
    out: Annotated[Path, typer.Option("-o", "--out", help="output CSV (sequence,label=0)")],
    count: Annotated[Optional[int], typer.Option(help="number of windows [default: 1000, or as many as the "
                                                      "--matched positives]")] = None,
    length: Annotated[Optional[int], typer.Option(help="window length [default: 300, or the --matched "
                                                       "positives' length]")] = None,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    motif: Annotated[Optional[str], typer.Option(help="IUPAC motif some windows must carry, e.g. TATAWAWR")] = None,
    motif_at: Annotated[str, typer.Option(help="first-last start offset of the motif")] = "214-222",
    motif_fraction: Annotated[float, typer.Option(help="fraction of windows that carry the motif")] = 0.5,
    matched: Annotated[Optional[Path], typer.Option(help="positives (BED intervals of this genome, or "
                                                         "sequences) whose GC distribution the windows match "
                                                         "(bins of 2 %); --count default: as many")] = None,
) -> None:
    """Sample random genome windows (no N) as negatives, optionally with a motif at a fixed place, or
    GC-matched to positives (excluding them), with a plot of both GC histograms."""
    if matched is not None:
        from helixlab.data.background import gc_matched

        res = gc_matched(genome, matched, out, count=count, length=length, seed=seed)
        typer.echo(f"wrote {res.count:,} GC-matched genome windows to {out} ({res.draws:,} drawn); positives GC "
                   f"{res.positives_gc.mean():.3f}, background {res.background_gc.mean():.3f}; plot: {res.plot}")
        return
    from helixlab.data.negatives import genome_background

    try:
        first, last = (int(v) for v in motif_at.split("-"))
    except ValueError:
        raise HelixError(f"--motif-at expects FIRST-LAST, got {motif_at!r}") from None
    n = genome_background(genome, out, count=count or 1000, length=length or 300, seed=seed, motif=motif,
                          motif_range=(first, last), motif_fraction=motif_fraction)
    typer.echo(f"wrote {n:,} genome windows to {out}")


def _run_training(config: Optional[Path], set_: Optional[list[str]], out: Optional[Path], resume: Optional[Path],
                  init_from: Optional[Path], *, pretrain: bool) -> None:
    from helixlab.train.fit import fit_recipe

    results, run_dir = fit_recipe(config, set_ or [], out=out, resume=resume, init_from=init_from, pretrain=pretrain)
    if results.get("splits"):
        _print_metrics(results["splits"])
    if results:
        typer.echo(f"report: {run_dir / REPORT}")


RecipeArg = Annotated[Optional[Path], typer.Argument(help="TOML recipe (not needed with --resume)")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="override, e.g. train.lr=3e-4")]
OutOpt = Annotated[Optional[Path], typer.Option("-o", "--out", help="run directory (default runs/<recipe>)")]
ResumeOpt = Annotated[Optional[Path], typer.Option(help="continue this run directory")]
PrecisionOpt = Annotated[str, typer.Option(help="auto (bf16 where the device has bf16 units and the model gains), "
                                                "fp32 or bf16")]


@app.command()
def train(
    config: RecipeArg = None, set_: SetOpt = None, out: OutOpt = None, resume: ResumeOpt = None,
    init_from: Annotated[Optional[Path], typer.Option(
        help="start from pretrained weights: a helixlab run (e.g. from `pretrain`), a Hugging Face BERT "
             "directory on disk, or a .safetensors file")] = None,
) -> None:
    """Train a model from a recipe; writes a run directory with checkpoints, metrics and a report."""
    _run_training(config, set_, out, resume, init_from, pretrain=False)


@app.command()
def pretrain(config: RecipeArg = None, set_: SetOpt = None, out: OutOpt = None, resume: ResumeOpt = None) -> None:
    """Pretrain a BERT encoder by masked-language modelling on unlabelled sequence (FASTA, table or
    genome windows); fine-tune it with `helixlab train --init-from RUN_DIR`."""
    _run_training(config, set_, out, resume, None, pretrain=True)


@app.command("dream-score")
def dream_score(
    source: Annotated[Path, typer.Argument(help="a trained run directory, or a predictions CSV (id = test idx, "
                                                "prediction) from `helixlab predict`")],
    data_dir: Annotated[Optional[Path], typer.Option(help="the DREAM 2022 data directory "
                                                          "[default: $HELIXLAB_DATA/dream2022_yeast]")] = None,
    rows: Annotated[str, typer.Option(help="private (the official score: public-leaderboard rows left out), all, "
                                           "dev-test or dev-valid")] = "private",
    snv: Annotated[str, typer.Option(help="SNV pairs: hamming1 (all test pairs 1 base apart) or public")] = "hamming1",
    out: Annotated[Optional[Path], typer.Option("-o", "--out", help="write the score as JSON")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto")] = "auto",
    precision: PrecisionOpt = "auto",
) -> None:
    """The official DREAM 2022 weighted Pearson and Spearman scores on the MAUDE test set, with every part."""
    from helixlab.apply.dream import dream_score as score
    from helixlab.apply.dream import format_score

    result = score(source, data_dir, rows=rows, snv=snv, device=device, precision=precision)
    typer.echo(format_score(result))
    if not result["complete"]:
        typer.echo(f"(partial: some parts have no scored members with rows={rows}; the score averages the others)")
    if out:
        write_json(out, result)


@app.command()
def ensemble(
    members: Annotated[list[Path], typer.Argument(metavar="RUN_DIR...", help="finished runs of one task (e.g. "
                                                                           "seeds of a recipe)")],
    out: Annotated[Path, typer.Option("-o", "--out", help="the ensemble directory to write (never overwritten)")],
    device: Annotated[str, typer.Option(help="cpu, cuda or auto")] = "auto",
    precision: PrecisionOpt = "auto",
) -> None:
    """Combine finished runs into one model that averages their predictions; score it on the members'
    shared valid/test splits. Every command that takes a run directory takes the ensemble directory."""
    from helixlab.models.base import resolve_device
    from helixlab.run.ensemble import build_ensemble

    results = build_ensemble(members, out, device=str(resolve_device(device)), precision=precision)  # type: ignore[arg-type]
    if results["splits"]:
        _print_metrics(results["splits"])
    typer.echo(f"wrote ensemble of {len(members)} runs to {out} (report: {out / 'report.md'})")


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="a finished run directory")],
    data: Annotated[Path, typer.Argument(help="labelled data: a file or a prepared directory")],
    out: Annotated[Optional[Path], typer.Option("-o", "--out", help="write the metrics as JSON")] = None,
    rc_average: Annotated[Optional[bool], typer.Option(help="average forward and reverse-complement outputs "
                                                            "[default: as the run was evaluated]")] = None,
    batch_size: Annotated[int, typer.Option(help="batch size")] = 512,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto")] = "auto",
    where: Annotated[Optional[str], typer.Option(help="only the table rows with column=value, "
                                                      "e.g. dev_split=test")] = None,
    region: Annotated[Optional[list[str]], typer.Option(help="genome runs: windows from NAME:START-END "
                                                             "(repeat for several) [default: the run's test "
                                                             "regions]")] = None,
    samples: Annotated[Optional[int], typer.Option(help="genome runs: how many positions [default: the run's "
                                                        "test sample size]")] = None,
    precision: PrecisionOpt = "auto",
) -> None:
    """Score a trained run on labelled data: classification or regression metrics (the run's crop and
    padding are applied). For genome runs DATA is a genome (FASTA or prepared directory) and the
    positions are the run's fixed, seeded test sample of the given regions."""
    from helixlab.apply.evaluate import evaluate_run
    from helixlab.models.base import resolve_device
    from helixlab.run.loaded import load_run

    dev = str(resolve_device(device))
    metrics = evaluate_run(load_run(run_dir, device=dev), data, where=where, regions=region, samples=samples,
                           rc_average=rc_average, batch_size=batch_size, device=dev, precision=precision)
    _print_metrics({data.name: metrics})
    if out:
        write_json(out, metrics)


@app.command("predict")
def predict_cmd(
    run_dir: Annotated[Path, typer.Argument(help="a finished run directory")],
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="FASTA or table of sequences")],
    out: Annotated[Path, typer.Option("-o", "--out", help="output CSV: id, prediction")],
    rc_average: Annotated[Optional[bool], typer.Option(help="average forward and reverse-complement outputs "
                                                            "[default: as the run was evaluated]")] = None,
    batch_size: Annotated[int, typer.Option(help="batch size")] = 512,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto")] = "auto",
    iupac: Annotated[str, typer.Option(help="IUPAC ambiguity codes: error, or n")] = "error",
    attentions: Annotated[Optional[Path], typer.Option(help="transformer runs: also write attention weights "
                                                            "to this .npz")] = None,
    attention_layer: Annotated[int, typer.Option(help="which layer's attention (-1 = last)")] = -1,
    precision: PrecisionOpt = "auto",
) -> None:
    """Predict every record of a FASTA or table with a trained run."""
    from helixlab.apply.predict import predict_file
    from helixlab.models.base import resolve_device
    from helixlab.run.loaded import load_run

    dev = str(resolve_device(device))
    run = load_run(run_dir, device=dev)
    rc_average = run.config.train.rc_average if rc_average is None else rc_average
    n = predict_file(run, input_path, out, rc_average=rc_average, batch_size=batch_size, device=dev,
                     iupac=iupac, attentions=attentions, attention_layer=attention_layer,  # type: ignore[arg-type]
                     precision=precision)
    typer.echo(f"wrote {n:,} predictions to {out}" + (f" and attention weights to {attentions}" if attentions else ""))


@app.command("embed")
def embed_cmd(
    run_dir: Annotated[Path, typer.Argument(help="a finished run directory")],
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="FASTA or table of sequences")],
    out: Annotated[Path, typer.Option("-o", "--out", help="output .npy: (records, features) float32")],
    batch_size: Annotated[int, typer.Option(help="batch size")] = 512,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto")] = "auto",
    iupac: Annotated[str, typer.Option(help="IUPAC ambiguity codes: error, or n")] = "error",
) -> None:
    """Write the representation before the head (any model family) of every record, in input order."""
    from helixlab.apply.api import embed_file

    n, dim = embed_file(run_dir, input_path, out, batch_size=batch_size, iupac=iupac, device=device)  # type: ignore[arg-type]
    typer.echo(f"wrote {n:,} x {dim} embeddings to {out}")


@app.command("score-variants")
def score_variants_cmd(
    run_dir: Annotated[Path, typer.Argument(help="a finished run directory")],
    variants: Annotated[Path, typer.Argument(help="CSV/TSV: sequence,position,ref,alt (0-based position), "
                                                  "id,position,ref,alt with --sequences, or "
                                                  "ref_sequence,alt_sequence")],
    out: Annotated[Path, typer.Option("-o", "--out", help="output CSV: id, ref_*, alt_*, effect_* (alt - ref)")],
    sequences: Annotated[Optional[Path], typer.Option(help="FASTA or table of the sequences the ids refer to")] = None,
    rc_average: Annotated[Optional[bool], typer.Option(help="average both strands [default: as the run was "
                                                            "evaluated]")] = None,
    batch_size: Annotated[int, typer.Option(help="batch size")] = 512,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto")] = "auto",
) -> None:
    """Predicted effect (alt - ref) of every variant or sequence pair."""
    from helixlab.apply.variants import score_variants_file

    n = score_variants_file(run_dir, variants, out, sequences=sequences, batch_size=batch_size, rc_average=rc_average,
                            device=device)
    typer.echo(f"wrote {n:,} variant effects to {out}")


@app.command("export")
def export_cmd(
    run_dir: Annotated[Path, typer.Argument(help="a finished run directory")],
    fmt: Annotated[str, typer.Option("--format", help="onnx")] = "onnx",
    out: Annotated[Optional[Path], typer.Option("-o", "--out", help="output [default: RUN_DIR/model.onnx]")] = None,
    length: Annotated[Optional[int], typer.Option(help="example input length for variable-length models")] = None,
) -> None:
    """Export the run's model (ONNX) with its input/output contract (OUT.json), checked against torch."""
    from helixlab.apply.export import FORMATS, export_onnx
    from helixlab.run.loaded import load_run

    if fmt not in FORMATS:
        raise HelixError(f"unknown export format {fmt!r}; available: {', '.join(FORMATS)}", record="--format")
    target = out or run_dir / "model.onnx"
    target.parent.mkdir(parents=True, exist_ok=True)
    spec = export_onnx(load_run(run_dir), target, length=length, overwrite=True)
    typer.echo(f"wrote {target} and {target}.json (onnxruntime vs torch on {spec['parity']['sequences']} random "
               f"sequences: max |difference| {spec['parity']['max_abs_diff']:.2e})")


interpret_app = typer.Typer(help="Interpret a trained run.", no_args_is_help=True)
app.add_typer(interpret_app, name="interpret")


@interpret_app.command("ablate-flanks")
def ablate_flanks_cmd(
    run_dir: Annotated[Path, typer.Argument(help="a finished run directory (fixed-length, centred inputs)")],
    band: Annotated[int, typer.Option(help="band width in bases")] = 10,
    mode: Annotated[str, typer.Option(help="shuffle (permute the band's bases) or random (replace them)")] = "shuffle",
    samples: Annotated[int, typer.Option(help="how many inputs of the split")] = 20000,
    split: Annotated[str, typer.Option(help="which split of the run's data")] = "test",
    seed: Annotated[int, typer.Option(help="seed of the perturbations")] = 0,
    out: Annotated[Optional[Path], typer.Option("-o", "--out", help="output directory [default: "
                                                                   "RUN_DIR/interpret]")] = None,
    batch_size: Annotated[int, typer.Option(help="batch size")] = 1024,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto")] = "auto",
) -> None:
    """Perturb bands of the flanks at increasing distance from the centre, one side at a time, and
    report the loss increase per band (table, JSON and plot)."""
    from helixlab.interpret.ablation import ablate_run
    from helixlab.models.base import resolve_device

    files = ablate_run(run_dir, split=split, samples=samples, width=band, mode=mode, seed=seed, batch_size=batch_size,
                       device=str(resolve_device(device)), out=out)
    typer.echo(files[0].read_text().split("\n\n![")[0])
    typer.echo("wrote " + ", ".join(map(str, files)))


@interpret_app.command("attributions")
def attributions_cmd(
    run_dir: Annotated[Path, typer.Argument(help="a finished run directory")],
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="FASTA or table of sequences")],
    out: Annotated[Path, typer.Option("-o", "--out", help="output .npz: attributions (N, 4, L), scores (N, L), "
                                                         "codes, ids")],
    method: Annotated[str, typer.Option(help="ism, gradient_x_input, integrated_gradients, deeplift or "
                                             "deepliftshap")] = "ism",
    target: Annotated[int, typer.Option(help="which model output to explain")] = 0,
    logo: Annotated[Optional[list[int]], typer.Option(help="draw a sequence logo of this record (0-based; "
                                                           "repeat for several)")] = None,
    metaplot: Annotated[bool, typer.Option(help="plot the mean attribution per position over all records")] = True,
    origin: Annotated[int, typer.Option(help="metaplot position 0 (e.g. the TSS)")] = 0,
    limit: Annotated[Optional[int], typer.Option(help="only the first N records")] = None,
    iupac: Annotated[str, typer.Option(help="IUPAC ambiguity codes: error, or n")] = "error",
    batch_size: Annotated[Optional[int], typer.Option(help="batch size (mutants per batch for ism) [default: "
                                                           "128 for ism on a CPU, else 256]")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto")] = "auto",
    precision: Annotated[str, typer.Option(help="ism: fp32, auto or bf16 (gradient methods run in fp32)")] = "fp32",
) -> None:
    """Attribute a run's output to the bases of each input record; save the arrays, logos and a metaplot."""
    from helixlab.interpret.attributions import attribute_file

    n, made = attribute_file(run_dir, input_path, out, method=method, target=target, logos=logo, metaplot=metaplot,
                             origin=origin, limit=limit, iupac=iupac, batch_size=batch_size, device=device,
                             precision=precision)
    typer.echo(f"wrote attributions of {n:,} records to {out}" + "".join(f"\n  {p}" for p in made))


@interpret_app.command("motifs")
def motifs_cmd(
    run_dir: Annotated[Path, typer.Argument(help="a finished run directory")],
    data: Annotated[Path, typer.Argument(help="FASTA or table of sequences to explain (e.g. the positives)")],
    out: Annotated[Path, typer.Option("-o", "--out", help="output directory")],
    database: Annotated[Optional[list[str]], typer.Option(help="jaspar:TAXON (vertebrates, fungi, insects, plants, "
                                                               "nematodes, urochordates, all) or a MEME file; "
                                                               "repeat for several [default: "
                                                               "jaspar:vertebrates]")] = None,
    method: Annotated[str, typer.Option(help="hypothetical contributions: ism or deepliftshap")] = "ism",
    target: Annotated[int, typer.Option(help="which model output to explain")] = 0,
    limit: Annotated[int, typer.Option(help="at most this many records")] = 2000,
    window: Annotated[int, typer.Option(help="seqlet core width")] = 21,
    flank: Annotated[int, typer.Option(help="seqlet flank width")] = 10,
    min_seqlets: Annotated[int, typer.Option(help="fewest seqlets of one sign to cluster")] = 100,
    seed: Annotated[int, typer.Option(help="seed")] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto")] = "auto",
) -> None:
    """Discover the motifs a run has learned (TF-MoDISco on hypothetical contributions) and name them by
    TOMTOM matches to JASPAR or a MEME file; writes motifs.md, logos, seqlets.csv and motifs.meme."""
    from helixlab.interpret.motifs import discover_motifs

    result = discover_motifs(run_dir, data, out, database=database, method=method, target=target, limit=limit,
                             seed=seed, window=window, flank=flank, min_seqlets=min_seqlets, device=device)
    typer.echo((out / "motifs.md").read_text().split("\n\nFiles:")[0])
    typer.echo(f"{len(result.motifs)} motifs; report: {out / 'motifs.md'}")


@interpret_app.command("marginalize")
def marginalize_cmd(
    run_dir: Annotated[Path, typer.Argument(help="a finished run directory")],
    motif: Annotated[str, typer.Option(help="A/C/G/T consensus or JASPAR id (its most likely sequence)")],
    out: Annotated[Path, typer.Option("-o", "--out", help="output directory")],
    background: Annotated[Optional[Path], typer.Option(help="FASTA or table of background sequences (one "
                                                            "length) [default: uniform random]")] = None,
    n: Annotated[int, typer.Option(help="number of backgrounds")] = 200,
    mode: Annotated[str, typer.Option(help="shuffle (each background's region) or random (their "
                                           "composition)")] = "shuffle",
    region: Annotated[Optional[str], typer.Option(help="START-END randomised and searched (0-based, end "
                                                       "excluded) [default: all]")] = None,
    position: Annotated[Optional[list[int]], typer.Option(help="insert only here (repeat for several)")] = None,
    second: Annotated[Optional[str], typer.Option(help="a second motif: the pair's effect against their "
                                                       "spacing")] = None,
    at: Annotated[Optional[int], typer.Option(help="position of the first motif of a pair [default: the region's "
                                                   "start]")] = None,
    spacings: Annotated[Optional[str], typer.Option(help="range of spacings MIN-MAX (end excluded)")] = None,
    length: Annotated[Optional[int], typer.Option(help="length of random backgrounds for a model of any "
                                                       "length")] = None,
    output: Annotated[int, typer.Option(help="which model output")] = 0,
    seed: Annotated[int, typer.Option(help="seed of the backgrounds")] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto")] = "auto",
) -> None:
    """Insert a motif into seeded backgrounds at every position and report the prediction's change by
    position (or a pair of motifs by spacing); writes marginalize.csv, .png and .md."""
    from helixlab.interpret.marginalize import marginalize

    _, files = marginalize(run_dir, motif, out, background=background, n=n, mode=mode, region=region,
                           positions=position, second=second, at=at, spacings=spacings, length=length, output=output,
                           seed=seed, device=device)
    typer.echo(files[0].read_text().split("\n\nFiles:")[0])
    typer.echo("wrote " + ", ".join(map(str, files)))


def _gc_range(text: Optional[str]) -> Optional[tuple[float, float]]:
    if text is None:
        return None
    parts = text.split("-") if "-" in text.strip("-") else text.split(",")
    try:
        low, high = (float(v) for v in parts)
    except ValueError:
        raise HelixError(f"{text!r} is not a GC range LOW-HIGH, e.g. 0.35-0.55", record="--gc") from None
    return low, high


@app.command("design")
def design_cmd(
    runs: Annotated[list[Path], typer.Argument(metavar="RUN_DIR...", help="run(s) or ensemble(s) whose mean "
                                                                          "prediction is optimised")],
    out: Annotated[Path, typer.Option("-o", "--out", help="output directory (re-run to resume)")],
    input_path: Annotated[Optional[Path], typer.Option("--input", help="FASTA or table of starting "
                                                                       "sequences (one length)")] = None,
    random: Annotated[Optional[int], typer.Option(help="start from N seeded random sequences")] = None,
    length: Annotated[Optional[int], typer.Option(help="length of the random sequences")] = None,
    template: Annotated[Optional[str], typer.Option(help="random sequences keep this template's A/C/G/T letters "
                                                         "(N: random)")] = None,
    goal: Annotated[str, typer.Option(help="max, min or target:VALUE")] = "max",
    method: Annotated[str, typer.Option(help="greedy (ISM rounds) or ga (genetic algorithm)")] = "greedy",
    rounds: Annotated[int, typer.Option(help="rounds (greedy) or generations (ga)")] = 10,
    population: Annotated[int, typer.Option(help="ga population [default: max(2 N, 64)]")] = 0,
    mutation_rate: Annotated[float, typer.Option(help="ga: per-position mutation probability [default: "
                                                      "1 / free positions]")] = 0.0,
    fixed: Annotated[Optional[str], typer.Option(help="positions not to change: START-END,... (0-based, end "
                                                      "excluded)")] = None,
    forbid: Annotated[Optional[list[str]], typer.Option(help="IUPAC motif no design may gain (both strands; "
                                                             "repeat for several)")] = None,
    gc: Annotated[Optional[str], typer.Option(help="GC-content range LOW-HIGH, e.g. 0.35-0.55")] = None,
    max_edits: Annotated[Optional[int], typer.Option(help="at most this many substitutions from the "
                                                          "start")] = None,
    output: Annotated[int, typer.Option(help="which model output")] = 0,
    check: Annotated[Optional[list[Path]], typer.Option(help="independent run that scores every design "
                                                             "(repeat for several)")] = None,
    seed: Annotated[int, typer.Option(help="seed of random starts and of the ga")] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto")] = "auto",
) -> None:
    """Design sequences toward a goal with trained runs (greedy ISM or a genetic algorithm), under
    constraints; writes designs.fa, trajectory.csv, design.png and design.md."""
    from helixlab.design import design

    result = design(runs, out, goal=goal, inputs=input_path, random=random, length=length, template=template,
                    method=method, rounds=rounds, population=population, mutation_rate=mutation_rate, fixed=fixed,
                    forbid=forbid, gc=_gc_range(gc), max_edits=max_edits, output=output, check=check, seed=seed,
                    device=device)
    typer.echo((out / "design.md").read_text().split("\n\n![")[0])
    typer.echo("wrote " + ", ".join(map(str, result.files)))


@app.command()
def search(
    config: Annotated[Path, typer.Argument(help="TOML recipe")],
    out: Annotated[Path, typer.Option("-o", "--out", help="search directory, holding the study (re-run to resume; "
                                                         "several processes may share it)")],
    grid: Annotated[Optional[list[str]], typer.Option(help="KEY=V1,V2,... (repeat for several keys), e.g. "
                                                           "data.flank=25,50,100")] = None,
    space: Annotated[Optional[list[str]], typer.Option(help="KEY=float:LOW,HIGH[,log] | int:LOW,HIGH[,log] | "
                                                            "choice:V1,V2,... sampled (repeat for several)")] = None,
    trials: Annotated[Optional[int], typer.Option(help="finished trials to reach [default: the whole grid]")] = None,
    timeout: Annotated[Optional[float], typer.Option(help="stop starting trials after this many seconds")] = None,
    sampler: Annotated[Optional[str], typer.Option(help="grid, tpe or random [default: grid for --grid alone, "
                                                        "else tpe]")] = None,
    pruner: Annotated[str, typer.Option(help="none, or median: stop trials whose validation metric is below "
                                             "the median of earlier trials at the same epoch")] = "none",
    storage: Annotated[Optional[str], typer.Option(help="Optuna storage URL [default: sqlite:///OUT/study.db]")] = None,
    seed: Annotated[int, typer.Option(help="seed of the sampler")] = 0,
    startup: Annotated[Optional[int], typer.Option(help="random trials before TPE models the results "
                                                        "[default: a third of --trials, 2 to 10]")] = None,
    set_: SetOpt = None,
) -> None:
    """Hyper-parameter search on Optuna (resumable, shareable between processes); ranks trials on the
    validation metric and saves the best configuration as OUT/best.toml."""
    from helixlab.train.search import parse_grid, parse_space, run_search

    records = run_search(config, parse_grid(grid or []), out, overrides=set_, budget=trials, seed=seed,
                         space=parse_space(space or []), sampler=sampler, pruner=pruner, timeout=timeout,
                         storage=storage, startup=startup)
    if (out / "search.md").exists():
        typer.echo((out / "search.md").read_text().split("\n\n![")[0])
    pruned = sum(r.get("state") == "pruned" for r in records)
    typer.echo(f"{len(records)} trials ({pruned} pruned); best config: {out / 'best.toml'}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option("-o", "--out", help="directory for the demo data and run")] = Path("demo_out"),
    epochs: Annotated[int, typer.Option(help="training epochs")] = 6,
) -> None:
    """Make a synthetic promoter data set, train cnn_gru on it and print the metrics."""
    from helixlab.demo import run_demo

    results, report = run_demo(out, epochs=epochs)
    _print_metrics(results["splits"])
    typer.echo(f"report: {report}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the CLI; a HelixError becomes one line on stderr and exit status 1."""
    try:
        app(args=argv, prog_name="helixlab")
    except HelixError as exc:
        typer.echo(f"error: {exc}", err=True)
        return 1
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
