"""What `python -m robustmix.evaluate` does, from its options: load and check everything, run
robustmix.evaluate (the Python API), write the folder. Every check comes before the first
write, so that bad input leaves nothing behind."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from ..attacks.defaults import DEFAULT_BATCH, DEFAULT_EPS_LIST
from ..attacks.registry import (
    DEFAULT_ATTACKS,
    DEFAULT_QUERIES,
    DEFAULT_RESTARTS,
    DEFAULT_SEED,
    DEFAULT_STEPS,
)
from ..errors import UsageError
from .calibration import CONFIDENCE
from .defaults import DEFAULT_N, ECE_BINS, RESAMPLES
from .external import Evaluation, evaluate
from .folder import attack_rows, check_out, robustbench_json, summary_json, write_folder
from .model_files import ModelSource, check_takes_images, load_external_model
from .testdata import load_test_images


@dataclass
class EvaluateSpec:
    """The evaluate command's options (the attack ones spelled as `robustmix.attack` spells
    them, attacks/options.py)."""

    out: Path
    factory: str | None = None
    weights: Path | None = None
    torchscript: Path | None = None
    dataset: str = "cifar10"
    data: Path | None = None
    n: int = DEFAULT_N  # 0 = all
    attacks: list[str] = field(default_factory=lambda: list(DEFAULT_ATTACKS))
    eps: list[float] = field(default_factory=lambda: list(DEFAULT_EPS_LIST))  # /255 for L∞
    norm: str = "linf"  # or l2: ε and step_size then in plain units (attacks/defaults.py)
    steps: int = DEFAULT_STEPS
    step_size: float | None = None  # in ε's units; None = each attack's rule
    restarts: int = DEFAULT_RESTARTS
    queries: int = DEFAULT_QUERIES
    seed: int = DEFAULT_SEED
    batch: int = DEFAULT_BATCH
    device: str = "auto"
    precision: str = "fp32"
    corruptions: list[str] = field(default_factory=list)  # none by default
    severities: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])
    corruption_seed: int = 0
    constants: str = "cifar10-c"
    resamples: int = RESAMPLES
    name: str | None = None  # the model's name in the tables; None = the --out folder's name
    force: bool = False


def _place(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    from .device import place_model

    if isinstance(model, torch.jit.ScriptModule):  # takes no hooks: moved as it is
        return model.to(device)
    return place_model(model, device)


def run_evaluation(spec: EvaluateSpec) -> tuple[Evaluation, dict, pd.DataFrame | None]:
    """Evaluate, write spec.out, and return the Evaluation, the robustbench.json dict and the
    corruptions.csv rows (None without spec.corruptions)."""
    import torchattacks

    from ..runs.provenance import device_name, environment
    from .device import configure_backends, resolve_device

    out = Path(spec.out)
    check_out(out, spec.force)  # first: no work for a folder that would be refused
    device = resolve_device(spec.device)
    backends = configure_backends(device)
    if spec.corruptions:
        from . import corruptions as C

        C.check_request(spec.corruptions, spec.severities, spec.constants)
        C.package()  # a missing extra is reported before anything is loaded
    test = load_test_images(spec.dataset, spec.data, spec.n)
    if spec.corruptions and (test.uint8 is None or test.uint8.shape[1:] != (32, 32, 3)):
        raise UsageError("--corruptions needs 32 x 32 RGB uint8 test images (CIFAR-10's, or an "
                         ".npz of uint8 N x 32 x 32 x 3); these are "
                         + ("float images" if test.uint8 is None
                            else "x".join(map(str, test.uint8.shape[1:]))))
    source = ModelSource(spec.factory, spec.weights, spec.torchscript)
    model = load_external_model(source, test.num_classes, test.channels)
    what = (f"TorchScript model {spec.torchscript}" if spec.torchscript is not None
            else f"model of factory {spec.factory}")
    check_takes_images(model, test.x, test.num_classes, what)
    model = _place(model, device)
    name = spec.name or out.resolve().name
    t0 = time.perf_counter()
    result = evaluate(model, test.x, test.y, attacks=spec.attacks, eps=spec.eps,
                      norm=spec.norm, steps=spec.steps, step_size=spec.step_size,
                      restarts=spec.restarts,
                      queries=spec.queries, seed=spec.seed, precision=spec.precision,
                      batch=spec.batch, name=name, resamples=spec.resamples)
    corruption_rows = None
    if spec.corruptions:
        t1 = time.perf_counter()
        corruption_rows = corruption_table(model, test, spec, name, device)
        print(f"robustmix.evaluate: common corruptions took {time.perf_counter() - t1:.0f} s",
              flush=True)
    seconds = time.perf_counter() - t0
    label = device_name(device)
    config = {
        "name": name,
        "model": source.describe(),
        "data": {"dataset": spec.dataset, "source": test.source,
                 "description": test.description, "test_fingerprint": test.fingerprint,
                 "test_images": test.total, "n": len(test.y),
                 "subset": "class-balanced (evaluation.predict.test_indices)"},
        "attack": {"attacks": list(spec.attacks), "norm": spec.norm, "eps": list(spec.eps),
                   "steps": spec.steps,
                   "step_size": spec.step_size, "restarts": spec.restarts,
                   "queries": spec.queries, "seed": spec.seed, "batch": spec.batch,
                   "precision": spec.precision, "library": "torchattacks "
                   + torchattacks.__version__},
        "calibration": {"ece_bins": ECE_BINS, "ece_binning": "equal-width confidence bins",
                        "resamples": spec.resamples, "confidence": CONFIDENCE,
                        "interval": "scipy.stats.bootstrap percentile, over test images only",
                        "bootstrap_seed": 0},
        "corruptions": ({"corruptions": list(spec.corruptions),
                         "severities": list(spec.severities), "seed": spec.corruption_seed,
                         "constants": spec.constants} if spec.corruptions else None),
        "seed": spec.seed,
        "backends": backends,
        "environment": {**environment(device), "torchattacks": torchattacks.__version__},
    }
    rows = attack_rows(result, name, spec.dataset, label, test.source, test.fingerprint)
    bench = robustbench_json(result, name, spec.dataset)
    if corruption_rows is not None:
        corruption_rows = corruption_rows.assign(device=label, data=test.source,
                                                 test_fingerprint=test.fingerprint)
    write_folder(out, config, rows, result, bench, summary_json(result, seconds),
                 corruption_rows)
    return result, bench, corruption_rows


def corruption_table(model: torch.nn.Module, test, spec: EvaluateSpec, name: str,
                     device: torch.device) -> pd.DataFrame:
    """The model under the common corruptions, in trained runs' corruptions.csv schema
    (evaluation/corruption_runs.py COLUMNS) with the training fields of an outside model
    (method "external", seed -1, checkpoint "given"), so that a report reads it beside them."""
    import datetime as _dt

    from . import corruptions as C
    from .corruption_runs import COLUMNS

    def progress(what: str, i: int) -> None:
        print(f"robustmix.evaluate: corruption {what}", flush=True)

    t = C.corruption_accuracy(model, test.uint8, test.y.numpy(), spec.corruptions,
                              spec.severities, seed=spec.corruption_seed,
                              constants=spec.constants, clean=True, precision=spec.precision,
                              progress=progress)
    meta = {"run": name, "dataset": spec.dataset, "noise": "none", "ratio": 0.0,
            "method": "external", "alpha": 0.0, "dropout": 0.0, "seed": -1,
            "profile": "external", "checkpoint": "given", "precision": spec.precision,
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "device": "", "data": "", "test_fingerprint": ""}
    return t.rename(columns={"seed": "corruption_seed"}).assign(**meta)[COLUMNS]
