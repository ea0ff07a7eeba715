"""AutoAttack and Square through torchattacks, the reference implementations, one ε at a time.

* `autoattack` is the standard AutoAttack ensemble (Croce & Hein 2020, fra31/auto-attack,
  version='standard'): APGD-CE, then APGD-T over 9 target classes, then FAB-T over 9 target
  classes, 100 iterations and one restart each, then Square with 5,000 queries (p_init 0.8, no
  schedule rescaling), each stage run only on the images every earlier stage left correctly
  classified (torchattacks.MultiAttack). It is assembled from torchattacks' APGD, APGDT, FAB and
  Square with the original's settings: torchattacks.AutoAttack(version='standard') passes no
  iteration count, so its APGD, APGD-T and FAB run torchattacks' default of 10 iterations.
  With those 10 iterations the assembly here crafts exactly torchattacks.AutoAttack's images
  (tests/test_attacks_strong.py checks it).
* `square` is torchattacks.Square (L∞ or L2, margin loss, p_init 0.8, schedule rescaled to the query
  budget, one restart) with `queries` queries per image; it needs only the model's scores.

Both take the threat model as `norm`: "linf" (the default) or "l2", passed to every stage as
torchattacks spells it (norm="Linf" / "L2"); the L2 ensemble is the standard AutoAttack's L2
version, the same four stages with the same settings.

Both seed torchattacks' stages with `seed`. torchattacks seeds the global RNG inside its
attacks; robustmix runs them inside torch.random.fork_rng, so the caller's RNG state is left as
it was. Models are attacked in eval mode (checked before and after, never switched): torchattacks
calls model.eval() itself and would hide a model left in training mode.

The precision is applied by wrapping the model: its forward runs under the chosen autocast and
returns fp32 logits, which is what torchattacks' stages see.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..evaluation.device import autocast
from ..evaluation.predict import check_eval_mode
from .base import Attack, check_eps, check_perturbation
from .defaults import (
    AUTOATTACK_QUERIES,
    AUTOATTACK_STEPS,
    DEFAULT_NORM,
    DEFAULT_QUERIES,
    DEFAULT_SEED,
    NORMS,
    TORCHATTACKS_NORM,
)


class Scores(nn.Module):
    """The model as torchattacks sees it: inputs in [0, 1], fp32 logits, the chosen precision."""

    def __init__(self, model: nn.Module, precision: str) -> None:
        super().__init__()
        self.model, self.precision = model, precision
        self.device = next(model.parameters()).device
        self.train(model.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(self.device, self.precision):
            return self.model(x).float()


class _TorchAttacks(Attack):
    """Shared part: one torchattacks attack per ε, run on the wrapped model in eval mode."""

    def __init__(self, model: nn.Module, seed: int = DEFAULT_SEED, precision: str = "fp32",
                 norm: str = DEFAULT_NORM) -> None:
        super().__init__(model, precision)
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
        self.seed, self.norm = seed, norm
        # torchattacks' FAB reshapes input gradients with view(), which fails on the
        # channels-last gradients a channels-last model returns: torchattacks gets a copy of the
        # model in the default memory format (same weights, same eval mode) and NCHW inputs.
        net = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
        self.scores = Scores(net, precision)
        self._classes: int | None = None

    def classes(self, x: torch.Tensor) -> int:
        if self._classes is None:
            with torch.no_grad():
                self._classes = int(self.scores(x[:1]).shape[1])
        return self._classes

    def build(self, eps: float, classes: int):
        raise NotImplementedError

    @property
    def ta_norm(self) -> str:
        """The norm as torchattacks spells it."""
        return TORCHATTACKS_NORM[self.norm]

    def sweep(self, x, y, eps):
        check_eps(eps, self.norm)
        x, y = x.to(self.device), y.to(self.device)
        check_eval_mode(self.model)
        out = []
        for e in eps:
            if e == 0 or len(y) == 0:
                out.append(x.detach().clone())
                continue
            atk = self.build(e, self.classes(x))
            devices = [self.device] if self.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                adv = atk(x.contiguous(), y).detach()
            check_eval_mode(self.model)
            check_eval_mode(self.scores)
            check_perturbation(adv, x, e, self.norm)
            out.append(adv)
        return out


class AutoAttack(_TorchAttacks):
    """The standard AutoAttack ensemble at each ε (L∞ or L2). steps and queries exist for tests
    and the benchmark only: robustmix runs and records the standard values."""

    name = "autoattack"

    def __init__(self, model: nn.Module, seed: int = DEFAULT_SEED, precision: str = "fp32",
                 steps: int = AUTOATTACK_STEPS, queries: int = AUTOATTACK_QUERIES,
                 rescale_schedule: bool = False, norm: str = DEFAULT_NORM) -> None:
        super().__init__(model, seed, precision, norm)
        self.steps, self.queries, self.rescale_schedule = steps, queries, rescale_schedule

    def settings(self, eps):
        return self.steps, 0.0

    def build(self, eps: float, classes: int):
        import torchattacks as ta

        m, s, norm = self.scores, self.seed, self.ta_norm
        return ta.MultiAttack([
            ta.APGD(m, norm=norm, eps=eps, steps=self.steps, n_restarts=1, seed=s, loss="ce"),
            ta.APGDT(m, norm=norm, eps=eps, steps=self.steps, n_restarts=1, seed=s,
                     n_classes=classes),
            ta.FAB(m, norm=norm, eps=eps, steps=self.steps, n_restarts=1, seed=s,
                   multi_targeted=True, n_classes=classes),
            ta.Square(m, norm=norm, eps=eps, n_queries=self.queries, n_restarts=1, p_init=0.8,
                      seed=s, resc_schedule=self.rescale_schedule),
        ])


class Square(_TorchAttacks):
    """torchattacks.Square, L∞ or L2, `queries` queries per image (default 5,000, AutoAttack's
    budget)."""

    name = "square"

    def __init__(self, model: nn.Module, queries: int = DEFAULT_QUERIES, seed: int = DEFAULT_SEED,
                 precision: str = "fp32", norm: str = DEFAULT_NORM) -> None:
        super().__init__(model, seed, precision, norm)
        if queries < 1:
            raise ValueError(f"queries must be at least 1, got {queries}")
        self.queries = queries

    def settings(self, eps):
        return 0, 0.0

    def build(self, eps: float, classes: int):
        import torchattacks as ta

        return ta.Square(self.scores, norm=self.ta_norm, eps=eps, n_queries=self.queries, n_restarts=1,
                         p_init=0.8, loss="margin", resc_schedule=True, seed=self.seed)
