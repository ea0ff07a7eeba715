"""Attacking trained runs: which rows to compute, computing them, and merging them into each
run's attack.csv. Rows already in attack.csv (with their per-image outcomes stored) are skipped,
so an interrupted sweep resumes where it stopped; rows written before outcomes were stored are
computed once more to store them. ε = 0 is the clean accuracy on the same test images and with
the same evaluation function as training, so in the run's training precision (--precision run)
it equals the run's stored test accuracy.

Per run, the attack stage writes (each file atomically, in this order, through attacks/rows.py,
which owns them):
  attack_outcomes.npz  per row, which test images stayed correct (attacks/outcomes.py);
  attack.csv           one tidy row per target × source × attack × ε × checkpoint, with the
                       attack's settings (steps, step_size, restarts, queries, attack_seed; see
                       attacks/registry.py) and, for black-box rows, the source run and whether
                       it is a twin (same seed and method as the target, only with --allow-twin);
  attack_flags.csv     gradient-masking flags raised by all of the run's rows (attacks/flags.py).
This module only plans and orchestrates: which rows each run lacks, in which groups to compute
them, and under which locks.

Every row records the data source and a fingerprint of the test images it was computed on; a
run is never attacked on test images other than those it was evaluated on in training.

One command attacks in one threat model (AttackSpec.norm, linf or l2); its rows carry the norm
in attack.csv's `norm` column and in their key, so L∞ and L2 rows of one run coexist there,
and the flags and robust accuracy are computed per norm.

Black-box (transfer) protocol: the source must be trained on the same dataset and image size as
every target, and independently of it: a source that shares its seed and method with a target
(same batch order, crops and initialisation) is refused unless allow_twin. Only the gradient
attacks (fgsm, ifgsm, pgd) are transferred; autoattack and square run on the model itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import torch

from ..errors import UsageError
from ..runs.files import CONFIG, is_finished, read_json
from ..runs.lock import RunBusy, RunLock
from ..runs.rundir import load_train_config
from . import rows as R
from .defaults import DEFAULT_BATCH, DEFAULT_NORM, DEFAULT_PRECISION, default_eps, image_units
from .flags import check_flags
from .outcomes import robust_table
from .registry import (
    DEFAULT_ATTACKS,
    DEFAULT_QUERIES,
    DEFAULT_RESTARTS,
    DEFAULT_SEED,
    DEFAULT_STEPS,
    TRANSFER,
)
from .registry import settings as attack_settings
from .rows import COLUMNS, META, AttackRows, outcome_key, row_key

if TYPE_CHECKING:
    from ..data.datasets import Dataset
    from ..training.config import TrainConfig

@dataclass
class AttackSpec:
    """What to compute: the attack CLI's options and a study's [attack] table both become one."""

    attacks: list[str] = field(default_factory=lambda: list(DEFAULT_ATTACKS))
    # in the norm's units (/255 for linf, plain for l2); None = the norm's default sweep
    eps: list[float] | None = None
    norm: str = DEFAULT_NORM
    steps: int = DEFAULT_STEPS
    step_size: float | None = None  # in ε's units; None = each attack's rule (registry.settings)
    restarts: int = DEFAULT_RESTARTS
    queries: int = DEFAULT_QUERIES
    seed: int = DEFAULT_SEED
    source: Path | None = None
    allow_twin: bool = False
    no_white_box: bool = False
    checkpoint: str = "last"
    n: int | None = None  # None = the run's own test_n; 0 = all
    batch: int = DEFAULT_BATCH
    data: Path | None = None
    device: str = "auto"
    precision: str = DEFAULT_PRECISION  # or bf16, or run = each run's training precision
    force: bool = False
    quiet: bool = False
    # False: a target another process is attacking or training raises RunBusy at once, so that
    # a study can take another attack job first instead of idling behind the holder
    wait: bool = True

    def __post_init__(self) -> None:
        if self.eps is None:
            self.eps = list(default_eps(self.norm))


@dataclass(frozen=True)
class Run:
    """A finished run opened to be attacked: its model and how it is attacked, fixed once
    opened (with_data adds the test images it is attacked on)."""

    path: Path
    cfg: TrainConfig
    precision: str = "fp32"
    model: torch.nn.Module | None = None
    data_key: tuple = ()  # (dataset, data path)
    n: int | None = None  # the --n asked for, None = all
    n_images: int = 0  # the test images it is attacked on
    data_source: str = ""  # the data it is attacked on
    test_fingerprint: str = ""  # of that data's test images

    @property
    def name(self) -> str:
        return self.path.name


def open_run(path: Path, role: str) -> Run:
    if not (path / CONFIG).exists():
        raise UsageError(f"{role} {path} is not a run directory (no {CONFIG})")
    if not is_finished(path):
        raise UsageError(f"{role} {path} is unfinished (no summary.json): train it to the end first")
    return Run(path, load_train_config(path))


def recorded_data(run: Path) -> dict:
    """The data section of a run's config.json: source, description and test_fingerprint."""
    data = read_json(run / CONFIG).get("data") or {}
    return data if isinstance(data, dict) else {}


