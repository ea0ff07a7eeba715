"""`python -m robustmix.study experiments/cpu.toml`: a whole study from one TOML file.

Trains every run that is missing, then runs every missing attack, then writes the report. Every
stage skips what is already on disk, so a killed study continues where it stopped.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .cli import Parser, entry
from .config import PROFILES, TrainConfig, make_config
from .data import DATASETS
from .errors import UsageError
from .labelnoise import NOISE_TYPES
from .mixup import METHODS

# The schema: every key a study file may hold, with its type. Anything else is rejected.
SCHEMA: dict[str, dict[str, type | tuple]] = {
    "": {"name": str, "description": str, "out": str, "report": str, "data": dict,
         "train": dict, "methods": dict, "attack": dict},
    "data": {"dataset": str, "path": str},
    "train": {"profile": str, "noise": str, "ratios": list, "seeds": list, "noise_seed": int,
              "epochs": int, "width": int, "train_subset": int, "precision": str, "device": str,
              "smoothing": float, "k": int},
    "method": {"alpha": list, "dropout": list},
    "attack": {"attacks": list, "eps": list, "steps": int, "step_size": float, "n": int,
               "checkpoint": str, "batch": int, "source": dict},
    "attack.source": {"ratio": float, "method": str, "seed": int, "alpha": float, "dropout": float},
}


@dataclass
class Study:
    path: Path
    name: str
    out: Path
    report: Path
    dataset: str
    data: Path | None
    device: str
    configs: list[TrainConfig]
    attack: dict | None = None
    source: TrainConfig | None = None
    description: str = ""


def _check_keys(table: dict, section: str, prefix: str) -> None:
    """Reject unknown keys and wrong types; the message names the key as the file spells it."""
    schema = SCHEMA[section]
    for key, value in table.items():
        full = f"{prefix}.{key}" if prefix else key
        if key not in schema:
            raise UsageError(f"unknown key '{full}' (allowed: {', '.join(schema)})")
        want = schema[key]
        ok = isinstance(value, want) and not (want is int and isinstance(value, bool))
        if want is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok:
            raise UsageError(f"key '{full}' must be a {want.__name__}, got {type(value).__name__} {value!r}")


def _numbers(value: list, key: str) -> list[float]:
    if not value or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise UsageError(f"key '{key}' must be a non-empty list of numbers, got {value!r}")
    return [float(v) for v in value]


def _ints(value: list, key: str) -> list[int]:
    if not value or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise UsageError(f"key '{key}' must be a non-empty list of integers, got {value!r}")
    return list(value)


def load_study(path: str | Path) -> Study:
    """Parse and validate a study file completely before any work starts."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"study file {path} does not exist") from None
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise UsageError(f"cannot parse study file {path}: {e}") from None
    try:
        return _build(path, doc)
    except UsageError as e:
        raise UsageError(f"{path}: {e}") from None


