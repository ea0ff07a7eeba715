"""Tiny models the attack tests share (importable helpers): a small BatchNorm CNN and a linear
classifier that attacks fool at small ε, so every stage is quick."""

from __future__ import annotations

import torch
from torch import nn


class Small(nn.Module):
    """A small CNN with BatchNorm (running statistics differ from batch statistics)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1, self.bn = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.c2, self.fc = nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.Linear(8, 10)

    def forward(self, x):
        h = torch.relu(self.c2(torch.relu(self.bn(self.c1(x)))))
        return self.fc(h.mean((2, 3)))


def small(seed: int = 0, channels_last: bool = True) -> nn.Module:
    torch.manual_seed(seed)
    m = Small()
    with torch.no_grad():
        m.train()
        m(torch.rand(16, 3, 16, 16))
    m.eval()
    return m.to(memory_format=torch.channels_last) if channels_last else m


def linear(seed: int = 0, scale: float = 0.05) -> nn.Module:
    """A linear classifier on 8 x 8 images: attacks fool it at small ε, so every stage is quick."""
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
    with torch.no_grad():
        m[1].weight.mul_(scale / m[1].weight.std())
    return m.eval()
