"""The Case Status emulator, driven over real HTTP with plain requests, as the client will drive it."""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone

import pytest
import requests

from mycase_sync.sandbox.casestatus import CaseStatusService
from mycase_sync.sandbox.core import Clock, HttpError, ServiceServer

KEY = "test-key"
ATTORNEY = "ann.attorney@firm.example"


@pytest.fixture
def service():
    svc = CaseStatusService(Clock(), KEY)
    svc.load_seed(users=[{"email": ATTORNEY, "first_name": "Ann", "last_name": "Attorney", "role": "attorney"}])
    yield svc
    assert svc.crashes == []  # a sandbox bug answers 500 and would otherwise pass for a fault


@pytest.fixture
def server(service):
    with ServiceServer(service) as running:
        yield running


@pytest.fixture
def api(server):
    """A session that talks to the API the way the contract says: ApiKey auth, JSON bodies."""
    session = requests.Session()
    session.headers["Authorization"] = f"ApiKey {KEY}"

    def call(method, path, **kwargs):
        return session.request(method, server.url + path, timeout=10, **kwargs)

    yield call
    session.close()


def new_case(integration_id="100", **fields):
    return {"integration_id": integration_id, "readable_id": f"R-{integration_id}",
            "primary_attorney_email": ATTORNEY, **fields}


def test_auth_refused_without_key_or_with_bearer(server, service):
    """A request without `ApiKey <key>` gets 401 and the documented error body."""
    for headers in ({}, {"Authorization": f"Bearer {KEY}"}, {"Authorization": "ApiKey wrong"}):
        resp = requests.get(server.url + "/v1/api/cases", headers=headers, timeout=5)
        assert resp.status_code == 401
        assert resp.json()["errors"][0]["field"] == "Authorization"
    assert len(service.violations) == 2  # a wrong key is configuration, not a client bug


def test_paging_gives_each_item_once_in_id_order(api, service):
    """Walking pages until a short one sees every case once; newest_first reverses the order."""
    for n in range(23):
        service.create_case(**new_case(str(n)))

    def walk():
        seen, page = [], 1
        while True:
            items = api("GET", "/v1/api/cases", params={"page[number]": page, "page[size]": 10}).json()
            seen += [c["id"] for c in items]
            if len(items) < 10:
                return seen
            page += 1

    ascending = walk()
    assert ascending == sorted(ascending) and len(set(ascending)) == 23
    service.newest_first = True
    assert walk() == ascending[::-1]
    assert len(api("GET", "/v1/api/cases").json()) == 10  # default page size


@pytest.mark.parametrize("params", [{"page[size]": 101}, {"page[size]": "ten"}, {"page[number]": 0},
                                    {"since": "2024-01-01"}])
def test_bad_paging_or_unknown_parameter_is_400(api, service, params):
    resp = api("GET", "/v1/api/messages", params=params)
    assert resp.status_code == 400
    assert resp.json()["errors"][0]["field"] == next(iter(params))
    assert service.violations


def test_users_create_and_duplicate_email(api, service):
    """Emails are compared case-insensitively; the role must be one of the four."""
    body = {"email": "Pat.Para@firm.example", "first_name": "Pat", "last_name": "Para", "role": "paralegal"}
    created = api("POST", "/v1/api/users", json=body)
    assert created.status_code == 201 and created.json()["role"] == "paralegal"
    again = api("POST", "/v1/api/users", json={**body, "email": "pat.para@FIRM.example"})
    assert again.status_code == 409
    assert api("POST", "/v1/api/users", json={**body, "email": "x@firm.example", "role": "boss"}).status_code == 422
    listed = api("GET", "/v1/api/users", params={"page[size]": 100}).json()
    assert [u["email"] for u in listed] == [ATTORNEY, body["email"]]


def test_case_create_duplicate_returns_existing_id(api):
    first = api("POST", "/v1/api/cases", json=new_case(practice_area="Brand New Area"))
    assert first.status_code == 201
    case = first.json()
    assert case["status"] == "open" and case["practice_area"] == "Brand New Area"
    dup = api("POST", "/v1/api/cases", json=new_case(description="retry"))
    assert dup.status_code == 409 and dup.json()["id"] == case["id"]
    found = api("GET", "/v1/api/cases", params={"integration_id": "100"}).json()
    assert [c["id"] for c in found] == [case["id"]]
    assert api("GET", "/v1/api/cases", params={"integration_id": "nope"}).json() == []


@pytest.mark.parametrize("body, field", [
    (new_case(primary_attorney_email="nobody@firm.example"), "primary_attorney_email"),
    ({"integration_id": "1", "readable_id": "R1"}, "primary_attorney_email"),
    (new_case(colour="red"), "colour"),
    (new_case(case_date="2019-13-45"), "case_date"),
    (new_case(status="pending"), "status"),
    (new_case(integration_id=7), "integration_id"),
    (new_case(clients=[{"first_name": "A", "last_name": "B", "email": None, "cell_phone": "555-1234"}]),
     "clients[0].cell_phone"),
    (new_case(attorney_emails="a@b.c"), "attorney_emails"),
])
def test_case_create_refused_with_422(api, service, body, field):
    resp = api("POST", "/v1/api/cases", json=body)
    assert resp.status_code == 422
    assert resp.json()["errors"][0]["field"] == field
    assert service.cases == {}


