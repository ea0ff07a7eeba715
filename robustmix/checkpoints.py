"""Loading what training stored: a run's model from its checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch

from .config import TrainConfig
from .errors import UsageError
from .models import PreActResNet, preact_resnet18
from .runs import BEST, CONFIG, LAST, load_train_config

CHECKPOINTS = {"last": LAST, "best": BEST}


def model_from_config(cfg: TrainConfig) -> PreActResNet:
    """An untrained model of the run's architecture (mean/std buffers come with the weights)."""
    channels = 1 if cfg.dataset == "fashion-mnist" else 3
    return preact_resnet18(10, cfg.width, channels, cfg.dropout, [0.5] * channels, [0.25] * channels)


def load_model(run: Path, which: str = "last", device: torch.device | str = "cpu"
               ) -> tuple[PreActResNet, TrainConfig]:
    """The run's model in eval mode on device; UsageError if the run or checkpoint is unusable."""
    run = Path(run)
    if not (run / CONFIG).exists():
        raise UsageError(f"{run} is not a run directory (no {CONFIG})")
    if which not in CHECKPOINTS:
        raise UsageError(f"unknown checkpoint '{which}' (choose last or best)")
    cfg = load_train_config(run)
    path = run / CHECKPOINTS[which]
    if not path.exists():
        raise UsageError(f"{run} has no {CHECKPOINTS[which]} checkpoint: the run is unfinished or was never trained")
    try:
        state = torch.load(path, map_location=device, weights_only=True)["model"]
    except Exception as e:
        raise UsageError(f"cannot read checkpoint {path}: {type(e).__name__}") from None
    model = model_from_config(cfg)
    try:
        model.load_state_dict(state)
    except RuntimeError:
        raise UsageError(f"checkpoint {path} does not match its config (width {cfg.width}, "
                         f"dataset {cfg.dataset})") from None
    model.to(device).to(memory_format=torch.channels_last).eval()
    return model, cfg

