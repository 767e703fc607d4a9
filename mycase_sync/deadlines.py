"""Each request attempt's overall deadline, and the watchdog that enforces it.

The read timeout (MYCASE_SYNC_TIMEOUT) bounds each read, not a whole answer: a server that sends a
byte every few seconds would hold a job (and its lock) for hours. So every attempt of a request
must be complete within DEADLINE_FACTOR read timeouts, plus the time its bytes need at
MIN_TRANSFER_RATE (a file upload or download); past that its connection is shut.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Any

import requests

DEADLINE_FACTOR = 2.0
MIN_TRANSFER_RATE = 16 * 1024  # bytes per second, the slowest a file transfer may go on average


class Watchdog:
    """One request attempt's overall deadline: when it passes, the answer's socket is shut for
    reading, so whatever read is under way ends at once (and the attempt is reported as too slow).

    `attach` is a requests response hook: it runs before the body is read, for every answer."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.started = time.monotonic()
        self.expired = False
        self._done = False
        self._response: requests.Response | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def attach(self, response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
        with self._lock:
            self._response = response
            if self.expired:
                _shut(response)
        return response

    def _expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            if self._response is not None:
                _shut(self._response)

    def cancel(self) -> None:
        with self._lock:
            self._done = True
        self._timer.cancel()

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def _shut(response: requests.Response) -> None:
    with contextlib.suppress(Exception):  # already released, closed, or not a socket (a test's fake)
        response.raw.shutdown()


class DeadlineExceeded(requests.exceptions.Timeout):
    """An attempt that took longer than its overall deadline (a Timeout: retried like one)."""


def body_size(kwargs: dict) -> int:
    """The bytes a request sends (a file or bytes body), for its deadline; 0 when unknown."""
    data = kwargs.get("data")
    if isinstance(data, (bytes, bytearray, str)):
        return len(data)
    if hasattr(data, "fileno"):
        with contextlib.suppress(OSError, ValueError):
            return os.fstat(data.fileno()).st_size
    return 0
