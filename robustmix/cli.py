"""The command-line convention shared by every entry point.

Bad input is a UsageError: one line on stderr, exit status 2, never a traceback. Ctrl-C exits
with 130 and leaves everything resumable (all results are written atomically).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .errors import UsageError


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors and defaults shown in --help."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(**kwargs)

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (see --help)")


def csv_list(kind: Callable[[str], object]) -> Callable[[str], list]:
    """An argparse type for comma-separated lists such as '0,1,2,4'."""

    def parse(text: str) -> list:
        try:
            return [kind(t) for t in text.split(",") if t.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"cannot parse '{text}' as a comma-separated list") from None

    return parse


def run_main(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    try:
        return main(argv)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into head & co.: not an error of ours
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("interrupted: finished work is on disk; run the same command again to resume",
              file=sys.stderr)
        return 130


def entry(main: Callable[[Sequence[str] | None], int]) -> None:
    from .runs.provenance import pin_commit

    pin_commit()  # before any work: the code this process runs is the checkout's as of now
    sys.exit(run_main(main))
