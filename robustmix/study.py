"""`python -m robustmix.study experiments/cpu.toml`: a whole study from one TOML file.

Trains every run that is missing, then runs every missing attack, then writes the report. Every
stage skips what is already on disk, so a killed study continues where it stopped. The file is
validated whole before any work starts; --check validates and prints the plan only.
--executor ray runs the same work as Ray tasks (robustmix/studies/ray_executor.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .cli import Parser, entry
from .errors import UsageError


def build_parser() -> Parser:
    p = Parser(prog="python -m robustmix.study",
               description="Run a whole study from a TOML file: train missing runs, run missing "
                           "attacks, write the report. Resumable: rerun after a kill to continue.")
    p.add_argument("study", type=Path, help="study file, e.g. experiments/cpu.toml")
    p.add_argument("--check", action="store_true",
                   help="validate every key of the file and print the plan (runs, attacks, "
                        "report), then stop; trains nothing and needs no GPU")
    p.add_argument("--skip-attacks", action="store_true", help="train only (and report)")
    p.add_argument("--skip-report", action="store_true", help="do not write the report")
    p.add_argument("--wait", action="store_true",
                   help="wait for runs another process is training instead of skipping them")
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress bars")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local: train runs one after another in this process; ray: one Ray task "
                        "per run and per attacked run, resources from the file's [executor] "
                        "table (needs pip install -e \".[ray]\"); exit status 1 when a task failed")
    p.add_argument("--address", metavar="ADDR",
                   help="with --executor ray: the Ray cluster to join ('auto' for the one this "
                        "node belongs to, or ray://HOST:10001); default: start a local Ray "
                        "instance sized to this machine")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .studies.local import check_study, run_study
    from .studies.spec import load_study

    if args.address is not None and args.executor != "ray":
        raise UsageError("--address joins a Ray cluster: it needs --executor ray")
    study = load_study(args.study)
    if args.check:
        check_study(study)
        return 0
    if args.executor == "ray":
        from .studies.ray_executor import run_study_ray

        failed = run_study_ray(study, address=args.address, skip_attacks=args.skip_attacks,
                               skip_report=args.skip_report, wait=args.wait, quiet=args.quiet)
        return 1 if failed else 0
    run_study(study, skip_attacks=args.skip_attacks, skip_report=args.skip_report,
              wait=args.wait, quiet=args.quiet)
    return 0


if __name__ == "__main__":
    entry(main)
