"""The method interface: how a training method turns one batch into inputs, targets and a loss.

Every method trains through this interface, robustmix's own included: erm, dropout, mixup and
the ablations are `mixing.MixingMethod`, GCE and SCE are in `losses`. A method of your own is a
subclass of `Method` named on the command line by import path (`--methods mypkg.mod:MyMethod`),
through the entry-point group `robustmix.methods`, or as a table of a study file; see README,
"Compare your own method".

The epoch's random draws (order, crops, flips, λ and partners) are made by robustmix from the
run's seed (`batches.epoch_plans`), so every method sees the same images in the same order for a
seed, and a resumed run replays them exactly. A method only says which partners it needs
(`partner`) and what to do with the batch.

This module imports no torch at import time: the method table and `--help` read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import torch


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy against probability targets (N x K rows), computed in fp32: the
    default `Method.loss`, and the loss of every mixing method. Tensor methods only, so this
    module needs no torch import; torch.nn.functional.log_softmax is this same call."""
    return (-targets * logits.float().log_softmax(dim=1)).sum(dim=1).mean()


@dataclass
class Batch:
    """One training batch as a method sees it (all tensors on the training device).

    x           augmented images (random crop and flip done), float N x C x H x W in [0, 1]
    y           their noisy labels, int64 N: the only labels a method may train on
    x_partner   each example's partner image under the method's partner rule (for
                `partner = "none"`, each example is its own partner)
    y_partner   the partners' noisy labels
    lam         λ ~ Beta(α, α) drawn for this batch when the method has a partner rule (α from
                --alpha or the method's default); 1.0 otherwise
    num_classes number of classes K
    index       positions of the examples in the run's training set (int64 N), for methods
                that keep per-example state
    """

    x: torch.Tensor
    y: torch.Tensor
    x_partner: torch.Tensor
    y_partner: torch.Tensor
    lam: float
    num_classes: int
    index: torch.Tensor


class Method:
    """A training method. Subclass it, override `inputs_targets` and/or `loss`.

    Class attributes (all optional):
      name     the method's name in run directories and reports, [a-z][a-z0-9_]*
               (default: the class name, lowercased)
      label    how reports and figure legends name it (default: name)
      color    a matplotlib colour for its figures; marker: a matplotlib marker
      help     one line for --help and the report
      partner  which partners robustmix draws each batch: "none" (the default), "shuffle" (a
               random permutation of the batch, as mixup), "same_class" (a permutation within
               each noisy label) or "knn" (one of the k nearest same-label images); any rule
               but "none" also draws λ ~ Beta(α, α) per batch, α taking mixup's default
      params   its hyperparameters and their defaults, e.g. {"q": 0.7}; values are numbers,
               booleans or short strings. They come from `--method-param key=value` or a study
               file's `params = {...}`, are stored in the run's config.json and spelt in its
               run name; a name not declared here is refused.

    robustmix creates one instance per run with every declared parameter as a keyword argument
    (the defaults completed), stored as attributes by this base class.
    """

    name: ClassVar[str | None] = None
    label: ClassVar[str | None] = None
    color: ClassVar[str | None] = None
    marker: ClassVar[str | None] = None
    help: ClassVar[str] = ""
    partner: ClassVar[str] = "none"
    params: ClassVar[dict[str, Any]] = {}

    def __init__(self, **params: Any) -> None:
        for key, value in params.items():
            setattr(self, key, value)

    def inputs_targets(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The network's inputs (N x C x H x W) and the targets `loss` receives: N x K rows of
        class probabilities. Default: the images unchanged and one-hot noisy labels (ERM)."""
        import torch.nn.functional as F

        return batch.x, F.one_hot(batch.y, batch.num_classes).float()

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """A scalar to minimise from the network's logits (N x K, possibly bf16 under autocast)
        and the targets of `inputs_targets`. Default: mean cross-entropy against the targets,
        in fp32."""
        return soft_cross_entropy(logits, targets)
