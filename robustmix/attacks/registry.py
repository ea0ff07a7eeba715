"""Attack names for --attacks and study files (imports no torch: --help reads it).

Adding an attack: a class in its family's module, one entry here, and its test.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

    from .base import Attack

DEFAULT_STEPS = 10
ATTACKS: dict[str, str] = {
    "fgsm": "one step of size ε (Goodfellow et al. 2015)",
    "ifgsm": "iterative FGSM: BIM update, clipped to the ε-ball and [0, 1] (Kurakin et al. 2017)",
}


def make_attack(name: str, model: nn.Module, precision: str = "fp32", steps: int = DEFAULT_STEPS,
                step_size: float | None = None, stack: int | None = None) -> Attack:
    from .fgsm import FGSM, IFGSM

    if name == "fgsm":
        return FGSM(model, precision)
    if name == "ifgsm":
        return IFGSM(model, steps, step_size, precision, stack)
    raise ValueError(f"unknown attack '{name}' (choose from {', '.join(ATTACKS)})")
