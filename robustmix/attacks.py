"""FGSM and I-FGSM (white- and black-box) for models that take images in [0, 1].

Both attacks follow torchattacks (attacks/fgsm.py and attacks/bim.py) step for step, so they craft
the same images as torchattacks.FGSM and torchattacks.BIM in fp32, but they are built for ε
sweeps:

* FGSM's gradient sign does not depend on ε, so one forward and backward pass per batch serves
  every ε: x_adv(ε) = clamp(x + ε·sign(∇x CE(model(x), y)), 0, 1).
* I-FGSM stacks the ε values into one batch (copies of the images, one per ε), so a sweep costs
  `steps` large passes instead of `steps` small passes per ε. The loss is the sum of the per-copy
  mean losses, so every image gets exactly the gradient torchattacks would give it.

ε and step sizes are in [0, 1] image units here (the CLI speaks /255 units). Models are attacked
in eval mode (dropout off, BatchNorm running statistics), never switched: a model in training
mode is refused. Gradients and predictions run under the given precision (bf16 autocast or fp32).
Evaluation uses robustmix.train.predict_logits, the function training evaluates with.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .train import autocast, predict_logits

ATTACKS = ("fgsm", "ifgsm")
DEFAULT_STEPS = 10
TOLERANCE = 1e-6  # slack of the ‖x_adv − x‖∞ ≤ ε check, for fp32 rounding of x ± ε


def check_eval_mode(model: nn.Module) -> None:
    """Attacks measure the deployed model: dropout off and BatchNorm on running statistics."""
    if any(m.training for m in model.modules()):
        raise AssertionError("attacks need the model in eval mode (call model.eval() first)")


def check_perturbation(adv: torch.Tensor, x: torch.Tensor, eps: float | torch.Tensor) -> None:
    """Raise AssertionError unless ‖adv − x‖∞ ≤ ε (+1e-6) per image and adv lies in [0, 1]."""
    if adv.shape != x.shape:
        raise AssertionError(f"adversarial batch has shape {tuple(adv.shape)}, not {tuple(x.shape)}")
    dist = (adv - x).abs().flatten(1).amax(1)
    bound = torch.as_tensor(eps, dtype=dist.dtype, device=dist.device).flatten()
    if bool((dist > bound + TOLERANCE).any()):
        raise AssertionError(f"perturbation {float((dist - bound).max()):.3g} beyond ε")
    if bool((adv < 0).any()) or bool((adv > 1).any()):
        raise AssertionError("adversarial images outside [0, 1]")


def check_eps(eps: Sequence[float]) -> None:
    bad = [e for e in eps if not 0.0 <= e <= 1.0]
    if bad:
        raise ValueError(f"ε must lie in [0, 1] (image units), got {bad[0]}")


class Attack:
    """Shared part of the attacks: the model, the precision, and the input gradient's sign."""

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

    def __call__(self, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
        return self.sweep(x, y, [eps])[0]

    def settings(self, eps: float) -> tuple[int, float]:
        """(steps, step size in [0, 1] units) used at ε, as recorded in result tables."""
        raise NotImplementedError


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
        return self.steps, (eps / self.steps if self.step_size is None else self.step_size)

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


def make_attack(name: str, model: nn.Module, precision: str = "fp32", steps: int = DEFAULT_STEPS,
                step_size: float | None = None, stack: int | None = None) -> Attack:
    if name == "fgsm":
        return FGSM(model, precision)
    if name == "ifgsm":
        return IFGSM(model, steps, step_size, precision, stack)
    raise ValueError(f"unknown attack '{name}' (choose from {', '.join(ATTACKS)})")


@dataclass
class Target:
    """A model whose accuracy is measured, and the precision it is evaluated in."""

    model: nn.Module
    precision: str = "fp32"


def count_correct(target: Target, x: torch.Tensor, y: torch.Tensor) -> int:
    """Correct predictions of target on x (uint8 NHWC or float NCHW in [0, 1]) with predict_logits,
    the function training evaluates the test set with (same batching, same precision)."""
    check_eval_mode(target.model)
    device = next(target.model.parameters()).device
    logits = predict_logits(target.model, x, device, target.precision)
    check_eval_mode(target.model)
    return int((logits.argmax(1) == y.to(device)).sum())


def float_images(x: torch.Tensor) -> torch.Tensor:
    """Float N x C x H x W images in [0, 1], channels-last like predict_logits feeds the model."""
    if x.dtype == torch.uint8:
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
    return x.contiguous(memory_format=torch.channels_last)


def robust_accuracy(attack: Attack, targets: Sequence[Target], x: torch.Tensor, y: torch.Tensor,
                    eps: Sequence[float], batch: int = 500,
                    progress: Callable[[int], None] | None = None
                    ) -> tuple[list[list[int]], list[list[float]]]:
    """Correct counts (and seconds) per target and ε of examples crafted on attack.model.

    White-box: targets = [Target(attack.model, precision)]. Black-box: other models; each batch
    and ε is crafted once (with the source's gradients) and predicted by every target.
    ε = 0 is the clean accuracy, computed on all images at once exactly as training evaluates.
    x is uint8 N x H x W x C or float N x C x H x W in [0, 1]; progress(k) is called after each
    batch with its size. Seconds: crafting time shared evenly by the (target, ε) it served.
    """
    device = attack.device
    y = y.to(device)
    correct = [[0] * len(eps) for _ in targets]
    seconds = [[0.0] * len(eps) for _ in targets]
    for j, e in enumerate(eps):
        if e == 0:
            for t, tgt in enumerate(targets):
                t0 = time.perf_counter()
                correct[t][j] = count_correct(tgt, x, y)
                seconds[t][j] = time.perf_counter() - t0
    live = [j for j, e in enumerate(eps) if e != 0]
    for s in range(0, len(x), batch):
        xb, yb = float_images(x[s:s + batch].to(device)), y[s:s + batch]
        if live:
            t0 = time.perf_counter()
            advs = attack.sweep(xb, yb, [eps[j] for j in live])
            share = (time.perf_counter() - t0) / (len(live) * len(targets))
            for j, adv in zip(live, advs, strict=True):
                for t, tgt in enumerate(targets):
                    t0 = time.perf_counter()
                    correct[t][j] += count_correct(tgt, adv, yb)
                    seconds[t][j] += share + time.perf_counter() - t0
        if progress is not None:
            progress(len(yb))
    return correct, seconds
