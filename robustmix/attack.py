"""`python -m robustmix.attack RUN [RUN ...]`: FGSM and I-FGSM accuracy of trained runs, white-box
and (with --source) black-box, over a sweep of ε; results go to attack.csv in each run directory.

Rows already in attack.csv are skipped, so an interrupted sweep resumes where it stopped. ε = 0 is
the clean accuracy on the same test images and with the same evaluation function as training, so
it equals the run's stored test accuracy.
"""

from __future__ import annotations

import argparse
import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .cli import Parser, csv_list, entry
from .errors import UsageError

if TYPE_CHECKING:
    import pandas as pd
    import torch

    from .config import TrainConfig
    from .data import Dataset

# Torch, pandas and the rest are imported only once the arguments are checked, so --help and
# mistyped options answer at once. These mirror robustmix.attacks and robustmix.checkpoints
# (tests/test_attack_cli.py checks that they agree).
ATTACKS = ("fgsm", "ifgsm")
DEFAULT_STEPS = 10
CHECKPOINTS = ("last", "best")
ATTACK = "attack.csv"
DEFAULT_EPS = "0,1,2,4,8,16"  # /255 units, parsed by argparse like a command-line value
META = ["run", "dataset", "noise", "ratio", "method", "alpha", "dropout", "seed", "profile"]
KEY = ["checkpoint", "mode", "source", "attack", "eps", "steps", "step_size", "n", "precision"]
COLUMNS = META + ["checkpoint", "mode", "source", "attack", "eps", "steps", "step_size", "n",
                  "correct", "accuracy", "seconds", "precision", "device", "date"]


def optional_float(word: str):
    """An argparse type: a float, or word meaning None (so --help shows a meaningful default)."""

    def parse(text: str) -> float | None:
        if text == word:
            return None
        try:
            return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number or '{word}', got '{text}'") from None

    return parse


def optional_int(word: str):
    def parse(text: str) -> int | None:
        if text == word:
            return None
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer or '{word}', got '{text}'") from None

    return parse


