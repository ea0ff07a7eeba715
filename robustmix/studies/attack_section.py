"""A study's [attack] table, parsed once into a typed, frozen AttackSection.

Every value is checked here with the rules `python -m robustmix.attack` applies to its flags
(attacks/options.check_attack_values), defaults come from attacks/defaults.py, and the black-box
sources are resolved to training configs once; the local and Ray executors read the section,
never the raw table. Imports no torch, so `study --check` answers at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..attacks.defaults import (
    DEFAULT_BATCH,
    DEFAULT_NORM,
    DEFAULT_PRECISION,
    DEFAULT_QUERIES,
    DEFAULT_RESTARTS,
    DEFAULT_SEED,
    DEFAULT_STEPS,
    check_eps_values,
    default_eps,
)
from ..attacks.options import check_attack_values
from ..attacks.registry import DEFAULT_ATTACKS
from ..data.labelnoise import TAKES_RATIO
from ..errors import UsageError
from ..runs.checkpoint_names import CLI_CHOICES
from ..training.config import TrainConfig
from ..training.plugins import resolve_method
from .schema import check_keys, numbers

ATTACK_PRECISIONS = ("fp32", "bf16", "run")


def _key(name: str) -> str:
    return f"key 'attack.{name}'"


@dataclass(frozen=True)
class AttackSection:
    """What the study's attack stage computes, with every default filled in.

    `source` is the legacy single black-box source (one run of the study for every ratio);
    `sources` maps a noise ratio to its own source, a run of the study or one trained for the
    attack stage only (`source_only`)."""

    attacks: tuple[str, ...] = DEFAULT_ATTACKS
    # the threat model of every attack of the section; ε (eps, eps_of, step_size) is in its
    # units: /255 for linf, plain units of [0, 1] images for l2 (attacks/defaults.py)
    norm: str = DEFAULT_NORM
    eps: tuple[float, ...] = default_eps(DEFAULT_NORM)
    eps_of: tuple[tuple[str, tuple[float, ...]], ...] = ()  # attack -> its own ε
    checkpoint: str = "last"
    steps: int = DEFAULT_STEPS
    step_size: float | None = None  # in ε's units; None = each attack's own rule
    restarts: int = DEFAULT_RESTARTS
    queries: int = DEFAULT_QUERIES
    seed: int = DEFAULT_SEED
    n: int | None = None  # None = each run's own test_n; 0 = all
    batch: int = DEFAULT_BATCH
    precision: str = DEFAULT_PRECISION
    allow_twin: bool = False
    source: TrainConfig | None = None
    sources: tuple[tuple[float, TrainConfig], ...] = ()

    def source_of(self) -> dict[float, TrainConfig]:
        """[attack.sources] as noise ratio -> the source's training config ({} without it)."""
        return dict(self.sources)

    def eps_groups(self) -> list[tuple[list[str], list[float]]]:
        """(attacks, ε) per attack command: the attacks of eps_of at their own ε (an expensive
        attack such as AutoAttack at the budgets that matter), the others at eps."""
        own = dict(self.eps_of)
        rest = [n for n in self.attacks if n not in own]
        groups = [(rest, list(self.eps))] if rest else []
        return groups + [([n], list(own[n])) for n in self.attacks if n in own]


def parse_attack(table: dict, configs: Sequence[TrainConfig], seeds: Sequence[int],
                 hparams: str) -> AttackSection:
    """The [attack] table checked whole and typed; `configs` are the study's runs, `seeds` its
    train.seeds (the legacy source's default seed), `hparams` its train.hparams (the α and p
    set a source-only run is trained with, as its targets are)."""
    check_keys(table, "attack", "attack")
    names = table.get("attacks", list(DEFAULT_ATTACKS))
    if not names or not all(isinstance(a, str) for a in names):
        raise UsageError(f"{_key('attacks')} must be a non-empty list of names, got {names!r}")
    norm = table.get("norm", DEFAULT_NORM)
    eps = numbers(table.get("eps", list(default_eps(norm))), "attack.eps")
    step_size = float(table["step_size"]) if "step_size" in table else None
    settings = {k: table.get(k, d) for k, d in (
        ("steps", DEFAULT_STEPS), ("restarts", DEFAULT_RESTARTS), ("queries", DEFAULT_QUERIES),
        ("seed", DEFAULT_SEED), ("batch", DEFAULT_BATCH))}
    check_attack_values(_key, attacks=names, eps=eps, step_size=step_size, norm=norm, **settings)
    eps_of = _eps_of(table.get("eps_of", {}), names, norm)
    checkpoint = table.get("checkpoint", "last")
    if checkpoint not in CLI_CHOICES:
        raise UsageError(f"{_key('checkpoint')} must be {' or '.join(CLI_CHOICES)}")
    n = table.get("n")
    if n is not None and n < 0:
        raise UsageError(f"{_key('n')} must be 0 (all) or positive, got {n}")
    precision = table.get("precision", DEFAULT_PRECISION)
    if precision not in ATTACK_PRECISIONS:
        raise UsageError(f"{_key('precision')} must be {', '.join(ATTACK_PRECISIONS)}, "
                         f"got {precision!r}")
    if "source" in table and "sources" in table:
        raise UsageError("give 'attack.source' (one source for every ratio) or "
                         "'attack.sources' (one per ratio), not both")
    source = _legacy_source(table["source"], configs, seeds) if "source" in table else None
    # The single 'source' keeps its earlier meaning, one source for every ratio, twins (same
    # seed and method at other ratios) included unless allow_twin = false.
    allow_twin = table.get("allow_twin", source is not None)
    sources = (_sources(table["sources"], configs, hparams, allow_twin) if "sources" in table
               else {})
    return AttackSection(
        attacks=tuple(names), norm=norm, eps=tuple(eps), eps_of=eps_of, checkpoint=checkpoint,
        step_size=step_size, n=n, precision=precision, allow_twin=allow_twin, source=source,
        sources=tuple(sources.items()), **settings)