def data_key(run: Run, data: Path | None) -> tuple:
    """(dataset, data path) to attack run on: --data if given, else the source training recorded.

    A recorded source that no longer exists is an error, not a reason to load another copy: an
    attack on other test images would not be comparable with the run's stored accuracy.
    """
    if data is not None:
        return run.cfg.dataset, str(Path(data).resolve())
    source = recorded_data(run.path).get("source")
    if not source:
        raise UsageError(f"{run.path} records no data source; pass --data with the images it "
                         "was trained on")
    if not Path(source).exists():
        raise UsageError(f"{run.path} was trained on {source}, which no longer exists; pass "
                         "--data with a copy of the same images")
    return run.cfg.dataset, str(Path(source).resolve())


def expected_fingerprint(run: Run, stored: AttackRows) -> str | None:
    """The test-image fingerprint the run was evaluated on: from config.json, or (for runs made
    before it was recorded there) from rows of its attack.csv."""
    fp = recorded_data(run.path).get("test_fingerprint")
    return str(fp) if fp else stored.fingerprint()


def wanted_key(args, t: Run, attack: str, src: Run, mode: str, eps: float) -> tuple:
    return row_key({"checkpoint": args.checkpoint, "mode": mode, "source": src.name,
                    "attack": attack, "norm": args.norm, "eps": eps,
                    **settings(args, attack, eps),
                    "n": t.n_images, "precision": precision_label(src, t)})


def settings(args, attack: str, eps: float) -> dict:
    """The settings recorded for attack at ε (ε and step size in the norm's units)."""
    return attack_settings(attack, eps, args.steps, args.step_size, args.restarts, args.queries,
                           args.seed)


def is_twin(source: Run, target: Run) -> bool:
    """Trained with the same seed and method: same initialisation, batch order and crops."""
    return source.cfg.seed == target.cfg.seed and source.cfg.method == target.cfg.method


# Each run's attack rows as last read or written (under its lock), by run directory: the one
# piece of state a command updates as it goes; the rows themselves are frozen (rows.AttackRows).
Stored = dict[Path, AttackRows]


@dataclass(frozen=True)
class Group:
    """One attack crafted on one model, evaluated on targets sharing the same test images."""

    attack: str
    source: Run
    targets: list[Run]
    mode: str
    x: torch.Tensor
    y: torch.Tensor
    todo: dict[Path, list[float]]  # target run directory -> ε still to compute

    @property
    def eps(self) -> list[float]:
        return list(dict.fromkeys(e for t in self.targets for e in self.todo[t.path]))


