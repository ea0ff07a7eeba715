"""Image tensors: uint8 N x H x W x C arrays on the device, float N x C x H x W in [0, 1] for models."""

from __future__ import annotations

import numpy as np
import torch


def to_device_images(x: np.ndarray, device: torch.device, pad: int = 0) -> torch.Tensor:
    """uint8 N x H x W x C on the device, zero-padded spatially by pad pixels."""
    t = torch.from_numpy(np.ascontiguousarray(x))
    if pad:
        t = torch.nn.functional.pad(t, (0, 0, pad, pad, pad, pad))
    return t.to(device)


def plain_images(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2).float().div_(255.0)


def float_images(x: torch.Tensor) -> torch.Tensor:
    """Float N x C x H x W images in [0, 1], channels-last like predict_logits feeds the model."""
    if x.dtype == torch.uint8:
        x = plain_images(x)
    return x.contiguous(memory_format=torch.channels_last)
