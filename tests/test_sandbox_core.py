"""The sandbox machinery over real HTTP: routing, keep-alive, knobs, fault plans and the journal."""
from __future__ import annotations

import http.client
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from mycase_sync.sandbox.core import Clock, Response, Service, ServiceServer, route


class Echo(Service):
    """A tiny service: a counter it commits on POST, a JSON echo and a streamed body."""

    name = "echo"

    def __init__(self, clock):
        super().__init__(clock)
        self.commits = 0

    @route("GET", r"/items/(\d+)")
    def item(self, req, item_id):
        return {"id": int(item_id), "query": req.query}

    @route("POST", r"/items")
    def add(self, req):
        body = req.json()
        with self.lock:
            self.commits += 1
        return Response(201, {"got": body})

    @route("POST", r"/raw")
    def raw(self, req):
        return Response(200, {"size": len(req.body), "chunked": req.chunked})

    @route("GET", r"/stream")
    def stream(self, req):
        return Response(200, iter([b"abc"] * 1000), {"Content-Type": "application/octet-stream"})

    @route("GET", r"/boom")
    def boom(self, req):
        raise RuntimeError("sandbox bug")


@pytest.fixture
def echo():
    service = Echo(Clock())
    server = ServiceServer(service)
    yield service, server.url
    server.stop()


def test_stops_at_once_even_with_an_idle_keep_alive_connection_open():
    began = time.monotonic()
    server = ServiceServer(Echo(Clock()))
    with requests.Session() as session:  # an idle keep-alive connection must not hold up stop()
        assert session.get(server.url + "/items/1").status_code == 200
        server.stop()
    assert time.monotonic() - began < 5.0  # an idle connection holding it up would hang it for good
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url + "/items/1", timeout=1)


def test_keep_alive_serves_several_requests_on_one_connection(echo):
    service, url = echo
    conn = http.client.HTTPConnection(url.removeprefix("http://"))
    for n in range(3):
        conn.request("GET", f"/items/{n}")
        resp = conn.getresponse()
        assert resp.status == 200 and b'"id": %d' % n in resp.read()
    conn.request("POST", "/items", body=b"not json", headers={"Content-Type": "application/json"})
    resp = conn.getresponse()  # an error answer still leaves the connection usable
    assert resp.status == 400 and resp.read()
    conn.request("GET", "/items/9")
    assert conn.getresponse().status == 200
    conn.close()
    assert service.violations == ["POST /items: body is not valid JSON"]


def test_after_a_client_hangs_up_wait_until_idle_returns_once_its_requests_have_landed():
    """A killed job's last requests may still be inside the server; a test counting commits waits for them."""
    service = Echo(Clock())
    server = ServiceServer(service)
    release = threading.Event()
    real_handle = service.handle

    def held(req):  # the request is in the server, not yet run
        release.wait(30)
        return real_handle(req)

    service.handle = held
    try:
        body = b'{"name": "late"}'
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b"POST /items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        # the client is gone, its request is not yet run: not idle (a bounded wait, then False)
        assert server.wait_until_idle(timeout=0.2) is False
        assert service.commits == 0
        release.set()
        assert server.wait_until_idle(timeout=30) is True
        assert service.commits == 1  # landed, and counted only now
        assert server.wait_until_idle(timeout=0) is True
    finally:
        release.set()
        server.stop()


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_a_body_cut_off_by_a_dying_client_never_reaches_the_route(echo, framing):
    """A killed job leaves half a body behind; a real server drops it, so must the sandbox."""
    service, url = echo
    port = int(url.rsplit(":", 1)[1])
    half = b'{"name": "half'
    if framing == "length":
        head = b"POST /items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n"
        sent = head + half
    else:
        head = (b"POST /items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")
        sent = head + b"28\r\n" + half
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(sent)
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(1024) == b""  # no answer: the connection is closed
    assert service.commits == 0
    assert service.violations == [] and service.crashes == [] and service.journal == []
    assert service.cut_off == ["POST /items"]
    assert requests.post(url + "/items", json={"name": "whole"}).status_code == 201  # the server carries on


def test_unknown_path_is_404_json_and_wrong_method_405(echo):
    _, url = echo
    missing = requests.get(url + "/nowhere")
    assert missing.status_code == 404 and missing.json()["errors"][0]["description"]
    assert requests.delete(url + "/items").status_code == 405


def test_streams_iterables_and_reads_chunked_request_bodies(echo):
    _, url = echo
    streamed = requests.get(url + "/stream")
    assert streamed.headers["Transfer-Encoding"] == "chunked" and streamed.content == b"abc" * 1000
    chunked = requests.post(url + "/raw", data=iter([b"x" * 10, b"y" * 5]))
    assert chunked.json() == {"size": 15, "chunked": True}


def test_a_handler_crash_answers_500_and_is_kept_for_the_tests(echo):
    service, url = echo
    assert requests.get(url + "/boom").status_code == 500
    assert "sandbox bug" in service.crashes[0]


