"""A study file: parsed and validated whole, every key, before any work starts.

The result is a Study: the training configs of every run (its [train] section, typed as a
TrainSection, times its methods), the [attack] section typed as an AttackSection
(studies/attack_section.py) with its black-box sources resolved, and the executor's resources.
Nothing here imports torch, so --check answers at once.
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from ..data.classes import CIFAR10_CLASSES, DATASETS, FASHION_CLASSES
from ..data.labelnoise import NOISE_TYPES, TAKES_RATIO, NoiseSpec, resolve_file
from ..errors import UsageError
from ..training.config import PROFILES, TrainConfig, config_grid
from ..training.plugins import resolve_method
from .attack_section import ATTACK_PRECISIONS, AttackSection, parse_attack
from .attack_section import attack_options as _options
from .schema import SCHEMA, check_keys, ints, numbers

__all__ = ["ATTACK_PRECISIONS", "SCHEMA", "AttackSection", "Resources", "Study", "TrainSection",
           "attack_jobs", "attack_options", "attack_sources", "eps_groups", "load_study",
           "source_only"]


@dataclass
class Resources:
    """[executor]: what one training run or attack task of --executor ray asks the cluster for."""

    gpus_per_run: float | None = None  # None: 1 where the cluster has GPUs and device is not cpu
    cpus_per_run: float = 1.0  # also each task's thread count (at least 1)
    max_retries: int = 3  # times a task is run again after its worker died or it raised


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
    attack: AttackSection | None = None
    description: str = ""
    missing_files: list[str] = field(default_factory=list)  # noise files not found here
    precision: str = "auto"  # as asked; set_precision() resolves "auto" on the chosen device
    resources: Resources = field(default_factory=Resources)
    keep_runs: bool = False  # copy the runs' results beside the report (reporting/evidence.py)
    hparams: str = "auto"  # train.hparams: the α and p set of the runs and of source-only runs

    @property
    def source(self) -> TrainConfig | None:
        """The legacy single black-box source (attack.source), or None."""
        return self.attack.source if self.attack is not None else None

    def set_precision(self, precision: str) -> None:
        """Resolve the precision of every run the study trains: its runs and its black-box
        sources alike, so a source-only run trains in the precision its targets do."""
        sources = self.attack.source_of().values() if self.attack is not None else ()
        for cfg in [*self.configs, *sources, *([self.source] if self.source else [])]:
            cfg.precision = precision


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


@dataclass(frozen=True)
class TrainSection:
    """[train] checked whole: the axes of the run grid and the settings every run shares."""

    profile: str
    noises: tuple[tuple[NoiseSpec, float], ...]  # (source, ratio) per noise level
    missing_files: tuple[str, ...]  # noise files not found here, read when the study runs
    seeds: tuple[int, ...]
    noise_seeds: tuple[int, ...]
    models: tuple[str | None, ...]  # None: the profile's network
    precision: str  # auto, fp32 or bf16, as asked
    device: str
    hparams: str
    common: dict  # make_config keywords every run shares (epochs, val_n, width, ...)


def _build(path: Path, doc: dict) -> Study:
    check_keys(doc, "", "")
    data = doc.get("data", {})
    check_keys(data, "data", "data")
    dataset = data.get("dataset", "cifar10")
    if dataset not in DATASETS:
        raise UsageError(f"key 'data.dataset' must be one of {', '.join(DATASETS)}, got {dataset!r}")
    train = _train_section(doc.get("train", {}), dataset)
    configs = _configs(train, _methods(doc.get("methods")), dataset)
    attack = (parse_attack(doc["attack"], configs, train.seeds, train.hparams)
              if "attack" in doc else None)
    name = doc.get("name", path.stem)
    return Study(
        path=path, name=name, out=Path(doc.get("out", f"runs/{name}")),
        report=Path(doc.get("report", f"reports/{name}")), dataset=dataset,
        data=Path(data["path"]) if "path" in data else None, device=train.device,
        configs=configs, attack=attack, description=doc.get("description", ""),
        precision=train.precision, missing_files=list(train.missing_files),
        resources=_resources(doc.get("executor", {})), keep_runs=doc.get("keep_runs", False),
        hparams=train.hparams)


def _train_section(train: dict, dataset: str) -> TrainSection:
    check_keys(train, "train", "train")
    profile = train.get("profile", "quick")
    if profile not in PROFILES:
        raise UsageError(f"key 'train.profile' must be one of {', '.join(PROFILES)}, got {profile!r}")
    ratios = numbers(train.get("ratios", [0.5]), "train.ratios")
    for r in ratios:
        if not 0 <= r <= 1:
            raise UsageError(f"key 'train.ratios' holds {r}, outside [0, 1]")
    noises, missing = _noise_settings(train, ratios, dataset)
    seeds = ints(train.get("seeds", [0]), "train.seeds")
    if "noise_seed" in train and "noise_seeds" in train:
        raise UsageError("give 'train.noise_seed' or 'train.noise_seeds', not both")
    noise_seeds = (ints(train["noise_seeds"], "train.noise_seeds") if "noise_seeds" in train
                   else [train.get("noise_seed", 0)])
    for name, values in (("train.seeds", seeds), ("train.noise_seeds", noise_seeds)):
        if any(v < 0 for v in values):
            raise UsageError(f"key '{name}' holds a negative seed: {values}")
    if train.get("val_n", 0) < 0:
        raise UsageError(f"key 'train.val_n' must be >= 0, got {train['val_n']}")
    precision = train.get("precision", "auto")
    if precision not in ("auto", "fp32", "bf16"):
        raise UsageError(f"key 'train.precision' must be auto, fp32 or bf16, got {precision!r}")
    if "model" in train and "models" in train:
        raise UsageError("give 'train.model' or 'train.models', not both")
    models = train["models"] if "models" in train else [train.get("model")]
    if not models or not all(m is None or isinstance(m, str) for m in models):
        raise UsageError(f"key 'train.models' must be a non-empty list of model names, got {models!r}")
    device = train.get("device", "auto")
    # Exactly the names resolve_device takes: --check on a machine without a GPU cannot resolve
    # a cuda device, so a misspelt one ("cudaa", "cuda:x") must be caught here, not on the GPU.
    index = device[5:] if isinstance(device, str) and device.startswith("cuda:") else ""
    if not isinstance(device, str) or not (device in ("auto", "cpu", "cuda")
                                           or (index.isascii() and index.isdigit())):
        raise UsageError(f"key 'train.device' must be auto, cpu, cuda or cuda:N, got {device!r}")
    hparams = train.get("hparams", "auto")
    common = dict(profile=profile, normalize=train.get("normalize"), epochs=train.get("epochs"),
                  dataset=dataset, val_n=train.get("val_n"), hparams=hparams,
                  precision="fp32" if precision == "auto" else precision,
                  width=train.get("width"), smoothing=train.get("smoothing"), knn_k=train.get("k"))
    if "train_subset" in train:
        common["train_subset"] = train["train_subset"]
    return TrainSection(profile=profile, noises=tuple(noises), missing_files=tuple(missing),
                        seeds=tuple(seeds), noise_seeds=tuple(noise_seeds), models=tuple(models),
                        precision=precision, device=device, hparams=hparams, common=common)


def _methods(methods: object) -> dict[str, tuple[str, dict]]:
    """[methods.NAME] tables: name -> (the method's registered name, its checked settings)."""
    if not methods:
        raise UsageError("the study names no methods: add [methods.erm], [methods.mixup], ...")
    out = {}
    for name, settings in methods.items():
        if not isinstance(settings, dict):
            raise UsageError(f"key 'methods.{name}' must be a table")
        check_keys(settings, "method", f"methods.{name}")
        try:
            out[name] = (resolve_method(name).name, settings)
        except UsageError as e:
            raise UsageError(f"methods.{name}: {e}") from None
    return out


def _configs(train: TrainSection, methods: dict[str, tuple[str, dict]], dataset: str
             ) -> list[TrainConfig]:
    """Every run of the study: per noise level and method, models x α x p x params x noise
    seeds x seeds, in that order; a run named twice is kept once."""
    configs: list[TrainConfig] = []
    for spec, ratio in train.noises:
        noise = {"ratio": ratio, "noise": spec.source, "noise_labels": spec.labels,
                 "noise_file": spec.file, "noise_sha256": spec.sha256}
        for name, (method, settings) in methods.items():
            alphas = (numbers(settings["alpha"], f"methods.{name}.alpha")
                      if "alpha" in settings else [None])
            drops = (numbers(settings["dropout"], f"methods.{name}.dropout")
                     if "dropout" in settings else [None])
            try:
                configs += config_grid(
                    {**train.common, **noise, "method": method},
                    [{"model": m} for m in train.models], [{"alpha": a} for a in alphas],
                    [{"dropout": p} for p in drops],
                    [{"method_params": ps} for ps in _param_sets(settings.get("params", {}), name)],
                    [{"noise_seed": s} for s in train.noise_seeds],
                    [{"seed": s} for s in train.seeds])
            except UsageError as e:
                raise UsageError(f"methods.{name}: {e}") from None
    seen: set[str] = set()
    return [c for c in configs if not (c.run_name in seen or seen.add(c.run_name))]


def _noise_settings(train: dict, ratios: list[float], dataset: str
                    ) -> tuple[list[tuple[NoiseSpec, float]], list[str]]:
    """train.noise as (source, ratio) pairs, and the noise files not found here.

    train.noise is a source name, or a list of names and tables {source, labels, file, ratios}:
    sym, asym and idn take train.ratios (or the entry's own ratios); matrix and cifar10n take a
    file and no ratio. Files that exist are hashed (and a matrix checked) now; a CIFAR-10N
    file's content, and files that are missing here, are read when the study runs, before any
    run is written."""
    raw = train.get("noise", "sym")
    entries = [raw] if isinstance(raw, str) else raw
    if not entries:
        raise UsageError("key 'train.noise' is an empty list: name one or more noise sources")
    k = len(CIFAR10_CLASSES if dataset == "cifar10" else FASHION_CLASSES)
    out: list[tuple[NoiseSpec, float]] = []
    missing: list[str] = []
    for i, entry in enumerate(entries):
        where = "train.noise" if isinstance(raw, str) else f"train.noise[{i}]"
        if isinstance(entry, str):
            entry = {"source": entry}
        if not isinstance(entry, dict):
            raise UsageError(f"key '{where}' must be a source name or a table such as "
                             '{ source = "cifar10n", labels = "worst", file = "..." }')
        check_keys(entry, "noise", where)
        source = entry.get("source")
        if source not in NOISE_TYPES:
            raise UsageError(f"key '{where}' names noise source {source!r}; choose from "
                             f"{', '.join(NOISE_TYPES)}")
        if source in TAKES_RATIO:
            mine = numbers(entry["ratios"], f"{where}.ratios") if "ratios" in entry else ratios
        elif "ratios" in entry:
            raise UsageError(f"key '{where}.ratios': {source} noise takes no ratio (its rate "
                             "is measured)")
        else:
            mine = [0.0]
        spec = NoiseSpec(source, 0.0, entry.get("labels"), entry.get("file"))
        try:
            for r in mine:
                NoiseSpec(source, r, spec.labels, spec.file).check(dataset)
            if spec.file is not None:
                if Path(spec.file).expanduser().is_file():
                    spec = resolve_file(spec, k, read=source == "matrix")
                else:
                    missing.append(spec.file)
                    spec = NoiseSpec(source, 0.0, spec.labels,
                                     str(Path(spec.file).expanduser().absolute()))
        except UsageError as e:
            raise UsageError(f"key '{where}': {e}") from None
        out += [(NoiseSpec(source, r, spec.labels, spec.file, spec.sha256), r) for r in mine]
    if "ratios" in train and not any(s.source in TAKES_RATIO for s, _ in out):
        raise UsageError("key 'train.ratios': no noise source of this study takes a ratio "
                         "(matrix and cifar10n noise rates are measured)")
    return out, missing


def _resources(table: dict) -> Resources:
    check_keys(table, "executor", "executor")
    res = Resources(**{k: float(v) if k.endswith("_per_run") else v for k, v in table.items()})
    gpus, cpus = res.gpus_per_run, res.cpus_per_run
    # Ray shares a GPU between tasks only in fractions of one; more than one must be whole GPUs.
    if gpus is not None and (gpus < 0 or (gpus > 1 and not gpus.is_integer())):
        raise UsageError(f"key 'executor.gpus_per_run' must be a fraction of one GPU (0 to 1) or "
                         f"a whole number of GPUs, got {gpus:g}")
    if cpus <= 0:
        raise UsageError(f"key 'executor.cpus_per_run' must be positive, got {cpus:g}")
    if res.max_retries < 0:
        raise UsageError(f"key 'executor.max_retries' must be 0 or positive, got {res.max_retries}")
    return res


def _param_sets(params: dict, name: str) -> list[dict]:
    """A method's params table as one dict per run: a list value is one run per value."""
    keys = list(params)
    values = [v if isinstance(v, list) else [v] for v in params.values()]
    for k, v in zip(keys, values, strict=True):
        if not v:
            raise UsageError(f"key 'methods.{name}.params.{k}' is an empty list")
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values)]


