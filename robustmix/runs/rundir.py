"""Creating, planning and finding run directories.

A run directory is only ever created, recreated or written by robustmix: a folder that holds
something robustmix did not write is refused, never removed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ..atomic import write_json
from ..errors import UsageError
from ..training.config import TrainConfig
from .files import CONFIG, is_finished, read_json

if TYPE_CHECKING:
    import torch


def run_config(run: Path) -> dict:
    """config.json of a run robustmix made. Another tool's config.json (or one that is not a
    JSON object) is refused: that folder is not robustmix's to write into, let alone empty."""
    cfg = read_json(Path(run) / CONFIG)
    if not isinstance(cfg, dict) or not isinstance(cfg.get("train"), dict):
        raise UsageError(f"{run}/{CONFIG} has no 'train' section: not a robustmix run; "
                         "move it away or use another --out")
    return cfg


def load_train_config(run: Path) -> TrainConfig:
    return TrainConfig.from_dict(run_config(run)["train"])


def describe_difference(old: dict, new: dict) -> str:
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(f"{k} {old.get(k)!r} on disk vs {new.get(k)!r} now" for k in keys[:4])


def check_writable(out: Path) -> None:
    """Fail early, with a one-line error, if out cannot be created or written.

    Permission bits do not tell (root passes os.access on /proc and on read-only mounts), so this
    creates and removes a probe folder in the nearest existing ancestor. It leaves nothing behind:
    runs make their own directories, so a command rejected later leaves no trace.
    """
    existing = Path(out)
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"cannot create output directory {out}: {existing} is not a directory")
    try:
        probe = tempfile.mkdtemp(prefix=".robustmix-probe-", dir=existing)
        os.rmdir(probe)
    except OSError as e:
        raise UsageError(f"output directory {out} cannot be written "
                         f"({existing}: {e.strerror or e})") from None


def _owned(run: Path) -> bool:
    """A folder robustmix may write into: one holding a run's config, or empty but for the temp
    files of an interrupted atomic write."""
    return (run / CONFIG).exists() or all(
        p.name.startswith(".") and p.name.endswith(".tmp") for p in run.iterdir())


def _identity(train: dict) -> dict:
    """What makes two training configs the same run. A noise file is known by its sha256, not by
    where it lies: the same study resumed from another checkout, or with the file moved, finds
    its runs (the path the run was made with stays in its config.json)."""
    if train.get("noise_sha256"):
        return {k: v for k, v in train.items() if k != "noise_file"}
    return train


def plan_run(out: Path, cfg: TrainConfig, force: bool,
             auto_precision: bool = False) -> tuple[Path, str]:
    """Decide what to do with a run: 'done', 'resume', 'new' or 'force'. Changes nothing on disk.

    auto_precision: cfg.precision was resolved from "auto" on this machine. A finished run that
    differs from cfg only in its precision is then that run (another machine chose bf16 where
    this one chooses fp32, say), and cfg takes the precision it was made in; an unfinished one
    is refused, since resuming in another precision would splice two trainings."""
    run = out / cfg.run_name
    if run.exists() and not run.is_dir():
        raise UsageError(f"{run} is a file, not a run directory; move it away")
    if not run.exists() or not (run / CONFIG).exists():
        if run.exists() and not _owned(run):
            raise UsageError(f"{run} exists, is not empty and holds no {CONFIG}: robustmix did not "
                             "make it and will not write into it; move it away or use another --out")
        return run, "new"
    stored = run_config(run)["train"]  # before --force: it empties only a robustmix run
    if force:
        return run, "force"
    # Keys added to the config since a run was made take their defaults (what it was made with).
    try:
        stored = TrainConfig.from_dict(stored).to_dict()
    except (TypeError, UsageError):
        pass  # keys this version does not know: reported as a difference below
    old, now = _identity(stored), _identity(cfg.to_dict())
    if (auto_precision and old != now and old.get("precision") != now["precision"]
            and {**old, "precision": now["precision"]} == now):
        if not is_finished(run):
            raise UsageError(
                f"run directory {run} was started in {old['precision']}, and precision 'auto' "
                f"chooses {now['precision']} on this machine; resume it with precision "
                f"{old['precision']} asked for (--precision, or precision in the study's [train]), "
                "or use another --out")
        cfg.precision = old["precision"]
        return run, "done"
    if old != now:
        raise UsageError(f"run directory {run} was made with another config "
                         f"({describe_difference(old, now)}); "
                         "use another --out, or --force to retrain")
    return run, ("done" if is_finished(run) else "resume")


def clear_run(run: Path) -> None:
    """Empty a run directory for --force. Only a folder that holds a robustmix config.json (so
    robustmix created it) is ever emptied."""
    if not (run / CONFIG).exists():
        raise UsageError(f"{run} holds no {CONFIG}: robustmix did not make it and will not empty it")
    run_config(run)
    shutil.rmtree(run)
    run.mkdir()


def start_run(run: Path, cfg: TrainConfig, device: torch.device, fresh: bool,
              data: dict | None = None, extra: dict | None = None) -> None:
    """Create (or, with fresh, restart) the run directory and write its config.json.

    data records where the images came from ({"source": path, "description": ...}) so later
    stages (attacks) can find the same test set; extra holds further provenance (e.g. why a
    precision was chosen).
    """
    from .provenance import environment

    try:
        run.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create run directory {run}: {e.strerror or e}") from None
    if not _owned(run):
        raise UsageError(f"{run} holds files robustmix did not write and no {CONFIG}; move it away")
    if fresh and (run / CONFIG).exists():
        clear_run(run)
    if fresh or not (run / CONFIG).exists():
        write_json(run / CONFIG, {"train": cfg.to_dict(), "env": environment(device),
                                  "data": data or {}, **(extra or {})})


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
