"""A rough training-time estimate, printed before work starts so a user can stop a plan that
would take too long."""

from __future__ import annotations

import torch

from .config import TrainConfig

# Rough training throughput (images/s) for the width-16 network; cost grows with width².
# CPU figures were measured on this project's 2-core development machine; the CUDA one is the
# H100 goal of the GPU issue, not yet a measurement.
THROUGHPUT = {("cpu", "bf16"): 1250.0, ("cpu", "fp32"): 650.0,
              ("cuda", "bf16"): 20000.0 * 16, ("cuda", "fp32"): 8000.0 * 16}


def estimate_seconds(cfgs: list[TrainConfig], device: torch.device) -> float:
    total = 0.0
    for c in cfgs:
        # A device type without a measurement (mps, xpu, ...) is estimated as a CPU.
        kind = device.type if device.type in ("cpu", "cuda") else "cpu"
        # A model factory's size is unknown (width 0): estimated as the width-16 network.
        speed = THROUGHPUT[(kind, c.precision)] * (16 / (c.width or 16)) ** 2
        n_train = c.train_subset or 50000
        n_eval = (c.test_n or 10000) + c.train_eval_n
        total += c.epochs * (n_train + n_eval / 3) / speed  # evaluation costs about 1/3 of a step
    return total

