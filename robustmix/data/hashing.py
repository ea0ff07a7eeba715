"""A file's sha256, read in blocks: how a run records (and later checks) the noise file it used.

Below every noise source (labelnoise, cifar10n, transition all read it), so none of them
imports another for it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
