"""Garbage answers end to end: the real CLI against a sandbox that answers one request with junk.

An HTML error page with a 200, an empty body, truncated JSON, JSON of the wrong shape or a
gigantic page, on a list the run needs (it must stop cleanly: one line, nothing half-written,
the window or cursor not moved) or on one record's write that did land (the run goes on; that
record is retried and, since the write landed, found rather than written twice). Then the junk
stops and the next run ends exact.
"""

from __future__ import annotations

import json
import re
import sqlite3

import pytest

from mycase_sync.sandbox.core import Response
from mycase_sync.sandbox.server import SandboxConfig
from mycase_sync.store import open_store
from mycase_sync.sync.mapping import fields_hash
from conftest import active_cases, seed_imported
from oracle import assert_job_end_state, expected_matters

HTML = (b"<!DOCTYPE html><html><head><title>Service Unavailable</title></head><body><h1>We'll be right back"
        b"</h1><p>Scheduled maintenance.</p></body></html>")
GIGANTIC = b"<html><body>" + b"<div>maintenance</div>\n" * 400_000 + b"</body></html>"  # ~9 MB
KINDS = {
    "html": lambda shape: Response(200, HTML, {"Content-Type": "text/html; charset=utf-8"}),
    "empty": lambda shape: Response(200, b"", {"Content-Type": "application/json"}),
    "truncated": lambda shape: Response(200, b'[{"id": 70001, "integration_id": "2040' if shape is list
                                        else b'{"id": 5001, "subject": "Case Sta', {"Content-Type": "application/json"}),
    "wrong-type": lambda shape: Response(200, b'{"data": [], "meta": {"page": 1}}' if shape is list else b"[]",
                                         {"Content-Type": "application/json"}),
    "gigantic": lambda shape: Response(200, GIGANTIC, {"Content-Type": "text/html"}),
}


@pytest.fixture
def sandbox_config():
    return SandboxConfig(matters=60, seed=7, mycase_rate_limit=None)


class Junk:
    """Answer the nth matching request (only that one) with junk; `commit` runs the real handler first."""

    def __init__(self, service, method: str, path: str, kind: str, shape: type, nth: int = 1, commit: bool = False):
        self.service, self.method, self.path = service, method, re.compile(path)
        self.kind, self.shape, self.nth, self.commit = kind, shape, nth, commit
        self.seen = 0
        self.fired: list[str] = []
        self._handle = service.handle
        service.handle = self._wrapped

    def _wrapped(self, req):
        if req.method == self.method and self.path.fullmatch(req.path):
            self.seen += 1
            if self.seen == self.nth:
                if self.commit:
                    real, _ = self._handle(req)
                    assert real is not None and real.status < 400, "the write meant to land was refused"
                self.fired.append(req.path)
                return KINDS[self.kind](self.shape), None
        return self._handle(req)

    def remove(self) -> None:
        del self.service.handle


def store_is_whole(db_path, job: str) -> None:
    """Nothing half-written: the file is sound, every row says something true and complete.

    (For the push jobs the matters rows are the test's own seeding, without fields.)"""
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    store = open_store(db_path)
    try:
        for row in store.db.query("select * from matters") if job == "import-matters" else []:
            assert row["state"] in ("synced", "pending", "failed", "skipped"), row
            if row["state"] == "synced":
                assert row["casestatus_id"] and row["fields"], row
                assert row["fields_hash"] == fields_hash(json.loads(row["fields"])), row
        for row in store.db.query("select * from ledger"):
            assert row["state"] in ("pending", "claimed", "sent", "waiting", "failed"), row
            assert row["state"] != "sent" or row["remote_id"], row
            assert isinstance(json.loads(row["item"]), dict)
        for row in store.db.query("select * from runs"):
            assert row["outcome"] != "running" and row["finished_at"], row
    finally:
        store.close()


def cursor(db_path, job: str):
    store = open_store(db_path)
    try:
        return store.get_cursor(job)
    finally:
        store.close()


