"""ServiceSession: retries, Retry-After, what may be repeated, the pacer at a fixed pace, and error bodies.

No real sleeping and no wall-clock assertions: a fake clock drives the pacer, and the
session's `sleep` records the waits it asks for.
"""

from __future__ import annotations

import email.utils
import time

import pytest
import requests
import requests_mock as rm

from mycase_sync.errors import EXIT_PARTIAL, EXIT_TEMPORARY, OutcomeUnknown, ServiceError, ServiceUnavailable, TemporaryError
from mycase_sync.http import (
    MAX_RETRY_AFTER,
    ServiceSession,
    check_followable_url,
    error_detail,
    json_body,
    raise_for_status,
)
from mycase_sync.pacing import Pacer, SharedPacer, rate_file
from mycase_sync.redact import register_secret

URL = "https://api.example.com/v1/cases"


class FakeClock:
    """Time that moves only when someone sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.slept.append(seconds)
        self.now += seconds


class Waits(list):
    """Stands in for session.sleep: records each wait and moves the fake clock on."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        self.clock.now += seconds


def make_session(service: str = "Case Status", rate: float = 10.0, backoff_base: float = 1.0):
    clock = FakeClock()
    session = ServiceSession(service, rate=rate, timeout=7, backoff_base=backoff_base)
    session.pacer = Pacer(rate, start=rate, clock=clock, sleep=clock.sleep)
    session.sleep = Waits(clock)
    return session, clock


@pytest.fixture
def session():
    made, _ = make_session()
    with made:
        yield made


@pytest.fixture
def mock():
    with rm.Mocker() as m:
        yield m


# --- retries and Retry-After -----------------------------------------------------------------
@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured_then_the_answer_returned(session, mock, status):
    mock.get(URL, [{"status_code": status, "headers": {"Retry-After": "7"}}, {"status_code": 200, "json": []}])
    response = session.get(URL)
    assert response.status_code == 200
    assert mock.call_count == 2
    assert session.sleep == [7.0]


def test_retry_after_as_an_http_date(session, mock):
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    mock.get(URL, [{"status_code": 503, "headers": {"Retry-After": when}}, {"status_code": 200}])
    session.get(URL)
    assert len(session.sleep) == 1 and 25 <= session.sleep[0] <= 30


@pytest.mark.parametrize("header,expected_max", [("100000", MAX_RETRY_AFTER), ("-4", 0.0)])
def test_retry_after_is_capped_and_never_negative(session, mock, header, expected_max):
    mock.get(URL, [{"status_code": 429, "headers": {"Retry-After": header}}, {"status_code": 200}])
    session.get(URL)
    assert session.sleep == [expected_max]


@pytest.mark.parametrize("header", ["nan", "soon", ""])
def test_an_unreadable_retry_after_falls_back_to_backoff(session, mock, header):
    mock.get(URL, [{"status_code": 503, "headers": {"Retry-After": header}}, {"status_code": 200}])
    assert session.get(URL).status_code == 200
    assert len(session.sleep) == 1 and 0 <= session.sleep[0] <= 1.0  # backoff_base * 2**0


def test_backoff_grows_exponentially_without_retry_after(session, mock):
    mock.get(URL, [{"status_code": 502}] * 4 + [{"status_code": 200}])
    assert session.get(URL).status_code == 200
    assert len(session.sleep) == 4
    for attempt, wait in enumerate(session.sleep):
        assert 0 <= wait <= 2**attempt


def test_a_429_pushes_the_rate_limiters_next_slot_for_every_request(mock):
    """After a 429 nobody sends before Retry-After is up, not only the request that got it."""
    session, clock = make_session(rate=10)
    session.sleep = lambda seconds: None  # as if another thread sent next: only the limiter holds it back
    mock.get(URL, [{"status_code": 429, "headers": {"Retry-After": "3"}}, {"status_code": 200}])
    session.get(URL)
    assert sum(clock.slept) == pytest.approx(3.0)  # the pacer itself waited out the 3 s
    assert clock.now == pytest.approx(3.0)


def test_retries_stop_after_max_retries_and_the_last_answer_is_returned(session, mock):
    mock.get(URL, status_code=503)
    assert session.get(URL).status_code == 503
    assert mock.call_count == session.max_retries + 1