def load_all(runs: list[Path], args: AttackSpec, device: torch.device
             ) -> tuple[list[Run], Run | None, Stored]:
    """Open and check every run and model, and read its stored rows, before anything is
    computed."""
    from ..runs.checkpoints import load_model
    from ..runs.rundir import finished_runs

    targets = [open_run(p, "run") for p in finished_runs(list(runs))]
    seen: set[Path] = set()
    targets = [t for t in targets if not (t.path.resolve() in seen or seen.add(t.path.resolve()))]
    source = None
    if args.source is not None:
        if not args.source.exists():
            raise UsageError(f"source run {args.source} does not exist")
        source = open_run(args.source, "source run")
        other = [t for t in targets if t.cfg.dataset != source.cfg.dataset]
        if other:
            raise UsageError(f"source run {source.name} was trained on {source.cfg.dataset} but "
                             f"{other[0].name} on {other[0].cfg.dataset}: black-box needs one dataset")
        twins = [t for t in black_box_targets(targets, source) if is_twin(source, t)]
        if twins and not args.allow_twin:
            raise UsageError(f"source run {source.name} shares seed {source.cfg.seed} and method "
                             f"{source.cfg.method} with target {twins[0].name}"
                             + (f" (and {len(twins) - 1} more)" if len(twins) > 1 else "")
                             + ": its examples would be nearly white-box; use a source of another "
                             "seed, or --allow-twin to attack twins anyway")
    stored: Stored = {}

    def attackable(r: Run) -> Run:
        r = dataclasses.replace(
            r, precision=r.cfg.precision if args.precision == "run" else args.precision,
            model=load_model(r.path, args.checkpoint, device)[0])
        r = dataclasses.replace(r, data_key=data_key(r, args.data),
                                n=r.cfg.test_n if args.n is None else (args.n or None))
        stored[r.path] = R.read_stored(r.path)
        return r

    targets = [attackable(t) for t in targets]
    return targets, (attackable(source) if source else None), stored


def black_box_targets(targets: list[Run], source: Run) -> list[Run]:
    """The targets a source attacks black-box: all but itself."""
    return [t for t in targets if t.path.resolve() != source.path.resolve()]


def check_shapes(targets: list[Run], source: Run | None, datasets: dict) -> None:
    """Refuse a source whose images differ in size or channels from a target's."""
    if source is None:
        return
    shape = datasets[source.data_key].x_test.shape[1:]
    for t in black_box_targets(targets, source):
        other = datasets[t.data_key].x_test.shape[1:]
        if other != shape:
            raise UsageError(f"source run {source.name} takes {'x'.join(map(str, shape))} images "
                             f"but {t.name} {'x'.join(map(str, other))}: black-box needs one "
                             "image size")


def load_datasets(runs: list[Run], stored: Stored) -> dict[tuple, Dataset]:
    """Each distinct data source once; refuses one whose test images differ from those a run was
    evaluated on (its recorded fingerprint)."""
    from ..data.datasets import load_dataset

    out: dict[tuple, Dataset] = {}
    for r in runs:
        if r.data_key not in out:
            out[r.data_key] = load_dataset(r.cfg.dataset, r.data_key[1])
        ds = out[r.data_key]
        expected = expected_fingerprint(r, stored[r.path])
        if expected is not None and expected != ds.test_fingerprint():
            raise UsageError(f"the test images of {ds.source} (fingerprint "
                             f"{ds.test_fingerprint()}) differ from those {r.name} was evaluated "
                             f"on ({expected}); pass --data with the same copy it was trained on")
    return out


def with_data(r: Run, datasets: dict[tuple, Dataset]) -> Run:
    """The run with the test images it is attacked on: their source, fingerprint and number."""
    from ..evaluation.predict import test_indices

    ds = datasets[r.data_key]
    return dataclasses.replace(r, data_source=ds.source, test_fingerprint=ds.test_fingerprint(),
                               n_images=len(test_indices(ds.y_test, r.n)))


def precision_label(source: Run, target: Run) -> str:
    if source.precision == target.precision:
        return target.precision
    return f"{source.precision}/{target.precision}"


