"""`python -m robustmix.attack RUN [RUN ...]`: accuracy of trained runs under attack, white-box
and (with --source) black-box, over a sweep of ε; results go to attack.csv in each run directory.
The work is done by robustmix.attacks.runner; this module parses and prints.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from .attacks.registry import (
    ATTACKS,
    DEFAULT_ATTACKS,
    DEFAULT_QUERIES,
    DEFAULT_RESTARTS,
    DEFAULT_SEED,
    DEFAULT_STEPS,
    PGD_STEP_FACTOR,
    TRANSFER,
)
from .cli import Parser, csv_list, entry
from .errors import UsageError
from .runs.checkpoint_names import CLI_CHOICES
from .runs.files import ATTACK

DEFAULT_EPS = "0,1,2,4,8,16"  # /255 units, parsed by argparse like a command-line value


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


def build_parser() -> Parser:
    p = Parser(prog="python -m robustmix.attack",
               description="Measure test accuracy of trained runs under attack (FGSM, I-FGSM, "
                           "PGD, AutoAttack, Square; white-box, and black-box with --source) for "
                           "a sweep of ε; write attack.csv, per-image outcomes "
                           "(attack_outcomes.npz) and gradient-masking flags (attack_flags.csv) "
                           "into each run directory; print accuracy per run, attack and ε, and "
                           "robust accuracy (per-image worst case over the attacks).")
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN",
                   help="a run directory, or a folder whose finished runs are all attacked")
    p.add_argument("--attacks", type=csv_list(str), default=",".join(DEFAULT_ATTACKS),
                   help="comma-separated attacks: " + "; ".join(f"{k} = {v}" for k, v in ATTACKS.items()))
    p.add_argument("--eps", type=csv_list(float), default=DEFAULT_EPS,
                   help="comma-separated L∞ budgets ε in /255 units, each in [0, 255]; "
                        "0 = clean accuracy")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="I-FGSM and PGD iterations")
    # Default a = ε/steps for I-FGSM: the mixup paper's I-FGSM takes "10 iterations with equal
    # step size", and ε/steps is the one equal step that can just reach the ε-ball's boundary in
    # that many steps, for every ε of the sweep. PGD: 2.5·ε/steps (Madry et al.).
    p.add_argument("--step-size", type=optional_float("rule"), default="rule",
                   help="I-FGSM and PGD step size a in /255 units, the same for every ε (e.g. 1 "
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
    p.add_argument("--source", type=Path, default=None,
                   help="black-box: craft the examples with this run's gradients and measure every "
                        "RUN's accuracy on them (white-box rows too, unless --no-white-box); "
                        f"only {', '.join(TRANSFER)} are transferred. The source must be trained on "
                        "the same dataset and image size, with another seed or method than each "
                        "target; None = white-box only")
    p.add_argument("--allow-twin", action="store_true",
                   help="attack black-box targets that share the source's seed and method (its "
                        "'twins': same initialisation, batch order and crops); marked twin in "
                        "attack.csv")
    p.add_argument("--no-white-box", action="store_true",
                   help="with --source, compute the black-box rows only")
    p.add_argument("--checkpoint", choices=list(CLI_CHOICES), default="last",
                   help="which checkpoint to attack (best = highest test accuracy during training)")
    p.add_argument("--n", type=optional_int("run"), default="run",
                   help="test images, a class-balanced subset; run = the run's own test_n, i.e. "
                        "the images training evaluated; 0 or ≥ the test set (10,000) = all")
    p.add_argument("--batch", type=int, default=500, help="images per attack batch")
    p.add_argument("--data", type=Path, default=None,
                   help="dataset path; None = the source recorded in each run's config.json")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--precision", choices=["fp32", "bf16", "run"], default="fp32",
                   help="precision of gradients and predictions, recorded per row: fp32 or bf16 "
                        "for all; run = each run's training precision (its ε = 0 row then equals "
                        "the test accuracy training stored). Recorded as 'craft/eval' when a "
                        "black-box source and target differ")
    p.add_argument("--force", action="store_true",
                   help="recompute rows already in attack.csv (and replace them)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def validate_args(args) -> None:
    unknown = [a for a in args.attacks if a not in ATTACKS]
    if unknown or not args.attacks:
        raise UsageError(f"unknown attack {', '.join(unknown) or '(none)'} "
                         f"(choose from {', '.join(ATTACKS)})")
    if not args.eps:
        raise UsageError("--eps needs at least one value")
    for e in args.eps:
        if not 0.0 <= e <= 255.0:  # also rejects nan
            raise UsageError(f"--eps {e:g} is outside [0, 255] (ε is in /255 units)")
    if args.steps < 1:
        raise UsageError(f"--steps must be at least 1, got {args.steps}")
    if args.restarts < 1:
        raise UsageError(f"--restarts must be at least 1, got {args.restarts}")
    if args.queries < 1:
        raise UsageError(f"--queries must be at least 1, got {args.queries}")
    if args.seed < 0:
        raise UsageError(f"--seed must be 0 or positive, got {args.seed}")
    if args.step_size is not None and not 0.0 < args.step_size <= 255.0:
        raise UsageError(f"--step-size must be in (0, 255], got {args.step_size:g}")
    if args.batch < 1:
        raise UsageError(f"--batch must be at least 1, got {args.batch}")
    if args.n is not None and args.n < 0:
        raise UsageError(f"--n must be 0 (all) or positive, got {args.n}")
    if args.no_white_box and args.source is None:
        raise UsageError("--no-white-box without --source leaves nothing to compute")
    if args.no_white_box and not any(a in TRANSFER for a in args.attacks):
        raise UsageError(f"--no-white-box with only {', '.join(args.attacks)} leaves nothing to "
                         f"compute: only {', '.join(TRANSFER)} are transferred from a source")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    validate_args(args)
    from .attacks.runner import AttackSpec, run_attacks

    spec = AttackSpec(**{k: v for k, v in vars(args).items() if k != "runs"})
    res = run_attacks(list(args.runs), spec)
    print()
    print(f"accuracy (%) under attack, eps in /255 (checkpoint {args.checkpoint}; rows in "
          f"{ATTACK} of each run; worst case = robust accuracy, the images no attack fooled)")
    print(res.table.to_string(index=False, na_rep="-") if len(res.table) else "(no rows)")
    print_flags(res.flags)
    return 0


def print_flags(flags) -> None:
    """The gradient-masking flags, one line each with the numbers that raised them."""
    if not len(flags):
        print("gradient-masking flags: none")
        return
    print(f"gradient-masking flags: {len(flags)} (attack_flags.csv of each run)")
    for r in flags.to_dict("records"):
        print(f"  {r['run']}: {r['flag']}: {r['detail']}")


if __name__ == "__main__":
    entry(main)
