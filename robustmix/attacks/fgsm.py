"""FGSM and I-FGSM, the mixup paper's attacks, built for ε sweeps.

Both follow torchattacks (attacks/fgsm.py and attacks/bim.py) step for step, so they craft the
same images as torchattacks.FGSM and torchattacks.BIM in fp32 (tests/test_attacks.py checks it):

* FGSM's gradient sign does not depend on ε, so one forward and backward pass per batch serves
  every ε: x_adv(ε) = clamp(x + ε·sign(∇x CE(model(x), y)), 0, 1). This is the measured reason
  for not calling torchattacks here (experiments/bench.py, reports/benchmarks/cpu.md).
* I-FGSM stacks the ε values into one batch (copies of the images, one per ε), so a sweep costs
  `steps` large passes instead of `steps` small passes per ε. The loss is the sum of the per-copy
  mean losses, so every image gets exactly the gradient torchattacks would give it.

Models are attacked in eval mode (dropout off, BatchNorm running statistics), never switched: a
model in training mode is refused.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import Attack, check_eps, check_perturbation
from .defaults import DEFAULT_STEPS, ifgsm_step


class FGSM(Attack):
    """Fast gradient sign method (Goodfellow et al. 2015): one step of size ε."""

    name = "fgsm"

    def sweep(self, x, y, eps):
        check_eps(eps)
        x, y = x.to(self.device), y.to(self.device)
        sign, _ = self.gradient_sign(x, y)
        return [self.apply(x, sign, e) for e in eps]

    @staticmethod
    def apply(x: torch.Tensor, sign: torch.Tensor, eps: float) -> torch.Tensor:
        """clamp(x + ε·sign, 0, 1): torchattacks.FGSM's update."""
        adv = torch.clamp(x + eps * sign, min=0, max=1).detach()
        check_perturbation(adv, x, eps)
        return adv

    def settings(self, eps):
        return 1, eps


class IFGSM(Attack):
    """Iterative FGSM with the BIM update of Kurakin et al. (2017), as torchattacks.BIM:
    x_{t+1} = clip_{[x−ε, x+ε] ∩ [0, 1]}(x_t + a·sign(∇x loss(x_t))), starting at x_0 = x.

    step_size None means a = ε/steps: the mixup paper's I-FGSM takes 10 iterations of equal
    size, which reaches exactly the ε-ball's boundary at the last step whatever ε is. A fixed
    step_size (e.g. 1/255, Kurakin's rule) is used for every ε instead.

    stack caps how many ε copies of a batch go through the model at once (None: all of them).
    """

    name = "ifgsm"

    def __init__(self, model: nn.Module, steps: int = DEFAULT_STEPS, step_size: float | None = None,
                 precision: str = "fp32", stack: int | None = None) -> None:
        super().__init__(model, precision)
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        if step_size is not None and not step_size > 0:
            raise ValueError(f"step size must be positive, got {step_size}")
        self.steps, self.step_size, self.stack = steps, step_size, stack

    def settings(self, eps):
        return self.steps, ifgsm_step(eps, self.steps, self.step_size)

    def sweep(self, x, y, eps):
        check_eps(eps)
        x, y = x.to(self.device), y.to(self.device)
        out: dict[int, torch.Tensor] = {}
        todo = [i for i, e in enumerate(eps) if e != 0]
        for i, e in enumerate(eps):
            if e == 0:  # nothing to perturb; torchattacks would return x unchanged too
                out[i] = x.detach().clone()
        k = len(todo) if not self.stack else max(1, self.stack)
        for s in range(0, len(todo), max(k, 1)):
            group = todo[s:s + k]
            advs = self._iterate(x, y, [eps[i] for i in group])
            out.update(zip(group, advs, strict=True))
        return [out[i] for i in range(len(eps))]

    def _iterate(self, x: torch.Tensor, y: torch.Tensor, eps: list[float]) -> list[torch.Tensor]:
        k, shape = len(eps), (-1,) + (1,) * (x.dim() - 1)
        # ε and a as float32 per-image columns: the values torchattacks' python floats become.
        e = torch.tensor(eps, dtype=x.dtype, device=x.device).repeat_interleave(len(x)).view(shape)
        a = torch.tensor([self.settings(v)[1] for v in eps], dtype=x.dtype,
                         device=x.device).repeat_interleave(len(x)).view(shape)
        ori = torch.cat([x.detach()] * k)  # keeps x's memory format (channels-last or not)
        lower, upper = torch.clamp(ori - e, min=0), ori + e
        adv = ori.clone()
        for _ in range(self.steps):
            sign, _ = self.gradient_sign(adv, y, copies=k)
            # torchattacks.BIM writes max/min as mask arithmetic; the values are identical.
            adv = torch.clamp(torch.minimum(torch.maximum(adv + a * sign, lower), upper), max=1)
        check_perturbation(adv, ori, e)
        return list(adv.chunk(k))


def default_stack(device: torch.device, batch: int) -> int:
    """ε copies stacked per I-FGSM pass: up to ~2048 images on a GPU, where bigger batches fill
    the device; 1 on a CPU, which is busy at any batch size and only pays in memory."""
    return max(1, 2048 // batch) if torch.device(device).type == "cuda" else 1
