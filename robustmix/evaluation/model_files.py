"""A model robustmix did not train, from files: a factory import path plus a weights file, or a
TorchScript file; and the check that it takes the dataset's images and gives N x classes.

Weights are read with torch.load(weights_only=True), so a file that pickles code cannot run it;
every failure is a one-line UsageError naming the file.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import UsageError
from .external import eval_mode


@dataclass(frozen=True)
class ModelSource:
    """Where the model comes from: factory + weights, or a TorchScript file (exactly one)."""

    factory: str | None = None
    weights: Path | None = None
    torchscript: Path | None = None

    def describe(self) -> dict:
        """What config.json records: the factory or TorchScript path and the file's sha256."""
        path = self.weights if self.torchscript is None else self.torchscript
        return {"kind": "torchscript" if self.torchscript is not None else "factory",
                "factory": self.factory,
                "weights": None if self.weights is None else str(Path(self.weights).resolve()),
                "torchscript": None if self.torchscript is None
                else str(Path(self.torchscript).resolve()),
                "sha256": sha256_file(path)}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _first_line(e: BaseException) -> str:
    lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()] or [""]
    # TorchScript's errors open with "The following operation failed in the TorchScript
    # interpreter." and a traceback; the cause is the last line
    return lines[-1] if "TorchScript interpreter" in lines[0] else lines[0]


def _exists(path: Path, what: str) -> None:
    if not Path(path).is_file():
        raise UsageError(f"{what} {path} does not exist or is not a file")


def load_weights(path: Path) -> Mapping[str, torch.Tensor]:
    """A state dict from path: the file's mapping of names to tensors, or the one under its
    "model" (robustmix's checkpoints) or "state_dict" key."""
    _exists(path, "weights file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # torch's refusal of a pickle that holds more than tensors and plain containers
        raise UsageError(f"weights file {path} is not weights-only: torch.load(weights_only=True) "
                         "refuses it (it pickles objects or code); save model.state_dict() "
                         "instead") from None
    except Exception as e:
        raise UsageError(f"cannot read weights file {path}: {type(e).__name__}: "
                         f"{_first_line(e)}") from None
    if isinstance(obj, Mapping):
        for key in ("model", "state_dict"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise UsageError(f"weights file {path} holds no state dict (a mapping of parameter "
                         "names to tensors)")
    return obj


def _names(items: list[str], limit: int = 3) -> str:
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _mismatch(model: nn.Module, state: Mapping[str, torch.Tensor]) -> str:
    """What keeps state from loading into model, in one line: missing, unexpected and misshapen
    entries, a few of each named (load_state_dict's own report runs to many lines)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {'x'.join(map(str, state[k].shape))} in the file vs "
              f"{'x'.join(map(str, own[k].shape))}"
              for k in own if k in state and state[k].shape != own[k].shape]
    parts = [f"{len(v)} {what} ({_names(v)})" for what, v in
             (("missing", missing), ("unexpected", unexpected), ("of another shape", shapes)) if v]
    return "; ".join(parts) or "load_state_dict refused them"


def factory_model(factory: str, weights: Path, num_classes: int, channels: int) -> nn.Module:
    from ..training.models import call_factory

    state = load_weights(weights)  # before the factory: a bad file is named first
    model = call_factory(factory, num_classes, channels)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError:
        raise UsageError(f"weights {weights} do not match factory {factory}({num_classes}, "
                         f"{channels}): {_mismatch(model, state)}") from None
    return model


def torchscript_model(path: Path) -> nn.Module:
    import warnings

    _exists(path, "TorchScript file")
    try:
        with warnings.catch_warnings():
            # torch's notice that TorchScript is deprecated is not about the user's file, and a
            # second line on stderr would break the one-line convention of bad input
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(path), map_location="cpu")
    except Exception as e:
        raise UsageError(f"cannot load TorchScript file {path}: {type(e).__name__}: "
                         f"{_first_line(e)[:200]}") from None


def load_external_model(source: ModelSource, num_classes: int, channels: int) -> nn.Module:
    if (source.factory is None) == (source.torchscript is None):
        raise UsageError("give the model as --factory with --weights, or as --torchscript")
    if source.torchscript is not None:
        if source.weights is not None:
            raise UsageError("--weights goes with --factory; a TorchScript file holds its own")
        return torchscript_model(source.torchscript)
    if source.weights is None:
        raise UsageError(f"--factory {source.factory} needs --weights FILE (its trained weights)")
    return factory_model(source.factory, source.weights, num_classes, channels)


def check_takes_images(model: nn.Module, x: torch.Tensor, num_classes: int, what: str) -> None:
    """The model runs on two of the dataset's images (float N x C x H x W in [0, 1]) and returns
    2 x num_classes scores; else a UsageError, before anything is computed or written."""
    xb = x[:2]
    try:
        with torch.no_grad(), eval_mode(model):
            out = model(xb)
    except Exception as e:
        cause = _first_line(e)[:200]
        if not cause.startswith(type(e).__name__):
            cause = f"{type(e).__name__}: {cause}"
        raise UsageError(f"{what} does not take the dataset's images "
                         f"({' x '.join(map(str, xb.shape))} floats in [0, 1]): {cause}") from None
    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    if shape != (len(xb), num_classes):
        raise UsageError(f"{what} outputs {shape} for {len(xb)} images, not N x classes "
                         f"({len(xb)} x {num_classes})")
