"""Evaluate any classifier from Python: `robustmix.evaluate(model, x, y)` runs robustmix's attack
suite (the same attack classes, settings and masking flags as for trained runs) on a model it
did not train and returns tidy pandas tables, for notebooks.

The evaluation is guarded as RobustBench's rules ask: every submodule is in eval mode for the
whole evaluation and the model's own train/eval flags are restored afterwards, even on error;
images must lie in [0, 1] (a one-line UsageError names the range seen); a forward pass that is
not deterministic (two passes differ) or an input gradient that is zero everywhere is flagged
beside the attack flags. tests/test_evaluate.py checks each of these.

Calibration (expected calibration error with 15 equal-width bins, negative log-likelihood and
Brier score, with bootstrap intervals over the test images) is computed on the clean images by
the pure functions of evaluation/calibration.py.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy.stats import binomtest
from torch import nn

from ..attacks.defaults import (
    DEFAULT_L2_EPS_LIST,
    DEFAULT_NORM,
    DEFAULT_QUERIES,
    DEFAULT_RESTARTS,
    DEFAULT_SEED,
    DEFAULT_STEPS,
    NORMS,
    check_eps_values,
    image_units,
)
from ..attacks.flags import check_flags
from ..attacks.registry import ATTACKS, make_attack, norm_problem, settings
from ..attacks.sweep import Target, attack_outcomes
from ..errors import UsageError
from .calibration import COLUMNS as CALIBRATION_COLUMNS
from .calibration import RESAMPLES, calibration_table
from .device import autocast
from .predict import predict_logits

GUARD_COLUMNS = ["model", "check", "passed", "detail"]


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Every submodule in eval mode inside the block; each one's own flag restored after it,
    also when the block raises."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in flags:
            m.training = training


def as_images(x) -> torch.Tensor:
    """Float N x C x H x W images in [0, 1] from a tensor or array (uint8 N x H x W x C images are
    scaled by 1/255); UsageError naming the range seen when they are outside [0, 1]."""
    t = torch.as_tensor(x)
    if t.dtype == torch.uint8:
        return t.permute(0, 3, 1, 2).float().div(255.0).contiguous()
    if not t.is_floating_point() or t.ndim != 4:
        raise UsageError(f"images must be a float N x C x H x W tensor in [0, 1] (or uint8 "
                         f"N x H x W x C), got {tuple(t.shape)} {t.dtype}")
    lo, hi = float(t.min()), float(t.max())
    if lo < 0.0 or hi > 1.0 or not (np.isfinite(lo) and np.isfinite(hi)):
        raise UsageError(f"images must lie in [0, 1]; saw [{lo:.4g}, {hi:.4g}] (normalise "
                         "inside the model, not in the data)")
    return t.float()


def guard_checks(model: nn.Module, x: torch.Tensor, y: torch.Tensor, precision: str,
                 name: str) -> pd.DataFrame:
    """Deterministic forward pass and non-zero input gradient on the first images."""
    xb, yb = x[:64], y[:64]
    with torch.no_grad(), autocast(xb.device, precision):
        a, b = model(xb).float(), model(xb).float()
    if a.ndim != 2 or a.shape[0] != len(xb):
        raise UsageError(f"model outputs have shape {tuple(a.shape)}, not N x classes")
    if len(yb) and a.shape[1] <= int(yb.max()):
        raise UsageError(f"model outputs have {a.shape[1]} classes, but a label is "
                         f"{int(yb.max())}")
    same = bool(torch.equal(a, b))
    g = xb.clone().requires_grad_(True)
    with torch.enable_grad(), autocast(xb.device, precision):
        loss = nn.functional.cross_entropy(model(g).float(), yb)
    grad = torch.autograd.grad(loss, g, allow_unused=True)[0]
    norm = 0.0 if grad is None else float(grad.abs().sum())
    return pd.DataFrame([
        {"model": name, "check": "deterministic_forward", "passed": same,
         "detail": "two forward passes agree" if same else
         f"two forward passes differ by up to {float((a - b).abs().max()):.3g}"},
        {"model": name, "check": "nonzero_input_gradient", "passed": norm > 0,
         "detail": f"sum |d loss / d x| = {norm:.3g} on {len(xb)} images"},
    ], columns=GUARD_COLUMNS)


@dataclass
class Evaluation:
    """Tidy results: one row per (attack, ε) in `attacks`, the masking flags raised on them, the
    guard checks, per-ε robust accuracy (an image counts when every attack left it correct), and
    one row per calibration metric on the clean images (ece, ece_debiased, nll, brier; empty when not asked)."""

    attacks: pd.DataFrame
    flags: pd.DataFrame
    checks: pd.DataFrame
    robust: pd.DataFrame
    calibration: pd.DataFrame
    clean: pd.DataFrame  # one row: clean accuracy, whatever ε were asked for

    @property
    def clean_accuracy(self) -> float:
        return float(self.clean["accuracy"].iloc[0])

    @property
    def reliable(self) -> bool:
        """False when a masking flag fired or a guard check failed ("evaluation potentially
        unreliable", RobustBench's wording)."""
        return not len(self.flags) and bool(self.checks["passed"].all())


def _wilson(correct: int, n: int) -> tuple[float, float]:
    ci = binomtest(correct, n).proportion_ci(0.95, method="wilson")
    return float(ci.low), float(ci.high)


# evaluate()'s defaults per norm (attacks, ε in the norm's units): FGSM and I-FGSM are L∞ only
DEFAULT_ATTACKS_OF = {"linf": ("fgsm", "pgd"), "l2": ("pgd",)}
DEFAULT_EPS_OF = {"linf": (0, 1, 2, 4, 8), "l2": DEFAULT_L2_EPS_LIST}


def evaluate(model: nn.Module, x, y, *, attacks: Sequence[str] | None = None,
             eps: Sequence[float] | None = None, norm: str = DEFAULT_NORM,
             steps: int = DEFAULT_STEPS,
             restarts: int = DEFAULT_RESTARTS, queries: int = DEFAULT_QUERIES,
             seed: int = DEFAULT_SEED, precision: str = "fp32", batch: int = 500,
             name: str = "model", step_size: float | None = None, calibration: bool = True,
             resamples: int = RESAMPLES) -> Evaluation:
    """Attack `model` (inputs in [0, 1], normalisation inside it) white-box on images x with
    labels y at each ε in the threat model `norm` (linf: ε in /255 units, default fgsm and pgd
    at 0, 1, 2, 4, 8; l2: ε in plain units, default pgd at 0, 0.25, 0.5, 1); ε = 0 is its clean
    accuracy. step_size (in ε's units; None = each attack's rule) is I-FGSM's and PGD's. With calibration, also ECE (15 bins), NLL and
    Brier score of the clean predictions, with `resamples` bootstrap resamples. Returns an
    Evaluation.

    Accuracy intervals are Wilson 95 % intervals over the test images, calibration intervals
    bootstrap percentile intervals over them (the only source of variation in one model's
    evaluation)."""
    import torchattacks

    if norm not in NORMS:
        raise UsageError(f"unknown norm {norm!r} (choose from {', '.join(NORMS)})")
    attacks = DEFAULT_ATTACKS_OF[norm] if attacks is None else attacks
    eps = DEFAULT_EPS_OF[norm] if eps is None else eps
    unknown = [a for a in attacks if a not in ATTACKS]
    if unknown:
        raise UsageError(f"unknown attack '{unknown[0]}' (choose from {', '.join(ATTACKS)})")
    problem = norm_problem(attacks, norm)
    if problem:
        raise UsageError(problem)
    check_eps_values(lambda key: "ε", "eps", eps, norm)
    params = list(model.parameters())
    device = params[0].device if params else torch.device("cpu")
    images = as_images(x).to(device)
    labels = torch.as_tensor(np.asarray(y), dtype=torch.long).to(device)
    if len(labels) != len(images):
        raise UsageError(f"{len(images)} images but {len(labels)} labels")
    rows, masks = [], {}
    with eval_mode(model):
        checks = guard_checks(model, images, labels, precision, name)
        for attack in attacks:
            step = None if step_size is None else image_units(step_size, norm)
            atk = make_attack(attack, model, precision, steps, step, None, restarts, queries, seed,
                              norm)
            values = [float(e) for e in eps] if attack in ("fgsm", "ifgsm", "pgd") else [
                float(e) for e in eps if e > 0]
            out, seconds = attack_outcomes(atk, [Target(model, precision)], images, labels,
                                           [image_units(e, norm) for e in values], batch)
            for e, mask, sec in zip(values, out[0], seconds[0], strict=True):
                correct, n = int(mask.sum()), len(mask)
                lo, hi = _wilson(correct, n)
                rows.append({"model": name, "attack": attack, "mode": "white-box",
                             "norm": norm, "eps": e,
                             "n": n, "correct": correct, "accuracy": correct / n,
                             "ci_low": lo, "ci_high": hi, "seconds": sec,
                             **settings(attack, e, steps, step_size, restarts, queries, seed),
                             "precision": precision, "library": "torchattacks "
                             + torchattacks.__version__, "run": name, "checkpoint": "given",
                             "source": ""})
                masks.setdefault(e, []).append(mask)
        # the function attack rows count ε = 0 with, so the two clean accuracies agree
        logits = predict_logits(model, images, images.device, precision)
    clean = _accuracy_row(name, logits.argmax(1) == labels)
    probs = torch.softmax(logits.double(), 1).cpu().numpy()
    calib = calibration_table(probs, labels.cpu().numpy(), model=name, resamples=resamples) \
        if calibration else pd.DataFrame(columns=CALIBRATION_COLUMNS)
    table = pd.DataFrame(rows)
    robust = []
    for e, ms in sorted(masks.items()):
        every = torch.stack(ms).all(0)
        correct, n = int(every.sum()), len(every)
        lo, hi = _wilson(correct, n)
        robust.append({"model": name, "eps": e, "n": n, "correct": correct,
                       "accuracy": correct / n, "ci_low": lo, "ci_high": hi,
                       "attacks": "+".join(a for a in attacks if e in
                                           set(table.loc[table["attack"] == a, "eps"]))})
    return Evaluation(table, check_flags(table), checks, pd.DataFrame(robust), calib,
                      pd.DataFrame([clean]))


def _accuracy_row(name: str, mask: torch.Tensor) -> dict:
    correct, n = int(mask.sum()), len(mask)
    lo, hi = _wilson(correct, n)
    return {"model": name, "n": n, "correct": correct, "accuracy": correct / n,
            "ci_low": lo, "ci_high": hi}

