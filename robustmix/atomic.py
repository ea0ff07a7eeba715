"""Atomic writes: every result file appears whole or not at all (temp file, fsync, rename)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import UsageError


def atomic_write(path: str | Path, writer: Callable[[Path], None]) -> None:
    """Call writer(tmp_path) and then rename tmp_path onto path.

    An unwritable destination (no permission, read-only filesystem, disk full) is a UsageError,
    one line for the user, and the old file, if any, is left as it was.
    """
    path = Path(path)
    try:
        _atomic_write(path, writer)
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror or e}") from None


def _atomic_write(path: Path, writer: Callable[[Path], None]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are meant to be shared
    tmp_path = Path(tmp)
    try:
        writer(tmp_path)
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda p: p.write_text(text))


def write_json(path: str | Path, obj: Any) -> None:
    # allow_nan=False: strict JSON readers reject NaN, so a NaN here is a bug to surface.
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def write_csv(path: str | Path, df) -> None:
    atomic_write(path, lambda p: df.to_csv(p, index=False))


def save_torch(path: str | Path, obj: Any) -> None:
    import torch

    atomic_write(path, lambda p: torch.save(obj, p))
