"""One requests.Session factory for both services: timeouts, retries, pacing, redaction.

Why here and not in each client: both services need the same discipline (MyCase answers in
0.9 s to 20 s, gateways answer 429/502/503/504, the documented limit is 25 requests/s), and
one place means one set of tests.
"""

from __future__ import annotations

import email.utils
import logging
import math
import random
import re
import time
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urljoin, urlsplit

import requests

from mycase_sync.deadline import (DEADLINE_FACTOR, MIN_TRANSFER_RATE, DeadlineExceeded, WatchedAdapter, Watchdog,
                                  body_size)
from mycase_sync.errors import OutcomeUnknown, RefusedURL, ServiceError, ServiceUnavailable, TemporaryError
from mycase_sync.jsondepth import depth_of, page_without_deep_parts
from mycase_sync.netaddr import is_loopback, is_loopback_url, literal_address
from mycase_sync.pacing import Pacer, SharedPacer, rate_file
from mycase_sync.redact import redact

log = logging.getLogger(__name__)

RETRY_STATUSES = {429, 502, 503, 504}
GET_RETRY_STATUSES = RETRY_STATUSES | {500}
# The one answer that says a request was not processed: any request, a create included, is repeated
# after it. A 502, 503 or 504 may come from a gateway while the service behind it did the work (a
# 503 for a request that took too long, for one), so a write not marked safe to repeat is not
# repeated after one, and its outcome is unknown (raise_for_status).
NOT_PROCESSED = {429}
GATEWAY_STATUSES = {502, 503, 504}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
CONNECT_TIMEOUT = 10.0
MAX_RETRY_AFTER = 120.0
DOWNLOAD_CEILING = 4 * 1024**3  # bytes: the most a download whose size is not declared may bring
UNDECLARED_DOWNLOAD_DEADLINE = 3600.0  # seconds: the deadline of such a download
# Connections kept open per host: at least the largest default worker pool (config.MAX_WORKERS).
# requests keeps 10; each worker past those opened a new connection (and TLS handshake) per request.
POOL_CONNECTIONS = 64
# Deeper than any answer either service documents (MyCase cases nest 3 levels): a deeper one is
# refused whole, before any of it is stored (SQLite keeps records as JSON) or walked.
MAX_JSON_DEPTH = 32
# No usable answer: refused, timed out, or the connection broke while the answer was being read.
BROKEN = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds (it may be a number or an HTTP date); None when absent or odd."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:  # "nan" parses, and time.sleep(nan) raises
        return min(max(seconds, 0.0), MAX_RETRY_AFTER) if not math.isnan(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(when.timestamp() - time.time(), 0.0), MAX_RETRY_AFTER)


class JSONTooDeep(ValueError):
    """An answer nested deeper than MAX_JSON_DEPTH (a ValueError: to callers it is not usable JSON)."""

    def __str__(self) -> str:
        return f"answer nested too deeply (more than {MAX_JSON_DEPTH} levels)"


def parse_json(response: requests.Response) -> Any:
    """response.json() with its nesting bounded: a ValueError (JSONTooDeep for too deep) if unusable.

    Python's decoder meets a deep enough answer with RecursionError, and an answer it can decode
    may still be too deep for the encoder that stores it. One record nested too deeply is refused
    here, once; a page of records keeps its records, the deep parts cut out (jsondepth)."""
    try:
        body = response.json()
    except RecursionError:
        pass
    else:
        if depth_of(body) <= MAX_JSON_DEPTH:
            return body
    page = page_without_deep_parts(response.text, MAX_JSON_DEPTH)
    if page is None:
        raise JSONTooDeep()
    return page


