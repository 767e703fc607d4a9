"""SIGINT, SIGTERM and SIGHUP stop a run the same way, at a safe point, and never mid-refresh.

`timeout`, systemd and a shutdown send SIGTERM; without a handler Python dies at once, the run stays
recorded as `running`, and a refresh whose answer was on its way loses the new refresh token (MyCase's
are single-use). With `handled()` (cli.main) each of the three raises `Interrupted` in the main thread:
the job records the run as interrupted and the command exits 130 (SIGINT) or 143 (SIGTERM, SIGHUP).
Inside `uncut()` (a token refresh and the saving of its answer) a signal waits until the section ends.
A signal that lands while Python runs a finalizer raises there, and Python only reports and drops the
exception: `check()`, called at the safe points of a run (each matter, each item, the end of the
work), stops the run then.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
EXIT_SIGINT = 130
EXIT_SIGTERM = 143  # SIGHUP too: both mean "stop now", from something other than a person's Ctrl-C


class Interrupted(BaseException):
    """A stop signal arrived (a BaseException, like KeyboardInterrupt: no `except Exception` eats it)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = EXIT_SIGINT if signum == signal.SIGINT else EXIT_SIGTERM


# Reentrant: the handler runs in the main thread, which may hold the lock when the signal lands.
_lock = threading.RLock()
_uncut = 0  # sections under way (any thread)
_pending: int | None = None  # a signal that arrived during one
_received: int | None = None  # the stop signal taken by the handler, if any (see check)


def _handler(signum: int, frame) -> None:
    global _pending, _received
    with _lock:
        if _uncut:
            _pending = _pending or signum
            return
        _received = signum
    raise Interrupted(signum)


def check() -> None:
    """A safe point: a stop signal already taken whose Interrupted never reached the run (it was
    raised inside a finalizer) stops the run here. Main thread only, like the handler."""
    if _received is not None and threading.current_thread() is threading.main_thread():
        raise Interrupted(_received)


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """The three signals raise Interrupted while the block runs (main thread only; else a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    global _received
    _received = None
    previous = {signum: signal.signal(signum, _handler) for signum in HANDLED}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _received = None


@contextlib.contextmanager
def uncut() -> Iterator[None]:
    """A section no signal cuts: one that arrives meanwhile takes effect as the section ends."""
    global _uncut, _pending
    with _lock:
        _uncut += 1
    try:
        yield
    finally:
        with _lock:
            _uncut -= 1
            signum = _pending if not _uncut else None
            if signum is not None:
                _pending = None
        if signum is not None:
            # To the main thread itself, from whichever thread ended the section: raised in a worker,
            # it would wait until the main thread woke for another reason (a whole lane of a push).
            signal.pthread_kill(threading.main_thread().ident, signum)