def test_journal_masks_secrets_and_counts(echo):
    service, url = echo
    requests.get(url + "/items/1", params={"access_token": "tok-q", "code": "c+1", "page": "2"},
                 headers={"Authorization": "Bearer tok-h"})
    requests.post(url + "/items", json={"client_secret": "s3cret", "refresh_token": "rt", "name": "x"})
    assert "tok-" not in repr(service.journal) and "s3cret" not in repr(service.journal)
    assert "c+1" not in repr(service.journal) and '"rt"' not in repr(service.journal)
    first, second = service.journal
    assert first["query"] == {"access_token": "***", "code": "***", "page": ["2"]} and first["auth"] == "Bearer"
    assert second["body"] == {"client_secret": "***", "refresh_token": "***", "name": "x"}
    assert (second["method"], second["status"], second["write"]) == ("POST", 201, True)
    assert service.count("GET", r"/items/\d+") == 1 and service.count(writes_only=True) == 1
    assert service.counters["POST /items"] == 1
    service.reset_journal()
    assert service.count() == 0


def test_latency_runs_concurrently_not_under_a_lock(echo):
    service, url = echo
    service.latency = (0.3, 0.3)
    began = time.monotonic()
    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(lambda n: requests.get(f"{url}/items/{n}").status_code, range(6)))
    elapsed = time.monotonic() - began
    assert statuses == [200] * 6 and 0.3 <= elapsed < 1.5  # one at a time would take 1.8 s


def test_rate_limit_answers_429_past_the_limit_with_retry_after(echo):
    service, url = echo
    service.rate_limit, service.retry_after = 5, 2
    with requests.Session() as session:
        answers = [session.get(f"{url}/items/{n}") for n in range(8)]
    assert [a.status_code for a in answers] == [200] * 5 + [429] * 3
    assert answers[-1].headers["Retry-After"] == "2"
    assert [e["status"] for e in service.journal].count(429) == 3


def test_fault_nth_request_answers_500_once_before_handling(echo):
    service, url = echo
    service.faults.add("POST", r"/items", "500", nth=2)
    codes = [requests.post(url + "/items", json={}).status_code for _ in range(3)]
    assert codes == [201, 500, 201] and service.commits == 2
    assert service.faults.fired == [{"method": "POST", "path": "/items", "kind": "500"}]


def test_fault_times_covers_consecutive_requests_and_gateway_kinds(echo):
    service, url = echo
    service.faults.add("GET", r"/items/\d+", "504", nth=1, times=2)
    service.faults.add("GET", r"/items/\d+", "429", nth=3)
    answers = [requests.get(f"{url}/items/{n}") for n in range(4)]
    assert [a.status_code for a in answers] == [504, 504, 429, 200]
    assert answers[0].json() == {"message": "Endpoint request timed out"}


def test_fault_drop_commits_then_closes_without_answering(echo):
    service, url = echo
    hooked = []
    service.after_write_hooks.append(lambda entry: hooked.append((entry["path"], entry["status"])))
    service.faults.add("POST", r"/items", "drop")
    with pytest.raises(requests.ConnectionError):
        requests.post(url + "/items", json={"n": 1})
    assert service.commits == 1 and hooked == [("/items", 201)]
    assert service.journal[-1]["fault"] == "drop"
    assert requests.post(url + "/items", json={"n": 2}).status_code == 201


def test_fault_drop_before_closes_without_handling(echo):
    service, url = echo
    service.faults.add("POST", r"/items", "drop_before")
    with pytest.raises(requests.ConnectionError):
        requests.post(url + "/items", json={})
    assert service.commits == 0


def test_fault_timeout_commits_then_holds_the_connection(echo):
    service, url = echo
    service.timeout_hold = 0.6
    service.faults.add("POST", r"/items", "timeout")
    with pytest.raises(requests.ReadTimeout):
        requests.post(url + "/items", json={}, timeout=0.2)
    assert service.commits == 1


def test_after_write_hook_runs_before_the_client_sees_the_answer(echo):
    service, url = echo
    seen_before_answer = threading.Event()
    service.after_write_hooks.append(lambda entry: seen_before_answer.set())
    answer = requests.post(url + "/items", json={})
    assert answer.status_code == 201 and seen_before_answer.is_set()
    requests.get(url + "/items/1")  # reads do not call the hooks
    assert service.count(writes_only=True) == 1


def test_storm_hits_a_seeded_fraction_and_clears(echo):
    service, url = echo
    service.faults.storm(1.0, ["503"], seed=3, writes_only=True)
    assert requests.post(url + "/items", json={}).status_code == 503
    assert requests.get(url + "/items/1").status_code == 200
    service.faults.clear()
    assert requests.post(url + "/items", json={}).status_code == 201


def test_clock_offset_moves_now():
    clock = Clock()
    before = clock.now()
    clock.advance(3600)
    assert 3599 < (clock.now() - before).total_seconds() < 3601 and clock.now().tzinfo is not None