def test_mycase_504_is_retried_at_most_twice(mock):
    session, _ = make_session(service="MyCase")
    session.gateway_timeout_retries = 2  # as MyCaseClient builds its session (GATEWAY_TIMEOUT_RETRIES)
    mock.get(URL, status_code=504, json={"message": "Endpoint request timed out"})
    assert session.get(URL).status_code == 504
    assert mock.call_count == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_client_errors_are_not_retried(session, mock, status):
    mock.get(URL, status_code=status)
    assert session.get(URL).status_code == status
    assert mock.call_count == 1 and session.sleep == []


def test_500_on_get_is_retried(session, mock):
    mock.get(URL, [{"status_code": 500}, {"status_code": 200}])
    assert session.get(URL).status_code == 200


@pytest.mark.parametrize("status", [500, 502, 504])
def test_a_post_is_not_retried_unless_marked_safe(session, mock, status):
    """A gateway's 502/504 (or a 500) may hide a write that landed: repeating it could write twice."""
    mock.post(URL, status_code=status)
    assert session.post(URL, json={}).status_code == status
    assert mock.call_count == 1


@pytest.mark.parametrize("status", [429])
def test_a_post_answered_not_processed_is_retried_and_the_answer_says_so(session, mock, status):
    mock.post(URL, status_code=status)
    response = session.post(URL, json={})
    assert response.status_code == status and mock.call_count == session.max_retries + 1
    assert response.repeats == session.max_retries


def test_a_post_marked_safe_is_retried(session, mock):
    mock.post(URL, [{"status_code": 503, "headers": {"Retry-After": "1"}}, {"status_code": 201}])
    assert session.request("POST", URL, json={}, retry_unsafe=True).status_code == 201
    assert mock.call_count == 2 and session.sleep == [1.0]


def test_a_post_answered_429_is_retried_since_it_was_not_processed(session, mock):
    mock.post(URL, [{"status_code": 429, "headers": {"Retry-After": "2"}}, {"status_code": 201}])
    assert session.post(URL, json={}).status_code == 201
    assert session.sleep == [2.0]


def test_every_attempt_goes_through_the_rate_limiter_with_a_timeout(session, mock):
    mock.get(URL, [{"status_code": 503}, {"status_code": 503}, {"status_code": 200}])
    session.get(URL)
    assert session.pacer.granted == mock.call_count == session.requests_sent == 3
    assert mock.last_request.timeout == (10.0, 7)


# --- no answer -------------------------------------------------------------------------------
def test_connection_error_on_get_is_retried_then_temporary(session, mock):
    mock.get(URL, exc=requests.exceptions.ConnectionError("Connection aborted"))
    with pytest.raises(TemporaryError) as caught:
        session.get(URL)
    assert mock.call_count == session.max_retries + 1
    assert len(session.sleep) == session.max_retries
    assert caught.value.exit_code == 75
    assert str(caught.value) == "Case Status unreachable (GET /v1/cases): connection dropped"


def test_connection_error_on_get_recovers_when_the_service_comes_back(session, mock):
    mock.get(URL, [{"exc": requests.exceptions.ConnectionError("reset")}, {"status_code": 200, "json": [1]}])
    assert session.get(URL).json() == [1]


def test_connection_dropped_on_a_post_is_outcome_unknown_at_once(session, mock):
    mock.post(URL, exc=requests.exceptions.ConnectionError("Connection aborted: RemoteDisconnected"))
    with pytest.raises(OutcomeUnknown) as caught:
        session.post(URL, json={"note": "x"})
    assert mock.call_count == 1
    assert isinstance(caught.value, ServiceError) and not isinstance(caught.value, TemporaryError)
    assert str(caught.value) == "Case Status POST /v1/cases: no answer: outcome unknown: connection dropped"


def test_read_timeout_on_a_post_is_outcome_unknown(session, mock):
    mock.post(URL, exc=requests.exceptions.ReadTimeout("read timed out"))
    with pytest.raises(OutcomeUnknown, match="timed out"):
        session.post(URL)
    assert mock.call_count == 1


def test_a_post_marked_safe_is_retried_after_a_dropped_connection(session, mock):
    mock.post(URL, [{"exc": requests.exceptions.ReadTimeout("read timed out")}, {"status_code": 201}])
    assert session.request("POST", URL, retry_unsafe=True).status_code == 201


