"""`python -m robustmix.compare reports/cpu reports/fast --names quick,fast --out
reports/compare_quick_fast`: two reports' verdicts side by side (which claims hold at both
scales, which reverse, which are decided at one only); the work is done by
robustmix.reporting.compare. Reads the two report folders only."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from .cli import Parser, entry
from .errors import UsageError

MARK = "<!-- written by robustmix.compare -->"
REPORT, TABLE = "report.md", "table_compare.csv"


def build_parser() -> Parser:
    p = Parser(prog="python -m robustmix.compare",
               description="Set two reports' verdicts side by side (from their table_verdicts.csv "
                           "and table_runs.csv; nothing is trained, attacked or tested).")
    p.add_argument("first", type=Path, help="a report folder written by robustmix.report")
    p.add_argument("second", type=Path, help="another report folder")
    p.add_argument("--names", default=None,
                   help="two short names for the columns, comma-separated, e.g. quick,fast "
                        "(default: the folders' names)")
    p.add_argument("--out", type=Path, default=Path("reports/compare"),
                   help="output folder for report.md and table_compare.csv")
    p.add_argument("--all", action="store_true",
                   help="also list the claims only one report has (default: counted only)")
    return p


def _names(text: str | None, first: Path, second: Path) -> tuple[str, str]:
    if text is None:
        names = (first.name, second.name)
    else:
        names = tuple(n.strip() for n in text.split(","))
        if len(names) != 2 or not all(names):
            raise UsageError(f"--names takes two comma-separated names, got {text!r}")
    if names[0] == names[1]:
        raise UsageError(f"the two reports need different names (both are {names[0]!r}: "
                         "pass --names)")
    return names  # type: ignore[return-value]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    name_a, name_b = _names(args.names, args.first, args.second)
    from .atomic import atomic_write
    from .reporting import compare as C
    from .runs.provenance import git_commit
    from .runs.rundir import check_writable

    a, b = C.load_study(args.first, name_a), C.load_study(args.second, name_b)
    out = args.out
    existing = out / REPORT
    if existing.is_file() and MARK not in existing.read_text(errors="replace"):
        raise UsageError(f"{existing} exists and was not written by robustmix.compare; "
                         "choose another --out")
    check_writable(out)
    table = C.compare(a, b)
    command = shlex.join(["python", "-m", "robustmix.compare", *argv])
    text = MARK + "\n" + C.markdown(a, b, table, everything=args.all, command=command,
                                    commit=git_commit())
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create --out {out}: {e.strerror or e}") from None
    atomic_write(out / TABLE, lambda p: table.to_csv(p, index=False))
    atomic_write(existing, lambda p: p.write_text(text))
    counts = table["outcome"].value_counts()
    print(f"robustmix.compare: {len(table)} claims ({int(counts.get(C.HOLDS, 0))} hold, "
          f"{int(counts.get(C.REVERSES, 0))} reverse) -> {existing}")
    return 0


if __name__ == "__main__":
    entry(main)
