"""The MyCase emulator's rules, shown with plain `requests` calls over real HTTP."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import click
import pytest
import requests

from mycase_sync.sandbox.core import Clock, ServiceServer
from mycase_sync.sandbox.mycase import MyCaseService
from mycase_sync.sandbox.server import Sandbox, SandboxConfig

REDIRECT = "http://127.0.0.1:8765/callback"


class Env:
    """A running MyCase service with a signed-in session."""

    def __init__(self, service: MyCaseService, url: str):
        self.service, self.url, self.api = service, url, url + "/v1"
        self.tokens = service.issue_tokens()
        self.session = requests.Session()
        self.session.headers["Authorization"] = "Bearer " + self.tokens["access_token"]

    def get(self, path, **kw):
        return self.session.get(self.api + path, **kw)

    def post(self, path, **kw):
        return self.session.post(self.api + path, **kw)

    def token(self, **body):
        base = {"client_id": "sandbox-client", "client_secret": "sandbox-secret"}
        return requests.post(self.url + "/tokens", json={**base, **body})


@pytest.fixture
def mc():
    service = MyCaseService(Clock(), seed=5)
    server = ServiceServer(service)
    env = Env(service, server.url)
    yield env
    env.session.close()
    server.stop()
    assert service.crashes == []


def authorize(env: Env, **params):
    query = {"client_id": "sandbox-client", "redirect_uri": REDIRECT, "response_type": "code", "state": "st-1"}
    query.update(params)
    return requests.get(env.url + "/login_sessions/new", params=query, allow_redirects=False)


def redirected_params(answer) -> dict:
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(REDIRECT + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def upload(env: Env, doc: dict, data: bytes, **headers):
    sent = {**doc["put_headers"], "Content-Type": "application/octet-stream", **headers}
    return requests.put(doc["put_url"], data=data, headers=sent)


# -- OAuth --------------------------------------------------------------------------------------------

def test_authorize_redirects_with_a_code_that_exchanges_once(mc):
    answer = authorize(mc)
    assert "%2B" in answer.headers["Location"]  # codes carry '+', URL-encoded
    params = redirected_params(answer)
    assert params["state"] == "st-1" and "+" in params["code"]
    tokens = mc.token(grant_type="authorization_code", code=params["code"], redirect_uri=REDIRECT)
    assert tokens.status_code == 200
    body = tokens.json()
    assert set(body) == {"access_token", "token_type", "scope", "refresh_token", "expires_in", "firm_uuid"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 86400
    me = requests.get(mc.api + "/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200 and me.json()["id"] == 1
    again = mc.token(grant_type="authorization_code", code=params["code"], redirect_uri=REDIRECT)
    assert again.status_code == 401 and again.json()["error"] == "invalid_grant"
    assert mc.service.token_calls == 2 and mc.service.refresh_calls == 0
    journal = repr(mc.service.journal)
    assert params["code"] not in journal and body["access_token"] not in journal and "sandbox-secret" not in journal


def test_token_endpoint_accepts_a_form_body(mc):
    code = redirected_params(authorize(mc))["code"]
    answer = requests.post(mc.url + "/tokens", data={
        "client_id": "sandbox-client", "client_secret": "sandbox-secret", "grant_type": "authorization_code",
        "code": code, "redirect_uri": REDIRECT})
    assert answer.status_code == 200 and answer.json()["access_token"]


def test_token_endpoint_refuses_bad_clients_and_bodies(mc):
    wrong_secret = mc.token(client_secret="nope", grant_type="refresh_token",
                            refresh_token=mc.tokens["refresh_token"])
    assert wrong_secret.status_code == 401 and wrong_secret.json()["error"] == "invalid_client"
    extra = mc.token(grant_type="refresh_token", refresh_token=mc.tokens["refresh_token"], scope="all")
    assert extra.status_code == 400 and extra.json()["error"] == "invalid_request"
    as_text = requests.post(mc.url + "/tokens", data="grant_type=refresh_token", headers={"Content-Type": "text/plain"})
    assert as_text.status_code == 400 and as_text.json()["error"] == "invalid_request"
    assert len(mc.service.violations) == 3


def test_authorize_validates_client_redirect_uri_and_response_type(mc):
    wrong_uri = authorize(mc, redirect_uri="http://127.0.0.1:9999/callback")
    assert wrong_uri.status_code == 400 and "Location" not in wrong_uri.headers
    assert authorize(mc, client_id="someone-else").status_code == 400
    assert redirected_params(authorize(mc, response_type="token"))["error"] == "unsupported_response_type"
    assert len(mc.service.violations) == 3


def test_refused_consent_redirects_with_access_denied(mc):
    mc.service.consent = "deny"
    assert redirected_params(authorize(mc)) == {"error": "access_denied", "state": "st-1"}
    mc.service.consent = "forbidden"
    assert authorize(mc).status_code == 403


def test_refresh_rotates_and_a_used_refresh_token_is_dead(mc):
    old = mc.tokens["refresh_token"]
    first = mc.token(grant_type="refresh_token", refresh_token=old)
    assert first.status_code == 200 and "firm_uuid" not in first.json()
    new = first.json()["refresh_token"]
    assert new != old
    reuse = mc.token(grant_type="refresh_token", refresh_token=old)
    assert reuse.status_code == 401 and reuse.json()["error"] == "invalid_grant"
    assert mc.token(grant_type="refresh_token", refresh_token=new).status_code == 200
    assert mc.service.refresh_calls == 3


def test_concurrent_refreshes_with_one_token_let_exactly_one_win(mc):
    token = mc.tokens["refresh_token"]
    barrier = threading.Barrier(6)

    def refresh(_):
        barrier.wait()
        return mc.token(grant_type="refresh_token", refresh_token=token).status_code

    with ThreadPoolExecutor(6) as pool:
        statuses = sorted(pool.map(refresh, range(6)))
    assert statuses == [200] + [401] * 5


def test_refresh_token_expires_on_the_shared_clock(mc):
    mc.service.clock.advance(14 * 86400 + 1)
    answer = mc.token(grant_type="refresh_token", refresh_token=mc.tokens["refresh_token"])
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_grant"


def test_api_answers_401_for_missing_bad_expired_and_revoked_tokens(mc):
    assert requests.get(mc.api + "/firm").status_code == 401
    assert requests.get(mc.api + "/firm", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert mc.get("/firm").status_code == 200
    mc.service.clock.advance(86400 + 1)
    assert mc.get("/firm").status_code == 401
    fresh = mc.service.issue_tokens()
    mc.session.headers["Authorization"] = "Bearer " + fresh["access_token"]
    assert mc.get("/firm").status_code == 200
    mc.service.revoke_all()
    assert mc.get("/firm").status_code == 401


def test_access_token_lifetime_is_a_knob(mc):
    mc.service.access_token_lifetime = 60
    tokens = mc.service.issue_tokens()
    assert tokens["expires_in"] == 60
    mc.service.clock.advance(61)
    assert requests.get(mc.api + "/firm", headers={"Authorization": "Bearer " + tokens["access_token"]}).status_code == 401


# -- lists ----------------------------------------------------------------------------------------------

def walk(env: Env, path: str, **params) -> tuple[list[dict], list]:
    items, answers = [], []
    answer = env.get(path, params=params)
    while True:
        assert answer.status_code == 200, answer.text
        answers.append(answer)
        items += answer.json()
        nxt = answer.links.get("next")
        if not nxt:
            return items, answers
        answer = env.session.get(nxt["url"])


def test_paging_2500_cases_by_1000_gives_each_exactly_once(mc):
    for _ in range(2500):
        mc.service.add_case()
    items, answers = walk(mc, "/cases", page_size=1000)
    ids = [c["id"] for c in items]
    assert len(answers) == 3 and len(ids) == 2500 and set(ids) == set(mc.service.cases)
    assert ids != sorted(ids)  # no order is promised, and the sandbox does not give one
    for answer in answers[:-1]:
        link = answer.headers["Link"]
        assert link.startswith(f"<{mc.api}/cases?") and link.endswith('>; rel="next"') and "page_token=" in link
    assert "Link" not in answers[-1].headers
    assert all(a.headers.get("Item-Count", "2500") == "2500" for a in answers)


def test_item_count_is_sometimes_missing(mc):
    for _ in range(30):
        mc.service.add_case()
    _, answers = walk(mc, "/cases", page_size=2)
    counts = [a.headers.get("Item-Count") for a in answers]
    assert None in counts and "30" in counts


def test_page_size_outside_1_to_1000_is_400_with_the_documented_body(mc):
    for size in ("1001", "0", "ten"):
        answer = mc.get("/cases", params={"page_size": size})
        assert answer.status_code == 400
        assert answer.json()["errors"][0]["source"] == {"parameter": "page_size"}
        assert answer.json()["errors"][0]["description"]
    assert mc.get("/cases", params={"page_size": "1000"}).status_code == 200


def test_unknown_query_parameters_are_refused_and_recorded(mc):
    answer = mc.get("/cases", params={"sort": "id"})
    assert answer.status_code == 400 and answer.json()["errors"][0]["source"] == {"parameter": "sort"}
    assert mc.get("/staff", params={"field[client]": "id"}).status_code == 400
    assert len(mc.service.violations) == 2


def test_page_token_is_opaque_and_checked(mc):
    for _ in range(5):
        mc.service.add_case()
    first = mc.get("/cases", params={"page_size": 2})
    token = parse_qs(urlsplit(first.links["next"]["url"]).query)["page_token"][0]
    assert not token.isdigit()
    assert mc.get("/cases", params={"page_size": 2, "page_token": "garbage!"}).status_code == 400
    changed = mc.get("/cases", params={"page_size": 2, "page_token": token, "filter[status]": "open"})
    assert changed.status_code == 400


def test_updated_after_is_inclusive_and_parses_z_and_offsets(mc):
    service = mc.service
    base = service.clock.now().replace(microsecond=0) - timedelta(days=10)
    for n in range(6):
        service.add_case(updated_at=base + timedelta(hours=n), created_at=base - timedelta(days=1))
    boundary = base + timedelta(hours=3)

    def ids(value):
        items, _ = walk(mc, "/cases", **{"filter[updated_after]": value})
        return sorted(c["id"] for c in items)

    expected = sorted(cid for cid, c in service.cases.items() if c["updated_at"] >= boundary)
    assert len(expected) == 3
    assert ids(boundary.strftime("%Y-%m-%dT%H:%M:%SZ")) == expected
    assert ids(boundary.astimezone(timezone(timedelta(hours=-5))).isoformat()) == expected
    assert ids((boundary + timedelta(microseconds=1)).isoformat()) == expected[1:]
    assert ids(base.date().isoformat()) == sorted(service.cases)
    raw_plus = requests.get(mc.api + "/cases?filter[updated_after]=" + boundary.isoformat(),
                            headers=mc.session.headers)  # an unencoded '+' arrives as a space
    assert raw_plus.status_code == 400


def test_status_filter_and_client_expansion(mc):
    service = mc.service
    service.clients[77] = {"id": 77, "first_name": "Ana", "last_name": "Ruiz", "email": "ana@example.test",
                           "cell_phone_number": "(305) 555-0100"}
    open_case = service.add_case(clients=[77])
    service.add_case(status="closed")
    items, _ = walk(mc, "/cases", **{"filter[status]": "open", "field[client]": "id,first_name,cell_phone_number"})
    assert [c["id"] for c in items] == [open_case["id"]]
    assert items[0]["clients"] == [{"id": 77, "first_name": "Ana", "cell_phone_number": "(305) 555-0100"}]
    plain = mc.get(f"/cases/{open_case['id']}").json()
    assert plain["clients"] == [{"id": 77}]
    assert mc.get("/cases", params={"filter[status]": "pending"}).status_code == 400
    assert mc.get("/cases", params={"field[client]": "ssn"}).status_code == 400


@pytest.mark.parametrize("keep_case_dates", [False, True])
def test_clients_list_their_cases_and_an_edit_moves_the_cases_updated_at_unless_switched_off(mc, keep_case_dates):
    service = mc.service
    service.client_edits_keep_case_dates = keep_case_dates
    long_ago = service.clock.now() - timedelta(days=400)
    service.clients[77] = {"id": 77, "first_name": "Ana", "last_name": "Ruiz", "email": "ana@example.test",
                           "cell_phone_number": "(305) 555-0100", "created_at": long_ago, "updated_at": long_ago}
    case = service.add_case(clients=[77], updated_at=long_ago, created_at=long_ago)
    since = (service.clock.now() - timedelta(days=1)).isoformat()
    assert walk(mc, "/clients", **{"filter[updated_after]": since})[0] == []
    service.update_client(77, cell_phone_number="(305) 555-0199")
    (client,), _ = walk(mc, "/clients", **{"filter[updated_after]": since})
    assert client["id"] == 77 and client["cases"] == [{"id": case["id"]}]
    assert client["cell_phone_number"] == "(305) 555-0199"
    assert mc.get("/clients/77").json()["cases"] == [{"id": case["id"]}]
    assert mc.get("/clients/78").status_code == 404
    listed = walk(mc, "/cases", **{"filter[updated_after]": since})[0]
    assert [c["id"] for c in listed] == ([] if keep_case_dates else [case["id"]])


def test_single_case_404_for_unknown_and_deleted(mc):
    case = mc.service.add_case()
    assert mc.get(f"/cases/{case['id']}").json()["name"] == case["name"]
    mc.service.delete_case(case["id"])
    assert mc.get(f"/cases/{case['id']}").status_code == 404
    assert mc.get("/cases/999999").status_code == 404
    assert walk(mc, "/cases")[0] == []


def test_rendering_varies_timestamps_and_numbers_as_seen_live(mc):
    for n in range(20):
        mc.service.add_case(staff=[{"id": 1, "lead_lawyer": True, "originating_lawyer": False, "case_rate": 150}],
                            outstanding_balance=12.5)
    items, _ = walk(mc, "/cases", page_size=100)
    stamps = [c["created_at"] for c in items] + [c["updated_at"] for c in items]
    assert any(s.endswith("Z") for s in stamps) and any(s.endswith("+00:00") for s in stamps)
    assert any(s.endswith("-05:00") for s in stamps) and any("." in s for s in stamps)
    assert any("." not in s for s in stamps)
    assert {type(c["staff"][0]["id"]) for c in items} == {int, str}
    assert {type(c["outstanding_balance"]) for c in items} == {float, str}
    assert all(c["staff"][0]["case_rate"] == "150" for c in items)


def test_firm_me_staff_stages_and_areas(mc):
    assert mc.get("/firm").json() == {"name": "Sandbox Law", "url": "https://sandbox-law.mycase.com"}
    assert mc.get("/me").json()["type"] == "Attorney"
    assert [s["id"] for s in mc.get("/staff", params={"filter[status]": "active"}).json()] == [1]
    assert mc.get("/staff", params={"filter[status]": "inactive"}).json() == []
    assert mc.get("/staff/1").json()["email"] == "lead@example.test"
    assert mc.get("/staff/2").status_code == 404
    assert [s["name"] for s in mc.get("/case_stages").json()] == ["Intake"]
    assert [a["name"] for a in mc.get("/practice_areas").json()] == ["Personal Injury"]


# -- documents ------------------------------------------------------------------------------------------

def test_upload_then_download_returns_identical_bytes(mc):
    case = mc.service.add_case()
    data = bytes(range(256)) * 1000
    created = mc.post(f"/cases/{case['id']}/documents",
                      json={"path": "Correspondence/Letters/Client letter", "filename": "letter.pdf"})
    assert created.status_code == 201
    doc = created.json()
    assert doc["name"] == "Client letter" and doc["case"] == {"id": case["id"]}
    assert doc["put_url"].startswith("http://") and "X-Amz-Signature=" in doc["put_url"]
    assert doc["put_headers"]["x-amz-acl"]
    put = upload(mc, doc, data)
    assert put.status_code == 200 and put.headers["ETag"]
    download = mc.get(f"/documents/{doc['id']}/data")  # redirect to the S3 stand-in; Bearer dropped
    assert download.history[0].status_code == 302 and download.content == data
    stored = mc.service.documents[doc["id"]]
    assert stored["folder_path"] == "Case Documents/Correspondence/Letters"
    assert stored["size"] == len(data) and mc.service.document_bytes(doc["id"]) == data
    listed = mc.get(f"/cases/{case['id']}/documents").json()
    assert [d["id"] for d in listed] == [doc["id"]] and "put_url" not in listed[0]
    assert mc.service.violations == []


def test_a_bare_name_lands_in_case_documents(mc):
    case = mc.service.add_case()
    doc = mc.post(f"/cases/{case['id']}/documents", json={"path": "Notes.txt", "filename": "Notes.txt"}).json()
    assert mc.service.documents[doc["id"]]["folder_path"] == "Case Documents"
    bad = mc.post(f"/cases/{case['id']}/documents", json={"path": "a//b", "filename": "b.txt"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["source"] == {"pointer": "/path"}
    missing = mc.post(f"/cases/{case['id']}/documents", json={"path": "x"})
    assert missing.status_code == 422 and missing.json()["errors"][0]["source"] == {"pointer": "/filename"}
    assert mc.post("/cases/424242/documents", json={"path": "x", "filename": "x"}).status_code == 404


def test_s3_put_is_strict_about_headers_encoding_and_auth(mc):
    case = mc.service.add_case()
    doc = mc.post(f"/cases/{case['id']}/documents", json={"path": "a", "filename": "a.bin"}).json()
    no_acl = requests.put(doc["put_url"], data=b"x", headers={"Content-Type": "application/octet-stream"})
    assert no_acl.status_code == 403 and b"SignatureDoesNotMatch" in no_acl.content
    assert upload(mc, doc, b"x", **{"Content-Type": "application/pdf"}).status_code == 403
    assert upload(mc, doc, b"x", Authorization=mc.session.headers["Authorization"]).status_code == 400
    assert upload(mc, doc, iter([b"x", b"y"])).status_code == 501  # chunked
    forged = doc["put_url"].replace("X-Amz-Signature=", "X-Amz-Signature=0")
    assert requests.put(forged, data=b"x", headers={**doc["put_headers"],
                                                    "Content-Type": "application/octet-stream"}).status_code == 403
    assert len(mc.service.violations) == 4
    assert mc.service.document_bytes(doc["id"]) is None
    assert mc.get(f"/documents/{doc['id']}/data", allow_redirects=False).status_code == 404


def test_put_url_and_download_url_expire(mc):
    case = mc.service.add_case()
    doc = mc.post(f"/cases/{case['id']}/documents", json={"path": "a", "filename": "a.bin"}).json()
    mc.service.clock.advance(901)
    late = upload(mc, doc, b"late")
    assert late.status_code == 403 and b"expired" in late.content
    fresh = mc.post(f"/documents/{doc['id']}/versions").json()
    assert fresh["version"] == 2 and upload(mc, fresh, b"v2").status_code == 200
    location = mc.get(f"/documents/{doc['id']}/data", allow_redirects=False).headers["Location"]
    assert requests.get(location).content == b"v2"
    mc.service.clock.advance(61)
    assert requests.get(location).status_code == 403


def test_a_new_version_completes_a_document_whose_bytes_never_arrived(mc):
    case = mc.service.add_case()
    doc = mc.post(f"/cases/{case['id']}/documents", json={"path": "a", "filename": "a.bin"}).json()
    version = mc.post(f"/documents/{doc['id']}/versions")
    assert version.status_code == 201 and version.json()["document"] == {"id": doc["id"]}
    assert upload(mc, version.json(), b"complete").status_code == 200
    assert mc.service.document_bytes(doc["id"]) == b"complete"
    assert sorted(v["version"] for v in mc.get(f"/documents/{doc['id']}/versions").json()) == [1, 2]


def test_uploads_over_64_mb_keep_only_sha256_and_size(mc, tmp_path):
    case = mc.service.add_case()
    doc = mc.post(f"/cases/{case['id']}/documents", json={"path": "big", "filename": "big.bin"}).json()
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(64 * 1024 * 1024 + 1)
    with open(big, "rb") as f:  # a file of known size: Content-Length, no chunking
        assert upload(mc, doc, f).status_code == 200
    stored = mc.service.documents[doc["id"]]
    assert stored["size"] == 64 * 1024 * 1024 + 1
    assert stored["bytes_sha256"] == hashlib.sha256(big.read_bytes()).hexdigest()
    assert mc.service.document_bytes(doc["id"]) is None


# -- notes ----------------------------------------------------------------------------------------------

def test_notes_need_subject_note_and_date(mc):
    case = mc.service.add_case()
    full = {"subject": "Call", "note": "Client called.", "date": "2024-05-01T10:00:00Z"}
    for field in full:
        partial = {k: v for k, v in full.items() if k != field}
        answer = mc.post(f"/cases/{case['id']}/notes", json=partial)
        assert answer.status_code == 422 and answer.json()["errors"][0]["source"] == {"pointer": f"/{field}"}
    extra = mc.post(f"/cases/{case['id']}/notes", json={**full, "client_visible": "yes"})
    assert extra.status_code == 422
    as_text = mc.post(f"/cases/{case['id']}/notes", data='{"subject": "a"}', headers={"Content-Type": "text/plain"})
    assert as_text.status_code == 400
    assert len(mc.service.violations) == 5 and mc.service.notes_for(case["id"]) == []
    created = mc.post(f"/cases/{case['id']}/notes", json=full)
    assert created.status_code == 200  # 200, not 201
    note = created.json()
    assert note["case"] == {"id": case["id"]} and note["created_by"] == {"id": 1} and note["subject"] == "Call"
    assert [n["id"] for n in mc.get(f"/cases/{case['id']}/notes").json()] == [note["id"]]
    assert mc.service.notes_for(case["id"])[0]["note"] == "Client called."


# -- knobs ----------------------------------------------------------------------------------------------

def test_rate_limit_answers_429_on_the_api_only(mc):
    mc.service.rate_limit = 3
    codes = [mc.get("/firm").status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    limited = mc.get("/firm")
    assert limited.json() == {"message": "Too Many Requests"} and "Retry-After" not in limited.headers
    mc.service.retry_after = 1
    assert mc.get("/firm").headers["Retry-After"] == "1"
    assert authorize(mc).status_code == 302  # the auth host is not limited


def test_failure_plans_fire_exactly_as_configured(mc):
    service = mc.service
    case = service.add_case()
    service.faults.add("GET", r"/v1/cases", "500", nth=2)
    service.faults.add("POST", r"/v1/cases/\d+/notes", "drop")
    service.faults.add("GET", r"/v1/firm", "timeout")
    service.timeout_hold = 0.5
    assert [mc.get("/cases").status_code for _ in range(3)] == [200, 500, 200]
    with pytest.raises(requests.ConnectionError):
        mc.post(f"/cases/{case['id']}/notes", json={"subject": "s", "note": "n", "date": "2024-01-01T00:00:00Z"})
    assert len(service.notes_for(case["id"])) == 1  # committed, then the connection dropped
    with pytest.raises(requests.ReadTimeout):
        mc.get("/firm", timeout=0.2)
    assert [f["kind"] for f in service.faults.fired] == ["500", "drop", "timeout"]


def test_serve_flags_parse_latency_rate_limits_and_fault_plans():
    from mycase_sync.sandbox.cli import _fault, _latencies, _rate_limits

    assert _latencies("200") == ((0.2, 0.2), (0.2, 0.2))
    assert _latencies("100-900,0") == ((0.1, 0.9), None)
    assert _rate_limits("10,0", SandboxConfig()) == (10, None)
    assert _rate_limits(None, SandboxConfig()) == (25, None)
    assert _fault(r"mycase:post:/v1/cases/\d+/notes:drop:3:2") == ("mycase", "POST", r"/v1/cases/\d+/notes",
                                                                   "drop", 3, 2)
    assert _fault("casestatus:GET:/v1/api/files:timeout") == ("casestatus", "GET", "/v1/api/files", "timeout", 1, 1)
    for bad in ("mycase:GET:/x", "other:GET:/x:500", "mycase:GET:/x:500:0"):
        with pytest.raises(click.BadParameter):
            _fault(bad)
    with pytest.raises(click.BadParameter):
        _latencies("9-1")


def test_sandbox_clock_starts_at_the_configured_now():
    now = datetime(2024, 3, 1, 12, 0, tzinfo=timezone.utc)
    with Sandbox(SandboxConfig(matters=10, now=now)) as sandbox:
        assert abs((sandbox.clock.now() - now).total_seconds()) < 5
        assert max(c["updated_at"] for c in sandbox.mycase.cases.values()) <= sandbox.clock.now()


# -- the whole sandbox ----------------------------------------------------------------------------------

def test_sandbox_starts_and_stops_both_services_and_exports_env():
    began = time.monotonic()
    with Sandbox(SandboxConfig(matters=40, seed=2, mycase_rate_limit=None)) as sandbox:
        env = sandbox.env()
        assert set(env) == {"MYCASE_AUTH_URL", "MYCASE_API_URL", "MYCASE_CLIENT_ID", "MYCASE_CLIENT_SECRET",
                            "MYCASE_REDIRECT_URI", "CASESTATUS_API_URL", "CASESTATUS_API_KEY"}
        assert sandbox.mycase.clock is sandbox.casestatus.clock is sandbox.clock
        token = sandbox.mycase.issue_tokens()["access_token"]
        cases = requests.get(env["MYCASE_API_URL"] + "/cases", params={"page_size": 1000},
                             headers={"Authorization": f"Bearer {token}"}).json()
        assert len(cases) == len(sandbox.mycase.cases) > 0
        assert requests.get(env["CASESTATUS_API_URL"] + "/v1/api/users",
                            headers={"Authorization": "ApiKey " + env["CASESTATUS_API_KEY"]}).status_code == 200
    assert time.monotonic() - began < 5.0  # well under a second here; a stop that hung would never end


def test_sandbox_serve_prints_env_serves_and_stops_on_ctrl_c():
    proc = subprocess.Popen([sys.executable, "-m", "mycase_sync.sandbox.cli", "serve", "--port", "0",
                             "--matters", "20", "--rate-limit", "0", "--fault", "mycase:GET:/v1/firm:503"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        env = {}
        while len(env) < 7:
            line = proc.stdout.readline()
            assert line.startswith("export "), line + proc.stderr.read()
            name, _, value = line.removeprefix("export ").strip().partition("=")
            env[name] = value
        query = {"client_id": env["MYCASE_CLIENT_ID"], "redirect_uri": env["MYCASE_REDIRECT_URI"],
                 "response_type": "code"}
        location = requests.get(env["MYCASE_AUTH_URL"] + "/login_sessions/new", params=query,
                                allow_redirects=False).headers["Location"]
        code = parse_qs(urlsplit(location).query)["code"][0]
        tokens = requests.post(env["MYCASE_AUTH_URL"] + "/tokens", json={
            "client_id": env["MYCASE_CLIENT_ID"], "client_secret": env["MYCASE_CLIENT_SECRET"],
            "grant_type": "authorization_code", "code": code, "redirect_uri": env["MYCASE_REDIRECT_URI"]}).json()
        bearer = {"Authorization": "Bearer " + tokens["access_token"]}
        assert requests.get(env["MYCASE_API_URL"] + "/firm", headers=bearer).status_code == 503
        firm = requests.get(env["MYCASE_API_URL"] + "/firm", headers=bearer)
        assert firm.status_code == 200 and firm.json()["name"]
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=5) == 0
    if os.name == "posix":
        assert "stopped" in proc.stderr.read()


@pytest.mark.soak  # about 3 s, mostly the client decoding tens of MB of JSON
def test_paging_100k_cases_is_quick(mc):
    staff = [{"id": 1, "lead_lawyer": True, "originating_lawyer": False, "case_rate": None}]
    for _ in range(100_000):
        mc.service.add_case(staff=staff, clients=[5])
    items, answers = walk(mc, "/cases", page_size=1000)
    assert len(answers) == 100 and len({c["id"] for c in items}) == 100_000
    server_times = sorted(a.elapsed.total_seconds() for a in answers[1:])  # time to the response headers
    assert server_times[len(server_times) // 2] < 0.1, server_times
