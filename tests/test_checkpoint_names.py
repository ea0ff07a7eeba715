"""One vocabulary for a run's checkpoints (issue 27): runs/checkpoint_names.py names each
checkpoint once (kind, CLI word, file, summary keys, labels, old aliases) and the rest of the
package uses it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from robustmix.runs import checkpoint_names as CK
from robustmix.runs.files import BEST, LAST, SELECTED

ROOT = Path(__file__).resolve().parents[1] / "robustmix"


def test_every_name_and_alias_resolves():
    for c in CK.ALL:
        for name in c.names:
            assert CK.resolve(name) is c
            assert CK.cli_name(name) == c.cli
            assert CK.kind_of(name) == c.kind
    assert CK.resolve("best") is CK.TEST_SELECTED_CK  # what earlier versions called it
    assert CK.cli_name("best") == "test-selected"
    assert CK.kind_of("test-selected") == "test_selected"
    with pytest.raises(KeyError, match="unknown checkpoint"):
        CK.resolve("first")
    assert CK.cli_name("first") == "first" and not CK.is_checkpoint("first")


def test_names_as_earlier_versions_wrote_them():
    # --checkpoint's choices, in their order, and the files, summary keys and table columns that
    # runs on disk already have
    assert CK.CLI_CHOICES == ("last", "selected", "test-selected", "best")
    assert CK.KINDS == ("last", "selected", "test_selected")
    assert [c.file for c in CK.ALL] == [LAST, SELECTED, BEST] == ["last.pt", "selected.pt", "best.pt"]
    assert CK.TEST_SELECTED_CK.summary_key("test_error") == "best_test_error"
    assert CK.TEST_SELECTED_CK.summary_key("epoch") == "best_epoch"
    assert CK.SELECTED_CK.summary_key("val_acc_noisy") == "selected_val_acc_noisy"
    assert [c.full_error_key for c in CK.ALL] == [
        "last_full_test_error", "selected_full_test_error", "test_selected_full_test_error"]


def test_error_line_adds_the_whole_test_set_where_a_profile_tests_a_subset_per_epoch():
    s = {"best_test_error": 0.236, "best_epoch": 15, "last_test_error": 0.236}
    assert CK.error_line(s) == "test-selected error 23.6% (epoch 15), last 23.6%"
    s |= {"full_test_images": 10000, "selected_full_test_error": 0.2216,
          "last_full_test_error": 0.2144}
    assert CK.error_line(s) == ("test-selected error 23.6% (epoch 15), last 23.6%; on all 10000 "
                                "test images: selected 22.2%, last 21.4%")
    # a run without a noisy-validation checkpoint (no validation images) keeps the short line
    assert ";" not in CK.error_line(s | {"selected_full_test_error": None})


def _constants(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value
        elif isinstance(node, ast.Tuple) and all(
                isinstance(e, ast.Constant) for e in node.elts):
            yield node.lineno, tuple(e.value for e in node.elts)


def test_checkpoint_labels_and_kinds_are_spelt_only_in_checkpoint_names():
    own = ROOT / "runs" / "checkpoint_names.py"
    # labels that are no checkpoint's plain name, and the tuple of kinds
    spelt = {v for c in CK.ALL for v in (c.label, c.title, c.short) if v not in c.names}
    spelt |= {CK.KINDS, tuple(CK.CLI_CHOICES)}
    assert spelt
    found = [f"{p.relative_to(ROOT)}:{line} {v!r}" for p in sorted(ROOT.rglob("*.py")) if p != own
             for line, v in _constants(ast.parse(p.read_text())) if v in spelt]
    assert not found, "checkpoint labels spelt outside runs/checkpoint_names.py: " + ", ".join(found)


def test_reporting_uses_the_vocabulary():
    from robustmix.reporting import markdown, plots, results

    assert results.KINDS is CK.KINDS
    assert markdown.KIND_HEADERS is CK.LABELS
    assert plots.KIND_TITLES is CK.TITLES and plots.FOREST_KINDS is CK.SHORT
    assert results.PREDICTION_COLUMNS == ("index", "label", *CK.KINDS)
