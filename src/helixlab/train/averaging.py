"""Weight averaging (train.ema): an exponential moving average of the model's weights, updated after every
step, is what validation scores and what the best checkpoint keeps. Its tensors travel in the resumable
checkpoint (as 'ema.*'), so a resumed run averages exactly as an uninterrupted one."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


class WeightAverage:
    """EMA of every floating-point tensor of the model's state (weights and normalisation statistics);
    integer buffers are copied. The decay ramps up as (1 + step) / (10 + step) towards `decay`, so the
    first steps' weights do not linger."""

    def __init__(self, model: torch.nn.Module, decay: float, shadow: dict[str, torch.Tensor] | None = None) -> None:
        self.decay = decay
        state = model.state_dict()
        self.shadow = ({k: v.to(state[k].device) for k, v in shadow.items()} if shadow else
                       {k: v.detach().clone() for k, v in state.items()})

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for key, value in model.state_dict().items():
            avg = self.shadow[key]
            if avg.dtype.is_floating_point:
                avg.mul_(d).add_(value.detach(), alpha=1 - d)
            else:
                avg.copy_(value)

    @contextlib.contextmanager
    def applied(self, model: torch.nn.Module) -> Iterator[None]:
        """The averaged weights in the model for the block; the trained ones restored afterwards."""
        trained = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.shadow)
        try:
            yield
        finally:
            model.load_state_dict(trained)
