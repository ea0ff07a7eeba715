"""Transition matrices: T[i, j] = P(noisy label j | true class i).

Reading a user's T (CSV or .npy) with every check the `matrix` noise source needs, drawing
class-conditional noise from it, and the empirical matrix of a set of clean and noisy labels
(what every run records, and how T is estimated from CIFAR-10N's labels).

CSV format: K rows of K numbers separated by commas; a header row and a first column of class
names (as `write_matrix` writes them) are allowed and skipped.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..atomic import write_text
from ..errors import UsageError
from .hashing import sha256_file

MATRIX_STREAM = 0x6D617472  # the random stream of matrix noise
ROW_TOLERANCE = 1e-3  # rows of a CSV with rounded entries may miss 1 by this much


def read_matrix(path: str | Path, num_classes: int, sha256: str | None = None) -> np.ndarray:
    """T from a CSV or .npy file, rows renormalised to sum exactly to 1; UsageError when the
    file is missing or unreadable, T is not square, has negative or non-finite entries, a row
    that does not sum to 1, or does not match num_classes. sha256, when given, must be the
    file's (it is what the run recorded)."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        raise UsageError(f"transition matrix file {path} does not exist") from None
    return _read(str(p.resolve()), st.st_size, st.st_mtime_ns, num_classes, sha256).copy()


@lru_cache(maxsize=8)
def _read(path: str, _size: int, _mtime: int, num_classes: int, sha256: str | None) -> np.ndarray:
    p = Path(path)
    if sha256 is not None and sha256_file(p) != sha256:
        raise UsageError(f"transition matrix file {p} changed since the run was configured "
                         "(sha256 differs); restore it, or use --force to retrain")
    suffix = p.suffix.lower()
    try:
        if suffix == ".npy":
            t = np.load(p, allow_pickle=False)
        elif suffix in (".csv", ".txt"):
            t = _parse_csv(p.read_text())
        else:
            raise UsageError(f"transition matrix file {p} must be .csv or .npy")
    except UsageError:
        raise
    except (OSError, ValueError, UnicodeDecodeError, EOFError) as e:
        raise UsageError(f"cannot read transition matrix {p}: {type(e).__name__}: {e}") from None
    return validate_matrix(np.asarray(t), num_classes, str(p))


def _parse_csv(text: str) -> np.ndarray:
    rows = [r for r in csv.reader(io.StringIO(text)) if any(c.strip() for c in r)]

    def number(c: str) -> bool:
        try:
            float(c)
        except ValueError:
            return False
        return True

    if rows and not all(number(c) for c in rows[0]):
        rows = rows[1:]  # a header
    if rows and all(not number(r[0]) for r in rows):
        rows = [r[1:] for r in rows]  # a first column of class names
    widths = {len(r) for r in rows}
    if len(widths) > 1:
        raise ValueError(f"rows have different numbers of entries: {sorted(widths)}")
    return np.array([[float(c) for c in r] for r in rows], dtype=np.float64)


def validate_matrix(t: np.ndarray, num_classes: int, where: str = "T") -> np.ndarray:
    if t.dtype.kind not in "fiu" or t.ndim != 2 or t.shape[0] != t.shape[1] or t.size == 0:
        raise UsageError(f"transition matrix {where} must be a square array of numbers, got "
                         f"shape {'x'.join(map(str, t.shape)) or 'scalar'} ({t.dtype})")
    if t.shape[0] != num_classes:
        raise UsageError(f"transition matrix {where} is {t.shape[0]}x{t.shape[1]} but the "
                         f"dataset has {num_classes} classes")
    t = t.astype(np.float64)
    if not np.isfinite(t).all():
        raise UsageError(f"transition matrix {where} holds non-finite entries")
    if (t < 0).any():
        i, j = np.argwhere(t < 0)[0]
        raise UsageError(f"transition matrix {where} has a negative entry ({t[i, j]:g} in row "
                         f"{i}, column {j})")
    sums = t.sum(1)
    bad = np.flatnonzero(np.abs(sums - 1) > ROW_TOLERANCE)
    if len(bad):
        raise UsageError(f"transition matrix {where}: row {bad[0]} sums to {sums[bad[0]]:.6g}, "
                         "not 1 (rows are true classes; each must be a distribution)")
    return t / sums[:, None]


def sample_from_matrix(labels: np.ndarray, t: np.ndarray, seed: int) -> np.ndarray:
    """Class-conditional noise: image i of class c gets label j with probability T[c, j],
    independently of every other image, from the noise seed alone."""
    labels = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(np.random.SeedSequence([seed, MATRIX_STREAM]))
    u = rng.random(len(labels))
    cum = np.cumsum(t, axis=1)
    cum[:, -1] = 1.0  # u < 1 always falls in some class, whatever the rounding of the sums
    return (u[:, None] < cum[labels]).argmax(1).astype(np.int64)


def transition_counts(clean: np.ndarray, noisy: np.ndarray, num_classes: int) -> np.ndarray:
    """counts[i, j]: images of true class i labelled j."""
    clean = np.asarray(clean, dtype=np.int64)
    noisy = np.asarray(noisy, dtype=np.int64)
    return np.bincount(clean * num_classes + noisy,
                       minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def row_normalise(counts: np.ndarray) -> np.ndarray:
    """Rows of counts as distributions; a class without images keeps a row of zeros."""
    counts = np.asarray(counts, dtype=np.float64)
    n = counts.sum(1, keepdims=True)
    return np.divide(counts, n, out=np.zeros_like(counts), where=n > 0)


def per_class_rate(counts: np.ndarray) -> np.ndarray:
    """Fraction of each true class labelled as another class (0 for a class without images)."""
    counts = np.asarray(counts, dtype=np.float64)
    n = counts.sum(1)
    return np.divide(n - np.diag(counts), n, out=np.zeros_like(n), where=n > 0)


def matrix_csv(t: np.ndarray, classes: Sequence[str], digits: int = 6) -> str:
    """T as CSV with a header of class names and a first column of true classes."""
    lines = [",".join(["true \\ noisy", *classes])]
    for name, row in zip(classes, t, strict=True):
        lines.append(",".join([name, *(f"{v:.{digits}f}" for v in row)]))
    return "\n".join(lines) + "\n"


def write_matrix(path: str | Path, t: np.ndarray, classes: Sequence[str]) -> None:
    """Write T as CSV (rows rounded to 6 decimals, which read_matrix renormalises)."""
    write_text(path, matrix_csv(t, classes))
