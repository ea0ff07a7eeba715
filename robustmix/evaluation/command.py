"""What `python -m robustmix.evaluate` does, from its options: load and check everything, run
robustmix.evaluate (the Python API), write the folder. Every check comes before the first
write, so that bad input leaves nothing behind."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..attacks.registry import (
    DEFAULT_ATTACKS,
    DEFAULT_QUERIES,
    DEFAULT_RESTARTS,
    DEFAULT_SEED,
    DEFAULT_STEPS,
)
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
    eps: list[float] = field(default_factory=lambda: [0.0, 1.0, 2.0, 4.0, 8.0, 16.0])  # /255
    norm: str = "linf"  # or l2: ε and step_size then in plain units (attacks/defaults.py)
    steps: int = DEFAULT_STEPS
    step_size: float | None = None  # in ε's units; None = each attack's rule
    restarts: int = DEFAULT_RESTARTS
    queries: int = DEFAULT_QUERIES
    seed: int = DEFAULT_SEED
    batch: int = 500
    device: str = "auto"
    precision: str = "fp32"
    resamples: int = RESAMPLES
    name: str | None = None  # the model's name in the tables; None = the --out folder's name
    force: bool = False


def _place(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    from .device import place_model

    if isinstance(model, torch.jit.ScriptModule):  # takes no hooks: moved as it is
        return model.to(device)
    return place_model(model, device)


def run_evaluation(spec: EvaluateSpec) -> tuple[Evaluation, dict]:
    """Evaluate, write spec.out, and return the Evaluation and the robustbench.json dict."""
    import torchattacks

    from ..runs.provenance import device_name, environment
    from .device import configure_backends, resolve_device

    out = Path(spec.out)
    check_out(out, spec.force)  # first: no work for a folder that would be refused
    device = resolve_device(spec.device)
    backends = configure_backends(device)
    test = load_test_images(spec.dataset, spec.data, spec.n)
    source = ModelSource(spec.factory, spec.weights, spec.torchscript)
    model = load_external_model(source, test.num_classes, test.channels)
    what = (f"TorchScript model {spec.torchscript}" if spec.torchscript is not None
            else f"model of factory {spec.factory}")
    check_takes_images(model, test.x, test.num_classes, what)
    model = _place(model, device)
    name = spec.name or out.resolve().name
    t0 = time.perf_counter()
    result = evaluate(model, test.x, test.y, attacks=spec.attacks, eps=spec.eps,
                      norm=spec.norm, steps=spec.steps, step_size=spec.step_size, restarts=spec.restarts,
                      queries=spec.queries, seed=spec.seed, precision=spec.precision,
                      batch=spec.batch, name=name, resamples=spec.resamples)
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
        "seed": spec.seed,
        "backends": backends,
        "environment": {**environment(device), "torchattacks": torchattacks.__version__},
    }
    rows = attack_rows(result, name, spec.dataset, label, test.source, test.fingerprint)
    bench = robustbench_json(result, name, spec.dataset)
    write_folder(out, config, rows, result, bench, summary_json(result, seconds))
    return result, bench
