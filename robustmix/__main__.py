"""`python -m robustmix`: the pipeline's commands, one line each, and where the docs are.

Import-light on purpose (no torch, numpy or pandas): it answers at once.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__

# (command with one example, what it does); the order of the pipeline
COMMANDS = (
    ("python -m robustmix.noise --ratio 0.5",
     "train methods on noisy labels: one run directory per model"),
    ("python -m robustmix.attack runs/",
     "attack trained runs: FGSM, I-FGSM, PGD, AutoAttack, Square"),
    ("python -m robustmix.evaluate --torchscript net.ts --out evals/net",
     "a model robustmix did not train: attacks, calibration, RobustBench-style JSON"),
    ("python -m robustmix.corrupt runs/",
     "score trained runs on CIFAR-10-C-style common corruptions (extra: corruptions)"),
    ("python -m robustmix.report runs/ --out reports/NAME",
     "figures, tables and report.md with the paper's claims judged"),
    ("python -m robustmix.compare reports/cpu reports/fast --names quick,fast",
     "two reports' verdicts side by side: which claims hold, reverse, or are decided at one"),
    ("python -m robustmix.study experiments/cpu.toml",
     "a whole study from one TOML file, resumable (--check: validate only)"),
)


def docs_path() -> str:
    """The docs index: its path in this checkout when there is one, else its repository path."""
    index = Path(__file__).resolve().parent.parent / "docs" / "README.md"
    return str(index) if index.is_file() else "docs/README.md (in the robustmix repository)"


def usage() -> str:
    width = max(len(c) for c, _ in COMMANDS)
    lines = [f"robustmix {__version__}: label noise and adversarial attacks for ERM, dropout and "
             "mixup (Zhang et al., ICLR 2018)", ""]
    lines += [f"  {cmd:<{width}}  {what}" for cmd, what in COMMANDS]
    lines += ["", "Every command takes --help. Documentation: " + docs_path()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] not in ("-h", "--help"):
        print(f"error: python -m robustmix takes no arguments (got {args[0]!r}); "
              "run one of the commands below", file=sys.stderr)
        print(usage(), file=sys.stderr)
        return 2
    print(usage())
    return 0


if __name__ == "__main__":
    sys.exit(main())