def error_detail(response: requests.Response) -> str:
    """The service's own words from an error body, short and redacted; never the whole page."""
    try:
        body = parse_json(response)
    except JSONTooDeep as exc:
        return str(exc)
    except ValueError:
        text = response.text.strip().splitlines()
        kind = response.headers.get("Content-Type", "").split(";")[0]
        if kind.endswith("xml") or (text and text[0].lstrip().startswith("<?xml")):
            return _xml_error(response.text)
        if kind == "text/html" or (text and text[0].lstrip().startswith("<")):
            return f"unexpected {kind or 'HTML'} page"
        # Redact before cutting: a cut through a secret would leave a prefix no pattern matches.
        return redact(text[0])[:200] if text else "empty body"
    parts: list[str] = []
    if isinstance(body, dict):
        for key in ("error_description", "error", "message"):
            if isinstance(body.get(key), str):
                parts.append(body[key])
                break
        errors = body.get("errors")
        if isinstance(errors, list):
            for err in errors[:3]:
                if isinstance(err, dict):
                    text = err.get("description") or err.get("message") or ""
                    source = err.get("source") if isinstance(err.get("source"), dict) else {}
                    where = err.get("field") or source.get("pointer") or source.get("parameter")
                    parts.append(f"{where}: {text}" if where else str(text))
    return redact("; ".join(p for p in parts if p))[:300]


def _xml_error(text: str) -> str:
    """S3-style `<Error><Code>…</Code><Message>…</Message></Error>` (upload and download URLs)."""
    found = {tag: re.search(rf"<{tag}>([^<]{{0,200}})</{tag}>", text) for tag in ("Code", "Message")}
    words = [m.group(1).strip() for m in found.values() if m and m.group(1).strip()]
    return redact(": ".join(words))[:300] if words else "unexpected XML answer"


