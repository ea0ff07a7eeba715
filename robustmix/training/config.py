"""Training configuration: one dataclass and the two profiles (imports no torch: --help reads it)."""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..data.labelnoise import RATIOLESS_LEVEL, TAKES_RATIO, NoiseSpec
from ..errors import UsageError
from .methods import HPARAMS, METHODS, default_alpha, default_dropout, hparams_for
from .plugins import (
    DEFAULT_MODEL,
    DROPOUT_MODELS,
    check_model,
    is_builtin_model,
    model_tag,
    resolve_method,
    resolve_params,
)

# Profiles. `paper` is the published setup. `quick` is sized so that the four methods at one
# noise ratio train in under 20 minutes on a 2-core CPU (width 16, a 2,000-image class-balanced
# subset, 80 epochs with the lr steps at the same relative places, 50 % and 75 %, 1,000 test
# images) while still long enough for ERM to memorise noisy labels after the first lr step. A
# trial with 5,000 images and 40 epochs (a similar number of images seen) barely fitted the noisy
# labels at all (training accuracy against them stayed near 25 % at 50 % noise); with 2,000
# images seen 80 times, ERM's accuracy on noisy labels climbs after the lr step while its test
# accuracy falls, which is the effect the paper measures.
#
# val_n images are held out of the training pool as a validation set labelled with the noisy
# labels a practitioner would have; the selected checkpoint is the epoch with the best accuracy
# on it. The paper profile holds out 5,000 of the 50,000 (10 %, the usual CIFAR split) so that
# its selection is honest by default; --val-n 0 restores the paper's exact training set. The
# quick profile draws its 1,000 from the images its 2,000-image subset leaves unused, so the
# validation set costs it no training data.
#
# `fast` and `fast-long` train FastNet (airbench94-shaped, models.py) at half airbench94's width
# on all 50,000 images less the 5,000 held out for noisy validation, at batch 512 with Nesterov
# SGD, a linear warm-up / linear decay ("linear") learning rate and crops translating by up to 2
# pixels; 2,000 test images per epoch, all 10,000 at the end.
# `fast` is the short schedule (early-stopping regime: the network has not yet fitted the
# corrupted labels), `fast-long` the long one (memorising regime). Their epochs, width and lr
# were chosen by the measurements in experiments/fast.notes.md, on training labels and the noisy
# validation set, never the test set.
FAST = dict(batch_size=512, lr=0.2, momentum=0.9, weight_decay=5e-4, milestones=(),
            width=32, train_subset=None, test_n=2000, train_eval_n=5000, val_n=5000,
            model="fastnet", schedule="linear", warmup=0.2, nesterov=True, translate=2)
PROFILES: dict[str, dict] = {
    "paper": dict(epochs=200, batch_size=128, lr=0.1, momentum=0.9, weight_decay=1e-4,
                  milestones=(0.5, 0.75), width=64, train_subset=None, test_n=None,
                  train_eval_n=10000, val_n=5000),
    "quick": dict(epochs=80, batch_size=128, lr=0.1, momentum=0.9, weight_decay=1e-4,
                  milestones=(0.5, 0.75), width=16, train_subset=2000, test_n=1000,
                  train_eval_n=500, val_n=1000),
    "fast": dict(FAST, epochs=15),
    "fast-long": dict(FAST, epochs=60),
}
SCHEDULES = ("step", "linear")


