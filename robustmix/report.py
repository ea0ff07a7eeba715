"""`python -m robustmix.report runs/cpu --out reports/cpu`: figures, tables and report.md from
stored results only (no training, no attacks); the work is done by robustmix.reporting."""

from __future__ import annotations

import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .cli import Parser, entry
from .errors import UsageError
from .runs.checkpoint_names import CLI_CHOICES


def build_parser() -> Parser:
    p = Parser(prog="python -m robustmix.report",
               description="Write figures, tables and report.md from finished run directories "
                           "(stored results only: nothing is trained or attacked).")
    p.add_argument("runs", nargs="+", type=Path,
                   help="run directories, or folders searched recursively for finished runs")
    p.add_argument("--out", type=Path, default=Path("reports/latest"), help="output folder")
    p.add_argument("--title", default="robustmix report", help="title of report.md")
    p.add_argument("--notes", type=Path, default=None,
                   help="a Markdown file of hand-written notes to include in report.md")
    p.add_argument("--checkpoint", choices=list(CLI_CHOICES), default="last",
                   help="which checkpoint's attack results to report")
    p.add_argument("--keep-runs", action="store_true",
                   help="also copy each run's results (config, metrics, per-image predictions, "
                        "noise record, attack rows; no checkpoints, no training labels) to "
                        "OUT/runs, from which the report can be written again; default: off")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    notes = None
    if args.notes is not None:
        try:
            notes = args.notes.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"cannot read --notes {args.notes}: {getattr(e, 'strerror', None) or e}") from None
    from .reporting import results as R
    from .reporting.markdown import remove_stale, write_report
    from .runs.rundir import check_writable

    res = R.load_results(args.runs)
    R.warn(res.skipped)
    check_writable(args.out)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create --out {args.out}: {e.strerror or e}") from None
    command = shlex.join(["python", "-m", "robustmix.report", *argv])
    written = write_report(res, args.out, title=args.title, notes=notes,
                           checkpoint=args.checkpoint, command=command)
    remove_stale(args.out, written)
    if args.keep_runs:
        from .reporting.evidence import keep_runs

        kept = keep_runs([Path(p) for p in res.runs["path"]], args.out)
        print(f"robustmix.report: results of {len(res.runs)} runs kept in {kept}")
    figs = sum(p.suffix == ".png" for p in written)
    print(f"robustmix.report: {len(res.runs)} runs, {figs} figures, "
          f"{sum(p.name.startswith('table_') for p in written)} tables -> "
          f"{args.out / 'report.md'} ({time.perf_counter() - t0:.1f} s)")
    return 0



if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    entry(main)
