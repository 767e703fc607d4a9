"""Bad answers through the API clients: one clear error per request, never a traceback or a page dump.

Every read and write method of both clients is fed the answers a gateway, a proxy or a broken
deploy produces: HTML error pages (with a 200 or a 5xx), an empty body, truncated JSON, JSON of
the wrong type, and gigantic bodies. Each must end as one ServiceError line naming the service and
the path, short, without the page and without our credentials; a write is never sent twice.
"""

from __future__ import annotations

import json
import re

import pytest

from mycase_sync.casestatus.client import CaseStatusClient
from mycase_sync.errors import ServiceError
from mycase_sync.mycase.client import MyCaseClient
from test_reliability_security import ACCESS_TOKEN, API_KEY, FixedTokens, settings_for

MC = "https://mycase.example/v1"
CS = "https://casestatus.example"
HTML = ("<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n<body><h1>Bad Gateway</h1>"
        "<p>The proxy server received an invalid response.</p>\n<pre>Authorization: Bearer " + ACCESS_TOKEN +
        "</pre></body></html>\n")
BIG = 4 * 1024 * 1024


# (name, HTTP method, URL, call, what a good answer is)
def _calls():
    return [
        ("mycase.me", "GET", f"{MC}/me", lambda mc, cs, tmp: mc.me(), dict),
        ("mycase.firm", "GET", f"{MC}/firm", lambda mc, cs, tmp: mc.firm(), dict),
        ("mycase.cases", "GET", f"{MC}/cases", lambda mc, cs, tmp: list(mc.iter_case_pages()), list),
        ("mycase.case", "GET", f"{MC}/cases/7", lambda mc, cs, tmp: mc.get_case(7), dict),
        ("mycase.staff", "GET", f"{MC}/staff", lambda mc, cs, tmp: mc.list_staff(), list),
        ("mycase.documents", "GET", f"{MC}/cases/7/documents", lambda mc, cs, tmp: mc.list_documents(7), list),
        ("mycase.notes", "GET", f"{MC}/cases/7/notes", lambda mc, cs, tmp: mc.list_notes(7), list),
        ("mycase.create_note", "POST", f"{MC}/cases/7/notes",
         lambda mc, cs, tmp: mc.create_note(7, "s", "n", "2025-01-01T00:00:00Z"), dict),
        ("mycase.create_document", "POST", f"{MC}/cases/7/documents",
         lambda mc, cs, tmp: mc.create_document(7, "a.pdf", "a.pdf", "d"), dict),
        ("mycase.create_version", "POST", f"{MC}/documents/3/versions",
         lambda mc, cs, tmp: mc.create_document_version(3), dict),
        ("casestatus.messages", "GET", f"{CS}/v1/api/messages", lambda mc, cs, tmp: cs.list_messages(1), list),
        ("casestatus.files", "GET", f"{CS}/v1/api/files", lambda mc, cs, tmp: cs.list_files(1), list),
        ("casestatus.users", "GET", f"{CS}/v1/api/users", lambda mc, cs, tmp: cs.list_users(), list),
        ("casestatus.find_case", "GET", f"{CS}/v1/api/cases", lambda mc, cs, tmp: cs.find_case("7"), list),
        ("casestatus.create_case", "POST", f"{CS}/v1/api/cases",
         lambda mc, cs, tmp: cs.create_case({"integration_id": "7"}), dict),
        ("casestatus.update_case", "PATCH", f"{CS}/v1/api/cases/70001",
         lambda mc, cs, tmp: cs.update_case(70001, {"stage": "x"}), dict),
        ("casestatus.close_case", "POST", f"{CS}/v1/api/cases/70001/close",
         lambda mc, cs, tmp: cs.close_case(70001, None), dict),
        ("casestatus.reopen_case", "POST", f"{CS}/v1/api/cases/70001/reopen",
         lambda mc, cs, tmp: cs.reopen_case(70001), dict),
        ("casestatus.create_user", "POST", f"{CS}/v1/api/users",
         lambda mc, cs, tmp: cs.create_user("a@b.example", "A", "B", "attorney"), dict),
    ]


CALLS = _calls()


def _wrong_type(expected: type) -> bytes:
    return b'{"id": 1}' if expected is list else b"[1, 2, 3]"


