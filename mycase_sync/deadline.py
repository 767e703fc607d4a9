"""The overall deadline of one HTTP attempt: the whole exchange, not each read.

A read timeout bounds each read only: a server that trickles its status line, its headers or its
body a byte at a time, or takes an upload a byte at a time, would hold a job (and its lock) for
hours. Each attempt's `Watchdog` follows the connection the attempt uses (taken from the pool or
newly opened) and, when the deadline passes, shuts its socket: whatever is under way (sending,
waiting for the headers, reading the body) ends at once. A connection goes back to the pool
unwatched, so a late deadline never cuts another request's exchange.

`WatchedAdapter` is the requests adapter whose connection pools tell the watchdog of the attempt
made in their thread (`Watchdog.guarding`). A SOCKS proxy brings its own pools: through one, only
the read timeout applies.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from typing import Any, Iterator

import requests
import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

# Every attempt must be complete within DEADLINE_FACTOR read timeouts (MYCASE_SYNC_TIMEOUT), plus the
# time its bytes need at MIN_TRANSFER_RATE (a file upload or download).
DEADLINE_FACTOR = 2.0
MIN_TRANSFER_RATE = 16 * 1024  # bytes per second, the slowest a file transfer may go on average

_current = threading.local()  # .watchdog: that of the attempt this thread is making


class Watchdog:
    """One attempt's deadline: when it passes, the socket of the attempt's connection is shut."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.started = time.monotonic()
        # A deadline from an absurd declared size (1e62 bytes) would overflow the timer's wait and kill
        # its thread with a traceback; past TIMEOUT_MAX (years) no deadline can matter anyway.
        seconds = min(seconds, threading.TIMEOUT_MAX)
        self.expired = False
        self._done = False
        self._conn: Any = None  # the urllib3 connection in use
        self._raw: socket.socket | None = None  # its socket while being opened (before conn.sock is set)
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    @contextlib.contextmanager
    def guarding(self) -> Iterator["Watchdog"]:
        """The requests this thread makes in the block are under this deadline."""
        _current.watchdog = self
        try:
            yield self
        finally:
            _current.watchdog = None

    def watch(self, conn: Any, raw: socket.socket | None = None) -> None:
        with self._lock:
            self._conn, self._raw = conn, raw
            if self.expired and not self._done:
                self._shut()

    def release(self, conn: Any) -> None:
        """The connection goes back to the pool: this deadline no longer concerns it."""
        with self._lock:
            if self._conn is conn:
                self._conn = self._raw = None

    def _expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            self._shut()

    def _shut(self) -> None:
        for sock in (getattr(self._conn, "sock", None), self._raw):
            if sock is not None:
                with contextlib.suppress(OSError):  # already closed, or handed over to TLS
                    sock.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        with self._lock:
            self._done = True
        self._timer.cancel()

    def elapsed(self) -> float:
        return time.monotonic() - self.started


class _WatchedConnection:
    """A connection that shows the socket it opens to its attempt's watchdog, before using it."""

    watchdog: Watchdog | None = None

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()  # type: ignore[misc]
        if self.watchdog is not None:
            self.watchdog.watch(self, sock)
        return sock


class _WatchedPool:
    """A pool that hands each connection to the watchdog of the attempt taking it, and takes it back."""

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)  # type: ignore[misc]
        conn.watchdog = getattr(_current, "watchdog", None)
        if conn.watchdog is not None:
            conn.watchdog.watch(conn)
        return conn

    def _put_conn(self, conn: Any) -> None:
        if conn is not None and getattr(conn, "watchdog", None) is not None:
            conn.watchdog.release(conn)
            conn.watchdog = None
        super()._put_conn(conn)  # type: ignore[misc]


class _HTTPConnection(_WatchedConnection, HTTPConnection):
    pass


class _HTTPSConnection(_WatchedConnection, HTTPSConnection):
    pass


class _HTTPPool(_WatchedPool, HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(_WatchedPool, HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class WatchedAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter, its pools (and a plain proxy's) those above."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        _use_watched_pools(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        _use_watched_pools(manager)
        return manager


def _use_watched_pools(manager: Any) -> None:
    if manager.pool_classes_by_scheme == urllib3.poolmanager.pool_classes_by_scheme:  # not SOCKS's own
        manager.pool_classes_by_scheme = _POOLS


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