def test_write_needs_json_content_type(api, service):
    resp = api("POST", "/v1/api/cases", data="integration_id=1", headers={"Content-Type": "text/plain"})
    assert resp.status_code == 415
    assert service.violations


def test_patch_close_reopen_and_stage_changes(api, service):
    """Every stage write is recorded, including one that sets the stage it already had."""
    clients = [{"first_name": "Cy", "last_name": "Client", "email": "cy@example.com", "cell_phone": "+15551234567"}]
    case = api("POST", "/v1/api/cases", json=new_case(stage="Intake", clients=clients)).json()
    path = f"/v1/api/cases/{case['id']}"
    patched = api("PATCH", path, json={"stage": "Discovery", "description": "updated"})
    assert patched.status_code == 200
    assert patched.json()["stage"] == "Discovery" and patched.json()["clients"] == clients
    closed = api("POST", path + "/close", json={"closed_date": "2025-01-31"}).json()
    assert (closed["status"], closed["closed_date"]) == ("closed", "2025-01-31")
    reopened = api("POST", path + "/reopen").json()
    assert (reopened["status"], reopened["closed_date"]) == ("open", None)
    assert [(c["old"], c["new"]) for c in service.stage_changes] == [(None, "Intake"), ("Intake", "Discovery")]
    assert service.violations == []

    api("PATCH", path, json={"stage": "Discovery"})
    assert service.stage_changes[-1]["old"] == service.stage_changes[-1]["new"] == "Discovery"
    assert any("written again" in v for v in service.violations)
    assert api("PATCH", "/v1/api/cases/1", json={"stage": "X"}).status_code == 404
    assert api("POST", path + "/close", json={}).status_code == 422  # closed_date is required, if null


def test_held_back_messages_appear_when_their_case_is_created(api, service):
    """Seeded activity for a case Case Status does not have yet shows up, with new ascending ids, once it does."""
    sent = datetime(2024, 12, 1, tzinfo=timezone.utc)
    service.create_case(**new_case("1"))
    service.load_seed(messages=[
        {"integration_id": "2", "type": "incoming", "content": "later", "sent_at": sent, "sender_name": "Cy"},
        {"integration_id": "1", "type": "outgoing", "content": "now", "sent_at": sent, "sender_name": "Ann"},
        {"integration_id": "2", "type": "incoming", "content": "later too", "sent_at": sent, "sender_name": "Cy"},
    ])
    first = api("GET", "/v1/api/messages").json()
    assert [m["content"] for m in first] == ["now"]
    assert set(first[0]) == {"id", "type", "content", "sent_at", "created_at", "sender_name", "readable_id",
                             "integration_id"}
    api("POST", "/v1/api/cases", json=new_case("2"))
    after = api("GET", "/v1/api/messages").json()
    assert [m["content"] for m in after] == ["now", "later", "later too"]
    assert [m["id"] for m in after] == sorted(m["id"] for m in after)
    assert after[1]["readable_id"] == "R-2" and after[1]["sent_at"] == "2024-12-01T00:00:00.000Z"


def test_file_download_without_key_then_expired(api, server, service):
    """The link needs no key, returns the exact bytes, and is refused once its TTL has passed."""
    data = bytes(range(256)) * 1000
    service.create_case(**new_case("9", practice_area="Family"))
    service.add_file("9", "Déclaration.pdf", data=data, content_type="application/pdf")
    [record] = api("GET", "/v1/api/files").json()
    assert record["case_integration_id"] == "9" and record["case_practice_area"] == "Family"
    assert (record["size"], record["extension"]) == (len(data), "pdf")
    resp = requests.get(record["url"], timeout=5)
    assert resp.status_code == 200 and resp.content == data
    assert resp.headers["Content-Length"] == str(len(data))
    assert requests.get(record["url"], headers={"Authorization": f"ApiKey {KEY}"}, timeout=5).status_code == 400

    service.clock.advance(service.file_url_ttl + 1)
    assert requests.get(record["url"], timeout=5).status_code == 403
    fresh = api("GET", "/v1/api/files").json()[0]["url"]
    assert requests.get(fresh, timeout=5).content == data


def test_generated_50mb_file_streams_with_its_sha256(api, service):
    size = 50 * 1024 * 1024
    service.create_case(**new_case("big"))
    record = service.add_file("big", "scan.tiff", size=size)
    url = api("GET", "/v1/api/files").json()[0]["url"]
    digest, total = hashlib.sha256(), 0
    with requests.get(url, stream=True, timeout=10) as resp:
        assert resp.headers["Content-Length"] == str(size)
        for chunk in resp.iter_content(1 << 20):
            digest.update(chunk)
            total += len(chunk)
    assert total == size
    assert digest.hexdigest() == service.file_sha256(record["id"])


def test_rate_limit_answers_429_with_retry_after(api, service):
    service.rate_limit = 3
    statuses = [api("GET", "/v1/api/users") for _ in range(6)]
    limited = [r for r in statuses if r.status_code == 429]
    assert limited and limited[0].headers["Retry-After"] == "1"
    assert limited[0].json()["errors"][0]["message"] == "Too Many Requests"


def test_create_case_test_api_raises_on_refusal(service):
    service.create_case(**new_case("5"))
    with pytest.raises(HttpError) as refused:
        service.create_case(**new_case("5"))
    assert refused.value.status == 409
    assert service.case_by_integration_id("5")["readable_id"] == "R-5"
