"""Shared machinery for the sandbox services: a stdlib HTTP server, routing, knobs and a journal.

Each emulated service (MyCase, Case Status) is a `Service` subclass whose methods are decorated
with `@route`. A `ServiceServer` serves one service on 127.0.0.1 over real HTTP/1.1 so the client
code under test runs its real transport (keep-alive, timeouts, streaming) against it. Every request
passes through the knobs in a fixed order (latency, rate limit, fault plan, route) and lands in a
journal with its secrets masked, so tests can assert on what the client did without the journal
itself becoming a leak.
"""
from __future__ import annotations

import json
import random
import re
import select
import socket
import threading
import time
import traceback
from collections import Counter, deque
from datetime import date, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs, urlsplit

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SECRET_KEYS = frozenset({
    "access_token", "refresh_token", "client_secret", "code", "api_key", "password", "signature",
    "authorization", "x-amz-signature",
})
MASK = "***"
# Request bodies are kept in the journal only when small, so an upload never lands there.
_JOURNAL_BODY_LIMIT = 64 * 1024
# Above this, a body the handler left unread is not drained: the connection is closed instead.
_DRAIN_LIMIT = 2 * 1024 ** 3


class Clock:
    """UTC time plus a test-settable offset, shared by both services so expiries move together."""

    def __init__(self, offset: float = 0.0):
        self.offset = offset

    def now(self) -> datetime:
        return datetime.now(timezone.utc) + timedelta(seconds=self.offset)

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def timestamp(self) -> float:
        return time.time() + self.offset


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT = _Absent()  # Service.serve_as: a field left out of the record served


class HttpError(Exception):
    """Raised by a handler to answer with an error status and body."""

    def __init__(self, status: int, body: Any, headers: dict | None = None):
        super().__init__(f"{status}: {body!r}")
        self.status = status
        self.body = body
        self.headers = headers or {}


