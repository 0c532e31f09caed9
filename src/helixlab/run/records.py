"""The records of a run directory (file names in `helixlab.paths`): its config, its run.json, its
history, and the provenance (versions, machine, commit) written into every run and benchmark."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy
import torch

from helixlab.config import RunConfig, config_from_dict
from helixlab.errors import HelixError
from helixlab.paths import CONFIG, INFO, read_json_object

INFO_KEYS = ("seq_len", "n_outputs", "labels")  # what run.json must hold to rebuild the model


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def cpu_model() -> str | None:
    """The CPU's model name (float results can depend on its vector units: AVX-512 and AMX, or not)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def environment() -> dict[str, Any]:
    """Versions and machine, recorded with every run and benchmark."""
    return {
        "python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
        "machine": platform.machine(), "processor": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "commit": git_commit(), "command": " ".join(sys.argv),
    }


def read_config(run_dir: str | os.PathLike[str]) -> RunConfig:
    """The resolved config a run recorded; a directory without one is not a run (an error naming it)."""
    rd = Path(run_dir)
    if not rd.is_dir():
        raise HelixError("run directory not found", path=str(rd))
    path = rd / CONFIG
    if not path.exists():
        raise HelixError("not a helixlab run directory (no config.json)", path=str(rd))
    values = read_json_object(path, "run config")
    train = values.get("train")
    if isinstance(train, dict) and "amp" in train:  # recorded before train.precision replaced train.amp
        amp = train.pop("amp")
        train.setdefault("precision", "auto" if amp else "fp32")
    model = values.get("model")
    params = model.get("params") if isinstance(model, dict) and model.get("name") == "fused" else None
    if isinstance(params, dict) and "kmer_run" in params:  # recorded before fused models took context_count runs
        params["count_run"] = params.pop("kmer_run")
        params["counter"] = {"name": "kmer_count", "params": params.pop("kmer", {})}
    return config_from_dict(values, str(path))


def read_info(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """run.json: what the model needs to be rebuilt (input length, outputs, labels) and provenance."""
    rd = Path(run_dir)
    if not (rd / INFO).exists():
        raise HelixError("run has no run.json: it never started training", path=str(rd))
    info = read_json_object(rd / INFO, "run record")
    missing = [k for k in INFO_KEYS if k not in info]
    if missing:
        raise HelixError(f"run record lacks {', '.join(missing)}", path=str(rd / INFO), record=missing[0])
    return info