@pytest.mark.parametrize("exc", [
    requests.exceptions.ConnectTimeout("connect timed out"),
    requests.exceptions.ConnectionError("HTTPSConnectionPool: NewConnectionError: [Errno 111] Connection refused"),
])
def test_a_post_that_never_reached_the_server_is_retried_then_temporary(session, mock, exc):
    mock.post(URL, exc=exc)
    with pytest.raises(TemporaryError):
        session.post(URL)
    assert mock.call_count == session.max_retries + 1


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_an_untrusted_certificate_is_temporary_at_once_and_says_why(session, mock, method):
    """Refused at the TLS handshake: the request never left, and repeating it changes nothing."""
    mock.register_uri(method, URL, exc=requests.exceptions.SSLError(
        "Max retries exceeded (Caused by SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] "
        "certificate verify failed: self-signed certificate (_ssl.c:1006)')))"))
    with pytest.raises(TemporaryError) as caught:
        session.request(method, URL)
    assert not isinstance(caught.value, OutcomeUnknown)
    assert str(caught.value) == f"Case Status unreachable ({method} /v1/cases): TLS certificate not trusted: self-signed certificate"
    assert mock.call_count == 1


def test_a_connection_broken_while_reading_the_answer(session, mock):
    broken = requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead(10 bytes read)")
    mock.get(URL, [{"exc": broken}, {"status_code": 200}])
    assert session.get(URL).status_code == 200
    mock.post(URL, exc=broken)
    with pytest.raises(OutcomeUnknown, match="connection dropped"):
        session.post(URL)


def test_other_request_failures_are_one_service_error_line(session, mock):
    mock.get(URL, exc=requests.exceptions.TooManyRedirects("Exceeded 30 redirects."))
    with pytest.raises(ServiceError) as caught:
        session.get(URL)
    assert str(caught.value) == "Case Status GET /v1/cases: no answer: request failed: TooManyRedirects"
    assert mock.call_count == 1


