"""Methods and models from outside robustmix, as a user writes them (imported by import path in
tests/test_plugins.py), good and bad."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from robustmix.training.api import Method


class Bootstrap(Method):
    """Soft bootstrapping (Reed et al. 2015) with mixup's partners: the target blends the
    (mixed) label with the network's own prediction."""

    name = "bootstrap"
    label = "soft bootstrap"
    help = "soft bootstrapping on mixed batches"
    partner = "shuffle"
    params = {"beta": 0.95, "mix": True}

    def inputs_targets(self, batch):
        a = F.one_hot(batch.y, batch.num_classes).float()
        if not self.mix:
            return batch.x, a
        b = F.one_hot(batch.y_partner, batch.num_classes).float()
        lam = batch.lam
        return lam * batch.x + (1 - lam) * batch.x_partner, lam * a + (1 - lam) * b

    def loss(self, logits, targets):
        logp = F.log_softmax(logits.float(), dim=1)
        target = self.beta * targets + (1 - self.beta) * logp.exp()
        return -(target * logp).sum(1).mean()


class Unnamed(Method):
    """No name of its own: named by its entry point, or 'unnamed' by import path."""


class BadShape(Method):
    name = "badshape"

    def inputs_targets(self, batch):
        return batch.x, F.one_hot(batch.y, batch.num_classes).float()[:, :3]


class NanLoss(Method):
    name = "nanloss"

    def loss(self, logits, targets):
        return logits.sum() * float("nan")


class Picky(Method):
    name = "picky"
    params = {"k": 2}

    def __init__(self, k: int = 2) -> None:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        super().__init__(k=k)


class Mixup(Method):
    """A plugin that tries to take a built-in's name."""

    name = "mixup"


def tiny_cnn(num_classes: int, in_channels: int) -> nn.Module:
    """A small network taking images of any size in [0, 1]."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))


def mlp_28(num_classes: int, in_channels: int) -> nn.Module:
    """A network for 28x28 images only: refuses CIFAR-10's 32x32."""
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 28 * 28, num_classes))


def not_a_module(num_classes: int, in_channels: int):
    return torch.zeros(num_classes)