def attack_sources(study: Study) -> dict[float, TrainConfig]:
    """The black-box source per noise ratio named by [attack.sources] ({} without it)."""
    return study.attack.source_of() if study.attack is not None else {}


def source_only(study: Study) -> list[TrainConfig]:
    """Sources of [attack.sources] that are not runs of the study: trained for the attack stage."""
    names = {c.run_name for c in study.configs}
    return [c for c in attack_sources(study).values() if c.run_name not in names]


def attack_options(study: Study) -> dict:
    """The study's [attack] section as keyword arguments of attacks.runner.AttackSpec (with the
    single legacy 'source'; per-ratio sources come from attack_jobs)."""
    return _options(study.attack or AttackSection(), study.out, study.device, study.data)


def eps_groups(study: Study) -> list[tuple[list[str], list[float]]]:
    """(attacks, ε) per attack command (AttackSection.eps_groups)."""
    return (study.attack or AttackSection()).eps_groups()


def attack_jobs(study: Study, runs: list[Path]) -> list[tuple[list[Path], dict]]:
    """(target runs, AttackSpec keyword arguments) per attack command the study runs: one for
    all runs, or with [attack.sources] one per noise ratio, each with its own source (ratios
    without a source get white-box rows only); each once per eps_groups entry."""
    return [(targets, {**opts, "attacks": names, "eps": eps})
            for targets, opts in _source_jobs(study, runs) for names, eps in eps_groups(study)]


def _source_jobs(study: Study, runs: list[Path]) -> list[tuple[list[Path], dict]]:
    opts = attack_options(study)
    sources = attack_sources(study)
    if not sources:
        return [(list(runs), opts)]
    ratio_of = {c.run_name: c.ratio for c in study.configs}
    jobs = []
    for ratio in dict.fromkeys(ratio_of[Path(r).name] for r in runs if Path(r).name in ratio_of):
        targets = [r for r in runs if ratio_of.get(Path(r).name) == ratio]
        src = sources.get(ratio)
        jobs.append((targets, {**opts, **({"source": study.out / src.run_name} if src else {})}))
    return jobs