class ServiceSession(requests.Session):
    """A Session that spaces, times out, retries and explains its requests.

    `request(..., retry_unsafe=True)` lets a caller mark a POST as safe to repeat (for
    instance a create that the service refuses with 409 when repeated). Every request is repeated
    after 429 (NOT_PROCESSED). A response carries `repeats`, how often it was sent again.

    `gateway_timeout_retries` caps the retries of a 504 (a gateway that gave up waiting for the
    service) below `max_retries`, for a service whose 504 means the request itself is too slow.

    Every attempt has an overall deadline (`deadline_for`): the whole answer, not each read. A
    streamed answer (`stream=True`) gets one only when the caller gives it (`deadline=` seconds);
    its watchdog is then `response.watchdog`, which the caller cancels once it has read the body.
    """

    def __init__(self, service: str, rate: float, timeout: float, backoff_base: float = 1.0, max_retries: int = 5,
                 shared_with: Path | None = None, gateway_timeout_retries: int | None = None,
                 start: float | None = None, refused: float = 0.0):
        super().__init__()
        adapter = WatchedAdapter(pool_maxsize=POOL_CONNECTIONS)
        self.mount("https://", adapter)
        self.mount("http://", adapter)
        self.service = service
        # rate: the ceiling of the pace (pacing.py), which starts at `start` (default: the ceiling).
        # shared_with: the state store, whose other processes (the other cron jobs) share this pace.
        start = rate if start is None else start
        self.pacer = (SharedPacer(rate, rate_file(shared_with, service), start, refused) if shared_with
                      else Pacer(rate, start, refused))
        self.timeout = (CONNECT_TIMEOUT, timeout)
        self.read_timeout = timeout
        self.backoff_base = backoff_base
        self.max_retries = max_retries
        self.gateway_timeout_retries = max_retries if gateway_timeout_retries is None else gateway_timeout_retries
        self.sleep: Callable[[float], None] = time.sleep
        self.requests_sent = 0
        self.headers["User-Agent"] = "mycase-sync"

    def close(self) -> None:
        super().close()
        self.pacer.close()

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        """A redirect is a URL handed to us by a service: it passes check_followable_url too.

        Loopback targets are allowed only when the request itself went to loopback (the sandbox).
        """
        target = super().get_redirect_target(resp)
        if target:
            check_followable_url(urljoin(resp.url, target), allow_loopback=is_loopback_url(resp.url))
        return target

    def deadline_for(self, size: int = 0) -> float:
        """Seconds one attempt may take in all, connecting included: DEADLINE_FACTOR read timeouts,
        and the time `size` bytes take at MIN_TRANSFER_RATE."""
        return DEADLINE_FACTOR * self.read_timeout + size / MIN_TRANSFER_RATE

    def backoff(self, attempt: int) -> float:
        """Exponential with full jitter, capped at 30 s."""
        return random.uniform(0, min(30.0, self.backoff_base * (2**attempt)))

    def request(self, method: str, url: str, *args: Any, retry_unsafe: bool = False,  # type: ignore[override]
                deadline: float | None = None, **kwargs: Any) -> requests.Response:
        method = method.upper()
        kwargs.setdefault("timeout", self.timeout)
        stream = bool(kwargs.get("stream"))
        if deadline is None and not stream:
            deadline = self.deadline_for(body_size(kwargs))
        can_repeat = method in SAFE_METHODS or retry_unsafe
        retry_statuses = GET_RETRY_STATUSES if method in SAFE_METHODS else RETRY_STATUSES
        path = urlsplit(url).path
        rewind = _rewinder(kwargs.get("data"))
        attempt = 0
        while True:
            if attempt:
                rewind()  # a file body was read to its end by the attempt before
            grant = self.pacer.acquire()
            self.requests_sent += 1
            watchdog = Watchdog(deadline) if deadline else None
            try:
                try:
                    response = self._attempt(method, url, watchdog, *args, **kwargs)
                finally:
                    if watchdog is not None and not stream:
                        watchdog.cancel()
            except requests.exceptions.ConnectTimeout as exc:
                failure: Exception = exc  # never connected: always safe to repeat
                repeatable = True
            except BROKEN as exc:
                failure = exc
                repeatable = (can_repeat or _never_sent(exc)) and not _untrusted(exc)  # a bad certificate stays bad
            except requests.exceptions.RequestException as exc:  # bad URL, redirect loop...: repeating won't help
                raise ServiceError(self.service, method, path, None, f"request failed: {type(exc).__name__}") from None
            else:
                self.pacer.observe(response.headers)
                wait = retry_after_seconds(response.headers.get("Retry-After"))
                if response.status_code == 429:  # throttled: the pace is cut, and with a Retry-After
                    self.pacer.throttled(grant, wait or 0.0)  # nobody sends until it has passed
                if response.status_code in retry_statuses and attempt < self.max_retries and \
                        (can_repeat or response.status_code in NOT_PROCESSED):
                    if response.status_code != 504 or attempt < self.gateway_timeout_retries:
                        wait = wait if wait is not None else self.backoff(attempt)
                        log.debug("%s %s %s: HTTP %s, retrying in %.1fs", self.service, method, path, response.status_code, wait)
                        response.close()
                        if watchdog is not None:
                            watchdog.cancel()
                        attempt += 1
                        self.sleep(wait)
                        continue
                response.repeats = attempt  # type: ignore[attr-defined]
                return response
            if repeatable and attempt < self.max_retries:
                wait = self.backoff(attempt)
                log.debug("%s %s %s: %s, retrying in %.1fs", self.service, method, path, type(failure).__name__, wait)
                attempt += 1
                self.sleep(wait)
                continue
            reason = _describe(failure)
            if method in SAFE_METHODS or _never_sent(failure):
                raise TemporaryError(f"{self.service} unreachable ({method} {path}): {reason}") from None
            raise OutcomeUnknown(self.service, method, path, None, f"outcome unknown: {reason}") from None

    def _attempt(self, method: str, url: str, watchdog: Watchdog | None, *args: Any, **kwargs: Any) -> requests.Response:
        """One attempt under its watchdog (sending, the headers and the body); DeadlineExceeded when the
        deadline cut it short."""
        if watchdog is None:
            return super().request(method, url, *args, **kwargs)
        try:
            with watchdog.guarding():
                response = super().request(method, url, *args, **kwargs)
        except BaseException as exc:
            watchdog.cancel()
            if isinstance(exc, BROKEN) and watchdog.expired:
                raise DeadlineExceeded(f"no complete answer within {watchdog.seconds:.0f} s") from None
            raise
        if watchdog.expired and not kwargs.get("stream"):  # the body may look whole: it was cut
            response.close()
            raise DeadlineExceeded(f"no complete answer within {watchdog.seconds:.0f} s")
        response.watchdog = watchdog  # type: ignore[attr-defined]
        return response