def plan(args, targets: list[Run], source: Run | None, datasets: dict, stored: Stored,
         device: torch.device) -> list[Group]:
    from ..evaluation.images import to_device_images
    from ..evaluation.predict import test_indices

    images: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def test_set(r: Run) -> tuple[torch.Tensor, torch.Tensor]:
        key = (r.data_key, r.n)
        if key not in images:
            ds = datasets[r.data_key]
            idx = test_indices(ds.y_test, r.n)
            images[key] = (to_device_images(ds.x_test[idx], device),
                           torch.from_numpy(ds.y_test[idx]).to(device))
        return images[key]

    groups = []
    for attack in args.attacks:
        if not args.no_white_box:
            for t in targets:
                x, y = test_set(t)
                groups.append(Group(attack, t, [t], "white-box", x, y,
                                    {t.path: todo(args, t, stored, attack, t, "white-box")}))
        if source is not None and attack in TRANSFER:
            others = black_box_targets(targets, source)
            for key in dict.fromkeys((t.data_key, t.n) for t in others):
                # only members with rows to compute: the others are neither locked nor evaluated
                members = [t for t in others if (t.data_key, t.n) == key
                           and todo(args, t, stored, attack, source, "black-box")]
                if not members:
                    continue
                x, y = test_set(members[0])
                groups.append(Group(attack, source, members, "black-box", x, y,
                                    {t.path: todo(args, t, stored, attack, source, "black-box")
                                     for t in members}))
    return [g for g in groups if g.eps]


def todo(args, t: Run, stored: Stored, attack: str, src: Run, mode: str) -> list[float]:
    """The ε of one attack on target t that its attack.csv (as last read) lacks."""
    done = set() if args.force else stored[t.path].done()
    return [e for e in dict.fromkeys(args.eps)
            if wanted_key(args, t, attack, src, mode, e) not in done]


def replan(args, g: Group, stored: Stored) -> Group:
    """The group as it stands once its targets are locked and their attack.csv read again:
    rows another process wrote meanwhile are dropped (and targets left with none)."""
    fresh = {t.path: todo(args, t, stored, g.attack, g.source, g.mode) for t in g.targets}
    return Group(g.attack, g.source, [t for t in g.targets if fresh[t.path]], g.mode, g.x, g.y,
                 {p: e for p, e in fresh.items() if e})


def compute(args, g: Group, device: torch.device, device_label: str
            ) -> list[tuple[Run, list[dict], dict]]:
    """Run the group's attack; per target, its new attack.csv rows and their outcomes."""
    from tqdm.auto import tqdm

    from .fgsm import default_stack
    from .registry import make_attack
    from .sweep import Target, attack_outcomes

    src = g.source
    stack = default_stack(device, args.batch)
    step = None if args.step_size is None else image_units(args.step_size, args.norm)
    atk = make_attack(g.attack, src.model, src.precision, args.steps, step, stack,
                      args.restarts, args.queries, args.seed, args.norm)
    tgts = [Target(t.model, t.precision) for t in g.targets]
    eps = g.eps
    label = src.name if g.mode == "white-box" else f"{src.name} -> {len(g.targets)} runs"
    with tqdm(total=len(g.y), unit="img", desc=f"{g.attack} {g.mode} {label}", leave=False,
              disable=args.quiet) as bar:
        masks, seconds = attack_outcomes(atk, tgts, g.x, g.y,
                                         [image_units(e, args.norm) for e in eps],
                                         args.batch, bar.update)
    date = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    n = len(g.y)
    out = []
    for t, m_row, s_row in zip(g.targets, masks, seconds, strict=True):
        meta = {"run": t.name, **{k: getattr(t.cfg, k) for k in META[1:]}}
        new_rows, new_outcomes = [], {}
        for e, m, s in zip(eps, m_row, s_row, strict=True):
            if e not in g.todo[t.path]:
                continue
            c = int(m.sum())
            row = {**meta, "checkpoint": args.checkpoint, "mode": g.mode, "source": src.name,
                   "twin": g.mode == "black-box" and is_twin(src, t), "attack": g.attack,
                   "norm": args.norm, "eps": e, **settings(args, g.attack, e), "n": n, "correct": c,
                   "accuracy": fp32_accuracy(c, n, device), "seconds": s,
                   "precision": precision_label(src, t), "device": device_label, "date": date,
                   "data": t.data_source, "test_fingerprint": t.test_fingerprint}
            new_rows.append(row)
            new_outcomes[outcome_key(row)] = m.numpy().astype(bool)
        out.append((t, new_rows, new_outcomes))
    return out


