"""Predictions of a model in eval mode, batched and under the run's precision: the one function
training evaluates the test set with and attacks count correct answers with."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..data.subsets import balanced_subset
from .device import autocast
from .images import plain_images


def test_indices(y_test: np.ndarray, test_n: int | None) -> np.ndarray:
    """The fixed, class-balanced test images a profile evaluates (the same for every run)."""
    return balanced_subset(y_test, test_n, 0)


def eval_batch_size(device: torch.device) -> int:
    return 4096 if device.type == "cuda" else 1000


@torch.no_grad()
def predict_logits(model: torch.nn.Module, x: torch.Tensor, device: torch.device,
                   precision: str) -> torch.Tensor:
    """fp32 logits of the model in eval mode for uint8 N x H x W x C images (or float N x C x H x W
    images in [0, 1]), in batches of eval_batch_size, exactly as training evaluates."""
    model.eval()
    bs = eval_batch_size(device)
    out = []
    for s in range(0, len(x), bs):
        xb = x[s:s + bs].to(device)
        xb = plain_images(xb) if xb.dtype == torch.uint8 else xb
        with autocast(device, precision):
            out.append(model(xb.contiguous(memory_format=torch.channels_last)).float())
    return torch.cat(out)


def check_eval_mode(model: nn.Module) -> None:
    """Attacks and evaluation measure the deployed model: dropout off, BatchNorm on running
    statistics. torchattacks remembers model.training when an attack is built, so this is
    checked before and after every use."""
    if any(m.training for m in model.modules()):
        raise AssertionError("attacks need the model in eval mode (call model.eval() first)")
