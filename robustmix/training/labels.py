"""The training set a run sees: which images, their clean labels and the noisy labels it trains on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data.datasets import Dataset
from ..data.labelnoise import actual_noise_rate, corrupt_labels
from ..data.subsets import balanced_subset
from .config import TrainConfig


@dataclass
class Labels:
    """The training set a run sees: indices into the dataset, clean and noisy labels."""

    index: np.ndarray
    clean: np.ndarray
    noisy: np.ndarray

    @property
    def noise_rate(self) -> float:
        return actual_noise_rate(self.clean, self.noisy)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"index": self.index, "clean": self.clean, "noisy": self.noisy})


def make_labels(cfg: TrainConfig, ds: Dataset) -> Labels:
    # Noise is drawn over the whole training set, so a subset sees the same labels as a full run.
    noisy_all = corrupt_labels(ds.y_train, cfg.ratio, cfg.noise, ds.num_classes, cfg.noise_seed, ds.name)
    idx = balanced_subset(ds.y_train, cfg.train_subset, cfg.noise_seed)
    return Labels(idx, ds.y_train[idx], noisy_all[idx])
