"""`python -m robustmix.attack RUN [RUN ...]`: accuracy of trained runs under attack, white-box
and (with --source) black-box, over a sweep of ε; results go to attack.csv in each run directory.
The work is done by robustmix.attacks.runner; this module parses and prints.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from .attacks.registry import ATTACKS, DEFAULT_STEPS
from .cli import Parser, csv_list, entry
from .errors import UsageError
from .runs.files import ATTACK, CHECKPOINTS

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
               description="Measure test accuracy of trained runs under FGSM and I-FGSM attacks "
                           "(white-box, and black-box with --source) for a sweep of ε; write "
                           "attack.csv into each run directory and print accuracy per run, "
                           "attack and ε.")
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN",
                   help="a run directory, or a folder whose finished runs are all attacked")
    p.add_argument("--attacks", type=csv_list(str), default=",".join(ATTACKS),
                   help="comma-separated attacks: " + "; ".join(f"{k} = {v}" for k, v in ATTACKS.items()))
    p.add_argument("--eps", type=csv_list(float), default=DEFAULT_EPS,
                   help="comma-separated L∞ budgets ε in /255 units, each in [0, 255]; "
                        "0 = clean accuracy")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="I-FGSM iterations")
    # Default a = ε/steps: the mixup paper's I-FGSM takes "10 iterations with equal step size",
    # and ε/steps is the one equal step that can just reach the ε-ball's boundary in that many
    # steps, for every ε of the sweep.
    p.add_argument("--step-size", type=optional_float("eps/steps"), default="eps/steps",
                   help="I-FGSM step size a in /255 units, the same for every ε (e.g. 1 for "
                        "Kurakin et al.'s rule, with --steps min(ε+4, 1.25ε)); eps/steps = the mixup "
                        "paper's '10 iterations with equal step size', which ends on the ε-ball")
    p.add_argument("--source", type=Path, default=None,
                   help="black-box: craft the examples with this run's gradients and measure every "
                        "RUN's accuracy on them (white-box rows too, unless --no-white-box); "
                        "None = white-box only")
    p.add_argument("--no-white-box", action="store_true",
                   help="with --source, compute the black-box rows only")
    p.add_argument("--checkpoint", choices=list(CHECKPOINTS), default="last",
                   help="which checkpoint to attack (best = highest test accuracy during training)")
    p.add_argument("--n", type=optional_int("run"), default="run",
                   help="test images, a class-balanced subset; run = the run's own test_n, i.e. "
                        "the images training evaluated; 0 or ≥ the test set (10,000) = all")
    p.add_argument("--batch", type=int, default=500, help="images per attack batch")
    p.add_argument("--data", type=Path, default=None,
                   help="dataset path; None = the source recorded in each run's config.json")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--precision", choices=["run", "fp32", "bf16"], default="run",
                   help="precision of gradients and predictions: run = each run's training "
                        "precision; fp32 or bf16 for all. Recorded as 'craft/eval' in attack.csv "
                        "when a black-box source and target differ")
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
    if args.step_size is not None and not 0.0 < args.step_size <= 255.0:
        raise UsageError(f"--step-size must be in (0, 255], got {args.step_size:g}")
    if args.batch < 1:
        raise UsageError(f"--batch must be at least 1, got {args.batch}")
    if args.n is not None and args.n < 0:
        raise UsageError(f"--n must be 0 (all) or positive, got {args.n}")
    if args.no_white_box and args.source is None:
        raise UsageError("--no-white-box without --source leaves nothing to compute")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    validate_args(args)
    from .attacks.runner import AttackSpec, run_attacks

    spec = AttackSpec(**{k: v for k, v in vars(args).items() if k != "runs"})
    table = run_attacks(list(args.runs), spec)
    print()
    print(f"accuracy (%) under attack, eps in /255 (checkpoint {args.checkpoint}; rows in "
          f"{ATTACK} of each run)")
    print(table.to_string(index=False) if len(table) else "(no rows)")
    return 0


if __name__ == "__main__":
    entry(main)