def build_parser() -> Parser:
    p = Parser(prog="python -m robustmix.attack",
               description="Measure test accuracy of trained runs under FGSM and I-FGSM attacks "
                           "(white-box, and black-box with --source) for a sweep of ε; write "
                           "attack.csv into each run directory and print accuracy per run, "
                           "attack and ε.")
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN",
                   help="a run directory, or a folder whose finished runs are all attacked")
    p.add_argument("--attacks", type=csv_list(str), default=",".join(ATTACKS),
                   help="comma-separated attacks: fgsm = one step of size ε; ifgsm = iterative "
                        "FGSM (BIM update, clipped to the ε-ball and [0, 1])")
    p.add_argument("--eps", type=csv_list(float), default=DEFAULT_EPS,
                   help="comma-separated L∞ budgets ε in /255 units, each in [0, 255]; "
                        "0 = clean accuracy")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="I-FGSM iterations")
    # Default a = ε/steps: the mixup paper's I-FGSM takes "10 iterations with equal step size",
    # and ε/steps is the one equal step that can just reach the ε-ball's boundary in that many
    # steps, for every ε of the sweep.
    p.add_argument("--step-size", type=optional_float("eps/steps"), default="eps/steps",
                   help="I-FGSM step size a in /255 units, the same for every ε (e.g. 1 for "
                        "Kurakin et al.'s rule, with --steps min(ε+4, 1.25ε)); eps/steps = the mixup "
                        "paper's '10 iterations with equal step size', which ends on the ε-ball")
    p.add_argument("--source", type=Path, default=None,
                   help="black-box: craft the examples with this run's gradients and measure every "
                        "RUN's accuracy on them (white-box rows too, unless --no-white-box); "
                        "None = white-box only")
    p.add_argument("--no-white-box", action="store_true",
                   help="with --source, compute the black-box rows only")
    p.add_argument("--checkpoint", choices=CHECKPOINTS, default="last",
                   help="which checkpoint to attack (best = highest test accuracy during training)")
    p.add_argument("--n", type=optional_int("run"), default="run",
                   help="test images, a class-balanced subset; run = the run's own test_n, i.e. "
                        "the images training evaluated; 0 or ≥ the test set (10,000) = all")
    p.add_argument("--batch", type=int, default=500, help="images per attack batch")
    p.add_argument("--data", type=Path, default=None,
                   help="dataset path; None = the source recorded in each run's config.json")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--precision", choices=["run", "fp32", "bf16"], default="run",
                   help="precision of gradients and predictions: run = each run's training "
                        "precision; fp32 or bf16 for all. Recorded as 'craft/eval' in attack.csv "
                        "when a black-box source and target differ")
    p.add_argument("--force", action="store_true",
                   help="recompute rows already in attack.csv (and replace them)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


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

    @property
    def name(self) -> str:
        return self.path.name


def validate_args(args) -> None:
    unknown = [a for a in args.attacks if a not in ATTACKS]
    if unknown or not args.attacks:
        raise UsageError(f"unknown attack {', '.join(unknown) or '(none)'} "
                         f"(choose from {', '.join(ATTACKS)})")
    if not args.eps:
        raise UsageError("--eps needs at least one value")
    for e in args.eps:
        if not 0.0 <= e <= 255.0:  # also rejects nan
            raise UsageError(f"--eps {e:g} is outside [0, 255] (ε is in /255 units)")
    if args.steps < 1:
        raise UsageError(f"--steps must be at least 1, got {args.steps}")
    if args.step_size is not None and not 0.0 < args.step_size <= 255.0:
        raise UsageError(f"--step-size must be in (0, 255], got {args.step_size:g}")
    if args.batch < 1:
        raise UsageError(f"--batch must be at least 1, got {args.batch}")
    if args.n is not None and args.n < 0:
        raise UsageError(f"--n must be 0 (all) or positive, got {args.n}")
    if args.no_white_box and args.source is None:
        raise UsageError("--no-white-box without --source leaves nothing to compute")


def open_run(path: Path, role: str) -> Run:
    from .runs import CONFIG, is_finished, load_train_config

    if not (path / CONFIG).exists():
        raise UsageError(f"{role} {path} is not a run directory (no {CONFIG})")
    if not is_finished(path):
        raise UsageError(f"{role} {path} is unfinished (no summary.json): train it to the end first")
    return Run(path, load_train_config(path))


def data_key(run: Run, data: Path | None) -> tuple:
    from .runs import CONFIG, read_json

    source = data or read_json(run.path / CONFIG).get("data", {}).get("source")
    return run.cfg.dataset, str(Path(source).resolve()) if source else None


def read_existing(run: Path) -> pd.DataFrame:
    import pandas as pd

    path = run / ATTACK
    if not path.exists():
        return pd.DataFrame(columns=COLUMNS)
    try:
        df = pd.read_csv(path)
    except Exception as e:
        raise UsageError(f"cannot read {path} ({type(e).__name__}); move it away to start "
                         "afresh") from None
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


def load_all(args, device: torch.device) -> tuple[list[Run], Run | None]:
    """Open and check every run and model before anything is computed."""
    from .checkpoints import load_model
    from .runs import finished_runs

    targets = [open_run(p, "run") for p in finished_runs(list(args.runs))]
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
    for t in targets:
        t.existing = read_existing(t.path)
    return targets, source


def load_datasets(runs: list[Run], data: Path | None) -> dict[tuple, Dataset]:
    from .data import load_dataset

    out: dict[tuple, Dataset] = {}
    for r in runs:
        if r.data_key not in out:
            src = data or (r.data_key[1] if r.data_key[1] and Path(r.data_key[1]).exists() else None)
            out[r.data_key] = load_dataset(r.cfg.dataset, src)
    return out


def precision_label(source: Run, target: Run) -> str:
    if source.precision == target.precision:
        return target.precision
    return f"{source.precision}/{target.precision}"


def plan(args, targets: list[Run], source: Run | None, datasets: dict, device: torch.device
         ) -> list[Group]:
    import torch

    from .labelnoise import balanced_subset
    from .train import to_device_images

    images: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def test_set(r: Run) -> tuple[torch.Tensor, torch.Tensor]:
        key = (r.data_key, r.n)
        if key not in images:
            ds = datasets[r.data_key]
            idx = balanced_subset(ds.y_test, r.n, 0)  # = train.test_indices for the run's test_n
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

    from .attacks import Target, default_stack, make_attack, robust_accuracy

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
                               "device": device_label, "date": date})
        save(t)


def fp32_accuracy(correct: int, n: int, device: torch.device) -> float:
    """correct / n computed as training computes test_acc (an fp32 mean of 0/1 on the device),
    so the ε = 0 row equals the stored test_acc bit for bit."""
    import torch

    return (torch.arange(n, device=device) < correct).float().mean().item()


def save(t: Run) -> None:
    """Merge the new rows into attack.csv (replacing rows with the same key), atomically."""
    if not t.new_rows:
        return
    import pandas as pd

    from .atomic import write_csv

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
    import pandas as pd

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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    validate_args(args)
    from tqdm.auto import tqdm

    from .runs import device_name
    from .train import resolve_device

    device = resolve_device(args.device)
    targets, source = load_all(args, device)
    datasets = load_datasets(targets + ([source] if source else []), args.data)
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
    table = results_table(args, targets, source)
    print()
    print(f"accuracy (%) under attack, eps in /255 (checkpoint {args.checkpoint}; rows in "
          f"{ATTACK} of each run)")
    print(table.to_string(index=False) if len(table) else "(no rows)")
    return 0


if __name__ == "__main__":
    entry(main)