@dataclass
class TrainConfig:
    dataset: str = "cifar10"
    noise: str = "sym"
    ratio: float = 0.5
    noise_seed: int = 0
    method: str = "mixup"
    alpha: float = 0.0
    dropout: float = 0.0
    smoothing: float = 0.1
    knn_k: int = 5
    seed: int = 0
    profile: str = "quick"
    epochs: int = 80
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    milestones: list[int] = field(default_factory=lambda: [40, 60])
    width: int = 16
    train_subset: int | None = 2000
    test_n: int | None = 1000
    train_eval_n: int = 500
    val_n: int = 0  # validation images held out of the training pool (0: none)
    precision: str = "fp32"
    augment: bool = True
    # Sources with a file (matrix, cifar10n): the CIFAR-10N label set, the file's absolute path
    # and sha256. None for the other sources, and then left out of to_dict(), so the configs of
    # runs made before these sources existed compare equal.
    noise_labels: str | None = None
    noise_file: str | None = None
    noise_sha256: str | None = None
    # The optimiser's schedule: None is "step" (lr x 0.1 at each milestone epoch); "linear" warms
    # up linearly from 0 over the first `warmup` fraction of the steps, then decays linearly to 0,
    # updated every step. nesterov None is plain momentum. None values are left out of to_dict()
    # like the noise file's, so runs made before these fields existed keep their identity.
    schedule: str | None = None
    warmup: float | None = None
    nesterov: bool | None = None
    # Random-crop padding in pixels (the largest translation); None is batches.PAD (4).
    translate: int | None = None

    @property
    def noise_spec(self) -> NoiseSpec:
        return NoiseSpec(self.noise, self.ratio, self.noise_labels, self.noise_file,
                         self.noise_sha256)
    # A method's own hyperparameters (all of them, defaults completed) and, for a method from
    # outside robustmix, the import path of its class (empty for robustmix's own methods).
    method_params: dict = field(default_factory=dict)
    method_path: str = ""
    # The network: a registered name or the import path of a factory; normalize: inputs are
    # standardised by the dataset's channel statistics inside the model (width is 0 for a
    # factory, which sets its own size).
    model: str = DEFAULT_MODEL
    normalize: bool = True

    @property
    def run_name(self) -> str:
        # The noise seed, a method's parameters and the model appear only where they are not
        # the default, so existing names stay.
        noise_seed = f"_n{self.noise_seed}" if self.noise_seed else ""
        params = "".join(f"_{k}{_spell(v)}" for k, v in self.method_params.items())
        model = ("" if self.model == DEFAULT_MODEL and self.normalize
                 else f"_{model_tag(self.model, self.normalize)}")
        return (f"{self.dataset}_{self.noise_spec.tag}_{self.method}{params}"
                f"_a{self.alpha:g}_p{self.dropout:g}{model}_{self.profile}_s{self.seed}{noise_seed}")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for k in _OPTIONAL_NOISE_KEYS:
            if d[k] is None:
                del d[k]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise UsageError(f"unknown config keys: {', '.join(sorted(unknown))}")
        return cls(**d)

    def validate(self) -> TrainConfig:
        if self.method not in METHODS:
            raise UsageError(f"unknown method '{self.method}' (choose from {', '.join(METHODS)})")
        self.noise_spec.check(self.dataset)
        if not (math.isfinite(self.alpha) and self.alpha >= 0):
            raise UsageError(f"mixup alpha must be >= 0, got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise UsageError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 <= self.smoothing < 1.0:
            raise UsageError(f"label smoothing must be in [0, 1), got {self.smoothing}")
        if self.knn_k < 1:
            raise UsageError(f"--k must be at least 1, got {self.knn_k}")
        if self.epochs < 1:
            raise UsageError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 2:
            raise UsageError(f"batch size must be at least 2, got {self.batch_size}")
        if self.width < (1 if is_builtin_model(self.model) else 0):
            raise UsageError(f"width must be at least 1, got {self.width}")
        if not is_builtin_model(self.model) and self.width:
            raise UsageError(f"model factory {self.model} sets its own size: --width (train.width) "
                             "applies to the built-in models only")
        if self.dropout > 0 and self.model not in DROPOUT_MODELS:
            raise UsageError(f"dropout p = {self.dropout:g} needs {' or '.join(DROPOUT_MODELS)} "
                             f"(model {self.model} has no dropout layers); train dropout methods "
                             "with one of them")
        if (self.schedule or "step") not in SCHEDULES:
            raise UsageError(f"unknown lr schedule '{self.schedule}' (choose from "
                             f"{', '.join(SCHEDULES)})")
        if self.translate is not None and not 0 <= self.translate <= 8:
            raise UsageError(f"translation must be 0 to 8 pixels, got {self.translate}")
        if self.warmup is not None and not 0.0 <= self.warmup < 1.0:
            raise UsageError(f"warm-up fraction must be in [0, 1), got {self.warmup}")
        if self.precision not in ("fp32", "bf16"):
            raise UsageError(f"precision must be fp32 or bf16, got {self.precision}")
        if self.seed < 0 or self.noise_seed < 0:
            raise UsageError(f"seeds must be >= 0, got seed {self.seed}, noise seed {self.noise_seed}")
        if self.val_n < 0:
            raise UsageError(f"--val-n must be >= 0, got {self.val_n}")
        if self.train_subset is not None and self.train_subset < 10:
            raise UsageError(f"train subset must hold at least 10 images, got {self.train_subset}")
        return self


_OPTIONAL_NOISE_KEYS = ("noise_labels", "noise_file", "noise_sha256", "schedule", "warmup",
                        "nesterov", "translate")


def _spell(value) -> str:
    """A method parameter's value as a run name spells it."""
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def make_config(*, method: str, ratio: float, profile: str, alpha: float | None = None,
                dropout: float | None = None, epochs: int | None = None, hparams: str = "auto",
                method_params: dict | None = None, model: str | None = None,
                normalize: bool | None = None, **overrides) -> TrainConfig:
    """A config from a profile, the default α and p of a hyperparameter set for (method, ratio)
    (auto: tuned for quick, paper for paper), and explicit overrides. method is a name, an
    import path or an entry point (plugins.resolve_method); method_params are checked against
    the parameters it declares; model is a registered name or a factory's import path."""
    if hparams not in HPARAMS:
        raise UsageError(f"unknown hyperparameter set '{hparams}' (choose from {', '.join(HPARAMS)})")
    if profile not in PROFILES:
        raise UsageError(f"unknown profile '{profile}' (choose from {', '.join(PROFILES)})")
    spec = resolve_method(method)
    method = spec.name
    params = resolve_params(spec, method_params or {})
    model = model or PROFILES[profile].get("model", DEFAULT_MODEL)
    check_model(model)
    if not is_builtin_model(model) and overrides.get("width") is not None:
        raise UsageError(f"model factory {model} sets its own size: --width (train.width) "
                         "applies to the built-in models only")
    noise = overrides.get("noise") or "sym"
    # Sources without a ratio take the defaults of one noisy level (their rate is measured).
    level = ratio if noise in TAKES_RATIO else RATIOLESS_LEVEL
    p = {k: v for k, v in PROFILES[profile].items() if k != "model"}
    n_epochs = epochs if epochs is not None else p["epochs"]
    fractions = p.pop("milestones")
    p["epochs"] = n_epochs
    p["milestones"] = [max(1, round(f * n_epochs)) for f in fractions]
    cfg = TrainConfig(
        method=method, ratio=ratio, profile=profile,
        alpha=(default_alpha(method, level, hparams_for(profile, hparams), profile) if alpha is None
               else alpha),
        dropout=(default_dropout(method, level, hparams_for(profile, hparams), profile) if dropout is None
                 else dropout),
        method_params=params, method_path="" if spec.builtin else spec.factory, model=model,
        normalize=is_builtin_model(model) if normalize is None else normalize,
        **p,
    )
    if not is_builtin_model(model):
        cfg.width = 0
    for k, v in overrides.items():
        if v is not None:
            setattr(cfg, k, v)
    return cfg.validate()



def config_grid(common: Mapping, *axes: Sequence[Mapping]) -> list[TrainConfig]:
    """The training configs of every combination of the axes, in order: each axis is a list of
    keyword sets for make_config, merged over `common` (later axes win). A combination naming a
    run built before is kept once (`--seed 0 0`, or two grids that meet). `train_subset` is set
    after make_config, as the CLI and the study spell it: 0 or None = all training images.
    `python -m robustmix.noise` and a study file both build their runs here."""
    out: list[TrainConfig] = []
    names: set[str] = set()
    for combo in itertools.product(*axes):
        kwargs = dict(common)
        for part in combo:
            kwargs.update(part)
        subset = kwargs.pop("train_subset", None)
        cfg = make_config(**kwargs)
        if subset is not None:
            cfg.train_subset = subset or None
            cfg.validate()
        if cfg.run_name not in names:
            names.add(cfg.run_name)
            out.append(cfg)
    return out
