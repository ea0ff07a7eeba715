"""`python -m robustmix.evaluate --factory pkg.mod:fn --weights W.pt --out DIR` (or
`--torchscript M.pt`): a model robustmix did not train, attacked with the same attacks, flags and
defaults as `python -m robustmix.attack`, and its calibration, written to a run-like folder
(evaluation/folder.py). A thin layer over the Python API `robustmix.evaluate(model, x, y)`;
the work is done by robustmix.evaluation.command.

This module shares its name with that function: importing it sets the attribute
`robustmix.evaluate` to this module, so the module is made callable and calls the function, and
`robustmix.evaluate(model, x, y)` works whether or not this command was imported first.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Sequence
from pathlib import Path

from .attacks.options import (
    add_attack_options,
    add_batch_option,
    add_device_option,
    validate_attack_options,
)
from .cli import Parser, entry
from .data.classes import DATASETS
from .errors import UsageError
from .evaluation.corruption_options import add_corruption_options, validate_corruption_options
from .evaluation.defaults import DEFAULT_N, RESAMPLES


def build_parser() -> Parser:
    p = Parser(prog="python -m robustmix.evaluate",
               description="Evaluate a model robustmix did not train: clean accuracy, the attack "
                           "suite of `python -m robustmix.attack` (same flags and defaults), "
                           "gradient-masking flags and guard checks, and calibration (ECE with "
                           "15 equal-width bins, NLL, Brier score; bootstrap intervals over test "
                           "images), and with --corruptions accuracy and calibration under "
                           "CIFAR-10-C's common corruptions. Writes config.json, attack.csv, "
                           "attack_flags.csv, checks.csv, calibration.csv, corruptions.csv (with "
                           "--corruptions), robustbench.json and, last, "
                           "summary.json into --out. The model takes images in [0, 1] and "
                           "returns logits (normalise inside it).")
    p.add_argument("--factory", default=None, metavar="MODULE:FUNCTION",
                   help="import path of a function (num_classes, channels) -> torch.nn.Module, "
                        "like the training CLI's --model factories; with --weights")
    p.add_argument("--weights", type=Path, default=None,
                   help="the factory's weights: a state dict (or a dict holding one under "
                        "'model' or 'state_dict'), read with torch.load(weights_only=True)")
    p.add_argument("--torchscript", type=Path, default=None,
                   help="a TorchScript file (torch.jit.save), instead of --factory/--weights")
    p.add_argument("--dataset", choices=list(DATASETS), default="cifar10",
                   help="the dataset whose test images and classes are used")
    p.add_argument("--data", type=Path, default=None,
                   help="dataset path (any format the training CLI reads), or an .npz file with "
                        "arrays x (uint8 N x H x W x C or float N x C x H x W in [0, 1]) and y; "
                        "None = the default location")
    p.add_argument("--n", type=int, default=DEFAULT_N,
                   help="test images, a class-balanced subset; 0 = all")
    add_attack_options(p)
    add_batch_option(p)
    add_device_option(p)
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="precision of gradients and predictions, recorded per row")
    # Off by default: 75 corrupted copies of the test images cost minutes; needs the extra
    # `corruptions`, and uint8 images (a dataset, or an .npz of uint8 images).
    add_corruption_options(p, default="none", seed_flag="--corruption-seed")
    p.add_argument("--resamples", type=int, default=RESAMPLES,
                   help="bootstrap resamples of the calibration intervals")
    p.add_argument("--name", default=None,
                   help="the model's name in the tables; None = the --out folder's name")
    p.add_argument("--out", type=Path, required=True, help="the folder to write")
    p.add_argument("--force", action="store_true",
                   help="replace a finished evaluation in --out")
    return p


def validate_args(args) -> None:
    validate_attack_options(args)
    validate_corruption_options(args, "--corruption-seed")
    if args.n < 0:
        raise UsageError(f"--n must be 0 (all) or positive, got {args.n}")
    if args.resamples < 1:
        raise UsageError(f"--resamples must be at least 1, got {args.resamples}")
    if (args.factory is None) == (args.torchscript is None):
        raise UsageError("give the model as --factory MODULE:FUNCTION with --weights FILE, or "
                         "as --torchscript FILE (one of the two)")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    validate_args(args)
    from .evaluation.command import EvaluateSpec, run_evaluation
    from .evaluation.folder import UNRELIABLE

    result, bench, result_corruptions = run_evaluation(EvaluateSpec(**vars(args)))
    print(f"robustmix.evaluate: {bench['model']} on {bench['n_images']} test images; "
          f"written to {args.out}")
    print(f"clean accuracy {100 * result.clean_accuracy:.1f}%")
    if len(result.attacks):
        view = result.attacks.assign(accuracy=(100 * result.attacks["accuracy"]).round(1))
        table = view.pivot_table(index="attack", columns="eps", values="accuracy",
                                 aggfunc="last", sort=False)
        table.columns = [f"{e:g}" for e in table.columns]
        print(f"accuracy (%) under attack, {args.norm}, eps in "
              f"{'/255' if args.norm == 'linf' else 'plain units'}:")
        print(table.to_string())
    if len(result.calibration):
        print("calibration (clean images, 95 % bootstrap intervals over them):")
        for r in result.calibration.to_dict("records"):
            print(f"  {r['metric']}: {r['value']:.4f} [{r['ci_low']:.4f}, {r['ci_high']:.4f}]")
    if result_corruptions is not None and len(result_corruptions):
        t = result_corruptions
        corr = t[t["corruption"] != "clean"]
        print(f"common corruptions ({len(corr)} corruption x severity sets, constants "
              f"{args.constants}): mean accuracy {100 * corr['accuracy'].mean():.1f}%, mean ECE "
              f"{corr['ece'].mean():.4f} (clean {t['ece'].iloc[0]:.4f}); rows in corruptions.csv")
    if bench[UNRELIABLE]:
        print(f"{UNRELIABLE}:")
        for why in bench["unreliable_because"]:
            print(f"  {why}")
    else:
        print("gradient-masking flags: none; guard checks passed")
    return 0


class _CallableModule(types.ModuleType):
    """This module, callable as the Python API (see the module docstring)."""

    def __call__(self, *args, **kwargs):
        from .evaluation.external import evaluate

        return evaluate(*args, **kwargs)


if __name__ == "__main__":
    entry(main)
else:
    sys.modules[__name__].__class__ = _CallableModule
