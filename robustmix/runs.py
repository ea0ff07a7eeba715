"""Run directories: the hand-off between training, attacks and the report.

A run directory holds config.json (training config plus seed, versions, device and git commit),
labels.csv (clean and noisy training labels), metrics.csv (one row per epoch), summary.json
(written last: its presence means the run is finished), last.pt and best.pt checkpoints, and,
once attacked, attack.csv.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from . import __version__
from .atomic import write_json
from .config import TrainConfig
from .errors import UsageError

CONFIG = "config.json"
METRICS = "metrics.csv"
SUMMARY = "summary.json"
LABELS = "labels.csv"
LAST = "last.pt"
BEST = "best.pt"
ATTACK = "attack.csv"


def git_commit() -> str:
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not commit:
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()} CPU, {torch.get_num_threads()} threads"


def environment(device: torch.device) -> dict:
    import numpy
    import torchvision

    return {
        "robustmix": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "device": str(device),
        "device_name": device_name(device),
        "git_commit": git_commit(),
        "host": platform.node(),
        "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UsageError(f"cannot read {path}: {e}") from None


def is_finished(run: Path) -> bool:
    return (Path(run) / SUMMARY).exists()


def load_train_config(run: Path) -> TrainConfig:
    cfg = read_json(Path(run) / CONFIG)
    if "train" not in cfg:
        raise UsageError(f"{run}/{CONFIG} has no 'train' section: not a robustmix run")
    return TrainConfig.from_dict(cfg["train"])


def describe_difference(old: dict, new: dict) -> str:
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(f"{k} {old.get(k)!r} on disk vs {new.get(k)!r} now" for k in keys[:4])


def check_writable(out: Path) -> None:
    """Fail early if out cannot be created or written; creates nothing (runs make their own
    directories), so a command rejected later leaves no trace."""
    existing = Path(out)
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"cannot create output directory {out}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"output directory {out} is not writable ({existing} is read-only)")


def plan_run(out: Path, cfg: TrainConfig, force: bool) -> tuple[Path, str]:
    """Decide what to do with a run: 'done', 'resume', 'new' or 'force'. Changes nothing on disk."""
    run = out / cfg.run_name
    if not run.exists() or not (run / CONFIG).exists():
        return run, "new"
    if force:
        return run, "force"
    stored = read_json(run / CONFIG).get("train", {})
    if stored != cfg.to_dict():
        raise UsageError(f"run directory {run} was made with another config "
                         f"({describe_difference(stored, cfg.to_dict())}); "
                         "use another --out, or --force to retrain")
    return run, ("done" if is_finished(run) else "resume")


def start_run(run: Path, cfg: TrainConfig, device: torch.device, fresh: bool,
              data: dict | None = None) -> None:
    """Create (or, with fresh, recreate) the run directory and its config.json.

    data records where the images came from ({"source": path, "description": ...}) so later
    stages (attacks) can find the same test set.
    """
    if fresh and run.exists():
        shutil.rmtree(run)
    run.mkdir(parents=True, exist_ok=True)
    if fresh or not (run / CONFIG).exists():
        write_json(run / CONFIG, {"train": cfg.to_dict(), "env": environment(device),
                                  "data": data or {}})


def finished_runs(paths: list[Path]) -> list[Path]:
    """Every finished run named, or inside a named folder (searched recursively)."""
    found: list[Path] = []
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise UsageError(f"run directory {p} does not exist")
        if (p / CONFIG).exists():
            found.append(p)
        else:
            inner = sorted(c.parent for c in p.rglob(CONFIG) if is_finished(c.parent))
            if not inner:
                raise UsageError(f"{p} is neither a run directory nor a folder of finished runs")
            found.extend(inner)
    return found