# --- redirects -------------------------------------------------------------------------------
def test_a_redirect_to_an_internal_address_is_refused(session, mock):
    mock.get("https://files.example.com/f/1", status_code=302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
    metadata = mock.get("http://169.254.169.254/latest/meta-data/", text="role credentials")
    with pytest.raises(ServiceError, match="refusing"):
        session.get("https://files.example.com/f/1")
    assert not metadata.called


def test_ordinary_redirects_are_followed(session, mock):
    mock.get("https://files.example.com/f/1", status_code=302, headers={"Location": "https://bucket.s3.example.com/k?sig=1"})
    mock.get("https://bucket.s3.example.com/k?sig=1", text="bytes")
    mock.get("http://127.0.0.1:8001/data", status_code=302, headers={"Location": "http://localhost:8002/k"})
    mock.get("http://localhost:8002/k", text="sandbox bytes")
    assert session.get("https://files.example.com/f/1").text == "bytes"
    assert session.get("http://127.0.0.1:8001/data").text == "sandbox bytes"  # loopback to loopback: the sandbox


# --- the pacer at a fixed pace (tests/test_pacing.py: how the pace moves) ------------------------------------------------------------------------
def grant_times(rate: float, count: int, work: float = 0.0) -> list[float]:
    clock = FakeClock()
    limiter = Pacer(rate, start=rate, clock=clock, sleep=clock.sleep)
    times = []
    for _ in range(count):
        limiter.acquire()
        times.append(clock.now)
        clock.now += work  # the request itself takes this long
    return times


@pytest.mark.parametrize("rate,work", [(10, 0.0), (25, 0.0), (4, 0.1), (10, 0.3)])
def test_the_rate_limiter_never_exceeds_its_rate_in_any_window(rate, work):
    times = grant_times(rate, 300, work)
    for span in (0.5, 1.0, 5.0):
        for start in times:
            in_window = sum(1 for t in times if start <= t < start + span)
            assert in_window <= rate * span + 1
    expected_end = 299 * max(1 / rate, work)  # and it holds the rate without slowing further
    assert times[-1] == pytest.approx(expected_end)


def test_the_rate_limiter_does_not_sleep_when_requests_are_already_spaced():
    clock = FakeClock()
    limiter = Pacer(5, start=5, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        limiter.acquire()
        clock.now += 1.0
    assert clock.slept == []
    assert limiter.granted == 10


def test_limiters_sharing_a_file_space_their_requests_together(tmp_path):
    """Two limiters on one file stand for two cron jobs: their grants interleave, one interval apart."""
    clock = FakeClock()
    path = rate_file(tmp_path / "state.db", "MyCase")
    assert path.name == "state.db.mycase.rate"
    one, two = (SharedPacer(10, path, start=10, clock=clock, sleep=clock.sleep) for _ in range(2))
    slots = []
    for _ in range(50):
        slots.append(one.acquire().slot)
        slots.append(two.acquire().slot)
        slots.append(two.acquire().slot)
    assert slots == pytest.approx([n * 0.1 for n in range(150)])  # never two in one slot
    asked_at = clock.now
    one.slow_down(5)  # a 429 seen by one process holds back the other as well
    assert two.acquire().slot == pytest.approx(asked_at + 5)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    one.close(), two.close()


def test_a_shared_slot_far_ahead_of_the_clock_is_forgotten(tmp_path):
    """The clock was set back (or the file is garbage): do not wait hours for a slot."""
    clock = FakeClock()
    clock.now = 1_000_000.0
    path = tmp_path / "state.db.mycase.rate"
    for content in (f"{clock.now + 86400}", "not a number"):
        path.write_text(content)
        limiter = SharedPacer(10, path, start=10, clock=clock, sleep=clock.sleep)
        assert limiter.acquire().slot == pytest.approx(clock.now)
        limiter.close()


_SHARED_WORKER = """
import sys
from pathlib import Path
from mycase_sync.pacing import SharedPacer
limiter = SharedPacer(float(sys.argv[2]), Path(sys.argv[1]), start=float(sys.argv[2]))
print("\\n".join(repr(limiter.acquire().slot) for _ in range(int(sys.argv[3]))))
"""


def test_processes_sharing_a_store_keep_one_rate_between_them(tmp_path):
    """Three real processes at 60/s each: the slots they are given keep 60/s between them all."""
    import subprocess
    import sys

    path = tmp_path / "state.db.mycase.rate"
    procs = [subprocess.Popen([sys.executable, "-c", _SHARED_WORKER, str(path), "60", "20"],
                              stdout=subprocess.PIPE, text=True) for _ in range(3)]
    slots = sorted(float(line) for proc in procs for line in proc.communicate(timeout=60)[0].split())
    assert all(proc.returncode == 0 for proc in procs)
    assert len(slots) == 60
    gaps = [later - earlier for earlier, later in zip(slots, slots[1:])]
    assert min(gaps) >= 1 / 60 - 1e-6


def test_slow_down_pushes_the_next_slot_and_never_pulls_it_earlier():
    clock = FakeClock()
    limiter = Pacer(1, start=1, clock=clock, sleep=clock.sleep)
    limiter.acquire()
    limiter.slow_down(5)
    limiter.acquire()
    assert clock.now == pytest.approx(5.0)
    limiter.slow_down(0.1)  # the next slot (6.0) is already later
    limiter.acquire()
    assert clock.now == pytest.approx(6.0)


# --- error bodies ----------------------------------------------------------------------------
def answer(mock, status: int, method: str = "GET", **kwargs) -> requests.Response:
    mock.register_uri(method, URL, status_code=status, **kwargs)
    return requests.request(method, URL)


def service_error(response: requests.Response, expect=dict) -> ServiceError:
    with pytest.raises(ServiceError) as caught:
        json_body("MyCase", response, expect)
    message = str(caught.value)
    assert "\n" not in message and "<" not in message
    return caught.value


def test_html_error_page_echoing_the_authorization_header(mock):
    key = "ak-live-9f8e7d6c5b4a"
    register_secret(key)
    page = f"<html><body><h1>500 Internal Server Error</h1><pre>Authorization: ApiKey {key}</pre></body></html>"
    error = service_error(answer(mock, 500, text=page, headers={"Content-Type": "text/html; charset=utf-8"}))
    assert str(error) == "MyCase GET /v1/cases: HTTP 500: unexpected text/html page"
    assert error.status == 500


def test_html_page_with_a_json_content_type(mock):
    error = service_error(answer(mock, 502, text="<!DOCTYPE html><html>Bad gateway</html>", headers={"Content-Type": "application/json"}))
    assert "unexpected application/json page" in str(error)


def test_empty_error_body(mock):
    assert str(service_error(answer(mock, 503, text=""))) == "MyCase GET /v1/cases: HTTP 503: empty body"


def test_truncated_json_in_a_success_answer(mock):
    error = service_error(answer(mock, 200, text='[{"id": 1, "name": "Ada', headers={"Content-Type": "application/json"}))
    assert str(error) == "MyCase GET /v1/cases: HTTP 200: answer is not JSON (application/json)"


def test_html_in_a_success_answer(mock):
    error = service_error(answer(mock, 200, text="<html>login</html>", headers={"Content-Type": "text/html"}))
    assert str(error) == "MyCase GET /v1/cases: HTTP 200: answer is not JSON (text/html)"


def test_json_of_the_wrong_type(mock):
    assert str(service_error(answer(mock, 200, json=[1, 2]), expect=dict)).endswith("unexpected JSON list")
    assert str(service_error(answer(mock, 200, json={"a": 1}), expect=list)).endswith("unexpected JSON dict")
    assert str(service_error(answer(mock, 200, json="ok"), expect=(dict, list))).endswith("unexpected JSON str")


def test_json_body_returns_the_body_of_the_expected_type(mock):
    assert json_body("MyCase", answer(mock, 200, json=[{"id": 1}]), list) == [{"id": 1}]


@pytest.mark.parametrize("body,detail", [
    ({"errors": [{"description": "can't be blank", "source": {"pointer": "/name"}}]}, "/name: can't be blank"),
    ({"errors": [{"description": "too big", "source": {"parameter": "page_size"}}]}, "page_size: too big"),
    ({"errors": [{"field": "email", "message": "is taken"}, {"message": "second"}]}, "email: is taken; second"),
    ({"message": "Endpoint request timed out"}, "Endpoint request timed out"),
    ({"error": "invalid_grant", "error_description": "refresh token expired"}, "refresh token expired"),
    ({"errors": [{"description": "odd", "source": "name"}]}, "odd"),
    ({"errors": "not a list", "message": {"nested": 1}}, ""),
    ([1, 2, 3], ""),
])
def test_error_detail_reads_both_services_error_shapes(mock, body, detail):
    response = answer(mock, 422, json=body)
    assert error_detail(response) == detail
    with pytest.raises(ServiceError) as caught:
        raise_for_status("Case Status", response)
    assert str(caught.value) == "Case Status GET /v1/cases: HTTP 422" + (f": {detail}" if detail else "")


def test_a_secret_cut_by_the_length_limit_leaves_no_prefix_behind(mock):
    key = "zq7-secret-key-0123456789abcdef"
    register_secret(key)
    for body in ({"message": "x" * 290 + key}, None):
        kwargs = {"json": body} if body else {"text": "y" * 190 + key, "headers": {"Content-Type": "text/plain"}}
        detail = error_detail(answer(mock, 500, **kwargs))
        assert key[:6] not in detail


def test_an_s3_xml_error_is_read_not_called_an_html_page(mock):
    xml = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
           "<Message>Request has expired</Message><RequestId>X1</RequestId></Error>")
    response = answer(mock, 403, method="PUT", text=xml, headers={"Content-Type": "application/xml"})
    assert error_detail(response) == "AccessDenied: Request has expired"
    bare = answer(mock, 400, text="<Error><Code>BadDigest</Code></Error>", headers={"Content-Type": "text/xml"})
    assert error_detail(bare) == "BadDigest"
    assert error_detail(answer(mock, 400, text="<?xml version='1.0'?><x/>")) == "unexpected XML answer"


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_a_read_still_failing_after_the_retries_is_temporary(mock, status):
    """The service is down, not the record: exit 75, and the next run carries on."""
    error = service_error(answer(mock, status, json={"message": "down"}))
    assert isinstance(error, ServiceUnavailable) and isinstance(error, TemporaryError)
    assert error.exit_code == EXIT_TEMPORARY and error.status == status
    assert str(error) == f"MyCase GET /v1/cases: HTTP {status}: down"


@pytest.mark.parametrize("status,temporary", [(500, False), (502, False), (503, False), (429, True)])
def test_a_write_answered_5xx_stays_a_record_error_but_429_is_temporary(mock, status, temporary):
    """A 5xx write may have landed (the caller reads before writing again); a 429 was refused unprocessed."""
    with pytest.raises(ServiceError) as caught:
        raise_for_status("MyCase", answer(mock, status, method="POST"))
    assert isinstance(caught.value, TemporaryError) is temporary
    assert caught.value.exit_code == (EXIT_TEMPORARY if temporary else EXIT_PARTIAL)


def test_a_get_500_after_the_retries_is_a_record_error(mock):
    error = service_error(answer(mock, 500, json={"message": "boom"}))
    assert not isinstance(error, TemporaryError)


def test_raise_for_status_passes_success_through(mock):
    response = answer(mock, 204, method="POST")
    assert raise_for_status("MyCase", response) is response


# --- URLs a service hands us -----------------------------------------------------------------
@pytest.mark.parametrize("url", [
    "file:///etc/passwd",
    "http://files.example.com/x",
    "ftp://files.example.com/x",
    "https://169.254.169.254/latest/meta-data/",
    "https://[fe80::1]/x",
    "https://10.0.0.8/x",
    "https://192.168.1.1/x",
    "https://172.16.5.5/x",
    "https://[fd00::5]/x",
    "https://100.64.0.1/x",
    "https://0.0.0.0/x",
    "https://[::ffff:169.254.169.254]/x",
    "https://2852039166/x",  # 169.254.169.254 written as one number
    "https://0xa9.0xfe.0xa9.0xfe/x",
    "https://224.0.0.1/x",
    "https:///no-host",
])
@pytest.mark.parametrize("allow_loopback", [False, True])
def test_followable_url_refuses_internal_and_plain_urls(url, allow_loopback):
    with pytest.raises(ServiceError, match="refusing") as caught:
        check_followable_url(url, allow_loopback=allow_loopback)
    assert caught.value.service == "security"


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8000/files/1",
    "https://localhost/x",
    "http://localhost./x",
    "http://[::1]:9/x",
    "https://127.1/x",
    "https://2130706433/x",
    "https://bucket.localhost/x",
])
def test_followable_url_refuses_loopback_unless_allowed(url):
    with pytest.raises(ServiceError, match="loopback"):
        check_followable_url(url, allow_loopback=False)
    assert check_followable_url(url, allow_loopback=True) == url


