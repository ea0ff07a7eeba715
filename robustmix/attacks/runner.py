"""Attacking trained runs: which rows to compute, computing them, and merging them into each
run's attack.csv. Rows already in attack.csv are skipped, so an interrupted sweep resumes where
it stopped. ε = 0 is the clean accuracy on the same test images and with the same evaluation
function as training, so it equals the run's stored test accuracy.

Every row records the data source and a fingerprint of the test images it was computed on; a
run is never attacked on test images other than those it was evaluated on in training.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import torch

from ..atomic import write_csv
from ..errors import UsageError
from ..runs.files import ATTACK, CONFIG, is_finished, read_json
from ..runs.rundir import load_train_config
from .registry import ATTACKS, DEFAULT_STEPS

if TYPE_CHECKING:
    from ..data.datasets import Dataset
    from ..training.config import TrainConfig

META = ["run", "dataset", "noise", "ratio", "method", "alpha", "dropout", "seed", "profile"]
KEY = ["checkpoint", "mode", "source", "attack", "eps", "steps", "step_size", "n", "precision"]
COLUMNS = META + ["checkpoint", "mode", "source", "attack", "eps", "steps", "step_size", "n",
                  "correct", "accuracy", "seconds", "precision", "device", "date", "data",
                  "test_fingerprint"]


@dataclass
class AttackSpec:
    """What to compute: the attack CLI's options and a study's [attack] table both become one."""

    attacks: list[str] = field(default_factory=lambda: list(ATTACKS))
    eps: list[float] = field(default_factory=lambda: [0.0, 1.0, 2.0, 4.0, 8.0, 16.0])  # /255
    steps: int = DEFAULT_STEPS
    step_size: float | None = None  # /255; None = eps/steps
    source: Path | None = None
    no_white_box: bool = False
    checkpoint: str = "last"
    n: int | None = None  # None = the run's own test_n; 0 = all
    batch: int = 500
    data: Path | None = None
    device: str = "auto"
    precision: str = "run"
    force: bool = False
    quiet: bool = False


@dataclass
class Run:
    path: Path
    cfg: TrainConfig
    precision: str = "fp32"
    model: torch.nn.Module | None = None
    data_key: tuple = ()
    n: int | None = None  # the --n asked for, None = all
    n_images: int = 0  # the test images it is attacked on
    existing: pd.DataFrame | None = None  # rows of its attack.csv
    new_rows: list[dict] = field(default_factory=list)
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


def expected_fingerprint(run: Run) -> str | None:
    """The test-image fingerprint the run was evaluated on: from config.json, or (for runs made
    before it was recorded there) from rows of its attack.csv."""
    fp = recorded_data(run.path).get("test_fingerprint")
    if fp:
        return str(fp)
    if run.existing is not None and len(run.existing):
        known = [str(v) for v in run.existing["test_fingerprint"] if isinstance(v, str) and v]
        if known:
            return known[0]
    return None


def read_existing(run: Path) -> pd.DataFrame:
    path = run / ATTACK
    if not path.exists():
        return pd.DataFrame(columns=COLUMNS)
    try:
        df = pd.read_csv(path)
    except Exception as e:
        raise UsageError(f"cannot read {path} ({type(e).__name__}); move it away to start "
                         "afresh") from None
    for col in ("data", "test_fingerprint"):  # absent from files written before they existed
        if col not in df.columns:
            df[col] = ""
    df[["data", "test_fingerprint"]] = df[["data", "test_fingerprint"]].fillna("").astype(str)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise UsageError(f"{path} lacks columns {', '.join(missing)}; move it away to start afresh")
    return df[COLUMNS]


def row_key(r) -> tuple:
    return (str(r["checkpoint"]), str(r["mode"]), str(r["source"]), str(r["attack"]),
            round(float(r["eps"]), 6), int(r["steps"]), round(float(r["step_size"]), 6),
            int(r["n"]), str(r["precision"]))


def wanted_key(args, t: Run, attack: str, src: Run, mode: str, eps: float) -> tuple:
    steps, size = settings(args, attack, eps)
    return row_key({"checkpoint": args.checkpoint, "mode": mode, "source": src.name,
                    "attack": attack, "eps": eps, "steps": steps, "step_size": size,
                    "n": t.n_images, "precision": precision_label(src, t)})


def settings(args, attack: str, eps: float) -> tuple[int, float]:
    """(steps, step size) in /255 units as recorded for attack at ε."""
    if attack == "fgsm":
        return 1, eps
    return args.steps, (eps / args.steps if args.step_size is None else args.step_size)


@dataclass
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
             ) -> tuple[list[Run], Run | None]:
    """Open and check every run and model before anything is computed."""
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
    for r in targets + ([source] if source else []):
        r.precision = r.cfg.precision if args.precision == "run" else args.precision
        r.model, _ = load_model(r.path, args.checkpoint, device)
        r.data_key = data_key(r, args.data)
        r.n = r.cfg.test_n if args.n is None else (args.n or None)
        r.existing = read_existing(r.path)
    return targets, source


def load_datasets(runs: list[Run]) -> dict[tuple, Dataset]:
    """Each distinct data source once; refuses one whose test images differ from those a run was
    evaluated on (its recorded fingerprint)."""
    from ..data.datasets import load_dataset

    out: dict[tuple, Dataset] = {}
    for r in runs:
        if r.data_key not in out:
            out[r.data_key] = load_dataset(r.cfg.dataset, r.data_key[1])
        ds = out[r.data_key]
        r.data_source, r.test_fingerprint = ds.source, ds.test_fingerprint()
        expected = expected_fingerprint(r)
        if expected is not None and expected != r.test_fingerprint:
            raise UsageError(f"the test images of {ds.source} (fingerprint {r.test_fingerprint}) "
                             f"differ from those {r.name} was evaluated on ({expected}); pass "
                             "--data with the same copy it was trained on")
    return out


def precision_label(source: Run, target: Run) -> str:
    if source.precision == target.precision:
        return target.precision
    return f"{source.precision}/{target.precision}"


def plan(args, targets: list[Run], source: Run | None, datasets: dict, device: torch.device
         ) -> list[Group]:
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

    def todo(t: Run, attack: str, src: Run, mode: str) -> list[float]:
        done = set() if args.force else {row_key(r) for r in t.existing.to_dict("records")}
        return [e for e in dict.fromkeys(args.eps)
                if wanted_key(args, t, attack, src, mode, e) not in done]

    for t in targets:
        t.n_images = len(test_set(t)[1])

    groups = []
    for attack in args.attacks:
        if not args.no_white_box:
            for t in targets:
                x, y = test_set(t)
                groups.append(Group(attack, t, [t], "white-box", x, y,
                                    {t.path: todo(t, attack, t, "white-box")}))
        if source is not None:
            others = [t for t in targets if t.path.resolve() != source.path.resolve()]
            for key in dict.fromkeys((t.data_key, t.n) for t in others):
                members = [t for t in others if (t.data_key, t.n) == key]
                x, y = test_set(members[0])
                groups.append(Group(attack, source, members, "black-box", x, y,
                                    {t.path: todo(t, attack, source, "black-box") for t in members}))
    return [g for g in groups if g.eps]


def compute(args, g: Group, device: torch.device, device_label: str) -> None:
    from tqdm.auto import tqdm

    from .fgsm import default_stack
    from .registry import make_attack
    from .sweep import Target, robust_accuracy

    src = g.source
    stack = default_stack(device, args.batch)
    step = None if args.step_size is None else args.step_size / 255
    atk = make_attack(g.attack, src.model, src.precision, args.steps, step, stack)
    tgts = [Target(t.model, t.precision) for t in g.targets]
    eps = g.eps
    label = src.name if g.mode == "white-box" else f"{src.name} -> {len(g.targets)} runs"
    with tqdm(total=len(g.y), unit="img", desc=f"{g.attack} {g.mode} {label}", leave=False,
              disable=args.quiet) as bar:
        correct, seconds = robust_accuracy(atk, tgts, g.x, g.y, [e / 255 for e in eps],
                                           args.batch, bar.update)
    date = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    n = len(g.y)
    for t, c_row, s_row in zip(g.targets, correct, seconds, strict=True):
        meta = {"run": t.name, **{k: getattr(t.cfg, k) for k in META[1:]}}
        for e, c, s in zip(eps, c_row, s_row, strict=True):
            if e not in g.todo[t.path]:
                continue
            steps, size = settings(args, g.attack, e)
            t.new_rows.append({**meta, "checkpoint": args.checkpoint, "mode": g.mode,
                               "source": src.name, "attack": g.attack, "eps": e, "steps": steps,
                               "step_size": size, "n": n, "correct": c,
                               "accuracy": fp32_accuracy(c, n, device), "seconds": s, "precision": precision_label(src, t),
                               "device": device_label, "date": date, "data": t.data_source,
                               "test_fingerprint": t.test_fingerprint})
        save(t)


def fp32_accuracy(correct: int, n: int, device: torch.device) -> float:
    """correct / n computed as training computes test_acc (an fp32 mean of 0/1 on the device),
    so the ε = 0 row equals the stored test_acc bit for bit."""
    return (torch.arange(n, device=device) < correct).float().mean().item()


def save(t: Run) -> None:
    """Merge the new rows into attack.csv (replacing rows with the same key), atomically."""
    if not t.new_rows:
        return
    new = pd.DataFrame(t.new_rows, columns=COLUMNS)
    keys = {row_key(r) for r in t.new_rows}
    old = t.existing[[row_key(r) not in keys for r in t.existing.to_dict("records")]]
    merged = pd.concat([df for df in (old, new) if len(df)], ignore_index=True)
    merged = merged.sort_values(["checkpoint", "mode", "source", "attack", "precision", "n",
                                 "steps", "step_size", "eps"], kind="stable")
    write_csv(t.path / ATTACK, merged[COLUMNS])
    t.existing, t.new_rows = merged[COLUMNS].reset_index(drop=True), []


def results_table(args, targets: list[Run], source: Run | None) -> pd.DataFrame:
    """Accuracy (%) per run, mode, source and attack (rows) and ε (columns) for this command's
    settings, whether computed now or found in attack.csv."""
    frames = []
    for t in targets:
        wanted = {wanted_key(args, t, a, src, mode, e)
                  for a in args.attacks for e in args.eps
                  for src, mode in [(t, "white-box"), (source, "black-box")]
                  if src is not None and not (mode == "white-box" and args.no_white_box)}
        df = t.existing
        frames.append(df[[row_key(r) in wanted for r in df.to_dict("records")]])
    df = pd.concat([f for f in frames if len(f)]) if any(len(f) for f in frames) else None
    if df is None:
        return pd.DataFrame()
    df = df.assign(source=[s if m == "black-box" else "-"
                           for s, m in zip(df["source"], df["mode"], strict=True)],
                   accuracy=(100 * df["accuracy"]).round(1))
    table = df.pivot_table(index=["run", "mode", "source", "attack"], columns="eps",
                           values="accuracy", aggfunc="last", sort=False)
    table = table[sorted(table.columns)]
    table.columns = [f"{e:g}" for e in table.columns]
    return table.reset_index()


def run_attacks(runs: list[Path], args: AttackSpec) -> pd.DataFrame:
    """Compute every missing row for runs (and the black-box source), write each run's
    attack.csv, and return the accuracy table (%) of the rows asked for."""
    from tqdm.auto import tqdm

    from ..evaluation.device import resolve_device
    from ..runs.provenance import device_name

    device = resolve_device(args.device)
    targets, source = load_all(runs, args, device)
    datasets = load_datasets(targets + ([source] if source else []))
    groups = plan(args, targets, source, datasets, device)
    label = device_name(device)
    rows = sum(len(g.todo[t.path]) for g in groups for t in g.targets)
    print(f"robustmix.attack: {len(targets)} run(s), checkpoint {args.checkpoint}, "
          f"attacks {','.join(args.attacks)}, eps {','.join(f'{e:g}' for e in args.eps)}/255, "
          f"device {device} ({label}); {rows} row(s) to compute"
          + ("" if rows else " (all in attack.csv already; --force recomputes)"), flush=True)
    bar = tqdm(groups, unit="group", desc="attack", disable=args.quiet or len(groups) < 2)
    for g in bar:
        compute(args, g, device, label)
    return results_table(args, targets, source)
