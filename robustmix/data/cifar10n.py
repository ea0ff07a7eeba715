"""CIFAR-10N human labels (Wei et al., "Learning with Noisy Labels Revisited: A Study Using
Real-World Human Annotations", ICLR 2022; CC BY-NC 4.0): loaded safely and aligned with the
training images of whatever CIFAR-10 copy a run reads.

The file, `CIFAR-10_human.pt` of github.com/UCSC-REAL/cifar-10-100n, is a torch.save zip of a
pickled dict of int64[50000] numpy arrays: `clean_label` and five label sets. Index i is the i-th
image of the canonical `cifar-10-python` batches. It is loaded with
`torch.load(weights_only=True)`, which allows only tensors and containers, plus the four numpy
globals an array's pickle needs; anything else in it is refused, never executed.

Alignment with a dataset's training order:
  canonical order (the pickle batches, torchvision's download): image k is index k.
  image folders (train/<class>/NNNN.png|jpg): either each class's files are numbered from 0 in
      canonical order (the offline JPEG copy), so file NNNN of class c is the NNNN-th canonical
      index whose clean_label is c; or the files are numbered by canonical index across the
      whole training set (0 to 49999, each number once).
Either way `clean_label`, read in that order, must equal the loaded training labels, or the run
is refused. Labels alone cannot tell a copy whose images were renumbered within their class, so
when the file's clean_label is CIFAR-10's own, the images are checked too: 200 reference images
(every 250th canonical training image) must have about the mean colour they have in CIFAR-10.
"""

from __future__ import annotations

import hashlib
import pickle
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import UsageError
from .hashing import sha256_file

if TYPE_CHECKING:
    from .datasets import Dataset

LICENSE = "CC BY-NC 4.0"
NAME = f"CIFAR-10N ({LICENSE})"
SOURCE_URL = "https://github.com/UCSC-REAL/cifar-10-100n (data/CIFAR-10_human.pt)"
# CIFAR-10N label sets as robustmix names them -> the keys of CIFAR-10_human.pt.
CIFAR10N_LABEL_SETS = {"aggre": "aggre_label", "rand1": "random_label1",
                       "rand2": "random_label2", "rand3": "random_label3",
                       "worst": "worse_label"}
KEYS = ("clean_label", *CIFAR10N_LABEL_SETS.values())
NUM_CLASSES = 10

# sha256 of CIFAR-10's canonical training labels as int64 little-endian bytes: a label file whose
# clean_label hashes to this describes the real CIFAR-10 training set, whose images can be checked.
CIFAR10_TRAIN_LABELS_SHA256 = "f5cfe00b0f00968c0cc5ff3b1d2de51b10e33efa277c2986f4e0fa63e58c9f4f"
# Mean colour (R, G, B, rounded to integers in 0..255) of every 250th canonical training image,
# from the offline JPEG copy aligned as above (robustmix.data.cifar10n.reference_means). JPEG
# changes an image's mean colour by less than one level, while two different images agree within
# MEAN_TOLERANCE on about 1 % of pairs; a copy passes when MATCH_FRACTION of them agree.
REFERENCE_STEP = 250
REFERENCE_MEANS = """
142 105 64 102 108 110 111 106 85 92 94 80 139 146 150 117 144 175 120 119 117 177 147 160
144 128 104 124 114 111 106 115 73 128 131 102 140 122 109 180 180 187 136 153 63 84 87 69
130 144 155 122 126 117 220 221 221 166 182 135 54 53 39 163 166 154 129 100 103 142 144 168
163 148 123 187 189 187 121 115 97 118 111 64 146 146 147 139 141 156 75 77 82 98 88 78 112
112 109 118 124 118 134 140 128 90 181 138 174 141 137 170 162 134 72 63 28 114 116 118 118
120 123 148 135 104 101 99 100 122 113 104 75 84 88 163 139 120 96 110 99 106 112 116 136
124 123 86 92 66 141 135 137 175 172 165 144 153 160 128 97 88 165 159 141 142 113 81 185
160 133 112 118 118 111 110 95 148 136 123 169 169 169 98 113 121 146 172 191 146 150 144 84
98 50 147 99 107 121 113 95 123 141 106 105 92 67 96 88 93 144 156 152 147 151 153 148 128
129 125 123 122 124 111 98 132 133 139 140 125 102 115 122 117 96 113 86 77 54 37 89 91 100
148 149 149 127 136 132 68 57 56 98 115 132 135 130 123 177 186 188 81 81 76 71 76 76 233
232 225 98 89 79 160 172 147 122 150 141 80 67 62 95 98 114 137 137 137 141 146 87 139 143
142 107 113 101 141 141 148 58 57 21 119 111 100 152 141 114 128 127 131 85 87 85 164 172
183 69 66 65 176 183 191 99 127 157 144 137 103 96 96 85 155 149 135 144 165 152 141 141 127
160 105 99 100 144 203 134 135 132 135 120 119 126 160 177 82 90 96 125 123 128 117 99 100
155 125 96 98 98 83 136 156 163 124 125 135 163 122 85 107 121 101 152 140 116 106 103 98
122 152 106 136 129 125 51 84 131 117 118 100 124 146 154 188 190 189 111 99 101 139 151 154
117 143 157 170 170 170 127 103 91 93 77 38 163 145 132 176 176 176 166 145 134 123 130 128
198 199 202 185 185 185 136 127 86 113 119 125 117 83 58 149 136 129 191 192 191 132 110 101
152 164 147 167 163 152 150 133 93 99 106 97 169 123 76 109 121 101 153 167 168 142 142 137
124 123 122 147 133 123 120 130 98 170 165 165 110 106 96 98 96 81 158 159 159 104 95 78 83
116 72 56 66 31 164 149 143 142 142 112 74 74 74 145 171 194 168 162 154 91 77 53 138 138
136 160 138 106 135 110 96 95 114 88 130 142 154 138 115 87 104 102 87 84 79 46 111 109 110
78 85 73 188 191 198 110 97 83 133 113 42 91 81 70 116 110 91 108 114 104 134 143 169 132
113 105 142 151 163 119 131 144 166 125 113 107 132 125
"""
MEAN_TOLERANCE = 6.0
MATCH_FRACTION = 0.8


