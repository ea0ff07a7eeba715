"""One writer per run directory: an exclusive lock held while a process trains a run.

The lock is an flock on OUT/.RUN.lock, beside the run directory rather than in it, so the run
directory holds only what the run-directory contract names; the file exists only while held.
The kernel drops the lock when its holder exits, however it exits (Ctrl-C, SIGKILL, a crash), so
a lock file left by a dead process is never mistaken for a live lock; the file's text (host,
pid, start time) only serves the message a second process prints.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import os
import platform
import time
from pathlib import Path

from ..errors import UsageError


def lock_path(run: Path) -> Path:
    return run.parent / f".{run.name}.lock"


class RunBusy(Exception):
    """Another live process holds the run's lock."""

    def __init__(self, run: Path, holder: str) -> None:
        super().__init__(f"{run} is being written by another process ({holder})")
        self.run, self.holder = run, holder


class RunLock:
    """Context manager: `with RunLock(run, wait=False):` raises RunBusy when the run is taken;
    with wait=True it blocks until the holder is done (polling every poll seconds)."""

    def __init__(self, run: Path, wait: bool = False, poll: float = 2.0) -> None:
        self.run, self.wait, self.poll = Path(run), wait, poll
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        path = lock_path(self.run)
        while True:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as e:
                raise UsageError(f"cannot lock run {self.run}: {e.strerror or e}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                if not self.wait:
                    raise RunBusy(self.run, holder) from None
                time.sleep(self.poll)
                continue
            # The holder before us unlinks the file when done: a lock on an unlinked file
            # excludes no one, so it counts only if the path still names the file we locked.
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        os.pwrite(fd, f"host {platform.node()} pid {os.getpid()} since {now}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            # Unlink while still holding the lock, so no one can lock the old file meanwhile.
            lock_path(self.run).unlink(missing_ok=True)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text or "holder unknown"
