"""The attack options that `python -m robustmix.attack` and `python -m robustmix.evaluate` share:
one spelling of each flag, its default and its --help, and one check of its values, so that the
two commands cannot drift apart (imports no torch: --help reads it)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence

from ..cli import csv_list
from ..errors import UsageError
from .defaults import (
    DEFAULT_BATCH,
    DEFAULT_EPS_LIST,
    DEFAULT_L2_EPS_LIST,
    DEFAULT_NORM,
    NORM_ATTACKS,
    NORMS,
    check_eps_values,  # the ε check per norm, written once there (evaluate uses it too)
    default_eps,
)
from .registry import (
    ATTACKS,
    DEFAULT_ATTACKS,
    DEFAULT_QUERIES,
    DEFAULT_RESTARTS,
    DEFAULT_SEED,
    DEFAULT_STEPS,
    PGD_STEP_FACTOR,
    norm_problem,
)

# the default ε list as a command-line value, parsed by argparse like one the user typed
DEFAULT_EPS = ",".join(f"{e:g}" for e in DEFAULT_EPS_LIST)
DEFAULT_L2_EPS = ",".join(f"{e:g}" for e in DEFAULT_L2_EPS_LIST)


class DefaultEps(list):
    """--eps when not given: the L∞ sweep, marked as a default so that validate_attack_options
    can replace it with the L2 sweep under --norm l2 (an --eps the user typed is kept as typed,
    even if it holds the same values)."""

    def __str__(self) -> str:  # what --help shows as the default (the L2 one is in the text)
        return DEFAULT_EPS


def optional_float(word: str):
    """An argparse type: a float, or word meaning None (so --help shows a meaningful default)."""

    def parse(text: str) -> float | None:
        if text == word:
            return None
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number or '{word}', got '{text}'") from None

    return parse


def optional_int(word: str):
    def parse(text: str) -> int | None:
        if text == word:
            return None
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer or '{word}', got '{text}'") from None

    return parse


def add_attack_options(p: argparse.ArgumentParser) -> None:
    """--attacks, --eps, --steps, --step-size, --restarts, --queries and --seed."""
    p.add_argument("--attacks", type=csv_list(str), default=",".join(DEFAULT_ATTACKS),
                   help="comma-separated attacks: " + "; ".join(f"{k} = {v}" for k, v in ATTACKS.items()))
    p.add_argument("--norm", choices=list(NORMS), default=DEFAULT_NORM,
                   help="threat model: linf (the mixup paper's) or l2, which has "
                        f"{', '.join(NORM_ATTACKS['l2'])} only; ε and --step-size are in /255 "
                        "units for linf and in plain units of [0, 1] images for l2 (0.5 = "
                        "‖δ‖₂ ≤ 0.5, the usual CIFAR-10 budget)")
    p.add_argument("--eps", type=csv_list(float), default=DefaultEps(DEFAULT_EPS_LIST),
                   help="comma-separated budgets ε in the norm's units: linf in /255, each in "
                        "[0, 255]; l2 in plain units, each ≥ 0; 0 = clean accuracy; the default "
                        f"below is linf's, l2's is {DEFAULT_L2_EPS}")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="I-FGSM and PGD iterations")
    # Default a = ε/steps for I-FGSM: the mixup paper's I-FGSM takes "10 iterations with equal
    # step size", and ε/steps is the one equal step that can just reach the ε-ball's boundary in
    # that many steps, for every ε of the sweep. PGD: 2.5·ε/steps (Madry et al.).
    p.add_argument("--step-size", type=optional_float("rule"), default="rule",
                   help="I-FGSM and PGD step size a in ε's units, the same for every ε (e.g. 1 "
                        "for Kurakin et al.'s rule, with --steps min(ε+4, 1.25ε)); rule = I-FGSM "
                        "ε/steps (the mixup paper's '10 iterations with equal step size', which "
                        f"ends on the ε-ball) and PGD {PGD_STEP_FACTOR:g}·ε/steps (Madry et al.)")
    p.add_argument("--restarts", type=int, default=DEFAULT_RESTARTS,
                   help="PGD random restarts; per image the best (the first that fools the "
                        "model, else the highest loss)")
    p.add_argument("--queries", type=int, default=DEFAULT_QUERIES,
                   help="Square queries per image (default: AutoAttack's budget)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED,
                   help="seed of PGD's random starts and of AutoAttack's and Square's draws")


def add_batch_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch", type=int, default=DEFAULT_BATCH, help="images per attack batch")


def add_device_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")


def check_attack_values(name: Callable[[str], str], *, attacks: Sequence[str],
                        eps: Sequence[float], steps: int, restarts: int, queries: int, seed: int,
                        step_size: float | None, batch: int, norm: str = DEFAULT_NORM) -> None:
    """UsageError for the first bad attack setting, however it was given: `name` spells a
    setting as its source does ("--steps" on the command line, "key 'attack.steps'" in a study
    file), so the CLIs and the study check the same rules with one function."""
    unknown = [a for a in attacks if a not in ATTACKS]
    if unknown or not attacks:
        raise UsageError(f"unknown attack {', '.join(unknown) or '(none)'} in {name('attacks')} "
                         f"(choose from {', '.join(ATTACKS)})")
    if norm not in NORMS:
        raise UsageError(f"{name('norm')} must be {' or '.join(NORMS)}, got {norm!r}")
    problem = norm_problem(attacks, norm)
    if problem:
        raise UsageError(f"{name('attacks')}: {problem}")
    if not eps:
        raise UsageError(f"{name('eps')} needs at least one value")
    check_eps_values(name, "eps", eps, norm)
    for key, value in (("steps", steps), ("restarts", restarts), ("queries", queries),
                       ("batch", batch)):
        if value < 1:
            raise UsageError(f"{name(key)} must be at least 1, got {value}")
    if seed < 0:
        raise UsageError(f"{name('seed')} must be 0 or positive, got {seed}")
    top = 255.0 if norm == "linf" else math.inf
    if step_size is not None and not (0.0 < step_size <= top and math.isfinite(step_size)):
        raise UsageError(f"{name('step_size')} must be in (0, {top:g}] ({norm}), got "
                         f"{step_size:g}")


def flag_name(key: str) -> str:
    """A setting as the command line spells it: step_size -> --step-size."""
    return "--" + key.replace("_", "-")


def validate_attack_options(args: argparse.Namespace) -> None:
    """UsageError for the first bad value of the shared options; an --eps not given becomes the
    norm's default sweep (in place)."""
    if isinstance(args.eps, DefaultEps):  # not given: the norm's own sweep
        args.eps = list(default_eps(args.norm))
    check_attack_values(flag_name, attacks=args.attacks, eps=args.eps, steps=args.steps,
                        restarts=args.restarts, queries=args.queries, seed=args.seed,
                        step_size=args.step_size, batch=args.batch, norm=args.norm)