@dataclass(frozen=True)
class HumanLabels:
    path: str
    sha256: str
    labels: dict[str, np.ndarray]  # every key of KEYS: int64 arrays of one length, read-only

    @property
    def n(self) -> int:
        return len(self.labels["clean_label"])

    def label_set(self, name: str) -> np.ndarray:
        if name not in CIFAR10N_LABEL_SETS:
            raise UsageError(f"unknown CIFAR-10N label set {name!r} (choose from "
                             f"{', '.join(CIFAR10N_LABEL_SETS)})")
        return self.labels[CIFAR10N_LABEL_SETS[name]]


def load_human_labels(path: str | Path, sha256: str | None = None) -> HumanLabels:
    """Read and check a CIFAR-10N label file; UsageError when it is missing, truncated, foreign,
    holds anything but integer arrays, lacks a key, or has arrays of wrong length or values.
    sha256, when given, must be the file's (what the run recorded)."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        raise UsageError(f"CIFAR-10N label file {path} does not exist; download it from "
                         f"{SOURCE_URL}") from None
    return _load(str(p.resolve()), st.st_size, st.st_mtime_ns, sha256)


@lru_cache(maxsize=4)
def _load(path: str, _size: int, _mtime: int, sha256: str | None) -> HumanLabels:
    p = Path(path)
    digest = sha256_file(p)
    if sha256 is not None and digest != sha256:
        raise UsageError(f"CIFAR-10N label file {p} changed since the run was configured "
                         "(sha256 differs); restore it, or use --force to retrain")
    if not zipfile.is_zipfile(p):
        raise UsageError(f"{p} is not a torch.save file (truncated, or not CIFAR-10_human.pt); "
                         f"download it from {SOURCE_URL}")
    data = _safe_torch_load(p)
    if not isinstance(data, dict):
        raise UsageError(f"{p} holds a {type(data).__name__}, not the dict of label arrays of "
                         "CIFAR-10_human.pt")
    missing = [k for k in KEYS if k not in data]
    if missing:
        raise UsageError(f"{p} lacks the key(s) {', '.join(missing)}: not CIFAR-10_human.pt "
                         f"(keys found: {', '.join(map(str, data)) or 'none'})")
    labels, lengths = {}, set()
    for k in KEYS:
        a = data[k]
        if hasattr(a, "numpy") and not isinstance(a, np.ndarray):  # a tensor, as some copies hold
            a = a.numpy()
        if not isinstance(a, np.ndarray) or a.ndim != 1 or a.dtype.kind not in "iu":
            raise UsageError(f"{p}: '{k}' is not a one-dimensional integer array")
        if len(a) and (a.min() < 0 or a.max() >= NUM_CLASSES):
            raise UsageError(f"{p}: '{k}' holds labels outside 0..{NUM_CLASSES - 1}")
        a = a.astype(np.int64)
        a.setflags(write=False)
        labels[k] = a
        lengths.add(len(a))
    if len(lengths) != 1 or 0 in lengths:
        raise UsageError(f"{p}: the label arrays have lengths {sorted(lengths)}; they must all "
                         "have one length, one label per training image")
    return HumanLabels(str(p), digest, labels)


def _safe_torch_load(p: Path):
    import torch

    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
    # What an integer array's pickle names (under either numpy's module name), and nothing else.
    allowed = [(_reconstruct, "numpy.core.multiarray._reconstruct"),
               (_reconstruct, "numpy._core.multiarray._reconstruct"), np.ndarray, np.dtype,
               *(getattr(np.dtypes, n) for n in ("Int64DType", "Int32DType", "Int16DType",
                                                 "Int8DType", "UInt8DType")
                 if hasattr(np, "dtypes") and hasattr(np.dtypes, n))]
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        why = str(e).splitlines()
        detail = next((line.strip() for line in why if "GLOBAL" in line or "Unsupported" in line),
                      "")
        raise UsageError(f"refusing {p}: it holds pickled objects other than integer arrays "
                         f"({detail or 'not allowed by weights_only loading'}); robustmix never "
                         "unpickles a downloaded file without restriction") from None
    except Exception as e:  # a damaged zip, a missing record, a foreign torch file
        raise UsageError(f"cannot read {p} ({type(e).__name__}: {str(e).splitlines()[0][:120]}); "
                         f"truncated or not CIFAR-10_human.pt? download it from {SOURCE_URL}"
                         ) from None


def canonical_order(ds: Dataset, human: HumanLabels) -> np.ndarray:
    """order[k]: the index in the label file of training image k of ds; UsageError when ds is
    not a copy of the file's training set in an order robustmix can align."""
    if ds.name != "cifar10":
        raise UsageError(f"CIFAR-10N labels are for CIFAR-10's training images, not {ds.name}")
    clean = human.labels["clean_label"]
    n = human.n
    if len(ds.y_train) != n:
        raise UsageError(f"{human.path} labels {n} training images but {ds.source} holds "
                         f"{len(ds.y_train)}: CIFAR-10N needs the whole training set")
    if ds.train_names is None:
        order = np.arange(n)
    else:
        order = _image_folder_order(ds, clean, human.path)
    wrong = np.flatnonzero(clean[order] != ds.y_train)
    if len(wrong):
        k = wrong[0]
        raise UsageError(f"the clean_label of {human.path} disagrees with the training labels "
                         f"of {ds.source} on {len(wrong)} of {n} images (first: image {k}, "
                         f"label {ds.y_train[k]} against clean_label {clean[order[k]]}): the data "
                         "are not in the canonical order of the CIFAR-10 batches the file "
                         "follows, and are refused rather than trained on misaligned")
    if hashlib.sha256(clean.astype("<i8").tobytes()).hexdigest() == CIFAR10_TRAIN_LABELS_SHA256:
        _check_images(ds, order)
    return order


