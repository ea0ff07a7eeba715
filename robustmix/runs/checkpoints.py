"""Checkpoints of a run: saving them (atomically) and loading them back (weights only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..atomic import save_torch
from ..errors import UsageError
from ..evaluation.device import place_model
from ..training.config import TrainConfig
from ..training.models import model_from_config
from . import checkpoint_names as CK
from .files import CONFIG
from .rundir import load_train_config


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    save_torch(path, state)


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """A checkpoint's dict; weights_only=True, so a tampered file cannot run code."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as e:
        raise UsageError(f"cannot read checkpoint {path}: {type(e).__name__}") from None


def load_model(run: Path, which: str = "last", device: torch.device | str = "cpu"
               ) -> tuple[torch.nn.Module, TrainConfig]:
    """The run's model in eval mode on device; UsageError if the run or checkpoint is unusable."""
    run = Path(run)
    if not (run / CONFIG).exists():
        raise UsageError(f"{run} is not a run directory (no {CONFIG})")
    if which not in CK.CLI_CHOICES:
        raise UsageError(f"unknown checkpoint '{which}' (choose {' or '.join(CK.CLI_CHOICES)})")
    cfg = load_train_config(run)
    file = CK.resolve(which).file
    path = run / file
    if not path.exists():
        raise UsageError(f"{run} has no {file} checkpoint: the run is unfinished or was never trained")
    state = load_checkpoint(path, device)["model"]
    try:  # the recorded model: a factory that can no longer be imported is named, in one line
        model = model_from_config(cfg)
    except UsageError as e:
        raise UsageError(f"{run}: {e}") from None
    try:
        model.load_state_dict(state)
    except RuntimeError:
        raise UsageError(f"checkpoint {path} does not match its config (model {cfg.model}, "
                         f"width {cfg.width}, dataset {cfg.dataset})") from None
    place_model(model, device).eval()
    return model, cfg