def mask_secrets(value: Any) -> Any:
    """A copy of a JSON-ish value (or query dict) with every secret-looking key's value masked."""
    if isinstance(value, dict):
        return {k: (MASK if str(k).lower() in SECRET_KEYS else mask_secrets(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    return value


class ClientGone(Exception):
    """The client closed the connection before its request body was complete.

    A real server never hands such a request to the application: it waits for the rest, sees
    the connection close, and drops it. A killed sync job leaves exactly this behind.
    """


class _LimitedReader:
    """Reads exactly `length` bytes of a request body from the socket, never past it."""

    def __init__(self, raw, length: int):
        self._raw = raw
        self.remaining = length

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:  # all of it: a short read is only the end of a dead connection's data
            parts = []
            while self.remaining > 0:
                parts.append(self.read(self.remaining))
            return b"".join(parts)
        if self.remaining <= 0:
            return b""
        n = min(n, self.remaining)
        data = self._raw.read(n)
        if not data:
            self.remaining = 0
            raise ClientGone()
        self.remaining -= len(data)
        return data

    def drain(self) -> None:
        while self.remaining > 0 and self.read(min(self.remaining, 1 << 20)):
            pass


class _ChunkedReader:
    """Decodes a chunked request body, so a refused chunked upload can still be read to its end."""

    def __init__(self, raw):
        self._raw = raw
        self._left = 0
        self._done = False

    @property
    def remaining(self) -> int:
        return 0 if self._done else 1

    def _next_chunk(self) -> None:
        line = self._raw.readline(1024)
        if not line:
            self._done = True
            raise ClientGone()
        size = int(line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while self._raw.readline(1024) not in (b"\r\n", b"\n", b""):
                pass
            self._done = True
        self._left = size

    def read(self, n: int = -1) -> bytes:
        out = bytearray()
        while not self._done and (n < 0 or len(out) < n):
            if self._left == 0:
                self._next_chunk()
                continue
            want = self._left if n < 0 else min(self._left, n - len(out))
            data = self._raw.read(want)
            if not data:
                self._done = True
                raise ClientGone()
            out += data
            self._left -= len(data)
            if self._left == 0:
                self._raw.readline(16)
        return bytes(out)

    def drain(self) -> None:
        while not self._done and self.read(1 << 20):
            pass


class Request:
    """One parsed HTTP request as a handler sees it."""

    def __init__(self, service: "Service", method: str, target: str, headers, base_url: str, rfile):
        split = urlsplit(target)
        self.service = service
        self.method = method
        self.path = split.path
        self.raw_query = split.query
        self.query: dict[str, list[str]] = parse_qs(split.query, keep_blank_values=True)
        self.headers = headers
        self.base_url = base_url
        self.chunked = "chunked" in (headers.get("Transfer-Encoding") or "").lower()
        length = headers.get("Content-Length")
        self.content_length: int | None = None
        if self.chunked:
            self.stream = _ChunkedReader(rfile)
        else:
            try:
                self.content_length = max(0, int(length)) if length is not None else None
            except ValueError:
                self.content_length = None
            self.stream = _LimitedReader(rfile, self.content_length or 0)
        self._body: bytes | None = None
        self.parsed: Any = None  # what json()/form() decoded, kept (masked) in the journal

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower-cased ("" when absent)."""
        return (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()

    @property
    def body(self) -> bytes:
        if self._body is None:
            self._body = self.stream.read()
        return self._body

    def json(self) -> Any:
        try:
            self.parsed = json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            self.service.violation(f"{self.method} {self.path}: body is not valid JSON")
            raise HttpError(400, self.service.error_body("Request body is not valid JSON", {"pointer": "/"}))
        return self.parsed

    def form(self) -> dict[str, str]:
        try:
            pairs = parse_qs(self.body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            raise HttpError(400, self.service.error_body("Request body is not valid form data", {"pointer": "/"}))
        self.parsed = {k: v[0] for k, v in pairs.items()}
        return self.parsed


class Response:
    """What a handler answers: bytes as is, an iterator of bytes streamed, anything else as JSON."""

    def __init__(self, status: int = 200, body: bytes | Any | Iterable[bytes] = b"", headers: dict | None = None):
        self.status = status
        self.headers = dict(headers or {})
        self.stream: Iterable[bytes] | None = None
        if isinstance(body, (bytes, bytearray)):
            self.body = bytes(body)
        elif hasattr(body, "__next__"):
            self.body = None
            self.stream = body
        else:
            self.body = json.dumps(body, default=_json_default).encode("utf-8")
            self.headers.setdefault("Content-Type", "application/json; charset=utf-8")


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def route(method: str, pattern: str):
    """Mark a Service method as the handler of `method` on paths fully matching regex `pattern`."""

    def mark(fn):
        fn._route = (method.upper(), pattern)
        return fn

    return mark


class FaultPlan:
    """Planned failures: "the nth matching request (and the next times-1) gets kind", or a random storm."""

    # "502_late" etc.: the request is carried out, then a gateway answers for it with that status.
    KINDS = frozenset({"500", "502", "503", "504", "429", "drop", "timeout", "drop_before",
                       "502_late", "503_late", "504_late"})

    def __init__(self):
        self._lock = threading.Lock()
        self._rules: list[dict] = []
        self._storm: dict | None = None
        self.fired: list[dict] = []
        self.timeout_hold: float = 3.0

    def add(self, method: str, path_regex: str, kind: str, nth: int = 1, times: int = 1) -> None:
        """Path regexes are full-matched, so "/v1/cases" does not also catch "/v1/cases/1"."""
        if kind not in self.KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {sorted(self.KINDS)}")
        with self._lock:
            self._rules.append({"method": method.upper(), "regex": re.compile(path_regex), "kind": kind,
                                "nth": nth, "times": times, "seen": 0})

    def storm(self, rate: float, kinds: list[str], seed: int = 0, writes_only: bool = False,
              path_regex: str | None = None) -> None:
        for kind in kinds:
            if kind not in self.KINDS:
                raise ValueError(f"unknown fault kind {kind!r}")
        with self._lock:
            self._storm = {"rate": rate, "kinds": list(kinds), "rng": random.Random(seed),
                           "writes_only": writes_only, "regex": re.compile(path_regex) if path_regex else None}

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self._storm = None

    def check(self, method: str, path: str) -> str | None:
        """Count this request against every rule; return the fault kind to apply, if any."""
        with self._lock:
            kind = None
            for rule in self._rules:
                if rule["method"] not in (method, "*") or not rule["regex"].fullmatch(path):
                    continue
                rule["seen"] += 1
                if kind is None and rule["nth"] <= rule["seen"] < rule["nth"] + rule["times"]:
                    kind = rule["kind"]
            storm = self._storm
            if kind is None and storm is not None:
                if (not storm["writes_only"] or method in WRITE_METHODS) and \
                        (storm["regex"] is None or storm["regex"].fullmatch(path)):
                    if storm["rng"].random() < storm["rate"]:
                        kind = storm["rng"].choice(storm["kinds"])
            if kind is not None:
                self.fired.append({"method": method, "path": path, "kind": kind})
            return kind


class Service:
    """Base of an emulated service: routes, knobs, journal and contract-violation log."""

    name = "service"

    def __init__(self, clock: Clock):
        self.clock = clock
        self.lock = threading.RLock()
        self.latency: tuple[float, float] | None = None
        self.rate_limit: float | None = None
        self.retry_after: int | None = None
        self.faults = FaultPlan()
        self.journal: list[dict] = []
        self.violations: list[str] = []
        self.crashes: list[str] = []  # tracebacks of sandbox bugs (answered 500): tests should assert empty
        self.cut_off: list[str] = []  # "METHOD path" of requests whose sender hung up mid-body (unrun, unless
        # the route had already refused it without reading the body)
        self.counters: Counter = Counter()  # "METHOD pattern" -> requests that reached the route
        self.after_write_hooks: list[Callable[[dict], None]] = []
        self.served_as: dict[tuple[str, Any], dict] = {}  # see serve_as
        self.base_url: str | None = None  # set by ServiceServer
        self._rng = random.Random()
        self._rl_lock = threading.Lock()
        self._rl_window: deque[float] = deque()
        self._routes: list[tuple[str, re.Pattern, str, Callable]] = []
        for attr_name in dir(type(self)):  # dir() sees the most-derived override of each handler
            fn = getattr(type(self), attr_name, None)
            if callable(fn) and hasattr(fn, "_route"):
                method, pattern = fn._route
                self._routes.append((method, re.compile(pattern), pattern, fn.__get__(self)))

    # -- knobs a service overrides ------------------------------------------------------------------
    @property
    def timeout_hold(self) -> float:
        return self.faults.timeout_hold

    @timeout_hold.setter
    def timeout_hold(self, seconds: float) -> None:
        self.faults.timeout_hold = seconds

    def error_body(self, message: str, source: dict | None = None) -> Any:
        """The service's documented error body (MyCase shape by default)."""
        return {"errors": [{"description": message, "source": source or {}}]}

    def rate_limited_response(self) -> Response:
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}
        return Response(429, self.error_body("Too Many Requests"), headers)

    def fault_response(self, kind: str) -> Response:
        """What a planned 5xx looks like; gateways answer {"message": ...} rather than the error body."""
        messages = {"500": "Internal Server Error", "502": "Bad Gateway", "503": "Service Unavailable",
                    "504": "Endpoint request timed out"}
        body = self.error_body(messages[kind]) if kind == "500" else {"message": messages[kind]}
        return Response(int(kind), body)

    def is_rate_limited_path(self, path: str) -> bool:
        return True

    def serve_as(self, kind: str, record_id: Any, **fields: Any) -> None:
        """Serve the `kind` record `record_id` ("case", "message", "file") with these fields in place
        of its own, ABSENT ones left out: a malformed or hostile record as a service might send it
        (wrong types, an id SQLite cannot hold, a key missing), while the stored record stays whole."""
        with self.lock:
            self.served_as.setdefault((kind, record_id), {}).update(fields)

    def _served(self, kind: str, record_id: Any, rendered: dict) -> dict:
        tampered = self.served_as.get((kind, record_id))
        if not tampered:
            return rendered
        out = {k: v for k, v in rendered.items() if tampered.get(k) is not ABSENT}
        out.update((k, v) for k, v in tampered.items() if v is not ABSENT)
        return out

    # -- introspection ------------------------------------------------------------------------------
    def violation(self, message: str) -> None:
        with self.lock:
            self.violations.append(message)

    def count(self, method: str | None = None, path_regex: str | None = None, writes_only: bool = False) -> int:
        """Journal entries matching; `path_regex` is full-matched against the path."""
        rx = re.compile(path_regex) if path_regex else None
        with self.lock:
            return sum(1 for e in self.journal
                       if (method is None or e["method"] == method.upper())
                       and (rx is None or rx.fullmatch(e["path"]))
                       and (not writes_only or e["write"]))

    def reset_journal(self) -> None:
        with self.lock:
            self.journal.clear()
            self.violations.clear()
            self.cut_off.clear()
            self.counters.clear()

    # -- the pipeline -------------------------------------------------------------------------------
    def _admit(self) -> bool:
        """Sliding one-second window; uses its own lock so a slow handler never blocks the limiter."""
        limit = self.rate_limit
        if limit is None:
            return True
        now = time.monotonic()
        with self._rl_lock:
            while self._rl_window and self._rl_window[0] <= now - 1.0:
                self._rl_window.popleft()
            if len(self._rl_window) >= limit:
                return False
            self._rl_window.append(now)
            return True

    def _match(self, method: str, path: str):
        path_known = False
        for m, rx, pattern, fn in self._routes:
            groups = rx.fullmatch(path)
            if groups is None:
                continue
            path_known = True
            if m == method:
                return fn, groups.groups(), pattern
        return None, path_known, None

    def handle(self, req: Request) -> tuple[Response | None, str | None]:
        """Run one request through latency, rate limit, faults and route; journal it.

        Returns the response and the fault kind; for "drop", "timeout" and "drop_before" the
        server must not answer (the response, if any, was committed but is never sent).
        """
        latency = self.latency
        if latency:
            time.sleep(self._rng.uniform(*latency))
        entry = {"method": req.method, "path": req.path, "query": mask_secrets(req.query),
                 "status": None, "write": req.method in WRITE_METHODS, "fault": None,
                 "auth": (req.headers.get("Authorization") or "").split(" ")[0] or None,
                 "at": self.clock.now()}
        kind = None
        if self.is_rate_limited_path(req.path) and not self._admit():
            resp = self.rate_limited_response()
            entry["rate_limited"] = True
        else:
            kind = self.faults.check(req.method, req.path)
            entry["fault"] = kind
            if kind == "drop_before":
                resp = None
            elif kind == "429":
                resp = self.rate_limited_response()
            elif kind in ("500", "502", "503", "504"):
                resp = self.fault_response(kind)
            elif kind is not None and kind.endswith("_late"):
                self._run_route(req)
                resp = self.fault_response(kind.removesuffix("_late"))
            else:
                resp = self._run_route(req)
        if resp is not None:
            entry["status"] = resp.status
        if req.parsed is not None and len(req._body or b"") <= _JOURNAL_BODY_LIMIT:
            entry["body"] = mask_secrets(req.parsed)
        if resp is not None and entry["write"] and resp.status < 400:
            for hook in list(self.after_write_hooks):
                hook(dict(entry))
        with self.lock:
            self.journal.append(entry)
        return resp, kind

    def _run_route(self, req: Request) -> Response:
        fn, groups, pattern = self._match(req.method, req.path)
        if fn is None:
            status, message = (405, "Method not allowed") if groups else (404, "Not found")
            return Response(status, self.error_body(message))
        with self.lock:
            self.counters[f"{req.method} {pattern}"] += 1
        try:
            resp = fn(req, *groups)
        except HttpError as exc:
            return Response(exc.status, exc.body, exc.headers)
        except ClientGone:
            raise
        except Exception:  # a sandbox bug: answer 500 and keep it for the tests to see
            with self.lock:
                self.crashes.append(traceback.format_exc())
            return Response(500, self.error_body("Internal Server Error"))
        return resp if isinstance(resp, Response) else Response(200, resp)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sandbox"
    sys_version = ""

    def setup(self):
        super().setup()
        # Headers and body go out in separate writes; without NODELAY, Nagle plus delayed ACK
        # would add ~40 ms to every keep-alive request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format, *args):  # the journal is the log
        pass

    def _dispatch(self) -> None:
        server: _HTTPServer = self.server  # type: ignore[assignment]
        service = server.service
        req = Request(service, self.command, self.path, self.headers, server.url, self.rfile)
        try:
            resp, kind = service.handle(req)
            if kind == "drop_before" or resp is None:
                self.close_connection = True
                return
            stream = req.stream
            if stream.remaining > _DRAIN_LIMIT:
                self.close_connection = True
            else:
                stream.drain()
        except ClientGone:
            with service.lock:
                service.cut_off.append(f"{req.method} {req.path}")
            self.close_connection = True
            return
        if kind == "drop":
            self.close_connection = True
            return
        if kind == "timeout":
            server.stopping.wait(service.faults.timeout_hold)
            self.close_connection = True
            return
        self._send(resp)

    def _send(self, resp: Response) -> None:
        self.send_response(resp.status)
        chunked = False
        for name, value in resp.headers.items():
            self.send_header(name, str(value))
        names = {k.lower() for k in resp.headers}
        if resp.stream is None:
            if "content-length" not in names:
                self.send_header("Content-Length", str(len(resp.body)))
        elif "content-length" not in names:
            self.send_header("Transfer-Encoding", "chunked")
            chunked = True
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command == "HEAD":
            return
        try:
            if resp.stream is None:
                self.wfile.write(resp.body)
            else:
                for chunk in resp.stream:
                    if not chunk:
                        continue
                    if chunked:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    else:
                        self.wfile.write(chunk)
                if chunked:
                    self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):  # the client went away mid-download
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # idle keep-alive connections must not hold up stop()
    allow_reuse_address = True

    def __init__(self, addr, service: Service):
        self.service = service
        self.stopping = threading.Event()
        self.connections: set[socket.socket] = set()  # accepted and not yet closed
        self._changed = threading.Condition()  # guards `connections`; notified when it changes
        super().__init__(addr, _Handler)
        # accept() never blocks (it may hold the lock): a connection gone before it is just skipped
        self.socket.setblocking(False)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def get_request(self):
        with self._changed:  # accepted and counted in one step: wait_until_idle never sees between
            request, client_address = super().get_request()
            request.setblocking(True)  # not the listening socket's mode, on any platform
            self.connections.add(request)
            self._changed.notify_all()
        return request, client_address

    def shutdown_request(self, request):
        try:
            super().shutdown_request(request)
        finally:
            with self._changed:
                self.connections.discard(request)
                self._changed.notify_all()

    def wait_until_idle(self, timeout: float) -> bool:
        """Wait until no connection is open or waiting to be accepted: every request the clients
        sent has then been answered or dropped. False if that takes longer than `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.connections or self._waiting_to_be_accepted():
                left = deadline - time.monotonic()
                if left <= 0 or self.stopping.is_set():
                    return False
                self._changed.wait(left)
            return True

    def _waiting_to_be_accepted(self) -> bool:
        try:
            readable, _, _ = select.select([self.socket], [], [], 0)
        except (OSError, ValueError):  # closed: nothing will be accepted any more
            return False
        return bool(readable)

    def handle_error(self, request, client_address):  # a client hanging up is not news
        pass


class ServiceServer:
    """Serves one Service on 127.0.0.1 in a daemon thread; starts and stops in milliseconds."""

    def __init__(self, service: Service, port: int = 0, host: str = "127.0.0.1"):
        self.service = service
        self._httpd = _HTTPServer((host, port), service)
        self.port = self._httpd.server_address[1]
        self.url = self._httpd.url
        service.base_url = self.url
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"sandbox-{service.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        httpd = self._httpd
        httpd.stopping.set()
        httpd.shutdown()
        with httpd._changed:
            open_connections = list(httpd.connections)
        for conn in open_connections:  # wake handler threads blocked on an idle keep-alive read
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        httpd.server_close()
        self._thread.join(timeout=1)

    def wait_until_idle(self, timeout: float = 30.0) -> bool:
        """After a client was killed: wait until what it had sent has landed (or been dropped).

        A killed client's requests may still be inside the server (read, not yet run); a test
        that counts what was committed must wait for them, or a late commit slips past its count."""
        return self._httpd.wait_until_idle(timeout)

    def __enter__(self) -> "ServiceServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