def _image_folder_order(ds: Dataset, clean: np.ndarray, path: str) -> np.ndarray:
    names = np.asarray(ds.train_names)
    numbers = np.full(len(names), -1, dtype=np.int64)
    for k, name in enumerate(names):
        if not (name.isascii() and name.isdigit()):
            raise UsageError(f"{ds.source}: training image '{name}' of class "
                             f"{ds.classes[ds.y_train[k]]} is not numbered; CIFAR-10N aligns "
                             "with image folders whose files are numbered from 0 within each "
                             "class in canonical order (NNNN.jpg)")
        numbers[k] = int(name)
    if np.array_equal(np.sort(numbers), np.arange(len(names))):
        # numbered by canonical index across the whole training set (train/<class>/i.png):
        # the clean_label check that follows confirms every image's class
        return numbers
    order = np.empty(len(names), dtype=np.int64)
    for c in range(len(ds.classes)):
        mine = np.flatnonzero(ds.y_train == c)
        theirs = np.flatnonzero(clean == c)
        if len(mine) != len(theirs):
            raise UsageError(f"{ds.source} holds {len(mine)} training images of class "
                             f"{ds.classes[c]} where the clean_label of {path} has "
                             f"{len(theirs)}: not the CIFAR-10 training set this file labels")
        got = numbers[mine]
        if not np.array_equal(np.sort(got), np.arange(len(mine))):
            raise UsageError(f"{ds.source}: the training images of class {ds.classes[c]} are "
                             f"not numbered 0..{len(mine) - 1} (found {got.min()}..{got.max()}, "
                             f"{len(np.unique(got))} distinct); CIFAR-10N cannot be aligned")
        order[mine] = theirs[got]
    return order


def reference_indices() -> np.ndarray:
    return np.arange(0, len(REFERENCE_MEANS.split()) // 3 * REFERENCE_STEP, REFERENCE_STEP)


def reference_means(x_train: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Mean colour of each reference image (canonical index) of a dataset whose image k has
    canonical index order[k]."""
    where = np.empty(len(order), dtype=np.int64)
    where[order] = np.arange(len(order))
    imgs = x_train[where[reference_indices()]]
    return imgs.reshape(len(imgs), -1, imgs.shape[-1]).astype(np.float64).mean(1)


def _check_images(ds: Dataset, order: np.ndarray) -> None:
    ref = np.array(REFERENCE_MEANS.split(), dtype=np.float64).reshape(-1, 3)
    got = reference_means(ds.x_train, order)
    ok = (np.abs(got - ref).max(1) <= MEAN_TOLERANCE).mean()
    if ok < MATCH_FRACTION:
        raise UsageError(f"the training images of {ds.source} are not in CIFAR-10's canonical "
                         f"order: only {ok:.0%} of {len(ref)} reference images have their "
                         "CIFAR-10 mean colour (a shuffled or renumbered copy?); CIFAR-10N "
                         "labels would be attached to the wrong images, so the run is refused")


def human_labels_for(ds: Dataset, path: str | Path, label_set: str,
                     sha256: str | None = None) -> np.ndarray:
    """The label set's label of every training image of ds, in ds's order."""
    human = load_human_labels(path, sha256)
    return human.label_set(label_set)[canonical_order(ds, human)].copy()
