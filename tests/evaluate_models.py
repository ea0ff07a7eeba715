"""Tiny outside models for tests/test_evaluate_cli.py: factories (num_classes, channels), as
`python -m robustmix.evaluate --factory evaluate_models:NAME` imports them."""

from __future__ import annotations

import torch
from torch import nn


def tiny(num_classes: int, channels: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes))


def wider(num_classes: int, channels: int) -> nn.Module:
    """Another shape of tiny's layers: its weights do not fit tiny."""
    return nn.Sequential(nn.Conv2d(channels, 6, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, num_classes))


def five_outputs(num_classes: int, channels: int) -> nn.Module:
    """Ignores num_classes: N x 5 scores for a ten-class dataset."""
    return tiny(5, channels)


class Flattened(nn.Module):
    """Takes only 28 x 28 grey images (a Linear on the flattened pixels)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(28 * 28, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))
