"""The attacks' default settings and step-size rules, in one torch-free module.

The registry (names, --help, the settings each attack.csv row records) and the attack classes
(fgsm, pgd, autoattack) both read them from here, so neither imports the other for a constant
and a rule is written once: the step an attack takes is the one its rows record.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from ..errors import UsageError

# The ε sweep (/255 units) of a run's attack stage when none is given: clean accuracy (0), the
# mixup paper's budgets and the common 8/255 benchmark, up to 16.
DEFAULT_EPS_LIST: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0)

# Threat models: the norm of the ball an attack's perturbation stays in. L∞ is the mixup paper's
# and the default. Each norm's ε is given and stored in the units its literature uses, so a value
# reads as in the papers: L∞ in /255 of the pixel range (8 = 8/255), L2 in plain units of images
# in [0, 1] (0.5 = ‖δ‖₂ ≤ 0.5, RobustBench's CIFAR-10 L2 budget). attack.csv's `norm` column says
# which units its `eps` and `step_size` are in; rows of older runs, which have no such column,
# are L∞.
NORMS: tuple[str, ...] = ("linf", "l2")
DEFAULT_NORM = "linf"
# ε units per norm: an ε as given divided by this is the radius in [0, 1] image units.
EPS_SCALE: dict[str, float] = {"linf": 255.0, "l2": 1.0}
# The L2 sweep when none is given: clean (0), half and the standard 0.5, and twice it.
DEFAULT_L2_EPS_LIST: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0)
# The attacks defined for each norm: FGSM and I-FGSM are the mixup paper's sign-gradient (L∞)
# attacks and have no L2 version here.
NORM_ATTACKS: dict[str, tuple[str, ...]] = {
    "linf": ("fgsm", "ifgsm", "pgd", "autoattack", "square"),
    "l2": ("pgd", "autoattack", "square"),
}
# How torchattacks spells each norm (APGD, APGDT, FAB and Square take norm=...).
TORCHATTACKS_NORM: dict[str, str] = {"linf": "Linf", "l2": "L2"}
DEFAULT_BATCH = 500
DEFAULT_PRECISION = "fp32"
DEFAULT_STEPS = 10
DEFAULT_RESTARTS = 1
# Square's query budget: 5,000, the value of the standard AutoAttack ensemble (Croce & Hein
# 2020), so a `square` row and AutoAttack's Square stage spend the same budget.
DEFAULT_QUERIES = 5000
DEFAULT_SEED = 0
# PGD's step size a = 2.5·ε/steps (Madry et al. 2018 take 2.5·ε/steps so that the iterates can
# travel 2.5 times the ε-ball's radius and reach its boundary from any random start).
PGD_STEP_FACTOR = 2.5
# The standard AutoAttack (Croce & Hein 2020, fra31/auto-attack, version='standard'): APGD-CE,
# APGD-T (9 target classes), FAB-T (9 target classes), 100 iterations each and one restart, then
# Square with 5,000 queries. torchattacks' own AutoAttack(version='standard') leaves APGD, APGD-T
# and FAB at torchattacks' default of 10 iterations; robustmix builds the ensemble from the same
# torchattacks components with the original's settings (attacks/autoattack.py).
AUTOATTACK_STEPS = 100
AUTOATTACK_QUERIES = 5000


def ifgsm_step(eps: float, steps: int, step_size: float | None = None) -> float:
    """I-FGSM's step: ε/steps (the mixup paper's equal steps), or the step_size given."""
    return eps / steps if step_size is None else step_size


def pgd_step(eps: float, steps: int, step_size: float | None = None) -> float:
    """PGD's step: 2.5·ε/steps (Madry et al.'s rule), or the step_size given."""
    return PGD_STEP_FACTOR * eps / steps if step_size is None else step_size


def default_eps(norm: str = DEFAULT_NORM) -> tuple[float, ...]:
    """The ε sweep of a norm when none is given, in that norm's units."""
    return DEFAULT_L2_EPS_LIST if norm == "l2" else DEFAULT_EPS_LIST


def image_units(eps: float, norm: str = DEFAULT_NORM) -> float:
    """ε (or a step size) as given for norm, in [0, 1] image units (what the attacks take)."""
    return eps / EPS_SCALE[norm]


def eps_text(eps: float, norm: str = DEFAULT_NORM) -> str:
    """ε as messages and tables write it: '8/255' (L∞), '0.5 (L2)'."""
    return f"{eps:g}/255" if norm == "linf" else f"{eps:g} (L2)"


def check_eps_values(name: Callable[[str], str], key: str, eps: Sequence[float],
                     norm: str = DEFAULT_NORM) -> None:
    """UsageError for an ε outside the norm's range: L∞ in [0, 255] (/255 units); L2 finite and
    ≥ 0 (plain units: the largest L2 distance in [0, 1] images, √pixels, depends on the
    dataset)."""
    for e in eps:
        if norm == "linf" and not 0.0 <= e <= 255.0:  # also rejects nan
            raise UsageError(f"{name(key)} holds {e:g}, outside [0, 255] (L∞ ε is in /255 "
                             "units)")
        if norm == "l2" and not (e >= 0.0 and math.isfinite(e)):
            raise UsageError(f"{name(key)} holds {e:g}: an L2 ε must be finite and ≥ 0 (plain "
                             "units of [0, 1] images)")
