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
from .cli import Parser, csv_list, entry
from .errors import UsageError
from .runs.checkpoint_names import CLI_CHOICES
from .runs.files import CORRUPTIONS

# Kept in step with robustmix.evaluation.corruptions (imported lazily: --help stays light);
# tests/test_corruptions.py checks they agree.
NAMES = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
         "motion_blur", "zoom_blur", "snow", "frost", "fog", "brightness", "contrast",
         "elastic_transform", "pixelate", "jpeg_compression")


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
    p.add_argument("--corruptions", type=csv_list(str), default="all",
                   help="comma-separated corruptions, or all: " + ", ".join(NAMES))
    p.add_argument("--severities", type=csv_list(int), default="1,2,3,4,5",
                   help="comma-separated severities in 1..5")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the corruptions' random draws (each image its own, from it)")
    p.add_argument("--constants", choices=["cifar10-c", "package"], default="cifar10-c",
                   help="cifar10-c = CIFAR-10-C's constants (make_cifar_c.py); package = "
                        "imagecorruptions-imaug's own, ImageNet-C's, unscaled for 32 x 32")
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
    if args.corruptions == ["all"]:
        args.corruptions = list(NAMES)
    unknown = [c for c in args.corruptions if c not in NAMES]
    if unknown or not args.corruptions:
        raise UsageError(f"unknown corruption {', '.join(unknown) or '(none)'} "
                         f"(choose from {', '.join(NAMES)}, or all)")
    bad = [s for s in args.severities if not 1 <= s <= 5]
    if bad or not args.severities:
        raise UsageError(f"unknown severity {', '.join(map(str, bad)) or '(none)'} "
                         "(choose from 1, 2, 3, 4, 5)")
    if args.seed < 0:
        raise UsageError(f"--seed must be 0 or positive, got {args.seed}")
    if args.n is not None and args.n < 0:
        raise UsageError(f"--n must be 0 (all) or positive, got {args.n}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    validate_args(args)
    from .evaluation.corruption_runs import CorruptionSpec, corrupt_runs

    spec = CorruptionSpec(**{k: v for k, v in vars(args).items() if k != "runs"})
    table = corrupt_runs(list(args.runs), spec)
    print()
    print(f"accuracy (%) under common corruptions (checkpoint {args.checkpoint}, constants "
          f"{args.constants}, seed {args.seed}; rows in {CORRUPTIONS} of each run; severity 0 = "
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