def _eps_of(table: object, names: list[str], norm: str = DEFAULT_NORM
            ) -> tuple[tuple[str, tuple[float, ...]], ...]:
    if not isinstance(table, dict):
        raise UsageError(f"{_key('eps_of')} must be a table: attack name -> list of ε")
    out = []
    for a, values in table.items():
        if a not in names:
            raise UsageError(f"{_key('eps_of')} names {a!r}, which is not in "
                             f"'attack.attacks' ({', '.join(names)})")
        if not isinstance(values, list) or not values:
            raise UsageError(f"{_key('eps_of.' + a)} must be a non-empty list of ε, got "
                             f"{values!r}")
        check_eps_values(_key, f"eps_of.{a}", numbers(values, f"attack.eps_of.{a}"), norm)
        out.append((a, tuple(float(e) for e in values)))
    return tuple(out)


def _legacy_source(src: dict, configs: Sequence[TrainConfig], seeds: Sequence[int]
                   ) -> TrainConfig:
    """attack.source: one run of the study, the black-box source for every ratio."""
    check_keys(src, "attack.source", "attack.source")
    try:
        method = resolve_method(src.get("method", "erm")).name
    except UsageError:
        raise UsageError(f"key 'attack.source.method' names unknown method {src['method']!r}") from None
    matches = [c for c in configs
               if abs(c.ratio - src.get("ratio", 0.0)) < 1e-9 and c.method == method
               and c.seed == src.get("seed", seeds[0])
               and ("alpha" not in src or c.alpha == src["alpha"])
               and ("dropout" not in src or c.dropout == src["dropout"])]
    if not matches:
        raise UsageError(f"key 'attack.source' = {src} names no run of this study")
    return matches[0]


def _sources(table: dict, configs: Sequence[TrainConfig], hparams: str, allow_twin: bool
             ) -> dict[float, TrainConfig]:
    """[attack.sources] as noise ratio -> the source's training config: the study's run of that
    ratio, method, seed (and α, p, noise seed if given), or a source-only run trained like the
    study's runs of that ratio, with their hyperparameter set (train.hparams). A source that
    shares its seed and method with a run of its ratio (a 'twin': same initialisation, batch
    order and crops) is refused unless allow_twin."""
    from ..training.methods import default_alpha, default_dropout, hparams_for
    from ..training.plugins import resolve_params

    if len({(c.noise, c.noise_labels, c.noise_file) for c in configs}) > 1 or any(
            c.noise not in TAKES_RATIO for c in configs):
        raise UsageError("key 'attack.sources' names a source per noise ratio: use it with "
                         "one noise source that takes a ratio, or 'attack.source' for all")
    out: dict[float, TrainConfig] = {}
    for key, src in table.items():
        where = f"attack.sources.{key}"
        try:
            ratio = float(key)
        except ValueError:
            raise UsageError(f"key '{where}' must be a noise ratio such as \"0.5\"") from None
        if not isinstance(src, dict):
            raise UsageError(f"key '{where}' must be a table such as {{ method = \"erm\", seed = 1 }}")
        check_keys(src, "attack.sources", where)
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
            alpha=float(src.get("alpha", default_alpha(method, at[0].ratio, hp, at[0].profile))),
            dropout=float(src.get("dropout", default_dropout(method, at[0].ratio, hp, at[0].profile))),
            noise_seed=src.get("noise_seed", at[0].noise_seed),
            method_params=resolve_params(spec, {}),
            method_path="" if spec.builtin else spec.factory)
        try:
            cfg.validate()
        except UsageError as e:
            raise UsageError(f"key '{where}': {e}") from None
        twins = [c for c in at if c.run_name != cfg.run_name and c.seed == cfg.seed
                 and c.method == cfg.method]
        if twins and not allow_twin:
            raise UsageError(f"key '{where}': source {cfg.run_name} shares seed {cfg.seed} and "
                             f"method {method} with {twins[0].run_name}; give the source another "
                             "seed, or set attack.allow_twin = true")
        out[cfg.ratio] = cfg
    return out


def attack_options(section: AttackSection, out: Path, device: str, data: Path | None) -> dict:
    """The section as keyword arguments of attacks.runner.AttackSpec (with the single legacy
    source; per-ratio sources come from the study's attack_jobs)."""
    opts = {"attacks": list(section.attacks), "norm": section.norm, "eps": list(section.eps),
            "checkpoint": section.checkpoint, "batch": section.batch, "device": device,
            "data": data, "steps": section.steps, "restarts": section.restarts,
            "queries": section.queries, "seed": section.seed, "precision": section.precision,
            "allow_twin": section.allow_twin}
    if section.n is not None:
        opts["n"] = section.n
    if section.step_size is not None:
        opts["step_size"] = section.step_size
    if section.source is not None:
        opts["source"] = out / section.source.run_name
    return opts
