"""`python -m robustmix.attack RUN [RUN ...]`: accuracy of trained runs under attack, white-box
and (with --source) black-box, over a sweep of ε; results go to attack.csv in each run directory.
The work is done by robustmix.attacks.runner; this module parses and prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .attacks.options import (  # noqa: F401 (DEFAULT_EPS, optional_float: read from here too)
    DEFAULT_EPS,
    add_attack_options,
    add_batch_option,
    add_device_option,
    optional_float,
    optional_int,
    validate_attack_options,
)
from .attacks.registry import TRANSFER
from .cli import Parser, entry
from .errors import UsageError
from .runs.checkpoint_names import CLI_CHOICES
from .runs.files import ATTACK


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
    add_attack_options(p)
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
    add_batch_option(p)
    p.add_argument("--data", type=Path, default=None,
                   help="dataset path; None = the source recorded in each run's config.json")
    add_device_option(p)
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
    validate_attack_options(args)
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
    units = "/255" if args.norm == "linf" else "plain units"
    print(f"accuracy (%) under attack, {args.norm}, eps in {units} (checkpoint "
          f"{args.checkpoint}; rows in {ATTACK} of each run; worst case = robust accuracy, the images no attack fooled)")
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
