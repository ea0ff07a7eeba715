"""Attack names for --attacks and study files, their defaults, and the settings each records
(imports no torch: --help reads it).

Adding an attack: a class in its family's module, one entry in ATTACKS (and GRADIENT or QUERY),
one branch in make_attack and in settings, and its test.

Settings recorded per attack.csv row (step_size in the units of the row's ε: /255 for L∞, plain
for L2; 0 = not used by this attack; attack_seed -1 = the attack draws no random numbers). The
row's `norm` column (linf or l2) is recorded beside them; fgsm and ifgsm exist for L∞ only
(defaults.NORM_ATTACKS).

| attack     | steps            | step size                 | restarts | queries | attack_seed |
|------------|------------------|---------------------------|----------|---------|--------|
| fgsm       | 1                | ε                         | 1        | 0       | -1     |
| ifgsm      | --steps          | ε/steps or --step-size    | 1        | 0       | -1     |
| pgd        | --steps          | 2.5·ε/steps or --step-size| --restarts | 0     | --seed |
| autoattack | 100 (APGD, FAB)  | 0 (APGD adapts its own)   | 1        | 5000    | --seed |
| square     | 0                | 0                         | 1        | --queries | --seed |
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

# The defaults live in a torch-free module of their own, which the attack classes import too;
# they stay importable from here (attack.py, runner.py and the reports read them here).
from .defaults import (  # noqa: F401 (PGD_STEP_FACTOR is read from here)
    AUTOATTACK_QUERIES,
    AUTOATTACK_STEPS,
    DEFAULT_NORM,
    DEFAULT_QUERIES,
    DEFAULT_RESTARTS,
    DEFAULT_SEED,
    DEFAULT_STEPS,
    NORM_ATTACKS,
    NORMS,
    PGD_STEP_FACTOR,
    ifgsm_step,
    pgd_step,
)

if TYPE_CHECKING:
    from torch import nn

    from .base import Attack

DEFAULT_ATTACKS = ("fgsm", "ifgsm")  # the mixup paper's; the stronger ones are asked for by name

ATTACKS: dict[str, str] = {
    "fgsm": "one step of size ε (Goodfellow et al. 2015)",
    "ifgsm": "iterative FGSM: BIM update, clipped to the ε-ball and [0, 1] (Kurakin et al. 2017)",
    "pgd": "PGD (L∞, or L2 with --norm l2) with a random start, step 2.5·ε/steps, best of "
           "--restarts per image (Madry et al. 2018)",
    "autoattack": "standard AutoAttack: APGD-CE, APGD-T, FAB-T, Square, each on the images the "
                  "previous ones left (Croce & Hein 2020; torchattacks components)",
    "square": "query-based Square attack, no gradients, --queries per image (Andriushchenko et "
              "al. 2020; torchattacks)",
}
# How reports and figures write each attack's name.
LABELS = {"fgsm": "FGSM", "ifgsm": "I-FGSM", "pgd": "PGD", "autoattack": "AutoAttack",
          "square": "Square"}


def attack_label(name: str) -> str:
    return LABELS.get(name, name)


GRADIENT = ("fgsm", "ifgsm", "pgd")  # attacks that follow the input gradient
ITERATIVE = ("ifgsm", "pgd")
QUERY = ("square",)  # attacks that query the model's scores only
# Attacks crafted on the attacked model only: transferring Square's or AutoAttack's examples from
# another model measures nothing the gradient attacks' transfer rows do not.
TRANSFER = GRADIENT


def settings(attack: str, eps: float, steps: int = DEFAULT_STEPS, step_size: float | None = None,
             restarts: int = DEFAULT_RESTARTS, queries: int = DEFAULT_QUERIES,
             seed: int = DEFAULT_SEED) -> dict:
    """The settings recorded for attack at ε (ε and step size in the same units, /255 or [0, 1])."""
    if attack == "fgsm":
        return {"steps": 1, "step_size": eps, "restarts": 1, "queries": 0, "attack_seed": -1}
    if attack == "ifgsm":
        return {"steps": steps, "step_size": ifgsm_step(eps, steps, step_size),
                "restarts": 1, "queries": 0, "attack_seed": -1}
    if attack == "pgd":
        return {"steps": steps, "step_size": pgd_step(eps, steps, step_size),
                "restarts": restarts, "queries": 0, "attack_seed": seed}
    if attack == "autoattack":
        return {"steps": AUTOATTACK_STEPS, "step_size": 0.0, "restarts": 1,
                "queries": AUTOATTACK_QUERIES, "attack_seed": seed}
    if attack == "square":
        return {"steps": 0, "step_size": 0.0, "restarts": 1, "queries": queries, "attack_seed": seed}
    raise ValueError(f"unknown attack '{attack}' (choose from {', '.join(ATTACKS)})")


def norm_problem(attacks: Sequence[str], norm: str) -> str | None:
    """Why attacks cannot run in norm (a one-line message), None when they can."""
    if norm not in NORMS:
        return f"unknown norm {norm!r} (choose from {', '.join(NORMS)})"
    other = [a for a in attacks if a in ATTACKS and a not in NORM_ATTACKS[norm]]
    if other:
        return (f"{', '.join(other)} {'is' if len(other) == 1 else 'are'} L∞ only (the mixup "
                f"paper's sign-gradient attacks); with norm {norm} choose from "
                f"{', '.join(NORM_ATTACKS[norm])}")
    return None


def make_attack(name: str, model: nn.Module, precision: str = "fp32", steps: int = DEFAULT_STEPS,
                step_size: float | None = None, stack: int | None = None,
                restarts: int = DEFAULT_RESTARTS, queries: int = DEFAULT_QUERIES,
                seed: int = DEFAULT_SEED, norm: str = DEFAULT_NORM) -> Attack:
    """The attack called name on model in the norm's ball (step_size in [0, 1] units; None =
    the attack's rule); ValueError for an attack the norm does not have."""
    problem = norm_problem([name], norm)
    if problem:
        raise ValueError(problem)
    if name == "fgsm":
        from .fgsm import FGSM

        return FGSM(model, precision)
    if name == "ifgsm":
        from .fgsm import IFGSM

        return IFGSM(model, steps, step_size, precision, stack)
    if name == "pgd":
        from .pgd import PGD, PGDL2

        return (PGDL2 if norm == "l2" else PGD)(model, steps, step_size, restarts, seed,
                                                 precision, stack)
    if name == "autoattack":
        from .autoattack import AutoAttack

        return AutoAttack(model, seed=seed, precision=precision, norm=norm)
    if name == "square":
        from .autoattack import Square

        return Square(model, queries=queries, seed=seed, precision=precision, norm=norm)
    raise ValueError(f"unknown attack '{name}' (choose from {', '.join(ATTACKS)})")
