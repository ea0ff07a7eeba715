"""One epoch's random plan (order, crops, flips, λ, partners) and the batch augmentation.

All randomness of an epoch comes from a generator seeded by (seed, epoch), which is what makes a
resumed run end with exactly the metrics of an uninterrupted one. The uint8 training set lives on
the device, padded once; each batch is cropped and flipped by a single gather.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .config import TrainConfig
from .methods import METHODS
from .mixing import knn_partners, same_class_partners, sample_lambda, shuffle_partners

PAD = 4


def crop_flip(padded: torch.Tensor, idx: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor,
              flip: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Random crop (offsets dy, dx into the padded image) and horizontal flip as one gather.

    Returns float images in [0, 1], logically N x C x H x W and stored channels-last.
    """
    h, w = size
    rows = dy[:, None] + torch.arange(h, device=padded.device)
    base = torch.arange(w, device=padded.device)
    cols = dx[:, None] + torch.where(flip[:, None], w - 1 - base, base)
    out = padded[idx[:, None, None], rows[:, :, None], cols[:, None, :]]  # N x H x W x C
    return out.permute(0, 3, 1, 2).float().div_(255.0)


@dataclass
class BatchPlan:
    """Every random draw of one batch, so tests can replay a batch through another path."""

    idx: np.ndarray
    dy: np.ndarray
    dx: np.ndarray
    flip: np.ndarray
    lam: float
    partner: np.ndarray  # positions in the batch, or dataset positions for knn
    partner_dy: np.ndarray | None = None
    partner_dx: np.ndarray | None = None
    partner_flip: np.ndarray | None = None


def epoch_plans(cfg: TrainConfig, epoch: int, noisy: np.ndarray, knn: np.ndarray | None) -> list[BatchPlan]:
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, epoch, 0x65706F63]))
    n = len(noisy)
    order = rng.permutation(n)
    bs = cfg.batch_size
    starts = list(range(0, n, bs))
    if len(starts) > 1 and n - starts[-1] < 2:  # BatchNorm cannot train on a batch of one
        starts.pop()
    spec = METHODS[cfg.method]
    plans = []
    for s in starts:
        idx = order[s:s + bs]
        b = len(idx)
        offs = rng.integers(0, 2 * PAD + 1, size=(2, b)) if cfg.augment else np.full((2, b), PAD)
        flip = rng.random(b) < 0.5 if cfg.augment else np.zeros(b, dtype=bool)
        lam = sample_lambda(rng, cfg.alpha) if spec.mixes else 1.0
        plan = BatchPlan(idx, offs[0], offs[1], flip, lam, np.arange(b))
        if spec.partner == "shuffle":
            plan.partner = shuffle_partners(rng, b)
        elif spec.partner == "same_class":
            plan.partner = same_class_partners(rng, noisy[idx])
        elif spec.partner == "knn":
            plan.partner = knn_partners(rng, knn, idx)
            poffs = rng.integers(0, 2 * PAD + 1, size=(2, b)) if cfg.augment else np.full((2, b), PAD)
            plan.partner_dy, plan.partner_dx = poffs[0], poffs[1]
            plan.partner_flip = rng.random(b) < 0.5 if cfg.augment else np.zeros(b, dtype=bool)
        plans.append(plan)
    return plans
