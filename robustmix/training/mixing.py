"""Mixup and its ablations as pure functions: partners, mixing weights and soft targets.

Which rule a method uses is declared in `robustmix.training.methods`.

Every function takes its randomness as arguments (λ, permutations, partner indices), so the
same draws can be fed to the fast training path and to a plain reference computation.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# soft_cross_entropy is the interface's (api.py, which imports nothing of robustmix); it stays
# importable from here.
from .api import Batch, Method, soft_cross_entropy


def sample_lambda(rng: np.random.Generator, alpha: float) -> float:
    """λ ~ Beta(α, α); α = 0 means no mixing (λ = 1), which is ERM."""
    return float(rng.beta(alpha, alpha)) if alpha > 0 else 1.0


def shuffle_partners(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.permutation(n)


def same_class_partners(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """A permutation that maps each position to another position with the same label.

    Partners come from within the batch: it keeps the pipeline identical to mixup, so only the
    choice of partner differs between the two methods. A label that occurs once is paired with
    itself (mixing an image with itself leaves it unchanged).
    """
    perm = np.arange(len(labels))
    for c in np.unique(labels):
        pos = np.flatnonzero(labels == c)
        perm[pos] = pos[rng.permutation(len(pos))]
    return perm


def knn_table(images: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """For every image, the indices of its k nearest images with the same label (L2 in pixels).

    Computed per class with one matrix product, so 50,000 CIFAR images take seconds.
    """
    n = len(labels)
    x = torch.from_numpy(images.reshape(n, -1)).float() / 255.0
    table = np.empty((n, k), dtype=np.int64)
    for c in np.unique(labels):
        pos = np.flatnonzero(labels == c)
        kk = min(k, len(pos) - 1)
        if kk == 0:  # a class of one image can only mix with itself
            table[pos] = pos[:, None]
            continue
        xc = x[pos]
        sq = (xc * xc).sum(1)
        for start in range(0, len(pos), 2048):
            block = xc[start:start + 2048]
            d = sq[start:start + 2048, None] - 2 * block @ xc.T + sq[None, :]
            rows = torch.arange(len(block))
            d[rows, rows + start] = float("inf")  # never your own neighbour
            nearest = d.topk(kk, largest=False).indices.numpy()
            # A class smaller than k + 1 cycles through the neighbours it has.
            table[pos[start:start + 2048]] = pos[nearest][:, np.arange(k) % kk]
    return table


def knn_partners(rng: np.random.Generator, table: np.ndarray, batch_idx: np.ndarray) -> np.ndarray:
    """Dataset indices of partners: one of the k neighbours of each batch image, uniformly."""
    choice = rng.integers(0, table.shape[1], size=len(batch_idx))
    return table[batch_idx, choice]


def mix_targets(y: torch.Tensor, y_partner: torch.Tensor, lam: float, num_classes: int,
                rule: str, smoothing: float = 0.0) -> torch.Tensor:
    """Soft targets for one batch: one row per example, each row sums to 1."""
    a = F.one_hot(y, num_classes).float()
    if rule == "hard":
        return a
    if rule == "smooth":
        # (1 - ε) on the label plus ε spread uniformly: the label keeps 1 - ε + ε/K.
        return a * (1.0 - smoothing) + smoothing / num_classes
    b = F.one_hot(y_partner, num_classes).float()
    if rule in ("blend", "labels_only"):
        return lam * a + (1.0 - lam) * b
    if rule == "pick":
        return a if lam >= 0.5 else b
    raise ValueError(f"unknown target rule {rule}")


def mix_inputs(x: torch.Tensor, x_partner: torch.Tensor, lam: float, rule: str) -> torch.Tensor:
    if rule in ("hard", "smooth", "labels_only") or lam == 1.0:
        return x
    return lam * x + (1.0 - lam) * x_partner


class MixingMethod(Method):
    """robustmix's own methods (erm, dropout, mixup, mixup_dropout, the ablations, label
    smoothing) on the method interface: the target rule of their `MethodSpec` (and --smoothing)
    applied to the batch and its partners, trained with soft cross-entropy."""

    def __init__(self, target: str, smoothing: float = 0.0) -> None:
        super().__init__(target=target, smoothing=smoothing)

    def inputs_targets(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        targets = mix_targets(batch.y, batch.y_partner, batch.lam, batch.num_classes,
                              self.target, self.smoothing)
        return mix_inputs(batch.x, batch.x_partner, batch.lam, self.target), targets

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return soft_cross_entropy(logits, targets)
