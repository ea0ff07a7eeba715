"""Corrupted training labels: the noise sources, deterministic from a noise seed that is separate
from training.

Sources (`NOISE_TYPES`; the first three take a ratio r, the last two a file and no ratio):
  sym       with probability r a label is replaced by a class drawn uniformly (Zhang et al. 2017)
  asym      CIFAR-10 class-pair flips with probability r (Patrini et al. 2017)
  idn       instance-dependent noise of Xia et al. (NeurIPS 2020), `data/idn.py`
  matrix    class-conditional noise drawn from a transition matrix T, `data/transition.py`
  cifar10n  real human labels of CIFAR-10N (Wei et al., ICLR 2022), `data/cifar10n.py`

Noise is always drawn over the whole training set, in the dataset's order, so a training subset
sees exactly the labels its images have in a full run. Imports no torch (--help reads it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import UsageError

# The CIFAR-10N label-set names and sha256_file live below this facade (the modules it
# dispatches to read them too); they stay importable from here.
from .cifar10n import CIFAR10N_LABEL_SETS
from .hashing import sha256_file

if TYPE_CHECKING:
    from .datasets import Dataset

NOISE_TYPES = ("sym", "asym", "idn", "matrix", "cifar10n")
TAKES_RATIO = ("sym", "asym", "idn")
TAKES_FILE = ("matrix", "cifar10n")
NOISE_HELP = {
    "sym": "with probability r a label becomes a class drawn uniformly from all classes",
    "asym": "CIFAR-10 class-pair flips (truck→automobile, bird→airplane, deer→horse, cat↔dog) "
            "with probability r",
    "idn": "instance-dependent noise at rate r, the generator of Xia et al. (NeurIPS 2020)",
    "matrix": "class-conditional noise drawn from the transition matrix T in --noise-file "
              "(CSV or .npy, rows = true class, each summing to 1); no ratio",
    "cifar10n": "CIFAR-10N human labels (Wei et al., ICLR 2022; CC BY-NC 4.0), label set "
                "--noise-labels, from the CIFAR-10_human.pt in --noise-file; no ratio",
}
# Sources without a ratio take the default α and p of this noise level (the level the quick
# profile's values were tuned at); --alpha and --dropout override.
RATIOLESS_LEVEL = 0.5

# Class-pair flips of Patrini et al. (2017) for CIFAR-10 (indices in CIFAR-10 order):
# truck->automobile, bird->airplane, deer->horse, cat<->dog.
CIFAR10_ASYM = {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}


@dataclass(frozen=True)
class NoiseSpec:
    """One noise source as a run uses it: the source, its ratio (0 for sources that take none),
    the CIFAR-10N label set, and the file (absolute path) with its sha256."""

    source: str = "sym"
    ratio: float = 0.0
    labels: str | None = None
    file: str | None = None
    sha256: str | None = None

    @property
    def tag(self) -> str:
        """The source as run names and reports name it: sym0.5, cifar10n-worst, matrix-<stem>."""
        if self.source in TAKES_RATIO:
            return f"{self.source}{self.ratio:g}"
        if self.source == "cifar10n":
            return f"cifar10n-{self.labels}"
        return f"matrix-{file_tag(self.file)}"

    def check(self, dataset: str) -> NoiseSpec:
        """Validate everything that needs no file access; UsageError on bad input."""
        if self.source not in NOISE_TYPES:
            raise UsageError(f"unknown noise type '{self.source}' (choose from "
                             f"{', '.join(NOISE_TYPES)})")
        if not (isinstance(self.ratio, (int, float)) and 0.0 <= self.ratio <= 1.0):
            raise UsageError(f"noise ratio {self.ratio} is outside [0, 1]")
        if self.source not in TAKES_RATIO and self.ratio != 0:
            raise UsageError(f"noise source {self.source} takes no ratio (its noise rate is "
                             f"measured), got {self.ratio:g}")
        if self.source == "cifar10n":
            if self.labels is None:
                raise UsageError("cifar10n noise needs a label set (--noise-labels): "
                                 f"{', '.join(CIFAR10N_LABEL_SETS)}")
            if self.labels not in CIFAR10N_LABEL_SETS:
                raise UsageError(f"unknown CIFAR-10N label set {self.labels!r} (choose from "
                                 f"{', '.join(CIFAR10N_LABEL_SETS)})")
        elif self.labels is not None:
            raise UsageError(f"a label set ({self.labels}) is for cifar10n noise only, not "
                             f"{self.source}")
        if self.source in TAKES_FILE and not self.file:
            raise UsageError(f"{self.source} noise needs a file (--noise-file): "
                             + ("CIFAR-10_human.pt" if self.source == "cifar10n"
                                else "the transition matrix T as CSV or .npy"))
        if self.source not in TAKES_FILE and self.file:
            raise UsageError(f"a noise file is for matrix and cifar10n noise only, not "
                             f"{self.source}")
        if self.source in ("asym", "cifar10n") and dataset != "cifar10":
            what = "asymmetric noise" if self.source == "asym" else "CIFAR-10N human labels"
            raise UsageError(f"{what} is defined for cifar10 only, not {dataset}")
        return self


def file_tag(file: str | None) -> str:
    """A run-name-safe short name of a noise file: its stem with odd characters replaced."""
    stem = Path(file).stem if file else "none"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", stem)[:40] or "file"


def resolve_file(spec: NoiseSpec, num_classes: int, *, read: bool = True) -> NoiseSpec:
    """spec with its file made absolute and its sha256 filled in; with read, the file's content
    is validated too (a matrix: shape and rows; a CIFAR-10N file: loaded safely, keys and
    lengths). UsageError when the file is missing or bad."""
    if spec.source not in TAKES_FILE:
        return spec
    path = Path(spec.file).expanduser()
    if not path.is_file():
        raise UsageError(f"noise file {spec.file} does not exist"
                         + ("; download CIFAR-10_human.pt from the CIFAR-N repository "
                            "(github.com/UCSC-REAL/cifar-10-100n, folder data/)"
                            if spec.source == "cifar10n" else ""))
    path = path.resolve()
    try:
        sha = sha256_file(path)
    except OSError as e:
        raise UsageError(f"cannot read noise file {path}: {e.strerror or e}") from None
    out = NoiseSpec(spec.source, spec.ratio, spec.labels, str(path), sha)
    if read:
        if spec.source == "matrix":
            from .transition import read_matrix

            read_matrix(path, num_classes, sha)
        else:
            from .cifar10n import load_human_labels

            load_human_labels(path, sha)
    return out


def corrupt_labels(labels: np.ndarray, ratio: float, noise: str, num_classes: int,
                   seed: int, dataset: str = "cifar10") -> np.ndarray:
    """Symmetric or asymmetric noise (the sources that need labels only); test labels never
    pass through here.

    sym: with probability ratio a label is replaced by a class drawn uniformly from all classes
    (Zhang et al. 2017), so about ratio * (1 - 1/num_classes) of labels end up wrong.
    asym: with probability ratio a label of a flipped class becomes its partner class.
    """
    if not 0.0 <= ratio <= 1.0:
        raise UsageError(f"noise ratio {ratio} is outside [0, 1]")
    labels = np.asarray(labels, dtype=np.int64)
    # One generator for this purpose alone: the same seed gives the same labels on any machine.
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x6C61626C]))
    draw = rng.random(len(labels)) < ratio
    if noise == "sym":
        replacement = rng.integers(0, num_classes, size=len(labels))
        return np.where(draw, replacement, labels)
    if noise == "asym":
        if dataset != "cifar10":
            raise UsageError(f"asymmetric noise is defined for cifar10 only, not {dataset}")
        partner = labels.copy()
        for src, dst in CIFAR10_ASYM.items():
            partner[labels == src] = dst
        return np.where(draw, partner, labels)
    if noise in NOISE_TYPES:
        raise UsageError(f"{noise} noise needs the dataset (images or a file): use noisy_labels")
    raise UsageError(f"unknown noise type '{noise}' (choose from {', '.join(NOISE_TYPES)})")


def noisy_labels(spec: NoiseSpec, ds: Dataset, seed: int) -> np.ndarray:
    """The noisy label of every training image of ds, in ds's order, from the noise seed alone
    (CIFAR-10N's labels are fixed: the seed plays no part)."""
    spec.check(ds.name)
    if spec.source in ("sym", "asym"):
        return corrupt_labels(ds.y_train, spec.ratio, spec.source, ds.num_classes, seed, ds.name)
    if spec.source == "idn":
        from .idn import idn_labels

        return idn_labels(ds.x_train, ds.y_train, spec.ratio, ds.num_classes, seed)
    if spec.source == "matrix":
        from .transition import read_matrix, sample_from_matrix

        return sample_from_matrix(ds.y_train, read_matrix(spec.file, ds.num_classes, spec.sha256),
                                  seed)
    from .cifar10n import human_labels_for

    return human_labels_for(ds, spec.file, spec.labels, spec.sha256)


def expected_rate(spec: NoiseSpec, ds: Dataset) -> float:
    """The fraction of wrong labels the source gives the whole training set, independent of the
    noise seed: its measured rate for CIFAR-10N, the expectation for the synthetic sources."""
    y = np.asarray(ds.y_train)
    k = ds.num_classes
    prior = np.bincount(y, minlength=k) / len(y)
    if spec.source == "sym":
        return float(spec.ratio * (1 - 1 / k))
    if spec.source == "asym":
        return float(spec.ratio * sum(prior[c] for c in CIFAR10_ASYM))
    if spec.source == "idn":
        from .idn import mean_flip_rate

        return mean_flip_rate(spec.ratio)
    if spec.source == "matrix":
        from .transition import read_matrix

        t = read_matrix(spec.file, k, spec.sha256)
        return float(np.sum(prior * (1 - np.diag(t))))
    from .cifar10n import load_human_labels

    h = load_human_labels(spec.file, spec.sha256)
    return actual_noise_rate(h.labels["clean_label"], h.labels[CIFAR10N_LABEL_SETS[spec.labels]])


def actual_noise_rate(clean: np.ndarray, noisy: np.ndarray) -> float:
    return float(np.mean(np.asarray(clean) != np.asarray(noisy)))
