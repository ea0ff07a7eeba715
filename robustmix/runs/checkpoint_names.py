"""The checkpoints a run keeps, and every name each goes by (imports no torch: --help reads it).

A run keeps three checkpoints: the last epoch, the epoch selected on the noisy-label validation
set (what a practitioner can choose) and the epoch of highest test accuracy (the paper's "best",
an optimistic oracle). Each has one canonical name (`kind`: the prefix of table columns and the
column of predictions.csv) and, said here once:

  cli       the word of --checkpoint, a study's attack.checkpoint and attack.csv's checkpoint
            column ("test-selected");
  file      its file in the run directory (runs/files.py);
  summary   the prefix of its per-epoch keys in summary.json (`best_test_error`, `best_epoch`:
            earlier versions named the test-selected checkpoint "best" and runs keep that);
  label     how tables head it; `title` how figures do; `short` the tag of a forest row;
  aliases   older names that still resolve ("best" = test-selected).

Its full-test-set error is summary.json's `<kind>_full_test_error`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .files import BEST, LAST, SELECTED


@dataclass(frozen=True)
class Checkpoint:
    kind: str
    cli: str
    file: str
    summary: str
    label: str
    title: str
    short: str
    aliases: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        """Every name that resolves to this checkpoint."""
        return tuple(dict.fromkeys((self.kind, self.cli, *self.aliases)))

    def summary_key(self, field: str) -> str:
        """Its per-epoch key in summary.json: summary_key("test_error") -> "best_test_error"."""
        return f"{self.summary}_{field}"

    @property
    def full_error_key(self) -> str:
        """Its error on the full test set in summary.json."""
        return f"{self.kind}_full_test_error"


LAST_CK = Checkpoint("last", "last", LAST, "last", label="last", title="last epoch",
                     short="last")
SELECTED_CK = Checkpoint("selected", "selected", SELECTED, "selected",
                         label="selected (noisy validation)",
                         title="selected (noisy validation)", short="selected")
TEST_SELECTED_CK = Checkpoint("test_selected", "test-selected", BEST, "best",
                              label="test-selected (oracle, optimistic)",
                              title="test-selected (oracle, optimistic)", short="test-sel.",
                              aliases=("best",))

ALL: tuple[Checkpoint, ...] = (LAST_CK, SELECTED_CK, TEST_SELECTED_CK)
KINDS: tuple[str, ...] = tuple(c.kind for c in ALL)  # ("last", "selected", "test_selected")
# --checkpoint's choices: the CLI words, then the old aliases
CLI_CHOICES: tuple[str, ...] = (*(c.cli for c in ALL), *(a for c in ALL for a in c.aliases))
LABELS: dict[str, str] = {c.kind: c.label for c in ALL}
TITLES: dict[str, str] = {c.kind: c.title for c in ALL}
SHORT: dict[str, str] = {c.kind: c.short for c in ALL}

_BY_NAME: dict[str, Checkpoint] = {n: c for c in ALL for n in c.names}


def is_checkpoint(name: object) -> bool:
    return str(name) in _BY_NAME


def resolve(name: str) -> Checkpoint:
    """The checkpoint any of its names (kind, CLI word, alias) denotes; KeyError for others."""
    try:
        return _BY_NAME[str(name)]
    except KeyError:
        raise KeyError(f"unknown checkpoint '{name}' (choose {' or '.join(CLI_CHOICES)})") from None


def cli_name(name: str) -> str:
    """The CLI word of a checkpoint name (as attack tables name it: "best" -> "test-selected");
    a name that is no checkpoint's is returned as it is."""
    c = _BY_NAME.get(str(name))
    return c.cli if c else str(name)


def kind_of(name: str) -> str:
    """The canonical name (table column prefix) of a checkpoint name: "test-selected" ->
    "test_selected"; a name that is no checkpoint's is returned as it is."""
    c = _BY_NAME.get(str(name))
    return c.kind if c else str(name)


def error_line(summary: dict) -> str:
    """A finished run's errors as the training commands print them, each checkpoint by its
    table name: "test-selected error 18.8% (epoch 23), last 44.6%"."""
    t, last = TEST_SELECTED_CK, LAST_CK
    line = (f"{t.cli} error {100 * summary[t.summary_key('test_error')]:.1f}% (epoch "
            f"{summary[t.summary_key('epoch')]}), {last.cli} "
            f"{100 * summary[last.summary_key('test_error')]:.1f}%")
    # A profile that tests a fixed subset per epoch also evaluates the kept checkpoints on the
    # whole test set: the number its reports quote, so the line gives it beside the subset's.
    full = [(c, summary.get(c.full_error_key)) for c in (SELECTED_CK, last)]
    if "full_test_images" in summary and all(v is not None for _, v in full):
        line += (f"; on all {summary['full_test_images']} test images: "
                 + ", ".join(f"{c.cli} {100 * v:.1f}%" for c, v in full))
    return line
