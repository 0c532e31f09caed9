"""The repeat-gated mixture (S5's two networks merged by a repeat model): two experts of the context
task mixed per position by a repeat model's probability that the centre is a repeat,
p = g p_repeat + (1 - g) p_other. Trained in stages: the gate (a run of task.target 'repeat') and the
experts (runs of this task: networks, counting or fused models) are trained first; the mixture then
fine-tunes the experts on its own loss (each learns the positions the gate gives it) and a
calibration of the gate (scale and bias of its logit), the gate's weights frozen."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from helixlab.errors import HelixError
from helixlab.models.base import SequenceModel
from helixlab.models.registry import build_model, register
from helixlab.models.weights import finished_run_config, load_weights
from helixlab.paths import BEST, CONFIG, TOKENIZER_FILE

PARTS = "parts"  # RUN_DIR/parts/<i>: each part's weights and files, copied when the run starts
PART_FILES = ("counts.safetensors", TOKENIZER_FILE)  # files a part keeps beside its run


@dataclass
class MixtureConfig:
    """gate_run: a finished run of task.target 'repeat' (any family); experts: two finished runs of this
    task, [the expert for repeats, the expert for the rest]; finetune: train the experts on the mixture's
    loss (else only the gate calibration learns). `parts` records each part's model (set by the run)."""

    gate_run: str = ""
    experts: list[str] = field(default_factory=list)
    finetune: bool = True
    parts: list[dict[str, Any]] = field(default_factory=list)


def _part(run: str, role: str) -> tuple[dict[str, Any], Path]:
    """(name, params, flank, target) of a finished run, and its directory; an error naming it otherwise."""
    cfg, rd = finished_run_config(str(run), f"the mixture's {role} must be a finished run")
    model, data, task = cfg.get("model"), cfg.get("data"), cfg.get("task")
    if not all(isinstance(v, dict) for v in (model, data, task)) or not data.get("flank"):  # type: ignore[union-attr]
        raise HelixError(f"the mixture's {role} is not a run of the context task (data.flank)", path=str(rd / CONFIG))
    if model["name"] == "repeat_mixture":  # type: ignore[index]
        raise HelixError(f"the mixture's {role} is itself a mixture", path=str(rd))
    return {"name": model["name"], "params": model["params"], "flank": data["flank"],  # type: ignore[index]
            "target": task.get("target", "base")}, rd  # type: ignore[union-attr]


@register("repeat_mixture", MixtureConfig)
class RepeatMixture(SequenceModel):
    """Outputs are log-probabilities of the mixture."""

    reads_one_hot = False
    keeps_run_files = True
    bf16_on_cpu = False  # the parts decide their own precision; the mixing itself is a few additions

    @classmethod
    def prepare_run(cls, params: dict[str, Any], run_dir: Path, sequences: Callable[[], Iterator[str]]
                    ) -> dict[str, Any]:
        """Copy the gate's and the experts' weights and files into RUN_DIR/parts: the run never reads
        their directories again."""
        experts = params.get("experts", [])
        if not isinstance(experts, list) or len(experts) != 2:
            raise HelixError("model.params.experts must list two finished runs: [for repeats, for the rest]",
                             record="model.params.experts")
        parts = []
        for i, (run, role) in enumerate([(params.get("gate_run", ""), "gate_run"), (experts[0], "repeat expert"),
                                         (experts[1], "other expert")]):
            spec, rd = _part(str(run), role)
            if i == 0 and spec["target"] != "repeat":
                raise HelixError(f"the gate_run predicts task.target {spec['target']!r}, not 'repeat'", path=str(rd))
            if i > 0 and spec["target"] == "repeat":
                raise HelixError(f"the {role} predicts the repeat bit, not the centre", path=str(rd))
            dest = run_dir / PARTS / str(i)
            (dest / BEST).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(rd / BEST, dest / BEST)
            for name in PART_FILES:
                if (rd / name).exists():
                    shutil.copyfile(rd / name, dest / name)
            parts.append(spec)
        return {**params, "parts": parts}

    def __init__(self, cfg: MixtureConfig, seq_len: int | None, n_outputs: int, *, run_dir: Path | None = None) -> None:
        super().__init__()
        if len(cfg.parts) != 3:
            raise ValueError("a repeat_mixture is built from its recorded parts (gate, two experts)")
        if seq_len is None or seq_len % 2 == 0:
            raise ValueError("a repeat_mixture reads centred windows (the context task)")
        flank = seq_len // 2
        self.crops: list[int] = []
        parts: list[SequenceModel] = []
        for i, spec in enumerate(cfg.parts):
            if spec["flank"] > flank:
                raise ValueError(f"part {i} reads {spec['flank']} bases each side, more than data.flank = {flank}")
            part_dir = None if run_dir is None else run_dir / PARTS / str(i)
            part = build_model(spec["name"], spec["params"], 2 * spec["flank"] + 1, 2 if i == 0 else n_outputs,
                               run_dir=part_dir)
            if part_dir is not None and (part_dir / BEST).exists():
                load_weights(part, part_dir / BEST)
            parts.append(part)
            self.crops.append(flank - spec["flank"])
        self.gate, self.expert_repeat, self.expert_other = parts
        self.gate.requires_grad_(False)
        if not cfg.finetune:
            self.expert_repeat.requires_grad_(False)
            self.expert_other.requires_grad_(False)
        self.calibration = nn.Parameter(torch.tensor([1.0, 0.0]))  # scale, bias of the gate's logit
        self.feature_dim = n_outputs
        self.head = nn.Identity()

    def train(self, mode: bool = True) -> RepeatMixture:
        super().train(mode)
        self.gate.eval()  # frozen: batch norm and dropout as in prediction
        return self

    def _crop(self, x: torch.Tensor, i: int) -> torch.Tensor:
        c = self.crops[i]
        return x[:, c : x.shape[1] - c] if c else x

    def repeat_logit(self, x: torch.Tensor) -> torch.Tensor:
        """(N,) the calibrated log-odds that each centre is a repeat."""
        with torch.no_grad():
            g = self.gate(self._crop(x, 0)).float()
        return self.calibration[0] * (g[:, 1] - g[:, 0]) + self.calibration[1]

    def mix(self, x: torch.Tensor, repeat: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        logit = self.repeat_logit(x).unsqueeze(1)
        return torch.logaddexp(F.logsigmoid(logit) + F.log_softmax(repeat.float(), 1),
                               F.logsigmoid(-logit) + F.log_softmax(other.float(), 1))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.mix(x, self.expert_repeat(self._crop(x, 1)), self.expert_other(self._crop(x, 2)))

    def train_outputs(self, x: torch.Tensor, strand: torch.Tensor | None, target: Any) -> torch.Tensor:
        """Each expert's own training outputs (a fused expert leaves each window's own count out)."""
        return self.mix(x, self.expert_repeat(self._crop(x, 1), strand, target),
                        self.expert_other(self._crop(x, 2), strand, target))
