"""Training curves in TensorBoard (`train.log = "tensorboard"`): RUN_DIR/tb/.

Written with `torch.utils.tensorboard` (the `tensorboard` package): `train/loss` at every trace point
(about 20 per epoch), `train/lr`, per epoch `epoch/train_loss`, every validation metric as
`valid/<metric>` and `epoch/seq_per_s`, all against the optimiser step. A resumed run opens the log
with `purge_step` at its checkpoint, so whatever was logged after the checkpoint it resumes from is
hidden and the curves continue without duplicated steps.

    tensorboard --logdir runs/
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helixlab.errors import HelixError

TB_DIR = "tb"


class TensorBoardLog:
    def __init__(self, run_dir: Path, step: int) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise HelixError("train.log = 'tensorboard' needs the tensorboard package (pip install tensorboard)",
                             record="train.log") from None
        self.writer = SummaryWriter(str(run_dir / TB_DIR), purge_step=step + 1 if step else None)

    def loss(self, step: int, loss: float, lr: float) -> None:
        self.writer.add_scalar("train/loss", loss, step)
        self.writer.add_scalar("train/lr", lr, step)

    def epoch(self, record: dict[str, Any], seq_per_s: float) -> None:
        step = record["step"]
        self.writer.add_scalar("epoch/train_loss", record["train_loss"], step)
        self.writer.add_scalar("epoch/seq_per_s", seq_per_s, step)
        for key, value in record.items():
            if key.startswith("valid_") and isinstance(value, (int, float)):
                self.writer.add_scalar(f"valid/{key[6:]}", value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def open_log(kind: str, run_dir: Path, step: int) -> TensorBoardLog | None:
    """The run's log writer ('tensorboard'), or None ('none')."""
    return TensorBoardLog(run_dir, step) if kind == "tensorboard" else None