def fp32_accuracy(correct: int, n: int, device: torch.device) -> float:
    """correct / n computed as training computes test_acc (an fp32 mean of 0/1 on the device),
    so the ε = 0 row equals the stored test_acc bit for bit."""
    return (torch.arange(n, device=device) < correct).float().mean().item()


@dataclass(frozen=True)
class AttackResults:
    """What run_attacks returns: the accuracy table (%) of the rows asked for, with each run's
    robust accuracy (per-image worst case over those rows, attack 'worst case'), the robust
    accuracy in long form, and the gradient-masking flags of every run attacked."""

    table: pd.DataFrame
    robust: pd.DataFrame
    flags: pd.DataFrame


def asked_rows(args, targets: list[Run], source: Run | None, stored: Stored) -> pd.DataFrame:
    """The attack.csv rows of every target for this command's settings."""
    frames = []
    for t in targets:
        wanted = {wanted_key(args, t, a, src, mode, e)
                  for a in args.attacks for e in args.eps
                  for src, mode in [(t, "white-box"), (source, "black-box")]
                  if src is not None and not (mode == "white-box" and args.no_white_box)
                  and not (mode == "black-box" and (a not in TRANSFER
                                                    or src.path.resolve() == t.path.resolve()))}
        frames.append(stored[t.path].matching(wanted))
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)


