"""Kernel locks beside the state store: one per job, and one around token refresh.

flock is released by the kernel when the process dies, so a crash never leaves a stale
lock for the next cron run to trip over.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator

from mycase_sync.errors import LockHeld


def lock_path(db_path: Path, name: str) -> Path:
    return db_path.with_name(f"{db_path.name}.{name}.lock")


def private_dirs(path: Path) -> None:
    """Create the directory `path` and every missing parent 0700, whatever the umask (mkdir's
    parents=True makes the parents 0777 less the umask: 0777 under umask 000)."""
    path = Path(path)
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:  # another job made it meanwhile
            continue
        os.chmod(directory, 0o700)  # mkdir's mode is masked by the umask; 0700 is what we mean


def open_private(path: Path) -> int:
    """A file beside the state store, created 0600 in a 0700 directory (locks, rate-limit slots)."""
    private_dirs(path.parent)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)


@contextlib.contextmanager
def job_lock(db_path: Path, job: str) -> Iterator[None]:
    """Exclusive, non-blocking: a second run of the same job exits at once (code 75)."""
    fd = open_private(lock_path(db_path, job))
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockHeld(f"another {job} run is in progress (lock {lock_path(db_path, job)}); try again later") from None
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def blocking_lock(db_path: Path, name: str) -> Iterator[None]:
    """Exclusive and waiting: used around token refresh, which must never run twice at once."""
    fd = open_private(lock_path(db_path, name))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
