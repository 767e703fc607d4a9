"""Overall deadlines: a link that streams without end, or trickles, never holds a job.

A small local HTTP server (the sandbox cannot trickle) serves:
- /forever: bytes without end (no Content-Length), as fast as the client reads;
- /trickle/N: Content-Length N, then one byte every TRICKLE_GAP seconds (each read well within
  the read timeout, so only an overall deadline can stop it);
- /json-trickle: a JSON answer that trickles the same way;
- /header-trickle: a JSON answer whose status line and headers trickle the same way (POST too:
  the request body is read whole first).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mycase_sync.casestatus.client import CaseStatusClient
from mycase_sync.errors import OutcomeUnknown, ServiceError, TemporaryError
from mycase_sync.http import ServiceSession

from mycase_sync.mycase.tokens import save_token_set

from test_push_jobs import FakeCaseStatus, FakeMyCase, imported, ledger, new_app, push_documents, settings_env  # noqa: F401
from test_reliability_security import settings_for

READ_TIMEOUT = 0.5  # MYCASE_SYNC_TIMEOUT in these tests: the deadline of a small answer is 2 x 0.5 s
TRICKLE_GAP = 0.2  # seconds between two bytes of a trickle: each read is within the read timeout
TRICKLED_HEAD = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):  # quiet
        pass

    def _trickle(self, body: bytes, kind: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        for n in range(len(body)):
            self.wfile.write(body[n:n + 1])
            self.wfile.flush()
            time.sleep(TRICKLE_GAP)

    def do_GET(self):
        self.server.hits += 1
        try:
            if self.path == "/forever":
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                block = b"x" * 65536
                while True:
                    self.wfile.write(block)
                    self.server.sent += len(block)
            elif self.path.startswith("/trickle/"):
                self._trickle(b"y" * int(self.path.rsplit("/", 1)[1]), "application/octet-stream")
            elif self.path == "/json-trickle":
                self._trickle(b'{"data": [' + b"1, " * 40 + b"1]}", "application/json")
            elif self.path == "/header-trickle":
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                for n in range(len(TRICKLED_HEAD)):  # 14 s, each read well within the read timeout
                    self.wfile.write(TRICKLED_HEAD[n:n + 1])
                    self.wfile.flush()
                    self.server.head_sent = n + 1
                    time.sleep(TRICKLE_GAP)
                self.wfile.write(b"{}")
        except (BrokenPipeError, ConnectionResetError):
            pass

    do_POST = do_GET


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.hits = 0
    httpd.sent = 0
    httpd.head_sent = 0
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def client():
    cs = CaseStatusClient(settings_for(MYCASE_SYNC_TIMEOUT=str(READ_TIMEOUT)))
    cs.allow_loopback = True  # the local server stands in for the file host
    yield cs
    cs.close()


def test_a_link_that_streams_without_end_is_cut_at_the_declared_size(client, server, tmp_path):
    base, httpd = server
    out = tmp_path / "file.part"
    started = time.monotonic()
    with open(out, "wb") as dest, pytest.raises(ServiceError) as caught:
        client.download(f"{base}/forever", dest, 1024)
    seconds = time.monotonic() - started
    assert str(caught.value) == ("Case Status files GET /forever: no answer: the link sends more than the 1024 bytes "
                                 "the file record declares: stopped at 1024 bytes")
    assert out.stat().st_size == 1024
    assert seconds < 2.0, seconds
    print(f"\nMEASURED: a link declaring 1,024 bytes and streaming without end: cut at {out.stat().st_size} bytes "
          f"in {seconds:.2f} s (the server had sent {httpd.sent} bytes)")


def test_a_link_that_trickles_is_stopped_by_the_deadline_of_the_whole_download(client, server, tmp_path):
    base, _ = server
    out = tmp_path / "file.part"
    started = time.monotonic()
    with open(out, "wb") as dest, pytest.raises(ServiceError) as caught:
        client.download(f"{base}/trickle/1000", dest, 1000)  # 1,000 bytes would take 200 s
    seconds = time.monotonic() - started
    assert re.fullmatch(r"Case Status files GET /trickle/1000: no answer: download too slow: \d+ bytes in "
                        r"1\.\d s, stopped at its deadline \(1 s for 1000 bytes\)", str(caught.value)), str(caught.value)
    assert 0.9 < seconds < 2.0, seconds
    print(f"\nMEASURED: a link trickling 1 byte every {TRICKLE_GAP} s (read timeout {READ_TIMEOUT} s), 1,000 bytes "
          f"declared: stopped after {out.stat().st_size} bytes in {seconds:.2f} s ({caught.value.detail})")


def test_an_honest_link_is_read_whole_within_its_deadline(client, server, tmp_path):
    base, _ = server
    with open(tmp_path / "file.part", "wb") as dest:
        assert client.download(f"{base}/trickle/3", dest, 3) == 3  # 0.6 s: within the 1 s deadline
    assert (tmp_path / "file.part").read_bytes() == b"yyy"


def test_an_api_answer_that_trickles_is_a_temporary_failure_after_its_retries(server):
    base, httpd = server
    session = ServiceSession("Case Status", 1000.0, READ_TIMEOUT, max_retries=1)
    session.sleep = lambda seconds: None
    started = time.monotonic()
    with pytest.raises(TemporaryError) as caught:
        session.get(f"{base}/json-trickle")
    seconds = time.monotonic() - started
    session.close()
    assert str(caught.value) == "Case Status unreachable (GET /json-trickle): no complete answer within 1 s"
    assert httpd.hits == 2 and 1.9 < seconds < 3.5, (httpd.hits, seconds)
    print(f"\nMEASURED: a JSON answer trickling 1 byte every {TRICKLE_GAP} s: each attempt cut at 1 s, "
          f"2 attempts in {seconds:.2f} s")


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_an_answer_whose_headers_trickle_is_cut_at_the_deadline_of_the_whole_attempt(server, method):
    """The deadline covers the attempt from its start, not from the moment the headers are in."""
    base, httpd = server
    session = ServiceSession("Case Status", 1000.0, READ_TIMEOUT, max_retries=0)
    expected = TemporaryError if method == "GET" else OutcomeUnknown
    with pytest.raises(expected) as caught:
        session.request(method, f"{base}/header-trickle", json={"x": 1} if method == "POST" else None)
    assert httpd.head_sent < len(TRICKLED_HEAD)  # before, it waited for the whole head, then cut the body
    session.close()
    assert str(caught.value) == ("Case Status unreachable (GET /header-trickle): no complete answer within 1 s"
                                 if method == "GET" else "Case Status POST /header-trickle: no answer: outcome "
                                 "unknown: no complete answer within 1 s")
    assert httpd.hits == 1


def test_a_write_whose_answer_trickles_has_an_unknown_outcome(server):
    base, _ = server
    session = ServiceSession("MyCase", 1000.0, READ_TIMEOUT, max_retries=1)

    class Handler(_Handler):
        def do_POST(self):
            self.do_GET()

    server[1].RequestHandlerClass = Handler
    with pytest.raises(OutcomeUnknown) as caught:
        session.post(f"{base}/json-trickle", json={"x": 1})
    session.close()
    assert str(caught.value) == "MyCase POST /json-trickle: no answer: outcome unknown: no complete answer within 1 s"


def test_push_documents_fails_only_that_file_and_leaves_no_part_file(new_app, requests_mock, server, tmp_path, caplog):
    """What the sysadmin sees: one warning per file, the run goes on, the next run retries them."""
    base, _ = server
    app = new_app(MYCASE_SYNC_TIMEOUT=str(READ_TIMEOUT))
    save_token_set(app.store, {"access_token": "access-abcdef", "refresh_token": "refresh-abcdef",
                               "token_type": "Bearer", "expires_in": 86400})
    cs, mc = FakeCaseStatus(requests_mock), FakeMyCase(requests_mock)
    requests_mock.get(re.compile(r"http://127\.0\.0\.1:\d+/.*"), real_http=True)
    imported(app, 11)
    endless = cs.add_file(11, "endless.pdf", data=b"", size=1024)
    slow = cs.add_file(11, "slow.pdf", data=b"", size=1000)
    fine = cs.add_file(11, "fine.pdf", data=b"%PDF fine")
    links = {endless["id"]: f"{base}/forever", slow["id"]: f"{base}/trickle/1000"}
    listed = cs._files
    cs._files = lambda: [{**r, "url": links.get(r["id"], r["url"])} for r in listed()]
    app.casestatus.allow_loopback = True
    with caplog.at_level(logging.WARNING):
        started = time.monotonic()
        counts = push_documents(app)
        seconds = time.monotonic() - started
    assert counts["sent"] == 1 and counts["failed"] == 2 and seconds < 5, (counts, seconds)
    rows = ledger(app, "document")
    assert rows[fine["id"]]["state"] == "sent"
    assert "stopped at 1024 bytes" in rows[endless["id"]]["last_error"]
    assert "download too slow" in rows[slow["id"]]["last_error"]
    assert rows[endless["id"]]["attempts"] == rows[slow["id"]]["attempts"] == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and all("retried next run (1 of 10)" in w and "\n" not in w for w in warnings)
    assert not list(tmp_path.rglob("*.part")) and not (tmp_path / "state" / "push-documents.tmp").exists()


def test_a_409_nested_too_deeply_is_one_clear_error_not_a_recursion_error(requests_mock):
    """create_case reads a 409's body for the existing case's id: a hostile one cannot crash it."""
    cs = CaseStatusClient(settings_for())
    deep = "[" * 100_000 + "]" * 100_000
    requests_mock.post("https://casestatus.example/v1/api/cases", status_code=409, text=deep,
                       headers={"Content-Type": "application/json"})
    with pytest.raises(ServiceError) as caught:
        cs.create_case({"integration_id": "1"})
    cs.close()
    assert str(caught.value) == ("Case Status POST /v1/api/cases: HTTP 409: answer nested too deeply "
                                 "(more than 32 levels)")


def test_a_deadline_from_an_absurd_declared_size_never_kills_the_timer_thread():
    """Found by the hostile-input property test: a file record declaring 4.4e62 bytes gave a deadline
    the timer could not wait for (OverflowError); its thread died with a traceback on stderr, and the
    download went on with no deadline. The timer now waits at most what a lock wait may (years)."""
    from mycase_sync.deadline import Watchdog

    session = ServiceSession("Case Status files", 1000.0, READ_TIMEOUT)
    watchdog = Watchdog(session.deadline_for(int(4.4e62)))
    try:
        assert watchdog._timer.interval <= threading.TIMEOUT_MAX
    finally:
        watchdog.cancel()
        session.close()