def one_clear_line(result, words: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert lines, result.output
    assert "Traceback" not in result.output and "<html" not in result.output.lower()
    assert any(words in line for line in lines), result.stderr
    assert all(len(line) < 500 for line in lines), result.stderr


# --- a list the run needs: it stops cleanly ---------------------------------------------------------
LISTS = [
    ("import-matters", "mycase", "GET", r"/v1/cases", "MyCase GET /v1/cases"),
    ("import-matters", "casestatus", "GET", r"/v1/api/users", "Case Status GET /v1/api/users"),
    ("push-messages", "casestatus", "GET", r"/v1/api/messages", "Case Status GET /v1/api/messages"),
    ("push-documents", "casestatus", "GET", r"/v1/api/files", "Case Status GET /v1/api/files"),
]


# Every kind of junk reaches every client method in test_reliability_badinput.py; end to end,
# each list gets three kinds and every kind is served somewhere (keeps the suite quick). The default
# run serves each list one kind (and the gigantic page once); the others are soak.
_NAMES = list(KINDS)
LIST_CASES = [(target, _NAMES[(n + k) % len(_NAMES)], k == 0 or _NAMES[(n + k) % len(_NAMES)] == "gigantic" and n == 2)
              for n, target in enumerate(LISTS) for k in (0, 2, 4)]


@pytest.mark.parametrize("target, kind", [
    pytest.param(t, k, id=f"{t[0]}:{t[3]}-{k}", marks=() if by_default else pytest.mark.soak)
    for t, k, by_default in LIST_CASES])
def test_junk_on_a_list_stops_the_run_cleanly_and_the_next_run_ends_exact(connected, sandbox, db_path, target, kind):
    job, service, method, path, words = target
    mapped = set(expected_matters(sandbox))
    if job != "import-matters":
        mapped = seed_imported(sandbox, db_path, active_cases(sandbox))
    before = cursor(db_path, job)
    junk = Junk(getattr(sandbox, service), method, path, kind, list)
    result = connected.run(job, "--all") if job != "import-matters" else connected.run(job)
    junk.remove()
    assert junk.fired, "the junk was never served"
    assert result.code not in (0, 75) or result.code == 75 and kind == "gigantic", result.output
    one_clear_line(result, words)
    store_is_whole(db_path, job)
    assert cursor(db_path, job) == before  # the window / cursor did not move past what was not read

    again = connected.run(job, "--all") if job != "import-matters" else connected.run(job)
    assert again.code in ((0, 1) if job == "import-matters" else (0,)), again.output
    store_is_whole(db_path, job)
    assert_job_end_state(sandbox, db_path, job, mapped)


# --- one record's write landed but its answer is junk: the run goes on -------------------------------
WRITES = [
    ("import-matters", "casestatus", "POST", r"/v1/api/cases", dict, "Case Status POST /v1/api/cases"),
    ("push-messages", "mycase", "POST", r"/v1/cases/\d+/notes", dict, "MyCase POST /v1/cases/"),
    ("push-documents", "mycase", "POST", r"/v1/cases/\d+/documents", dict, "MyCase POST /v1/cases/"),
    ("push-documents", "casestatus", "GET", r"/downloads/\d+", bytes, "bytes but Case Status lists"),
]


_RECORD_KINDS = ["html", "empty", "truncated", "wrong-type"]
# Each write one kind by default (every kind once); the second kind of each under soak.
WRITE_CASES = [(target, _RECORD_KINDS[(n + k) % 4], k == 0) for n, target in enumerate(WRITES) for k in (0, 2)]


@pytest.mark.parametrize("target, kind", [
    pytest.param(t, k, id=f"{t[0]}:{t[3]}-{k}", marks=() if by_default else pytest.mark.soak)
    for t, k, by_default in WRITE_CASES])
def test_junk_answering_one_record_fails_that_record_only_and_it_lands_once(connected, sandbox, db_path, target, kind):
    job, service, method, path, shape, words = target
    mapped = set(expected_matters(sandbox))
    if job != "import-matters":
        mapped = seed_imported(sandbox, db_path, active_cases(sandbox))
    junk = Junk(getattr(sandbox, service), method, path, kind, shape, nth=2, commit=(method != "GET"))
    args = ("--all",) if job != "import-matters" else ()
    result = connected.run(job, *args, extra_env={"MYCASE_SYNC_WORKERS": "2"})
    junk.remove()
    assert junk.fired
    assert result.code == 1, result.output  # the others went through; this one is retried next run
    one_clear_line(result, words)
    store_is_whole(db_path, job)

    again = connected.run(job, *args)
    assert again.code in ((0, 1) if job == "import-matters" else (0,)), again.output
    store_is_whole(db_path, job)
    assert_job_end_state(sandbox, db_path, job, mapped)
