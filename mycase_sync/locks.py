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


def open_private(path: Path) -> int:
    """A file beside the state store, created 0600 in a 0700 directory (locks, rate-limit slots)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
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
