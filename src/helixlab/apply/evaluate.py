"""Score a finished run on labelled data: a table or FASTA (the run's crop and padding applied), or for
genome runs a genome, with the positions drawn like the run's test split (or from given regions)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from helixlab.data.splits import genome_split, open_data, open_genome
from helixlab.errors import HelixError
from helixlab.paths import RESULTS, read_json_object
from helixlab.run.loaded import LoadedRun
from helixlab.tasks import evaluate_shard


def evaluate_run(run: LoadedRun, data: str | os.PathLike[str], *, where: str | None = None,
                 regions: list[str] | None = None, samples: int | None = None, rc_average: bool | None = None,
                 batch_size: int = 512, device: str = "cpu", precision: str = "auto",
                 progress: bool = True) -> dict[str, float]:
    """Metrics of `run` on `data` (a file or a prepared directory). rc_average: default as the run was
    evaluated. regions / samples: genome runs only (default: the run's test regions and sample size)."""
    d = run.config.data
    if samples is not None and samples < 1:
        raise HelixError(f"--samples must be at least 1, got {samples}", record="--samples")
    genome = bool(d.window or d.flank)
    if not genome and (regions or samples):
        raise HelixError("--region and --samples are for runs on genome windows", record="--region")
    if genome and where:
        raise HelixError("--where selects table rows; genome runs take --region", record="--where")
    with tempfile.TemporaryDirectory() as tmp:
        if genome:
            windows = genome_split(d, open_genome([str(data)], Path(tmp) / "genome", d, progress=progress), "test",
                                   regions=regions, samples=samples, source=str(data))
            metrics, _ = evaluate_shard(run.model, windows, run.task, batch_size=batch_size, device=device,
                                        precision=precision, progress=progress)
            return metrics
        shard = open_data(str(data), Path(tmp) / "data", seq_col=d.seq_col, label_cols=d.label_cols,
                          iupac=d.iupac, require_labels=run.task.needs_labels, where=where,
                          options=d.seq_options().transforms_only())
        run.task.check_data(shard.meta, run.info["labels"], str(data))
        if run.seq_len is not None and shard.length != run.seq_len:
            raise HelixError(f"sequences must be {run.seq_len} bp for this model", path=str(data))
        metrics, acc = evaluate_shard(run.model, shard, run.task, batch_size=batch_size, device=device,
                                      rc_average=run.config.train.rc_average if rc_average is None else rc_average,
                                      precision=precision, progress=progress)
    threshold = recorded_threshold(run)
    if threshold is not None:  # binary runs: also at the threshold the run chose on its validation split
        metrics.update(acc.at_threshold(threshold))
    return metrics


def recorded_threshold(run: LoadedRun) -> float | None:
    """The decision threshold a binary run (or ensemble) chose on valid (results.json), if any."""
    path = run.run_dir / RESULTS
    if run.task.kind != "binary" or not path.exists():
        return None
    value = read_json_object(path, "run results").get("threshold")
    return float(value) if isinstance(value, (int, float)) else None
