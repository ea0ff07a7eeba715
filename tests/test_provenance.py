"""The commit a process records is the one whose code it loaded, however the checkout moves."""

from __future__ import annotations

import pytest

from robustmix.runs import provenance


@pytest.fixture
def checkout(monkeypatch):
    """A checkout whose HEAD the test moves, and a process that has pinned nothing yet."""
    head = {"commit": "a" * 40}
    monkeypatch.setattr(provenance, "_read_commit", lambda: head["commit"])
    monkeypatch.setattr(provenance, "_pinned", None)
    return head


def test_unpinned_process_reads_the_checkout_each_time(checkout):
    assert provenance.git_commit() == "a" * 40
    checkout["commit"] = "b" * 40
    assert provenance.git_commit() == "b" * 40


def test_pinned_commit_survives_the_checkout_moving(checkout):
    assert provenance.pin_commit() == "a" * 40
    checkout["commit"] = "b" * 40 + "-dirty"
    assert provenance.git_commit() == "a" * 40
    assert provenance.pin_commit() == "a" * 40  # pinning again keeps the first reading


def test_entry_points_pin_before_their_work(checkout, monkeypatch):
    from robustmix import cli

    seen = {}

    def main(argv):
        checkout["commit"] = "c" * 40  # the checkout moves while the command runs
        seen["recorded"] = provenance.git_commit()
        return 0

    with pytest.raises(SystemExit) as stop:
        cli.entry(main)
    assert stop.value.code == 0
    assert seen["recorded"] == "a" * 40


def test_cpu_features_read_the_flags_line(monkeypatch, tmp_path):
    """The ISA a bf16 run's numerics depend on: matched as whole flags, in CPU_FEATURES order."""
    info = tmp_path / "cpuinfo"
    info.write_text("model name\t: Some CPU\nflags\t\t: fpu avx2 amx_bf16 avx512f avx512_bf16x\n")
    real = provenance.Path

    def fake(p="", *a):
        return info if str(p) == "/proc/cpuinfo" else real(p, *a)

    monkeypatch.setattr(provenance, "Path", fake)
    # avx512_bf16x is not avx512_bf16: a substring match would have said so
    assert provenance.cpu_features() == ["amx_bf16", "avx512f", "avx2"]
    info.unlink()
    assert provenance.cpu_features() == []
