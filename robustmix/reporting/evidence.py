"""The run files a report rests on, kept beside it (`--keep-runs`): every result of each run
(config, per-epoch metrics, per-image predictions, noise record, attack rows and their per-image
outcomes, flags, common-corruption rows and their per-image outcomes), without its checkpoints
or training labels.

A report's runs otherwise live only where they were trained; a copy kept under OUT/runs lets
anyone check the report's numbers, compare other runs with these on the same test images, and
write the report again later from the copy together with new runs:
    python -m robustmix.report reports/cpu/runs runs/new --out reports/cpu --keep-runs
Checkpoints stay out (megabytes each): a kept run can be reported, not attacked again.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..atomic import atomic_write
from ..attacks.flags import FLAGS
from ..attacks.outcomes import OUTCOMES
from ..errors import UsageError
from ..runs.files import (
    ATTACK,
    CONFIG,
    CORRUPTION_OUTCOMES,
    CORRUPTIONS,
    METRICS,
    NOISE,
    PREDICTIONS,
    SUMMARY,
)

# summary.json last: its presence marks a finished run, so a copy cut short is not one
RESULT_FILES = (CONFIG, METRICS, PREDICTIONS, NOISE, ATTACK, OUTCOMES, FLAGS, CORRUPTIONS,
                CORRUPTION_OUTCOMES, SUMMARY)
KEPT = "runs"


def keep_runs(runs: list[Path], out: Path) -> Path:
    """Copy RESULT_FILES of each run to OUT/runs/<run name>/ (replacing an earlier copy's files
    of those names; nothing else there is touched); returns OUT/runs."""
    root = Path(out) / KEPT
    names: dict[str, Path] = {}
    for run in runs:
        other = names.setdefault(run.name, run)
        if other.resolve() != run.resolve():
            raise UsageError(f"--keep-runs: two runs are named {run.name} ({other} and {run}); "
                             "report them into separate folders")
    for run in runs:
        dest = root / run.name
        if dest.resolve() == run.resolve():
            continue  # reporting from the kept copy itself
        dest.mkdir(parents=True, exist_ok=True)
        for name in RESULT_FILES:
            src = run / name
            if src.exists():
                atomic_write(dest / name, lambda tmp, src=src: shutil.copyfile(src, tmp))
            else:
                (dest / name).unlink(missing_ok=True)
    return root
