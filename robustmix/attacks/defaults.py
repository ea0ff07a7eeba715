"""The attacks' default settings and step-size rules, in one torch-free module.

The registry (names, --help, the settings each attack.csv row records) and the attack classes
(fgsm, pgd, autoattack) both read them from here, so neither imports the other for a constant
and a rule is written once: the step an attack takes is the one its rows record.
"""

from __future__ import annotations

# The ε sweep (/255 units) of a run's attack stage when none is given: clean accuracy (0), the
# mixup paper's budgets and the common 8/255 benchmark, up to 16.
DEFAULT_EPS_LIST: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0)
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
