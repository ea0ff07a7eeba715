"""The training set a run sees: which images, their clean labels and the noisy labels it trains on."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..data import transition
from ..data.datasets import Dataset
from ..data.labelnoise import TAKES_RATIO, actual_noise_rate, expected_rate, noisy_labels
from ..data.subsets import balanced_subset
from ..errors import UsageError
from .config import TrainConfig

VALIDATION = 0x76616C69  # the validation set's random stream


@dataclass
class Labels:
    """The images a run sees: training indices into the dataset with clean and noisy labels,
    and the held-out validation images, labelled noisily like the training set."""

    index: np.ndarray
    clean: np.ndarray
    noisy: np.ndarray
    val_index: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    val_clean: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    val_noisy: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def noise_rate(self) -> float:
        return actual_noise_rate(self.clean, self.noisy)

    def to_frame(self) -> pd.DataFrame:
        train = pd.DataFrame({"index": self.index, "clean": self.clean, "noisy": self.noisy})
        if not len(self.val_index):
            return train
        train["split"] = "train"
        val = pd.DataFrame({"index": self.val_index, "clean": self.val_clean,
                            "noisy": self.val_noisy, "split": "val"})
        return pd.concat([train, val], ignore_index=True)


def make_labels(cfg: TrainConfig, ds: Dataset) -> Labels:
    """Training and validation images with their labels, all deterministic from the noise seed
    (never from the training seed), so every method and seed sees the same images and labels."""
    # Noise is drawn over the whole training set, so a subset sees the same labels as a full run
    # (and CIFAR-10N's subset takes the human labels of exactly its images).
    noisy_all = noisy_labels(cfg.noise_spec, ds, cfg.noise_seed)
    n, k = len(ds.y_train), ds.num_classes
    if cfg.val_n > n - k:
        raise UsageError(f"--val-n {cfg.val_n} leaves too few training images: at most {n - k} "
                         f"of the {n} can be held out (one image per class must stay)")
    val = (balanced_subset(ds.y_train, cfg.val_n, cfg.noise_seed, VALIDATION) if cfg.val_n
           else np.zeros(0, dtype=np.int64))
    pool = np.setdiff1d(np.arange(n), val)
    if cfg.val_n and cfg.train_subset is not None and len(pool) < cfg.train_subset <= n:
        raise UsageError(f"train subset {cfg.train_subset} and {cfg.val_n} validation images do "
                         f"not fit in the {n} training images: the subset would need validation "
                         f"images (at most {len(pool)}; lower --train-subset or --val-n)")
    idx = pool[balanced_subset(ds.y_train[pool], cfg.train_subset, cfg.noise_seed)]
    return Labels(idx, ds.y_train[idx], noisy_all[idx],
                  val, ds.y_train[val], noisy_all[val])


def noise_record(cfg: TrainConfig, labels: Labels, ds: Dataset) -> dict:
    """noise.json: the run's noise source and what it did to the training labels the run trains
    on: the empirical transition matrix (counts and row-normalised, true class -> noisy label),
    the noise rate per true class and overall, and the source's rate over the whole training set
    (its expectation for synthetic sources, seed-independent)."""
    from ..data.cifar10n import NAME as CIFAR10N_NAME

    spec = cfg.noise_spec
    k = ds.num_classes
    counts = transition.transition_counts(labels.clean, labels.noisy, k)
    record = {
        "source": spec.source, "tag": spec.tag, "ratio": spec.ratio if spec.source in TAKES_RATIO
        else None, "labels": spec.labels, "file": spec.file,
        "sha256": spec.sha256, "noise_seed": cfg.noise_seed, "classes": list(ds.classes),
        "train_images": int(len(labels.index)), "rate": labels.noise_rate,
        "source_rate": expected_rate(spec, ds),
        "per_class_rate": [float(v) for v in transition.per_class_rate(counts)],
        "counts": counts.tolist(),
        "transition": [[float(v) for v in row] for row in transition.row_normalise(counts)],
    }
    if spec.source == "cifar10n":
        record["dataset_name"] = CIFAR10N_NAME
        record["citation"] = ("Wei et al., Learning with Noisy Labels Revisited: A Study Using "
                              "Real-World Human Annotations, ICLR 2022")
    return record
