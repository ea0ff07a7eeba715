"""What every attack shares: the model (in eval mode), the precision, the input gradient's sign,
and the checks that an adversarial batch stays within its ε-ball (L∞ or L2) and in [0, 1].

ε and step sizes are in [0, 1] image units here (the CLI speaks /255 units for L∞ and plain
units for L2: attacks/defaults.image_units).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..evaluation.device import autocast
from ..evaluation.predict import check_eval_mode

TOLERANCE = 1e-6  # slack of the ‖x_adv − x‖ ≤ ε check, for fp32 rounding of x ± ε


def distance(adv: torch.Tensor, x: torch.Tensor, norm: str = "linf") -> torch.Tensor:
    """Per image, ‖adv − x‖∞ or ‖adv − x‖₂ (computed in fp32 or above)."""
    delta = (adv - x).flatten(1)
    if norm == "l2":
        return delta.double().norm(p=2, dim=1)  # fp64: a 3,072-term sum, checked to 1e-6
    return delta.abs().amax(1)


def check_perturbation(adv: torch.Tensor, x: torch.Tensor, eps: float | torch.Tensor,
                       norm: str = "linf") -> None:
    """Raise AssertionError unless ‖adv − x‖ ≤ ε (+1e-6) per image in the given norm and adv
    lies in [0, 1]."""
    if adv.shape != x.shape:
        raise AssertionError(f"adversarial batch has shape {tuple(adv.shape)}, not {tuple(x.shape)}")
    dist = distance(adv, x, norm)
    bound = torch.as_tensor(eps, dtype=dist.dtype, device=dist.device).flatten()
    if bool((dist > bound + TOLERANCE).any()):
        raise AssertionError(f"perturbation {float((dist - bound).max()):.3g} beyond ε")
    if bool((adv < 0).any()) or bool((adv > 1).any()):
        raise AssertionError("adversarial images outside [0, 1]")


def check_eps(eps: Sequence[float], norm: str = "linf") -> None:
    """ValueError for an ε (image units) no ball of the norm can have: L∞ radii beyond 1 cover
    the whole image cube; an L2 radius can exceed 1 (the cube's diameter is √pixels)."""
    top = 1.0 if norm == "linf" else float("inf")
    bad = [e for e in eps if not (0.0 <= e <= top and math.isfinite(e))]  # and nan
    if bad:
        raise ValueError(f"ε must lie in [0, {top:g}] (image units, {norm}), got {bad[0]}")


class Attack:
    """Shared part of the attacks: the model, the precision, and the input gradient's sign.

    Subclasses set name and implement sweep (adversarial images for a list of ε) and settings.
    """

    name = "attack"

    def __init__(self, model: nn.Module, precision: str = "fp32") -> None:
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be fp32 or bf16, got {precision}")
        self.model, self.precision = model, precision
        self.device = next(model.parameters()).device

    def gradient_sign(self, x: torch.Tensor, y: torch.Tensor, copies: int = 1
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """sign(∇x loss) and the (detached, fp32) logits of the same forward pass.

        x holds `copies` stacked copies of a batch of len(y) images; the loss is the sum over
        copies of the mean cross-entropy, so each image's gradient is the one a single-copy call
        (and torchattacks) computes.
        """
        check_eval_mode(self.model)
        x = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            with autocast(self.device, self.precision):
                logits = self.model(x)
            loss = sum(F.cross_entropy(part.float(), y) for part in logits.chunk(copies))
            grad = torch.autograd.grad(loss, x)[0]
        check_eval_mode(self.model)
        return grad.sign(), logits.detach().float()

    def sweep(self, x: torch.Tensor, y: torch.Tensor, eps: Sequence[float]) -> list[torch.Tensor]:
        """Adversarial images for every ε (in [0, 1] units), in the order given."""
        raise NotImplementedError

    def settings(self, eps: float) -> tuple[int, float]:
        """(steps, step size in [0, 1] units) used at ε, as recorded in result tables."""
        raise NotImplementedError
