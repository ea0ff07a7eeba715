"""`python -m robustmix.corrupt RUN [RUN ...]`: accuracy of trained runs under CIFAR-10-C-style
common corruptions (15 corruptions x 5 severities, generated offline); results go to
corruptions.csv in each run directory. The work is done by robustmix.evaluation.corruption_runs
(the images by robustmix.evaluation.corruptions, which needs the optional extra `corruptions`);
this module parses and prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .attack import optional_int
from .cli import Parser, entry
from .errors import UsageError
from .evaluation.corruption_options import (
    NAMES,
    add_corruption_options,
    validate_corruption_options,
)
from .runs.checkpoint_names import CLI_CHOICES
from .runs.files import CORRUPTIONS


def build_parser() -> Parser:
    p = Parser(prog="python -m robustmix.corrupt",
               description="Measure test accuracy of trained runs under the 15 common corruptions "
                           "x 5 severities of CIFAR-10-C (Hendrycks & Dietterich, ICLR 2019), "
                           "generated from the run's test images with a seed and cached; write "
                           f"{CORRUPTIONS} (one row per corruption and severity, and the clean "
                           "row) into each run directory; print accuracy per run, corruption and "
                           "severity. Needs the optional extra: pip install -e \".[corruptions]\".")
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN",
                   help="a run directory, or a folder whose finished runs are all scored")
    add_corruption_options(p, default="all", seed_flag="--seed")
    p.add_argument("--checkpoint", choices=list(CLI_CHOICES), default="last",
                   help="which checkpoint to score")
    p.add_argument("--n", type=optional_int("run"), default="run",
                   help="test images, a class-balanced subset; run = the run's own test_n; "
                        "0 or ≥ the test set (10,000) = all")
    p.add_argument("--data", type=Path, default=None,
                   help="dataset path; None = the source recorded in each run's config.json")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--precision", choices=["fp32", "bf16", "run"], default="fp32",
                   help="precision of the predictions; run = each run's training precision")
    p.add_argument("--force", action="store_true",
                   help=f"recompute rows already in {CORRUPTIONS} (and replace them)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def validate_args(args) -> None:
    validate_corruption_options(args, "--seed")
    if not args.corruptions:
        raise UsageError(f"--corruptions none leaves nothing to compute (choose from "
                         f"{', '.join(NAMES)}, or all)")
    if args.n is not None and args.n < 0:
        raise UsageError(f"--n must be 0 (all) or positive, got {args.n}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    validate_args(args)
    from .evaluation.corruption_runs import CorruptionSpec, corrupt_runs

    opts = {k: v for k, v in vars(args).items() if k not in ("runs", "corruption_seed")}
    spec = CorruptionSpec(**opts, seed=args.corruption_seed)
    table = corrupt_runs(list(args.runs), spec)
    print()
    print(f"accuracy (%) under common corruptions (checkpoint {args.checkpoint}, constants "
          f"{args.constants}, seed {args.corruption_seed}; rows in {CORRUPTIONS} of each run; severity 0 = "
          "clean)")
    if not len(table):
        print("(no rows)")
        return 0
    wide = table.assign(accuracy=100 * table["accuracy"]).pivot_table(
        index=["run", "corruption"], columns="severity", values="accuracy", sort=False)
    print(wide.round(1).to_string(na_rep="-"))
    return 0


if __name__ == "__main__":
    entry(main)
