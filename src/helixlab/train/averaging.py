"""Weight averaging: an exponential moving average of the model's weights (train.ema), or their plain mean over
the end of the schedule (train.swa, stochastic weight averaging), updated after every step, is what validation
scores and what the best checkpoint keeps. Its tensors travel in the resumable checkpoint (as 'ema.*'), so a
resumed run averages exactly as an uninterrupted one."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


class WeightAverage:
    """An average of every floating-point tensor of the model's state (weights and normalisation statistics);
    integer buffers are copied. With a `decay`, an EMA whose decay ramps up as (1 + step) / (10 + step)
    towards it, so the first steps' weights do not linger. With `decay=None`, the equal-weight mean of the
    states after each step from `start + 1` on (SWA); before that it covers nothing and is not applied."""

    def __init__(self, model: torch.nn.Module, decay: float | None, shadow: dict[str, torch.Tensor] | None = None,
                 start: int = 0) -> None:
        self.decay, self.start = decay, start
        state = model.state_dict()
        self.shadow = ({k: v.to(state[k].device) for k, v in shadow.items()} if shadow else
                       {k: v.detach().clone() for k, v in state.items()})

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        """Fold in the model's state after training step `step` (counted from 1)."""
        if not self.covers(step):
            return
        d = min(self.decay, (1 + step) / (10 + step)) if self.decay is not None else 1 - 1 / (step - self.start)
        for key, value in model.state_dict().items():
            avg = self.shadow[key]
            if avg.dtype.is_floating_point:
                avg.mul_(d).add_(value.detach(), alpha=1 - d)
            else:
                avg.copy_(value)

    def covers(self, step: int) -> bool:
        """Whether the average holds any step's state by step `step` (always, for an EMA)."""
        return self.decay is not None or step > self.start

    @contextlib.contextmanager
    def applied(self, model: torch.nn.Module) -> Iterator[None]:
        """The averaged weights in the model for the block; the trained ones restored afterwards."""
        trained = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.shadow)
        try:
            yield
        finally:
            model.load_state_dict(trained)