def _rewinder(data: Any) -> Callable[[], None]:
    """What puts a file body back where the first attempt started reading it. Without it a repeated
    upload would find the file at its end, and requests would send it chunked and empty."""
    try:
        start = data.tell()
    except (AttributeError, OSError, ValueError):
        return lambda: None
    return lambda: data.seek(start)


def _never_sent(exc: Exception) -> bool:
    """True when the connection failed before our request could have reached the server."""
    if isinstance(exc, requests.exceptions.ConnectTimeout) or _untrusted(exc):
        return True
    text = repr(exc)
    return "NewConnectionError" in text or "Connection refused" in text or "Name or service not known" in text


def _untrusted(exc: Exception) -> bool:
    """The TLS handshake refused the server's certificate (untrusted, expired, wrong host name)."""
    return isinstance(exc, requests.exceptions.SSLError) and "CERTIFICATE_VERIFY_FAILED" in repr(exc)


def _describe(exc: Exception) -> str:
    if isinstance(exc, DeadlineExceeded):
        return str(exc)
    if isinstance(exc, requests.exceptions.Timeout):
        return "timed out"
    if isinstance(exc, requests.exceptions.ContentDecodingError):
        return "answer could not be decoded"
    if _untrusted(exc):
        why = re.search(r"certificate verify failed: ([^(')\"]+)", repr(exc))
        return f"TLS certificate not trusted: {why.group(1).strip() if why else 'certificate verify failed'}"
    return "connection refused" if _never_sent(exc) else "connection dropped"


def raise_for_status(service: str, response: requests.Response) -> requests.Response:
    """Turn an error answer into a ServiceError with the service's own (redacted) words."""
    if response.status_code >= 400:
        path = urlsplit(response.url).path
        method = response.request.method or "?"
        status = response.status_code
        repeated = bool(getattr(response, "repeats", 0))
        if status in GATEWAY_STATUSES and method not in SAFE_METHODS and not repeated:
            # A write answered once by a gateway: it may have landed. Read before writing it again.
            raise OutcomeUnknown(service, method, path, status,
                                 f"{error_detail(response)} (a gateway's answer: the write may have landed)")
        if status == 429 or (status in RETRY_STATUSES and method in SAFE_METHODS):
            # Already retried with backoff by ServiceSession: the service is down for now, not this record.
            raise ServiceUnavailable(service, method, path, status, error_detail(response), repeated=repeated)
        raise ServiceError(service, method, path, status, error_detail(response), repeated=repeated)
    return response


def json_body(service: str, response: requests.Response, expect: type | tuple[type, ...]) -> Any:
    """The JSON body, of the expected type, or one clear ServiceError (HTML pages, truncation...)."""
    raise_for_status(service, response)
    path = urlsplit(response.url).path
    method = response.request.method or "?"
    try:
        body = parse_json(response)
    except JSONTooDeep as exc:
        raise ServiceError(service, method, path, response.status_code, str(exc)) from None
    except ValueError:
        kind = response.headers.get("Content-Type", "").split(";")[0] or "no content type"
        raise ServiceError(service, method, path, response.status_code, f"answer is not JSON ({kind})") from None
    if not isinstance(body, expect):
        raise ServiceError(service, method, path, response.status_code, f"unexpected JSON {type(body).__name__}")
    return body


def check_followable_url(url: str, allow_loopback: bool) -> str:
    """A URL a service handed us (upload or download) is followed only if https (or loopback in tests).

    Never file:, never plain http to another host, never link-local or private literal addresses:
    a poisoned record must not make us read internal data and file it into MyCase.
    """
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".")  # "localhost." resolves like "localhost"
    address = literal_address(host)
    if is_loopback(host):
        if allow_loopback and parts.scheme in ("http", "https"):
            return url
        raise RefusedURL(parts.path, "refusing a loopback URL handed to us by a service")
    if parts.scheme != "https" or not host:
        raise RefusedURL(parts.path, f"refusing a non-https URL ({parts.scheme or 'no scheme'})")
    if address is not None and (not address.is_global or address.is_multicast):
        raise RefusedURL(parts.path, "refusing a URL that points at an internal address")
    return url