def results_table(args, targets: list[Run], source: Run | None, stored: Stored
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Accuracy (%) per run, mode, source and attack (rows) and ε (columns) for this command's
    settings, whether computed now or found in attack.csv, with a 'worst case' row per run
    (robust accuracy over those rows); and the robust accuracy in long form."""
    df = asked_rows(args, targets, source, stored)
    if not len(df):
        return pd.DataFrame(), robust_table(df, {}, outcome_key)
    # outcome keys are per run (the source column names white-box rows' own run only)
    robust = pd.concat([robust_table(df[df["run"] == t.name], stored[t.path].outcomes,
                                     outcome_key)
                        for t in targets], ignore_index=True)
    view = df.assign(source=[s if m == "black-box" else "-"
                             for s, m in zip(df["source"], df["mode"], strict=True)],
                     accuracy=(100 * df["accuracy"]).round(1))
    view = view[["run", "mode", "source", "attack", "eps", "accuracy"]]
    if len(robust):
        worst = robust.assign(mode="all", source="-", attack="worst case",
                              accuracy=(100 * robust["accuracy"]).round(1))
        view = pd.concat([view, worst[view.columns]], ignore_index=True)
    order = {t.name: i for i, t in enumerate(targets)}
    view = view.sort_values("run", key=lambda r: r.map(order), kind="stable")
    table = view.pivot_table(index=["run", "mode", "source", "attack"], columns="eps",
                             values="accuracy", aggfunc="last", sort=False)
    table = table[sorted(table.columns)]
    table.columns = [f"{e:g}" for e in table.columns]
    return table.reset_index(), robust


def run_attacks(runs: list[Path], args: AttackSpec) -> AttackResults:
    """Compute every missing row for runs (and the black-box source), write each run's
    attack_outcomes.npz, attack.csv and attack_flags.csv, and return the accuracy table (%) of
    the rows asked for, robust accuracy and the flags.

    A target is locked only while one of its attack groups is computed and written, and only if
    that group has rows for it to compute: a run whose rows are all in attack.csv is never waited
    for, so two processes (or two studies sharing runs) attacking overlapping runs share the work
    group by group. With args.wait False, groups whose targets are busy are put off until the end
    of the command and, if still busy then, RunBusy is raised after every free group is done."""
    from tqdm.auto import tqdm

    from ..evaluation.device import configure_backends, resolve_device
    from ..runs.provenance import device_name

    device = resolve_device(args.device)
    configure_backends(device)  # as in training: fp32 without TF32, cuDNN autotuning
    targets, source, stored = load_all(runs, args, device)
    datasets = load_datasets(targets + ([source] if source else []), stored)
    targets = [with_data(t, datasets) for t in targets]
    source = with_data(source, datasets) if source else None
    check_shapes(targets, source, datasets)
    groups = plan(args, targets, source, datasets, stored, device)
    label = device_name(device)
    rows = sum(len(g.todo[t.path]) for g in groups for t in g.targets)
    print(f"robustmix.attack: {len(targets)} run(s), checkpoint {args.checkpoint}, "
          f"attacks {','.join(args.attacks)}, norm {args.norm}, eps "
          f"{','.join(f'{e:g}' for e in args.eps)}{'/255' if args.norm == 'linf' else ''}, "
          f"precision {args.precision}, device {device} ({label}); {rows} row(s) to compute"
          + ("" if rows else " (all in attack.csv already; --force recomputes)"), flush=True)
    written: dict[Path, pd.DataFrame] = {}  # run attacked here -> its flags as last written
    busy: list[Group] = []
    bar = tqdm(groups, unit="group", desc="attack", disable=args.quiet or len(groups) < 2)
    for g in bar:
        try:
            _attack_group(args, g, device, label, stored, written, wait=args.wait)
        except RunBusy:
            busy.append(g)
    for g in busy:  # the holder may be done by now; if not, the caller decides
        _attack_group(args, g, device, label, stored, written, wait=False)
    flags = [_flags(t, stored, written) for t in targets]
    flags = [f for f in flags if len(f)]
    table, robust = results_table(args, targets, source, stored)
    return AttackResults(table, robust,
                         pd.concat(flags, ignore_index=True) if flags else check_flags(None))


def _attack_group(args: AttackSpec, g: Group, device: torch.device, label: str, stored: Stored,
                  written: dict[Path, pd.DataFrame], wait: bool) -> None:
    with contextlib.ExitStack() as locks:
        for t in sorted(g.targets, key=lambda t: str(t.path.resolve())):  # one order: no deadlock
            locks.enter_context(attack_lock(t, stored, wait=wait))
        g = replan(args, g, stored)
        if g.targets:
            for t, new_rows, new_outcomes in compute(args, g, device, label):
                stored[t.path] = R.merge(t.path, stored[t.path], new_rows, new_outcomes)
            for t in g.targets:
                written[t.path] = R.write_flags(t.path, stored[t.path])


def _flags(t: Run, stored: Stored, written: dict[Path, pd.DataFrame]) -> pd.DataFrame:
    """The run's flags; written to attack_flags.csv here only for a run this command did not
    write (its flags file may predate an interrupted command), and only if it is free now."""
    if t.path in written:
        return written[t.path]
    try:
        with attack_lock(t, stored, wait=False):
            return R.write_flags(t.path, stored[t.path])
    except RunBusy:
        return check_flags(stored[t.path].rows)


@contextlib.contextmanager
def attack_lock(t: Run, stored: Stored, wait: bool = True):
    """The target's run lock, held while its attack rows are read, computed and written, so
    that two processes attacking one run neither compute its rows twice nor lose each other's
    (the later write of attack.csv would win). Waits for a holder, saying so; once held, the
    rows are read again: those the holder wrote are then skipped. With wait=False a holder
    raises RunBusy instead."""
    lock = RunLock(t.path)
    try:
        lock.__enter__()
    except RunBusy as e:
        if not wait:
            raise
        print(f"robustmix.attack: waiting for {t.name}: another process is writing it "
              f"({e.holder})", flush=True)
        lock = RunLock(t.path, wait=True)
        lock.__enter__()
    try:
        stored[t.path] = R.read_stored(t.path)
        yield
    finally:
        lock.__exit__(None, None, None)
