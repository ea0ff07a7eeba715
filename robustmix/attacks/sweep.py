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


def count_correct(target: Target, x: torch.Tensor, y: torch.Tensor) -> int:
    """Correct predictions of target on x (uint8 NHWC or float NCHW in [0, 1]) with predict_logits,
    the function training evaluates the test set with (same batching, same precision)."""
    check_eval_mode(target.model)
    device = next(target.model.parameters()).device
    logits = predict_logits(target.model, x, device, target.precision)
    check_eval_mode(target.model)
    return int((logits.argmax(1) == y.to(device)).sum())


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
