"""Methods and models from outside robustmix tried on one small batch before anything is written.

A plugin that fails (targets of the wrong shape, a non-finite loss, a network that does not take
the dataset's images, an exception in the user's code) is then a one-line error naming it, with
exit status 2 and no run directory created, instead of a traceback in the middle of a study.
"""

from __future__ import annotations

import json
import math

import torch

from ..data.datasets import Dataset
from ..errors import UsageError
from ..evaluation.device import place_model
from .api import Batch
from .models import build_model
from .plugins import is_builtin_model, method_for, spec_of

N_CHECK = 4  # images in the trial batch: enough for BatchNorm in training mode


def _fail(who: str, what: str, e: BaseException) -> UsageError:
    first = (str(e).strip().splitlines() or [""])[0]
    return UsageError(f"{who} {what}: {type(e).__name__}: {first}")


def check_plugins(cfg, ds: Dataset) -> None:
    """One forward and backward pass of the run's method and model on the first images of the
    training set; UsageError naming the plugin at fault. robustmix's own methods and models are
    tested elsewhere and skipped."""
    spec = spec_of(cfg)
    if spec.builtin and is_builtin_model(cfg.model):
        return
    method_name = spec.name if spec.builtin else f"{spec.name} ({spec.factory})"
    model_name = f"model {cfg.model}"
    n, k = min(N_CHECK, len(ds.y_train)), ds.num_classes
    x = torch.from_numpy(ds.x_train[:n]).permute(0, 3, 1, 2).float().div(255.0)
    y = torch.from_numpy(ds.y_train[:n]).long()
    perm = torch.arange(n - 1, -1, -1)
    with torch.random.fork_rng(devices=[]):  # leaves the caller's random streams as they were
        torch.manual_seed(0)
        model = place_model(build_model(cfg, ds), torch.device("cpu")).train()
        method = method_for(cfg)
        batch = Batch(x, y, x[perm], y[perm], 0.5 if spec.mixes else 1.0, k, torch.arange(n))
        try:
            inputs, targets = method.inputs_targets(batch)
        except Exception as e:
            raise _fail(f"method {method_name}", "failed on a batch", e) from None
        for what, t, shape in (("inputs", inputs, tuple(x.shape)), ("targets", targets, (n, k))):
            if not isinstance(t, torch.Tensor) or tuple(t.shape) != shape:
                got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise UsageError(f"method {method_name} returned {what} of shape {got}, not "
                                 f"{shape}" + (" (one row of class probabilities per image)"
                                               if what == "targets" else ""))
        try:
            logits = model(inputs)
        except Exception as e:
            raise _fail(model_name, f"does not take the dataset's {x.shape[1]}x{x.shape[2]}x"
                        f"{x.shape[3]} images", e) from None
        if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (n, k):
            got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise UsageError(f"{model_name} gives outputs of shape {got} for {n} images, not "
                             f"{(n, k)} (one logit per class)")
        try:
            loss = method.loss(logits, targets)
        except Exception as e:
            raise _fail(f"method {method_name}", "loss failed", e) from None
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise UsageError(f"method {method_name}: loss must be a scalar tensor, got "
                             f"{tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__}")
        if not math.isfinite(float(loss.detach())):
            raise UsageError(f"method {method_name} gives a non-finite loss ({float(loss.detach())}) on a "
                             "first batch")
        try:
            loss.backward()
        except Exception as e:
            raise _fail(f"method {method_name}", "loss cannot be differentiated", e) from None


def check_all(cfgs: list, ds: Dataset) -> None:
    """check_plugins once per distinct method, parameters and model among cfgs."""
    seen = set()
    for cfg in cfgs:
        key = (cfg.method, json.dumps(cfg.method_params, sort_keys=True), cfg.model,
               cfg.normalize, cfg.width, cfg.dropout > 0, cfg.dataset)
        if key not in seen:
            seen.add(key)
            check_plugins(cfg, ds)