# (name, status, headers, body for an expected type)
ANSWERS = [
    ("html-200", 200, {"Content-Type": "text/html"}, lambda t: HTML.encode()),
    ("html-200-labelled-json", 200, {"Content-Type": "application/json"}, lambda t: HTML.encode()),
    ("empty-200", 200, {"Content-Type": "application/json"}, lambda t: b""),
    ("truncated", 200, {"Content-Type": "application/json"}, lambda t: b'[{"id": 1, "name": "Smi'),
    ("wrong-type", 200, {"Content-Type": "application/json"}, _wrong_type),
    ("json-string", 200, {"Content-Type": "application/json"}, lambda t: b'"ok"'),
    ("json-null", 200, {"Content-Type": "application/json"}, lambda t: b"null"),
    ("json-number", 200, {"Content-Type": "application/json"}, lambda t: b"42"),
    ("not-utf8", 200, {"Content-Type": "application/json"}, lambda t: b"\xff\xfe\x00[\x00"),
    ("html-502", 502, {"Content-Type": "text/html"}, lambda t: HTML.encode()),
    ("html-500", 500, {"Content-Type": "text/html"}, lambda t: HTML.encode()),
    ("empty-503", 503, {}, lambda t: b""),
]
GIGANTIC = [
    ("gigantic-html-500", 500, {"Content-Type": "text/html"},
     lambda t: b"<html><body>" + b"<p>stack frame</p>\n" * (BIG // 19) + b"</body></html>"),
    ("gigantic-error-message", 422, {"Content-Type": "application/json"},
     lambda t: json.dumps({"errors": [{"field": "x", "message": "y" * BIG}]}).encode()),
    ("gigantic-wrong-type", 200, {"Content-Type": "application/json"},
     lambda t: (b'{"a": "' + b"z" * BIG + b'"}') if t is list else (b"[" + b"1," * (BIG // 2) + b"1]")),
    ("gigantic-text-line", 400, {"Content-Type": "text/plain"}, lambda t: b"e" * BIG),
]


@pytest.fixture
def clients():
    mc = MyCaseClient(settings_for(), FixedTokens())
    cs = CaseStatusClient(settings_for())
    for session in (mc.session, cs.session):
        session.sleep = lambda seconds: None  # retries happen, instantly
    yield mc, cs
    mc.close()
    cs.close()


def _one_clear_line(exc: ServiceError, service: str, path: str) -> None:
    text = str(exc)
    assert "\n" not in text and len(text) < 400, text[:500]
    assert text.startswith(f"{service} ") and path in text, text
    for leak in ("<html", "<p>", "stack frame", ACCESS_TOKEN, API_KEY):
        assert leak not in text, f"{leak!r} in {text[:300]!r}"


# Gigantic bodies take a moment each: one read and one write per service is enough, and the default
# run serves each gigantic answer to one of them (every pairing under soak).
SAMPLE = ["mycase.cases", "mycase.create_note", "casestatus.messages", "casestatus.create_case"]
MATRIX = ([pytest.param(c, a, id=f"{c[0]}-{a[0]}") for c in CALLS for a in ANSWERS]
          + [pytest.param(c, a, id=f"{c[0]}-{a[0]}", marks=() if SAMPLE.index(c[0]) == n else pytest.mark.soak)
             for c in CALLS if c[0] in SAMPLE for n, a in enumerate(GIGANTIC)])


@pytest.mark.parametrize("call, answer", MATRIX)
def test_a_bad_answer_is_one_clear_error_and_a_write_is_never_resent(clients, requests_mock, tmp_path, call, answer):
    name, method, url, invoke, expected = call
    _, status, headers, body = answer
    if name == "casestatus.create_user" and status == 409:
        pytest.skip("409 is the documented 'exists' answer")
    requests_mock.register_uri(method, url, status_code=status, headers=headers, content=body(expected))
    mc, cs = clients
    with pytest.raises(ServiceError) as caught:
        invoke(mc, cs, tmp_path)
    service = "MyCase" if name.startswith("mycase") else "Case Status"
    _one_clear_line(caught.value, service, url.split(".example", 1)[1].split("?")[0])
    sent = len(requests_mock.request_history)
    if method == "GET" or status == 200:
        assert sent >= 1
    # A write with an answer (even a bad one) landed or was refused: sending it again could duplicate it.
    # Except 429 and 503, which say it was not processed (RFC 9110): every write is repeated after them.
    # Case Status writes marked safe to repeat (close, reopen, a PATCH without a stage) are repeated on
    # gateway statuses too; MyCase writes and creates never.
    if method != "GET" and status != 503 and (name.startswith("mycase") or status not in (502, 504)):
        assert sent == 1, f"{name}: a write answered {status} was sent {sent} times"


@pytest.mark.parametrize("body", [b'{}', b'{"id": null}', b'{"id": "abc"}', b'{"id": {"x": 1}}', b'{"id": true}'])
def test_a_created_case_answer_without_a_usable_id_is_a_clear_error(clients, requests_mock, body):
    requests_mock.post(f"{CS}/v1/api/cases", status_code=201, content=body, headers={"Content-Type": "application/json"})
    _, cs = clients
    with pytest.raises(ServiceError) as caught:
        cs.create_case({"integration_id": "7"})
    _one_clear_line(caught.value, "Case Status", "/v1/api/cases")
    assert len(requests_mock.request_history) == 1


@pytest.mark.parametrize("body", [b'{"errors": []}', b'{"id": "abc"}', b'{"id": null}', b"<html></html>", b""])
def test_a_conflict_answer_without_a_usable_id_is_a_clear_error(clients, requests_mock, body):
    requests_mock.post(f"{CS}/v1/api/cases", status_code=409, content=body)
    _, cs = clients
    with pytest.raises(ServiceError) as caught:
        cs.create_case({"integration_id": "7"})
    _one_clear_line(caught.value, "Case Status", "/v1/api/cases")
    assert len(requests_mock.request_history) == 1


def test_a_list_page_of_records_that_are_not_objects_is_passed_on_for_the_job_to_judge(clients, requests_mock):
    """The client checks the envelope (a list); the records inside are the mapping's to accept or reject."""
    requests_mock.get(f"{CS}/v1/api/messages", json=[{"id": 1}, None, "x", 3, [1]])
    _, cs = clients
    assert cs.list_messages(1) == [{"id": 1}, None, "x", 3, [1]]


def test_a_download_cut_short_is_an_error_not_a_short_file(clients, requests_mock, tmp_path):
    """A file body that stops early (Content-Length promised more) must not pass as the whole file."""
    import io

    import urllib3

    raw = urllib3.response.HTTPResponse(body=io.BytesIO(b"abc"), headers={"Content-Length": "10"},
                                        status=200, preload_content=False, enforce_content_length=True)
    requests_mock.get("https://files.example/d/1", raw=raw)
    _, cs = clients
    with open(tmp_path / "out", "wb") as out, pytest.raises(ServiceError) as caught:
        cs.download("https://files.example/d/1", out)
    assert re.fullmatch(r"Case Status files GET /d/1: no answer: download broken off after \d+ bytes", str(caught.value))