@pytest.mark.parametrize("url", [
    "https://mycase-prod.s3.amazonaws.com/k?X-Amz-Signature=abc",
    "https://files.casestatus.com/d/9",
    "https://cafe.be/x",
    "https://8.8.8.8/x",
])
def test_followable_url_accepts_https_to_public_hosts(url):
    assert check_followable_url(url, allow_loopback=False) == url


# --- connections ---------------------------------------------------------------------------------
def test_a_large_worker_pool_reuses_its_connections():
    """More than requests' default 10 workers at once: each keeps its connection (no new TCP/TLS per request)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    workers, rounds = 24, 3
    barrier = threading.Barrier(workers, timeout=10)
    accepted = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            barrier.wait()  # every worker holds its connection at the same moment
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def get_request(self):
            accepted.append(1)
            return super().get_request()

    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/x"
    try:
        with ServiceSession("Case Status", rate=10_000, timeout=10) as session, ThreadPoolExecutor(workers) as pool:
            for _ in range(rounds):
                assert [r.status_code for r in pool.map(lambda _: session.get(url), range(workers))] == [200] * workers
    finally:
        server.shutdown()
        server.server_close()
    assert len(accepted) == workers


def test_an_upload_repeated_after_503_sends_the_whole_file_again_with_its_length(tmp_path):
    """An upload (a PUT: idempotent) is repeated after a 503; the file body must go again from its start
    (at its end, requests would send it chunked and empty, which S3 refuses)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[tuple[str | None, str | None, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_PUT(self):
            length = self.headers.get("Content-Length")
            chunked = self.headers.get("Transfer-Encoding")
            body = self.rfile.read(int(length)) if length and not chunked else b""
            seen.append((length, chunked, body))
            status = 503 if len(seen) == 1 else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    payload = b"exhibit bytes " * 1000
    path = tmp_path / "exhibit.pdf"
    path.write_bytes(payload)
    try:
        with ServiceSession("S3", rate=10_000, timeout=10, backoff_base=0.001) as session, open(path, "rb") as body:
            response = session.request("PUT", f"http://127.0.0.1:{server.server_address[1]}/put", data=body,
                                       headers={"Content-Length": str(len(payload))}, retry_unsafe=True)
    finally:
        server.shutdown()
        server.server_close()
    assert response.status_code == 200
    assert seen == [(str(len(payload)), None, payload)] * 2


@pytest.mark.parametrize("status", [502, 503, 504])
def test_a_write_answered_once_by_a_gateway_has_an_unknown_outcome(session, mock, status):
    """A gateway may answer for a service that did the work: the caller must read before writing again."""
    from mycase_sync.errors import OutcomeUnknown
    from mycase_sync.http import raise_for_status

    mock.post(URL, status_code=status, json={"message": "gateway"})
    response = session.post(URL, json={})
    assert mock.call_count == 1
    with pytest.raises(OutcomeUnknown, match="may have landed"):
        raise_for_status("Case Status", response)
