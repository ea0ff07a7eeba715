"""What a result was made with: versions, device, git commit, host, command and date."""

from __future__ import annotations

import datetime as _dt
import platform
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .. import __version__

if TYPE_CHECKING:
    import torch


_pinned: str | None = None


def pin_commit() -> str:
    """Read the checkout's commit now and report it from then on in this process. A process runs
    the code it loaded when it started: a study that trains for hours while the checkout moves
    must not record each later run under a commit whose code it never ran."""
    global _pinned
    if _pinned is None:
        _pinned = _read_commit()
    return _pinned


def git_commit() -> str:
    """The commit pinned at the start of this process (pin_commit), else the checkout's now."""
    return _pinned if _pinned is not None else _read_commit()


def _read_commit() -> str:
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=5).stdout.strip()
        # reports/ is output, not what made it: a report rewriting its own committed files
        # (as the study does) would otherwise call the code that wrote it "-dirty"
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no",
                                "--", ":/", ":(top,exclude)reports"],
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


# The instruction sets that decide which CPU kernels bf16 and fp32 training run on. bf16 results
# reproduce bit for bit only on the same set: an AMX Xeon and an AVX512-BF16 EPYC trained the
# same config and seed to 23.09 and 23.24 % test error (experiments/fast_tuned.notes.md).
CPU_FEATURES = ("amx_bf16", "avx512_bf16", "avx512f", "avx2")


def cpu_features() -> list[str]:
    """Which of CPU_FEATURES this CPU has (empty where /proc/cpuinfo cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith("flags")), [])
    return [f for f in CPU_FEATURES if f in flags]


def device_name(device: torch.device) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()} CPU, {torch.get_num_threads()} threads"


def environment(device: torch.device) -> dict:
    import numpy
    import torch
    import torchvision

    return {
        "robustmix": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "device": str(device),
        "device_name": device_name(device),
        "cpu_features": cpu_features(),
        "git_commit": git_commit(),
        "host": platform.node(),
        "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }
