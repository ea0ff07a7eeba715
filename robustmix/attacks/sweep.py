"""Accuracy under attack: adversarial examples crafted on a source model for a sweep of ε and
counted correct on one or more target models (white-box: the source itself)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..evaluation.images import float_images
from ..evaluation.predict import check_eval_mode, predict_logits
from .base import Attack


@dataclass
class Target:
    """A model whose accuracy is measured, and the precision it is evaluated in."""

    model: nn.Module
    precision: str = "fp32"


def correct_mask(target: Target, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per image, whether target predicts it correctly (bool, on the device), with
    predict_logits, the function training evaluates the test set with (same batching, same
    precision); x is uint8 NHWC or float NCHW in [0, 1]."""
    check_eval_mode(target.model)
    device = next(target.model.parameters()).device
    logits = predict_logits(target.model, x, device, target.precision)
    check_eval_mode(target.model)
    return logits.argmax(1) == y.to(device)


def count_correct(target: Target, x: torch.Tensor, y: torch.Tensor) -> int:
    """Correct predictions of target on x (see correct_mask)."""
    return int(correct_mask(target, x, y).sum())


def attack_outcomes(attack: Attack, targets: Sequence[Target], x: torch.Tensor, y: torch.Tensor,
                    eps: Sequence[float], batch: int = 500,
                    progress: Callable[[int], None] | None = None
                    ) -> tuple[list[list[torch.Tensor]], list[list[float]]]:
    """Per target and ε, which images the target still classifies correctly (a bool tensor of
    len(y), on the CPU) on the examples crafted on attack.model, and the seconds spent.

    White-box: targets = [Target(attack.model, precision)]. Black-box: other models; each batch
    and ε is crafted once (with the source's gradients) and predicted by every target.
    ε = 0 is the clean accuracy, computed on all images at once exactly as training evaluates.
    x is uint8 N x H x W x C or float N x C x H x W in [0, 1]; progress(k) is called after each
    batch with its size. Seconds: crafting time shared evenly by the (target, ε) it served.
    """
    device = attack.device
    y = y.to(device)
    masks: list[list[list[torch.Tensor]]] = [[[] for _ in eps] for _ in targets]
    seconds = [[0.0] * len(eps) for _ in targets]
    for j, e in enumerate(eps):
        if e == 0:
            for t, tgt in enumerate(targets):
                t0 = time.perf_counter()
                masks[t][j].append(correct_mask(tgt, x, y).cpu())
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
                    masks[t][j].append(correct_mask(tgt, adv, yb).cpu())
                    seconds[t][j] += share + time.perf_counter() - t0
        if progress is not None:
            progress(len(yb))
    out = [[torch.cat(m) if m else torch.zeros(0, dtype=torch.bool) for m in row] for row in masks]
    return out, seconds


def robust_accuracy(attack: Attack, targets: Sequence[Target], x: torch.Tensor, y: torch.Tensor,
                    eps: Sequence[float], batch: int = 500,
                    progress: Callable[[int], None] | None = None
                    ) -> tuple[list[list[int]], list[list[float]]]:
    """Correct counts (and seconds) per target and ε of examples crafted on attack.model: the
    counts of attack_outcomes' masks."""
    masks, seconds = attack_outcomes(attack, targets, x, y, eps, batch, progress)
    return [[int(m.sum()) for m in row] for row in masks], seconds
