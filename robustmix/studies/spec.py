"""A study file: parsed and validated whole, every key, before any work starts.

The result is a Study: the training configs of every run, the attack settings as an
AttackSpec-ready dict and the black-box source run. Nothing here imports torch, so --check
answers at once.
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

from ..attacks.registry import ATTACKS, DEFAULT_ATTACKS
from ..data.classes import CIFAR10_CLASSES, DATASETS, FASHION_CLASSES
from ..data.labelnoise import NOISE_TYPES, TAKES_RATIO, NoiseSpec, resolve_file
from ..errors import UsageError
from ..runs.checkpoint_names import CLI_CHOICES
from ..training.config import PROFILES, TrainConfig, make_config
from ..training.plugins import resolve_method

# The schema: every key a study file may hold, with its type. Anything else is rejected.
SCHEMA: dict[str, dict[str, type | tuple]] = {
    "": {"name": str, "description": str, "out": str, "report": str, "keep_runs": bool,
         "data": dict,
         "train": dict, "methods": dict, "attack": dict, "executor": dict},
    "data": {"dataset": str, "path": str},
    "train": {"profile": str, "noise": (str, list), "ratios": list, "seeds": list, "noise_seed": int,
              "noise_seeds": list, "val_n": int, "hparams": str,
              "epochs": int, "width": int, "train_subset": int, "precision": str, "device": str,
              "smoothing": float, "k": int, "model": str, "models": list, "normalize": bool},
    # [methods.NAME]: NAME is a built-in method, an entry point of robustmix.methods or an
    # import path ("package.module:Class"); params holds the method's own parameters (a list
    # value trains one run per value).
    "method": {"alpha": list, "dropout": list, "params": dict},
    # an entry of train.noise given as a table (a plain string names a source with defaults)
    "noise": {"source": str, "labels": str, "file": str, "ratios": list},
    "attack": {"attacks": list, "eps": list, "steps": int, "step_size": float, "n": int,
               "checkpoint": str, "batch": int, "source": dict, "sources": dict,
               "restarts": int, "queries": int, "seed": int, "precision": str,
               "allow_twin": bool, "eps_of": dict},
    "attack.source": {"ratio": float, "method": str, "seed": int, "alpha": float, "dropout": float},
    # [attack.sources]: noise ratio (a string key, e.g. "0.5") -> the run its black-box
    # examples are crafted on, trained at that ratio (by the study, if it is not one of its runs)
    "attack.sources": {"method": str, "seed": int, "alpha": float, "dropout": float,
                       "noise_seed": int},
    # what each Ray task asks for (--executor ray; the local executor ignores it)
    "executor": {"gpus_per_run": float, "cpus_per_run": float, "max_retries": int},
}
ATTACK_PRECISIONS = ("fp32", "bf16", "run")


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
    attack: dict | None = None
    source: TrainConfig | None = None
    description: str = ""
    missing_files: list[str] = field(default_factory=list)  # noise files not found here
    precision: str = "auto"  # as asked; set_precision() resolves "auto" on the chosen device
    resources: Resources = field(default_factory=Resources)
    keep_runs: bool = False  # copy the runs' results beside the report (reporting/evidence.py)
    hparams: str = "auto"  # train.hparams: the α and p set of the runs and of source-only runs

    def set_precision(self, precision: str) -> None:
        for cfg in self.configs:
            cfg.precision = precision


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
            kind = " or ".join(t.__name__ for t in want) if isinstance(want, tuple) else want.__name__
            raise UsageError(f"key '{full}' must be a {kind}, got {type(value).__name__} {value!r}")


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
    ratios = _numbers(train.get("ratios", [0.5]), "train.ratios")
    for r in ratios:
        if not 0 <= r <= 1:
            raise UsageError(f"key 'train.ratios' holds {r}, outside [0, 1]")
    noises, missing = _noise_settings(train, ratios, dataset)
    seeds = _ints(train.get("seeds", [0]), "train.seeds")
    if "noise_seed" in train and "noise_seeds" in train:
        raise UsageError("give 'train.noise_seed' or 'train.noise_seeds', not both")
    noise_seeds = (_ints(train["noise_seeds"], "train.noise_seeds") if "noise_seeds" in train
                   else [train.get("noise_seed", 0)])
    for name, values in (("train.seeds", seeds), ("train.noise_seeds", noise_seeds)):
        if any(v < 0 for v in values):
            raise UsageError(f"key '{name}' holds a negative seed: {values}")
    if train.get("val_n", 0) < 0:
        raise UsageError(f"key 'train.val_n' must be >= 0, got {train['val_n']}")
    precision = train.get("precision", "auto")
    if precision not in ("auto", "fp32", "bf16"):
        raise UsageError(f"key 'train.precision' must be auto, fp32 or bf16, got {precision!r}")
    methods = doc.get("methods")
    if not methods:
        raise UsageError("the study names no methods: add [methods.erm], [methods.mixup], ...")
    specs = {}
    for name, settings in methods.items():
        if not isinstance(settings, dict):
            raise UsageError(f"key 'methods.{name}' must be a table")
        _check_keys(settings, "method", f"methods.{name}")
        try:
            specs[name] = resolve_method(name)
        except UsageError as e:
            raise UsageError(f"methods.{name}: {e}") from None
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
    configs = []
    for spec, ratio in noises:
        for name, settings in methods.items():
            alphas = _numbers(settings["alpha"], f"methods.{name}.alpha") if "alpha" in settings else [None]
            drops = _numbers(settings["dropout"], f"methods.{name}.dropout") if "dropout" in settings else [None]
            grid = itertools.product(models, alphas, drops, _param_sets(settings.get("params", {}), name),
                                     noise_seeds, seeds)
            for model, alpha, p, params, noise_seed, seed in grid:
                try:
                    cfg = make_config(
                        method=specs[name].name, method_params=params, model=model,
                        normalize=train.get("normalize"),
                        ratio=ratio, profile=profile, alpha=alpha, dropout=p,
                        epochs=train.get("epochs"), dataset=dataset, noise=spec.source,
                        noise_labels=spec.labels, noise_file=spec.file,
                        noise_sha256=spec.sha256,
                        noise_seed=noise_seed, seed=seed, val_n=train.get("val_n"),
                        hparams=train.get("hparams", "auto"),
                        precision="fp32" if precision == "auto" else precision,
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
        names = attack.get("attacks", list(DEFAULT_ATTACKS))
        if not names or not all(isinstance(a, str) for a in names):
            raise UsageError(f"key 'attack.attacks' must be a non-empty list of names, got {names!r}")
        for a in names:
            if a not in ATTACKS:
                raise UsageError(f"key 'attack.attacks' holds unknown attack {a!r} "
                                 f"({', '.join(ATTACKS)})")
        for e in _numbers(attack.get("eps", [0, 1, 2, 4, 8, 16]), "attack.eps"):
            if not 0 <= e <= 255:
                raise UsageError(f"key 'attack.eps' holds {e}, outside [0, 255] (/255 units)")
        eps_of = attack.get("eps_of", {})
        if not isinstance(eps_of, dict):
            raise UsageError("key 'attack.eps_of' must be a table: attack name -> list of ε")
        for a, values in eps_of.items():
            if a not in names:
                raise UsageError(f"key 'attack.eps_of' names {a!r}, which is not in "
                                 f"'attack.attacks' ({', '.join(names)})")
            if not isinstance(values, list) or not values or not all(
                    0 <= e <= 255 for e in _numbers(values, f"attack.eps_of.{a}")):
                raise UsageError(f"key 'attack.eps_of.{a}' must be a non-empty list of ε in "
                                 f"[0, 255] (/255 units), got {values!r}")
        if attack.get("checkpoint", "last") not in CLI_CHOICES:
            raise UsageError(f"key 'attack.checkpoint' must be {' or '.join(CLI_CHOICES)}")
        if attack.get("steps", 1) < 1:
            raise UsageError(f"key 'attack.steps' must be at least 1, got {attack['steps']}")
        if "step_size" in attack and not 0 < attack["step_size"] <= 255:
            raise UsageError(f"key 'attack.step_size' must be in (0, 255] (/255 units), "
                             f"got {attack['step_size']}")
        if attack.get("batch", 1) < 1:
            raise UsageError(f"key 'attack.batch' must be at least 1, got {attack['batch']}")
        if attack.get("n", 0) < 0:
            raise UsageError(f"key 'attack.n' must be 0 (all) or positive, got {attack['n']}")
        for key in ("restarts", "queries"):
            if attack.get(key, 1) < 1:
                raise UsageError(f"key 'attack.{key}' must be at least 1, got {attack[key]}")
        if attack.get("seed", 0) < 0:
            raise UsageError(f"key 'attack.seed' must be 0 or positive, got {attack['seed']}")
        if attack.get("precision", "fp32") not in ATTACK_PRECISIONS:
            raise UsageError(f"key 'attack.precision' must be {', '.join(ATTACK_PRECISIONS)}, "
                             f"got {attack['precision']!r}")
        if "source" in attack and "sources" in attack:
            raise UsageError("give 'attack.source' (one source for every ratio) or "
                             "'attack.sources' (one per ratio), not both")
        if "source" in attack:
            src = attack["source"]
            _check_keys(src, "attack.source", "attack.source")
            try:
                src_method = resolve_method(src.get("method", "erm")).name
            except UsageError:
                raise UsageError(f"key 'attack.source.method' names unknown method {src['method']!r}") from None
            matches = [c for c in configs
                       if abs(c.ratio - src.get("ratio", 0.0)) < 1e-9 and c.method == src_method
                       and c.seed == src.get("seed", seeds[0])
                       and ("alpha" not in src or c.alpha == src["alpha"])
                       and ("dropout" not in src or c.dropout == src["dropout"])]
            if not matches:
                raise UsageError(f"key 'attack.source' = {src} names no run of this study")
            source_cfg = matches[0]
        if "sources" in attack and (len({(c.noise, c.noise_labels, c.noise_file)
                                         for c in configs}) > 1
                                    or any(c.noise not in TAKES_RATIO for c in configs)):
            raise UsageError("key 'attack.sources' names a source per noise ratio: use it with "
                             "one noise source that takes a ratio, or 'attack.source' for all")
        if "sources" in attack:
            # validates; attack_sources() rebuilds them on demand
            _sources(attack, configs, train.get("hparams", "auto"))
    resources = _resources(doc.get("executor", {}))
    name = doc.get("name", path.stem)
    return Study(
        path=path, name=name, out=Path(doc.get("out", f"runs/{name}")),
        report=Path(doc.get("report", f"reports/{name}")), dataset=dataset,
        data=Path(data["path"]) if "path" in data else None, device=device, configs=configs,
        attack=attack, source=source_cfg, description=doc.get("description", ""),
        precision=precision, missing_files=missing, resources=resources,
        keep_runs=doc.get("keep_runs", False), hparams=train.get("hparams", "auto"))


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
        _check_keys(entry, "noise", where)
        source = entry.get("source")
        if source not in NOISE_TYPES:
            raise UsageError(f"key '{where}' names noise source {source!r}; choose from "
                             f"{', '.join(NOISE_TYPES)}")
        if source in TAKES_RATIO:
            mine = _numbers(entry["ratios"], f"{where}.ratios") if "ratios" in entry else ratios
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
    _check_keys(table, "executor", "executor")
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


def _sources(attack: dict, configs: list[TrainConfig], hparams: str) -> dict[float, TrainConfig]:
    """[attack.sources] as noise ratio -> the source's training config: the study's run of that
    ratio, method, seed (and α, p, noise seed if given), or a source-only run trained like the
    study's runs of that ratio, with their hyperparameter set (train.hparams). A source that
    shares its seed and method with a run of its ratio (a 'twin': same initialisation, batch
    order and crops) is refused unless allow_twin."""
    import dataclasses

    from ..training.methods import default_alpha, default_dropout, hparams_for
    from ..training.plugins import resolve_params

    out: dict[float, TrainConfig] = {}
    for key, src in attack["sources"].items():
        where = f"attack.sources.{key}"
        try:
            ratio = float(key)
        except ValueError:
            raise UsageError(f"key '{where}' must be a noise ratio such as \"0.5\"") from None
        if not isinstance(src, dict):
            raise UsageError(f"key '{where}' must be a table such as {{ method = \"erm\", seed = 1 }}")
        _check_keys(src, "attack.sources", where)
        at = [c for c in configs if abs(c.ratio - ratio) < 1e-9]
        if not at:
            raise UsageError(f"key '{where}': the study trains no run at noise ratio {key}")
        hp = hparams_for(at[0].profile, hparams)
        try:
            spec = resolve_method(src.get("method", "erm"))
        except UsageError:
            raise UsageError(f"key '{where}.method' names unknown method {src['method']!r}") from None
        method = spec.name
        if "seed" not in src:
            raise UsageError(f"key '{where}' needs a seed: the source should be trained with "
                             "another seed than the runs it attacks")
        if src["seed"] < 0 or src.get("noise_seed", 0) < 0:
            raise UsageError(f"key '{where}' holds a negative seed")
        cfg = dataclasses.replace(
            at[0], method=method, seed=src["seed"],
            alpha=float(src.get("alpha", default_alpha(method, at[0].ratio, hp))),
            dropout=float(src.get("dropout", default_dropout(method, at[0].ratio, hp))),
            noise_seed=src.get("noise_seed", at[0].noise_seed),
            method_params=resolve_params(spec, {}),
            method_path="" if spec.builtin else spec.factory)
        try:
            cfg.validate()
        except UsageError as e:
            raise UsageError(f"key '{where}': {e}") from None
        twins = [c for c in at if c.run_name != cfg.run_name and c.seed == cfg.seed
                 and c.method == cfg.method]
        if twins and not attack.get("allow_twin", False):
            raise UsageError(f"key '{where}': source {cfg.run_name} shares seed {cfg.seed} and "
                             f"method {method} with {twins[0].run_name}; give the source another "
                             "seed, or set attack.allow_twin = true")
        out[cfg.ratio] = cfg
    return out


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
    a = study.attack or {}
    return _sources(a, study.configs, study.hparams) if "sources" in a else {}


def source_only(study: Study) -> list[TrainConfig]:
    """Sources of [attack.sources] that are not runs of the study: trained for the attack stage."""
    names = {c.run_name for c in study.configs}
    return [c for c in attack_sources(study).values() if c.run_name not in names]


def attack_options(study: Study) -> dict:
    """The study's [attack] table as keyword arguments of attacks.runner.AttackSpec (with the
    single legacy 'source'; per-ratio sources come from attack_jobs)."""
    a = study.attack or {}
    opts = {"attacks": list(a.get("attacks", list(DEFAULT_ATTACKS))),
            "eps": [float(e) for e in a.get("eps", [0, 1, 2, 4, 8, 16])],
            "checkpoint": a.get("checkpoint", "last"), "batch": a.get("batch", 500),
            "device": study.device, "data": study.data}
    for key in ("steps", "n", "restarts", "queries", "seed", "precision"):
        if key in a:
            opts[key] = a[key]
    if "step_size" in a:
        opts["step_size"] = float(a["step_size"])
    if study.source is not None:
        opts["source"] = study.out / study.source.run_name
        # The single 'source' key keeps its earlier meaning, one source for every ratio, twins
        # (same seed and method at other ratios) included unless allow_twin = false.
        opts["allow_twin"] = a.get("allow_twin", True)
    else:
        opts["allow_twin"] = a.get("allow_twin", False)
    return opts


def eps_groups(study: Study) -> list[tuple[list[str], list[float]]]:
    """(attacks, ε) per attack command: the attacks of 'attack.eps_of' at their own ε (an
    expensive attack such as AutoAttack at the budgets that matter), the others at 'eps'."""
    a = study.attack or {}
    names = list(a.get("attacks", list(DEFAULT_ATTACKS)))
    eps = [float(e) for e in a.get("eps", [0, 1, 2, 4, 8, 16])]
    own = a.get("eps_of", {})
    rest = [n for n in names if n not in own]
    groups = [(rest, eps)] if rest else []
    return groups + [([n], [float(e) for e in own[n]]) for n in names if n in own]


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