def _build(path: Path, doc: dict) -> Study:
    _check_keys(doc, "", "")
    data, train, attack = doc.get("data", {}), doc.get("train", {}), doc.get("attack")
    _check_keys(data, "data", "data")
    _check_keys(train, "train", "train")
    dataset = data.get("dataset", "cifar10")
    if dataset not in DATASETS:
        raise UsageError(f"key 'data.dataset' must be one of {', '.join(DATASETS)}, got {dataset!r}")
    profile = train.get("profile", "quick")
    if profile not in PROFILES:
        raise UsageError(f"key 'train.profile' must be one of {', '.join(PROFILES)}, got {profile!r}")
    noise = train.get("noise", "sym")
    if noise not in NOISE_TYPES:
        raise UsageError(f"key 'train.noise' must be one of {', '.join(NOISE_TYPES)}, got {noise!r}")
    ratios = _numbers(train.get("ratios", [0.5]), "train.ratios")
    for r in ratios:
        if not 0 <= r <= 1:
            raise UsageError(f"key 'train.ratios' holds {r}, outside [0, 1]")
    seeds = _ints(train.get("seeds", [0]), "train.seeds")
    precision = train.get("precision", "auto")
    if precision not in ("auto", "fp32", "bf16"):
        raise UsageError(f"key 'train.precision' must be auto, fp32 or bf16, got {precision!r}")
    methods = doc.get("methods")
    if not methods:
        raise UsageError("the study names no methods: add [methods.erm], [methods.mixup], ...")
    for name, settings in methods.items():
        if name not in METHODS:
            raise UsageError(f"unknown method 'methods.{name}' (choose from {', '.join(METHODS)})")
        if not isinstance(settings, dict):
            raise UsageError(f"key 'methods.{name}' must be a table")
        _check_keys(settings, "method", f"methods.{name}")

    from .train import resolve_device, resolve_precision

    device = train.get("device", "auto")
    precision = resolve_precision(precision, resolve_device(device)) if precision == "auto" else precision
    configs = []
    for ratio in ratios:
        for name, settings in methods.items():
            alphas = _numbers(settings["alpha"], f"methods.{name}.alpha") if "alpha" in settings else [None]
            drops = _numbers(settings["dropout"], f"methods.{name}.dropout") if "dropout" in settings else [None]
            for alpha in alphas:
                for p in drops:
                    for seed in seeds:
                        try:
                            cfg = make_config(
                                method=name, ratio=ratio, profile=profile, alpha=alpha, dropout=p,
                                epochs=train.get("epochs"), dataset=dataset, noise=noise,
                                noise_seed=train.get("noise_seed", 0), seed=seed, precision=precision,
                                width=train.get("width"), smoothing=train.get("smoothing"),
                                knn_k=train.get("k"))
                            if "train_subset" in train:
                                cfg.train_subset = train["train_subset"] or None
                                cfg.validate()
                        except UsageError as e:
                            raise UsageError(f"methods.{name}: {e}") from None
                        if cfg.run_name not in {c.run_name for c in configs}:
                            configs.append(cfg)
    source_cfg = None
    if attack is not None:
        _check_keys(attack, "attack", "attack")
        for a in attack.get("attacks", ["fgsm", "ifgsm"]):
            if a not in ("fgsm", "ifgsm"):
                raise UsageError(f"key 'attack.attacks' holds unknown attack {a!r} (fgsm, ifgsm)")
        for e in _numbers(attack.get("eps", [0, 1, 2, 4, 8, 16]), "attack.eps"):
            if not 0 <= e <= 255:
                raise UsageError(f"key 'attack.eps' holds {e}, outside [0, 255] (/255 units)")
        if attack.get("checkpoint", "last") not in ("last", "best"):
            raise UsageError("key 'attack.checkpoint' must be last or best")
        if "source" in attack:
            src = attack["source"]
            _check_keys(src, "attack.source", "attack.source")
            matches = [c for c in configs
                       if abs(c.ratio - src.get("ratio", 0.0)) < 1e-9 and c.method == src.get("method", "erm")
                       and c.seed == src.get("seed", seeds[0])
                       and ("alpha" not in src or c.alpha == src["alpha"])
                       and ("dropout" not in src or c.dropout == src["dropout"])]
            if not matches:
                raise UsageError(f"key 'attack.source' = {src} names no run of this study")
            source_cfg = matches[0]
    name = doc.get("name", path.stem)
    return Study(
        path=path, name=name, out=Path(doc.get("out", f"runs/{name}")),
        report=Path(doc.get("report", f"reports/{name}")), dataset=dataset,
        data=Path(data["path"]) if "path" in data else None, device=device, configs=configs,
        attack=attack, source=source_cfg, description=doc.get("description", ""))


def build_parser() -> Parser:
    p = Parser(prog="python -m robustmix.study",
               description="Run a whole study from a TOML file: train missing runs, run missing "
                           "attacks, write the report. Resumable: rerun after a kill to continue.")
    p.add_argument("study", type=Path, help="study file, e.g. experiments/cpu.toml")
    p.add_argument("--check", action="store_true", help="validate the file and list its runs, then stop")
    p.add_argument("--skip-attacks", action="store_true", help="train only (and report)")
    p.add_argument("--skip-report", action="store_true", help="do not write the report")
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress bars")
    return p


