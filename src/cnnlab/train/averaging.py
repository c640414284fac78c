"""Weight averaging during training: lookahead (airbench's) and an exponential moving average.

Both keep a slow copy of every floating-point entry of the model's ``state_dict`` (weights and
BatchNorm running statistics) and, every ``every`` optimizer steps, move it towards the current
(fast) weights: ``slow <- decay * slow + (1 - decay) * fast``. They differ in what happens next:

- ``lookahead`` (Zhang et al. 2019, as airbench94 uses it) copies the slow weights back into the
  model, so training continues from the average;
- ``ema`` leaves the model alone, so the average trails a model that trains undisturbed.

The decay ramps up as ``decay * (step / total_steps) ** power``: near 0 at the start, when the
weights move fast and an average would drag them back towards the initialisation, and ``decay``
at the end. :meth:`finish` puts the slow weights into the model (the weights to evaluate).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from cnnlab.core.errors import CnnlabError


class WeightAverage:
    """The slow weights of ``model`` and the rule that updates them (see the module docstring)."""

    def __init__(self, model: nn.Module, mode: str = "lookahead", every: int = 5, decay: float = 0.95 ** 5,
                 power: float = 3.0) -> None:
        if mode not in ("lookahead", "ema"):
            raise CnnlabError(f"unknown weight averaging {mode!r}; expected lookahead or ema")
        if every < 1 or not 0.0 <= decay <= 1.0:
            raise CnnlabError(f"weight averaging needs every >= 1 and decay in [0, 1], got {every} and {decay}")
        self.mode, self.every, self.decay, self.power = mode, every, decay, power
        self.slow = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    def decay_at(self, step: int, total: int) -> float:
        return self.decay * (step / max(total, 1)) ** self.power

    def step(self, model: nn.Module, step: int, total: int) -> None:
        """Call after optimizer step number ``step`` (1-based) of ``total``."""
        if step % self.every == 0:
            self.update(model, self.decay_at(step, total), copy_back=self.mode == "lookahead")

    @torch.no_grad()
    def update(self, model: nn.Module, decay: float, copy_back: bool) -> None:
        """``slow <- decay * slow + (1 - decay) * fast`` for every entry; with ``copy_back`` also
        ``fast <- slow``. One fused call over all tensors (``_foreach``): few kernel launches on a GPU."""
        state = model.state_dict()
        fast, slow = [state[k] for k in self.slow], list(self.slow.values())
        torch._foreach_lerp_(slow, fast, 1.0 - decay)
        if copy_back:
            torch._foreach_copy_(fast, slow)

    @torch.no_grad()
    def finish(self, model: nn.Module) -> None:
        """End of training: the model takes the slow weights (lookahead: after one last sync)."""
        if self.mode == "lookahead":
            self.update(model, 1.0, copy_back=True)
        else:
            state = model.state_dict()
            torch._foreach_copy_([state[k] for k in self.slow], list(self.slow.values()))

    def state_dict(self) -> dict[str, Tensor]:
        return dict(self.slow)

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        for key, value in state.items():
            self.slow[key].copy_(value)
