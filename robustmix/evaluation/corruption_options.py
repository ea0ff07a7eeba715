"""The common-corruption options that `python -m robustmix.corrupt` (trained runs) and
`python -m robustmix.evaluate` (an outside model) share: one spelling, default and check each
(imports no torch: --help reads it)."""

from __future__ import annotations

import argparse

from ..cli import csv_list
from ..errors import UsageError

# Kept in step with robustmix.evaluation.corruptions (imported lazily: --help stays light);
# tests/test_corruptions.py checks they agree.
NAMES = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
         "motion_blur", "zoom_blur", "snow", "frost", "fog", "brightness", "contrast",
         "elastic_transform", "pixelate", "jpeg_compression")
SEVERITIES = (1, 2, 3, 4, 5)


def add_corruption_options(p: argparse.ArgumentParser, default: str, seed_flag: str) -> None:
    """--corruptions (default `default`: all, or none where corruptions are optional),
    --severities, the corruptions' seed as `seed_flag` and --constants."""
    p.add_argument("--corruptions", type=csv_list(str), default=default,
                   help="comma-separated corruptions, all, or none: " + ", ".join(NAMES))
    p.add_argument("--severities", type=csv_list(int), default=",".join(map(str, SEVERITIES)),
                   help="comma-separated severities in 1..5")
    p.add_argument(seed_flag, type=int, default=0, dest="corruption_seed",
                   help="seed of the corruptions' random draws (each image its own, from it)")
    p.add_argument("--constants", choices=["cifar10-c", "package"], default="cifar10-c",
                   help="cifar10-c = CIFAR-10-C's constants (make_cifar_c.py); package = "
                        "imagecorruptions-imaug's own, ImageNet-C's, unscaled for 32 x 32")


def validate_corruption_options(args: argparse.Namespace, seed_flag: str) -> None:
    """UsageError for the first bad value; 'all' becomes the 15 names, 'none' an empty list."""
    if args.corruptions == ["all"]:
        args.corruptions = list(NAMES)
    elif args.corruptions == ["none"]:
        args.corruptions = []
    unknown = [c for c in args.corruptions if c not in NAMES]
    if unknown:
        raise UsageError(f"unknown corruption {', '.join(unknown)} "
                         f"(choose from {', '.join(NAMES)}, all or none)")
    bad = [s for s in args.severities if s not in SEVERITIES]
    if bad or not args.severities:
        raise UsageError(f"unknown severity {', '.join(map(str, bad)) or '(none)'} "
                         "(choose from 1, 2, 3, 4, 5)")
    if args.corruption_seed < 0:
        raise UsageError(f"{seed_flag} must be 0 or positive, got {args.corruption_seed}")
