"""One epoch's random plan (order, crops, flips, λ, partners) and the batch augmentation.

All randomness of an epoch comes from a generator seeded by (seed, epoch), which is what makes a
resumed run end with exactly the metrics of an uninterrupted one. The uint8 training set lives on
the device, padded once; each batch is cropped and flipped by a single gather.

The whole epoch's plan is drawn on the host before its first step and moved to the device in one
copy (device_epoch_plan): a copy per batch from pageable memory would make the CPU wait for the
GPU at every step. The draws are those of epoch_plans, in the same order, so both give the same
batches bit for bit; epoch_plans iterated directly (each batch copied when used) is the per-batch
path the device plan replaced, kept as the reference that tests and experiments/bench.py compare
against.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields

import numpy as np
import torch

from .config import TrainConfig
from .methods import METHODS
from .mixing import knn_partners, same_class_partners, sample_lambda, shuffle_partners

PAD = 4  # the random crop's padding (translation by up to PAD pixels) unless a config sets one


def crop_pad(cfg: TrainConfig) -> int:
    return PAD if cfg.translate is None else cfg.translate


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


Array = np.ndarray | torch.Tensor


@dataclass
class BatchPlan:
    """Every random draw of one batch, so tests can replay a batch through another path.

    The arrays are numpy arrays from epoch_plans, or slices of device tensors from an EpochPlan;
    λ is a Python float either way (drawn on the host, so reading it never waits for the device).
    """

    idx: Array
    dy: Array
    dx: Array
    flip: Array
    lam: float
    partner: Array  # positions in the batch, or dataset positions for knn
    partner_dy: Array | None = None
    partner_dx: Array | None = None
    partner_flip: Array | None = None


def epoch_plans(cfg: TrainConfig, epoch: int, noisy: np.ndarray, knn: np.ndarray | None) -> list[BatchPlan]:
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, epoch, 0x65706F63]))
    n = len(noisy)
    order = rng.permutation(n)
    bs = cfg.batch_size
    starts = list(range(0, n, bs))
    if len(starts) > 1 and n - starts[-1] < 2:  # BatchNorm cannot train on a batch of one
        starts.pop()
    spec = METHODS[cfg.method]
    pad = crop_pad(cfg)
    plans = []
    for s in starts:
        idx = order[s:s + bs]
        b = len(idx)
        offs = rng.integers(0, 2 * pad + 1, size=(2, b)) if cfg.augment else np.full((2, b), pad)
        flip = rng.random(b) < 0.5 if cfg.augment else np.zeros(b, dtype=bool)
        lam = sample_lambda(rng, cfg.alpha) if spec.mixes else 1.0
        plan = BatchPlan(idx, offs[0], offs[1], flip, lam, np.arange(b))
        if spec.partner == "shuffle":
            plan.partner = shuffle_partners(rng, b)
        elif spec.partner == "same_class":
            plan.partner = same_class_partners(rng, noisy[idx])
        elif spec.partner == "knn":
            plan.partner = knn_partners(rng, knn, idx)
            poffs = rng.integers(0, 2 * pad + 1, size=(2, b)) if cfg.augment else np.full((2, b), pad)
            plan.partner_dy, plan.partner_dx = poffs[0], poffs[1]
            plan.partner_flip = rng.random(b) < 0.5 if cfg.augment else np.zeros(b, dtype=bool)
        plans.append(plan)
    return plans


_FLAGS = ("flip", "partner_flip")  # boolean columns; every other array column is int64


@dataclass
class EpochPlan:
    """One epoch's batch plans stacked column by column into tensors on the device.

    Iterating yields a BatchPlan per batch whose arrays are slices (views) of those tensors, so a
    training step reads its indices, offsets, flips and partners without any host-to-device copy.
    """

    columns: dict[str, torch.Tensor]
    lams: list[float]
    bounds: list[tuple[int, int]]  # [start, end) of each batch in the columns

    def __len__(self) -> int:
        return len(self.lams)

    def __iter__(self) -> Iterator[BatchPlan]:
        for (s, e), lam in zip(self.bounds, self.lams, strict=True):
            yield BatchPlan(lam=lam, **{k: v[s:e] for k, v in self.columns.items()})


def stack_plans(plans: list[BatchPlan], device: torch.device) -> EpochPlan:
    """The plans as one EpochPlan on device: a single int64 host tensor, pinned on CUDA so the
    copy runs asynchronously, moved in one transfer and split into its columns there."""
    names = [f.name for f in fields(BatchPlan) if f.name != "lam" and getattr(plans[0], f.name) is not None]
    host = torch.from_numpy(np.stack([
        np.concatenate([np.asarray(getattr(p, name), dtype=np.int64) for p in plans])
        for name in names]))
    if device.type == "cuda":
        host = host.pin_memory()
    stacked = host.to(device, non_blocking=True)
    columns = {name: stacked[i].bool() if name in _FLAGS else stacked[i] for i, name in enumerate(names)}
    ends = np.cumsum([len(p.idx) for p in plans]).tolist()
    return EpochPlan(columns, [p.lam for p in plans], list(zip([0, *ends[:-1]], ends, strict=True)))


def device_epoch_plan(cfg: TrainConfig, epoch: int, noisy: np.ndarray, knn: np.ndarray | None,
                      device: torch.device) -> EpochPlan:
    """epoch_plans' draws, moved to device once for the whole epoch."""
    return stack_plans(epoch_plans(cfg, epoch, noisy, knn), device)