def _fmt(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    study = load_study(args.study)
    from .data import load_dataset
    from .noise import estimate_seconds
    from .runs import check_writable, is_finished, plan_run, start_run
    from .train import resolve_device, train_run

    device = resolve_device(study.device)
    check_writable(study.out)
    plans = [(cfg, *plan_run(study.out, cfg, force=False)) for cfg in study.configs]
    todo = [(c, r, a) for c, r, a in plans if a != "done"]
    print(f"study {study.name}: {len(plans)} runs ({len(plans) - len(todo)} finished), "
          f"profile {study.configs[0].profile}, device {device}, precision "
          f"{study.configs[0].precision}; estimated training {_fmt(estimate_seconds([c for c, _, _ in todo], device))}",
          flush=True)
    if args.check:
        for _, run, action in plans:
            print(f"  {action:>6}  {run}")
        return 0
    t0 = time.perf_counter()
    if todo:
        ds = load_dataset(study.dataset, study.data)
        data_info = {"source": str(Path(ds.source).resolve()), "description": ds.description}
        done_time = 0.0
        for i, (cfg, run, action) in enumerate(todo):
            left = estimate_seconds([c for c, _, _ in todo[i:]], device)
            if i:  # correct the estimate by how fast the finished runs actually went
                left *= done_time / estimate_seconds([c for c, _, _ in todo[:i]], device)
            print(f"[{i + 1}/{len(todo)} to train] {run.name} ({action}); elapsed "
                  f"{_fmt(time.perf_counter() - t0)}, training left ~{_fmt(left)}", flush=True)
            t_run = time.perf_counter()
            start_run(run, cfg, device, fresh=action == "new", data=data_info)
            s = train_run(cfg, ds, run, device, show_progress=not args.quiet)
            done_time += time.perf_counter() - t_run
            print(f"    best error {100 * s['best_test_error']:.1f}%, last "
                  f"{100 * s['last_test_error']:.1f}%", flush=True)
    runs = [run for _, run, _ in plans if is_finished(run)]
    if study.attack is not None and not args.skip_attacks:
        from . import attack as attack_cli

        a = study.attack
        argv_attack = [str(r) for r in runs]
        argv_attack += ["--attacks", ",".join(a.get("attacks", ["fgsm", "ifgsm"])),
                        "--eps", ",".join(f"{float(e):g}" for e in a.get("eps", [0, 1, 2, 4, 8, 16])),
                        "--steps", str(a.get("steps", 10)), "--checkpoint", a.get("checkpoint", "last"),
                        "--batch", str(a.get("batch", 500)), "--device", study.device]
        if "step_size" in a:
            argv_attack += ["--step-size", f"{a['step_size']:g}"]
        if "n" in a:
            argv_attack += ["--n", str(a["n"])]
        if study.source is not None:
            argv_attack += ["--source", str(study.out / study.source.run_name)]
        if study.data is not None:
            argv_attack += ["--data", str(study.data)]
        if args.quiet:
            argv_attack.append("--quiet")
        print(f"attacks: {len(runs)} runs, elapsed {_fmt(time.perf_counter() - t0)}", flush=True)
        rc = attack_cli.main(argv_attack)
        if rc:
            return rc
    if not args.skip_report:
        from . import report

        argv_report = [str(r) for r in runs] + ["--out", str(study.report),
                                                "--title", f"robustmix study '{study.name}'"]
        notes = study.path.with_suffix(".notes.md")
        if notes.exists():
            argv_report += ["--notes", str(notes)]
        rc = report.main(argv_report)
        if rc:
            return rc
    print(f"study {study.name} complete in {_fmt(time.perf_counter() - t0)}; "
          f"runs in {study.out}, report in {study.report}")
    return 0


if __name__ == "__main__":
    entry(main)
