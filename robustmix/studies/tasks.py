"""The units of work of a study, shared by both executors.

The local executor calls them one after another in its own process; the Ray executor calls each
inside a task on some node. Either way the same decisions are made: which runs are finished
(summary.json), training one run under its run lock (checked again once the lock is held, since
another process may have finished it meanwhile), attacking one target (attack rows already in
attack.csv are skipped) and the report over every finished run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..evaluation.device import configure_backends
from ..runs.lock import RunLock
from ..runs.rundir import plan_run, start_run
from ..training.config import TrainConfig
from ..training.trainer import train_run

if TYPE_CHECKING:
    import torch

    from ..attacks.runner import AttackResults
    from ..data.datasets import Dataset
    from .spec import Study


@dataclass
class Planned:
    cfg: TrainConfig
    run: Path
    action: str  # done | resume | new | force


def data_record(ds: Dataset) -> dict:
    """What config.json records about the data: where it came from and what it held."""
    return {"source": str(Path(ds.source).resolve()), "description": ds.description,
            "train_fingerprint": ds.fingerprint("train"), "test_fingerprint": ds.test_fingerprint()}


def resolve_study_device(study: Study) -> tuple[torch.device, str]:
    """The study's device on this machine and the precision it trains in there (set on every
    config), with the reason for that precision; UsageError when the device is not here."""
    from ..evaluation.device import choose_precision, resolve_device

    device = resolve_device(study.device)
    precision, why = choose_precision(study.precision, device)
    study.set_precision(precision)
    return device, why


def precision_text(study: Study, device: torch.device, why: str, plans: list[Planned]) -> str:
    """'precision X (why)', and which finished runs were made in another precision: under
    'auto' a run another machine made in bf16 is the same run here (runs.rundir.plan_run)."""
    from ..evaluation.device import choose_precision

    chosen = choose_precision(study.precision, device)[0]
    other = sorted({p.cfg.precision for p in plans if p.cfg.precision != chosen})
    n = sum(p.cfg.precision != chosen for p in plans)
    return (f"precision {chosen} ({why})"
            + (f"; {n} finished run(s) made in {', '.join(other)} where 'auto' chose it"
               if other else ""))


def plan_runs(study: Study, configs: list[TrainConfig] | None = None) -> list[Planned]:
    """What to do with each run (the study's, or configs): changes nothing on disk."""
    auto = study.precision == "auto"
    return [Planned(c, *plan_run(study.out, c, force=False, auto_precision=auto))
            for c in (study.configs if configs is None else configs)]


def check_data(plans: list[Planned], load_data: Callable[[], Dataset]) -> Dataset | None:
    """Load the data once, when some run needs training, and check that it can serve every such
    run (e.g. not too large a val_n): bad data then fails before anything is written."""
    from ..training.labels import make_labels
    from ..training.preflight import check_all

    todo = [p for p in plans if p.action != "done"]
    ds = load_data() if todo else None
    for p in todo:
        make_labels(p.cfg, ds)
    check_all([p.cfg for p in todo], ds)  # a failing plugin method or model, too
    return ds


def train_one(p: Planned, ds: Dataset, device: torch.device, *, wait: bool = False,
              show_progress: bool = True, precision_reason: str = "", compile: bool = False,
              on_start: Callable[[Planned], None] | None = None) -> dict | None:
    """Train (or resume) one planned run while holding its lock; its summary, or None when
    another process finished it meanwhile. Raises RunBusy when another live process holds it
    (unless wait)."""
    with RunLock(p.run, wait=wait):
        _, action = plan_run(p.run.parent, p.cfg, force=p.action == "force")
        if action == "done":
            return None
        if on_start is not None:
            on_start(p)
        start_run(p.run, p.cfg, device, fresh=action in ("new", "force"),
                  data=data_record(ds), extra={"precision_reason": precision_reason,
                                               "backend": {**configure_backends(device),
                                                           "compile": compile}})
        return train_run(p.cfg, ds, p.run, device, show_progress=show_progress, compile=compile)


@dataclass
class AttackTarget:
    """One target run of the attack stage with its AttackSpec options (its black-box source, if
    any, is opts['source'])."""

    run: Path
    opts: dict

    @property
    def needs(self) -> list[Path]:
        """The runs that must be trained first: the target and its source."""
        return [self.run] + ([Path(self.opts["source"])] if self.opts.get("source") else [])


def attack_targets(study: Study, runs: list[Path]) -> list[AttackTarget]:
    """The attack stage split per target: the rows of a target depend only on it and on its
    source, so attacking targets one by one gives the rows attacking them together gives."""
    from .spec import attack_jobs

    return [AttackTarget(Path(t), opts) for targets, opts in attack_jobs(study, runs)
            for t in targets]


def attack(targets: list[Path], opts: dict, quiet: bool = False, wait: bool = True
           ) -> AttackResults:
    from ..attacks.runner import AttackSpec, run_attacks

    return run_attacks(targets, AttackSpec(**opts, quiet=quiet, wait=wait))


def write_study_report(study: Study, runs: list[Path]) -> None:
    """The study's report over its finished runs, with the study's notes file if there is one.
    runs holds the black-box source runs too: each is an ordinary run of the study's condition (an
    ERM of another seed), so it counts among its method's seeds for the training statistics,
    exactly as `python -m robustmix.report` counts it when given the study's run folders; it has
    no white-box rows of its own, since a source is never attacked."""
    from ..errors import UsageError
    from ..reporting import results as R
    from ..reporting.markdown import remove_stale, write_report

    notes_path = study.path.with_suffix(".notes.md")
    notes = notes_path.read_text() if notes_path.exists() else None
    res = R.load_results(runs)
    R.warn(res.skipped)
    try:
        study.report.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create report folder {study.report}: {e.strerror or e}") from None
    written = write_report(res, study.report, title=f"robustmix study '{study.name}'",
                           notes=notes, checkpoint=study.attack.checkpoint if study.attack else "last",
                           command=f"python -m robustmix.study {study.path}")
    remove_stale(study.report, written)
    if study.keep_runs:
        from ..reporting.evidence import keep_runs

        keep_runs([Path(p) for p in res.runs["path"]], study.report)
