"""One matter's writes, in-process: sync_matter against a requests-mock Case Status, and the
import run's handling of a mapped matter (skip, record, retry state) over a real state store.

Each outcome a matter can have is here: created, updated, closed, reopened, unchanged, skipped,
failed, unknown outcome, 409 adoption, Case Status down, and the lead attorney's user created once.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from types import SimpleNamespace

import pytest
import requests

from mycase_sync.casestatus.client import CaseStatusClient
from mycase_sync.config import load_settings
from mycase_sync.errors import OutcomeUnknown, ServiceError, TemporaryError
from mycase_sync.report import open_report
from mycase_sync.store import MatterState, open_store
from mycase_sync.store.matters import MatterRow
from mycase_sync.sync.mapping import MappedMatter, StaffMember, fields_hash
from mycase_sync.sync.matter_sync import ABSENT, Reached, StaffUsers, judge_failure, sync_matter
from mycase_sync.sync.import_run import FAULTS_IN_A_ROW, ImportRun

CS = "https://cs.test"
LEAD = StaffMember(7, "lana@firm.example", "Lana", "Joseph", "attorney")


def fields(**changes) -> dict:
    base = {"integration_id": "101", "readable_id": "2024-101", "description": "Slip and fall",
            "case_date": "2024-01-02", "practice_area": "Personal Injury", "stage": "Intake",
            "primary_attorney_email": LEAD.email, "attorney_emails": [], "paralegal_emails": [],
            "clients": [{"first_name": "Jane", "last_name": "Doe", "email": "jane@example.com",
                         "cell_phone": "+12065550101"}],
            "status": "open", "closed_date": None}
    return {**base, **changes}


def matter(**changes) -> MappedMatter:
    wanted = fields(**changes)
    return MappedMatter(wanted["integration_id"], wanted, LEAD)


def synced_row(held: dict, state: str = MatterState.SYNCED, casestatus_id: int = 70101) -> MatterRow:
    return MatterRow(held["integration_id"], casestatus_id, held, fields_hash(held), state, 0, None)


class FakeCases:
    """Case Status cases and users, as its API holds them; every write is recorded."""

    def __init__(self, mock):
        self.cases: dict[int, dict] = {}
        self.users: list[dict] = []
        self.writes: list[tuple[str, str, dict]] = []
        self.next_id = 70101
        mock.get(f"{CS}/v1/api/cases", json=self._list)
        mock.post(f"{CS}/v1/api/cases", json=self._create)
        mock.patch(re.compile(rf"{CS}/v1/api/cases/\d+$"), json=self._patch)
        mock.post(re.compile(rf"{CS}/v1/api/cases/\d+/close$"), json=self._close)
        mock.post(re.compile(rf"{CS}/v1/api/cases/\d+/reopen$"), json=self._reopen)
        mock.post(f"{CS}/v1/api/users", json=self._user)

    def add(self, case_fields: dict) -> dict:
        case = {"id": self.next_id, **copy.deepcopy(case_fields)}
        self.cases[case["id"]] = case
        self.next_id += 1
        return case

    def _list(self, request, context):
        wanted = request.qs.get("integration_id", [None])[0]
        return [c for c in self.cases.values() if wanted is None or c["integration_id"] == wanted]

    def _create(self, request, context):
        body = request.json()
        self.writes.append(("POST", "cases", body))
        for case in self.cases.values():
            if case["integration_id"] == body["integration_id"]:
                context.status_code = 409
                return {"id": case["id"], "error": "integration_id already exists"}
        context.status_code = 201
        return self.add(body)

    def _case(self, request) -> dict:
        return self.cases[int(request.path.split("/")[4])]

    def _patch(self, request, context):
        self.writes.append(("PATCH", request.path, request.json()))
        case = self._case(request)
        case.update(request.json())
        return case

    def _close(self, request, context):
        self.writes.append(("POST", request.path, request.json()))
        case = self._case(request)
        case.update(status="closed", closed_date=request.json().get("closed_date"))
        return case

    def _reopen(self, request, context):
        self.writes.append(("POST", request.path, {}))
        case = self._case(request)
        case.update(status="open", closed_date=None)
        return case

    def _user(self, request, context):
        self.writes.append(("POST", "users", request.json()))
        self.users.append(request.json())
        context.status_code = 201
        return {"id": len(self.users), **request.json()}


@pytest.fixture
def settings(tmp_path):
    return load_settings(environ={
        "CASESTATUS_API_URL": CS, "CASESTATUS_API_KEY": "cs-key-123456", "MYCASE_SYNC_BACKOFF": "0.001",
        "MYCASE_SYNC_DB": str(tmp_path / "state" / "state.db"), "MYCASE_SYNC_WORKERS": "4"})


@pytest.fixture
def api(settings):
    client = CaseStatusClient(settings)
    yield client
    client.close()


@pytest.fixture
def cases(requests_mock):
    return FakeCases(requests_mock)


# --- sync_matter: each outcome ---------------------------------------------------------------------
def test_a_new_matter_is_looked_up_then_created_once(api, cases):
    out = sync_matter(api, matter(), None, None, dry_run=False)
    assert out.action == "created" and out.state == MatterState.SYNCED and out.error is None
    assert [w[:2] for w in cases.writes] == [("POST", "cases")]
    assert out.casestatus_id == 70101 and out.held == fields()
    assert "description" in out.changed and "closed_date" not in out.changed


def test_a_create_answered_503_is_looked_up_before_it_is_sent_again_and_the_matter_created_once(
        api, cases, requests_mock):
    """A gateway's 503 may hide a create that landed (a request that took too long): the case is looked
    up before the create is sent again, and one passing 503 costs nothing more."""
    answers = [{"status_code": 503, "json": {"message": "Service Unavailable"}}, {"json": cases._create}]
    requests_mock.post(f"{CS}/v1/api/cases", answers)
    out = sync_matter(api, matter(), None, None, dry_run=False)
    assert out.action == "created" and out.state == MatterState.SYNCED and out.unavailable is None
    assert len(cases.cases) == 1
    assert [r.method for r in requests_mock.request_history] == ["GET", "POST", "GET", "POST"]


@pytest.mark.parametrize("status", [502, 503, 504])
def test_a_create_that_landed_behind_a_gateway_error_is_adopted_not_created_again(api, cases, requests_mock, status):
    def landed_then_gateway_error(request, context):
        cases._create(request, context)  # Case Status did the work...
        context.status_code = status  # ...and a gateway answered for it
        return {"message": "Service Unavailable"}

    requests_mock.post(f"{CS}/v1/api/cases", json=landed_then_gateway_error)
    out = sync_matter(api, matter(), None, None, dry_run=False)
    assert out.state == MatterState.SYNCED and out.adopted and len(cases.cases) == 1
    assert [r.method for r in requests_mock.request_history] == ["GET", "POST", "GET"]


def test_a_create_answered_by_gateway_errors_is_pending_and_a_service_fault_of_no_one_matter(api, cases,
                                                                                            requests_mock):
    """Each create is sent once after a lookup; whether Case Status is down is the run's call (several
    matters in a row), not one matter's."""
    requests_mock.post(f"{CS}/v1/api/cases", status_code=503, json={"message": "Service Unavailable"})
    out = sync_matter(api, matter(), None, None, dry_run=False)
    assert out.state == MatterState.PENDING and out.service_fault and out.unavailable is None
    assert cases.cases == {}
    assert [r.method for r in requests_mock.request_history] == ["GET", "POST", "GET", "POST"]


def test_a_changed_matter_gets_one_patch_of_the_changed_fields(api, cases):
    held = fields()
    cases.add(held)
    out = sync_matter(api, matter(description="Slip and fall, settled"), synced_row(held), None, dry_run=False)
    assert out.action == "updated" and out.changed == ["description"]
    assert cases.writes == [("PATCH", "/v1/api/cases/70101", {"description": "Slip and fall, settled"})]
    assert out.held["description"] == "Slip and fall, settled"


def test_a_matter_closed_in_mycase_is_closed_with_its_date(api, cases):
    held = fields()
    cases.add(held)
    out = sync_matter(api, matter(status="closed", closed_date="2026-11-30"), synced_row(held), None, dry_run=False)
    assert out.action == "closed" and out.changed == ["closed_date", "status"]
    assert cases.writes == [("POST", "/v1/api/cases/70101/close", {"closed_date": "2026-11-30"})]
    assert cases.cases[70101]["status"] == "closed" and out.held["status"] == "closed"


def test_a_matter_reopened_in_mycase_is_reopened(api, cases):
    held = fields(status="closed", closed_date="2025-05-05")
    cases.add(held)
    out = sync_matter(api, matter(), synced_row(held), None, dry_run=False)
    assert out.action == "reopened"
    assert cases.writes == [("POST", "/v1/api/cases/70101/reopen", {})]
    assert cases.cases[70101]["status"] == "open" and cases.cases[70101]["closed_date"] is None


def test_a_pending_matter_already_in_step_is_read_and_not_written(api, cases):
    """A write of unknown outcome landed after all: the read shows it, nothing is sent again."""
    cases.add(fields())
    out = sync_matter(api, matter(), synced_row(fields(stage="Old"), MatterState.PENDING), None, dry_run=False)
    assert out.action == "unchanged" and out.state == MatterState.SYNCED and cases.writes == []
    assert out.held["stage"] == "Intake"


def test_a_stage_is_written_only_when_it_changed(api, cases):
    held = fields()
    cases.add(held)
    out = sync_matter(api, matter(stage="Treatment", description="new"), synced_row(held), None, dry_run=False)
    assert cases.writes == [("PATCH", "/v1/api/cases/70101", {"description": "new", "stage": "Treatment"})]
    assert out.changed == ["description", "stage"]


def test_a_case_that_exists_already_is_adopted_on_409_and_only_the_difference_written(api, cases, requests_mock):
    cases.add(fields(description="older"))
    # The lookup misses it (made by the hosted integration a moment ago), the create answers 409.
    real = requests_mock.get(f"{CS}/v1/api/cases", [{"json": []}, {"json": cases._list}])
    out = sync_matter(api, matter(), None, None, dry_run=False)
    assert real.call_count == 2
    assert out.adopted and out.casestatus_id == 70101 and out.action == "updated"
    assert [w[:2] for w in cases.writes] == [("POST", "cases"), ("PATCH", "/v1/api/cases/70101")]
    assert len(cases.cases) == 1


def test_a_backfill_uses_the_case_read_at_the_start_and_makes_no_lookup(api, cases, requests_mock):
    existing = cases.add(fields())
    lookups = requests_mock.get(f"{CS}/v1/api/cases", json=[])
    out = sync_matter(api, matter(), None, existing, dry_run=False)
    assert out.action == "unchanged" and out.adopted and lookups.call_count == 0
    out = sync_matter(api, matter(integration_id="102", readable_id="2024-102"), None, ABSENT, dry_run=False)
    assert out.action == "created" and lookups.call_count == 0


def test_a_refused_write_fails_the_matter_and_keeps_what_case_status_holds(api, cases, requests_mock):
    held = fields()
    cases.add(held)
    requests_mock.patch(f"{CS}/v1/api/cases/70101", status_code=422, json={"errors": [{"message": "bad stage"}]})
    out = sync_matter(api, matter(stage="???"), synced_row(held), None, dry_run=False)
    assert out.action == "failed" and out.state == MatterState.FAILED and out.unavailable is None
    assert "422" in out.error and out.held == held


def test_a_write_without_an_answer_leaves_the_matter_pending_and_is_not_repeated(api, cases, requests_mock):
    held = fields()
    cases.add(held)
    patch = requests_mock.patch(f"{CS}/v1/api/cases/70101", exc=requests.exceptions.ReadTimeout("read timed out"))
    out = sync_matter(api, matter(stage="Treatment"), synced_row(held), None, dry_run=False)
    assert out.state == MatterState.PENDING and "read again before the next write" in out.error
    assert patch.call_count == 1  # a stage PATCH is sent once: a second would send a second survey


def test_a_gateway_error_on_a_write_leaves_the_matter_pending(api, cases, requests_mock):
    held = fields()
    cases.add(held)
    requests_mock.post(f"{CS}/v1/api/cases/70101/close", status_code=500, json={})
    out = sync_matter(api, matter(status="closed", closed_date="2026-01-01"), synced_row(held), None, dry_run=False)
    assert out.state == MatterState.PENDING and out.action == "failed"


def test_case_status_down_stops_the_matter_uncharged_and_says_so(api, cases, requests_mock):
    requests_mock.get(f"{CS}/v1/api/cases", status_code=503, json={})
    out = sync_matter(api, matter(), None, None, dry_run=False)
    assert out.state == MatterState.PENDING and out.unavailable and "Case Status unavailable" in out.unavailable
    assert cases.writes == []


def test_a_dry_run_reads_and_writes_nothing(api, cases):
    held = fields()
    cases.add(held)
    assert sync_matter(api, matter(description="x"), synced_row(held), None, dry_run=True).action == "updated"
    assert sync_matter(api, matter(integration_id="9", readable_id="9"), None, None, dry_run=True).action == "created"
    assert cases.writes == []


def test_a_missing_lead_user_is_created_once_by_the_first_of_many_workers(api, cases):
    users = StaffUsers(set())
    matters = [matter(integration_id=str(n), readable_id=str(n)) for n in range(1, 9)]
    outcomes = []
    threads = [threading.Thread(target=lambda m=m: outcomes.append(sync_matter(api, m, None, None, dry_run=False,
                                                                                 users=users)))
               for m in matters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [w for w in cases.writes if w[1] == "users"] == [
        ("POST", "users", {"email": LEAD.email, "first_name": "Lana", "last_name": "Joseph", "role": "attorney"})]
    assert sum(1 for o in outcomes if o.user_created) == 1
    assert all(o.action == "created" for o in outcomes) and len(cases.cases) == 8


def test_a_refused_user_creation_fails_the_matter_before_any_case_write(api, cases, requests_mock):
    requests_mock.post(f"{CS}/v1/api/users", status_code=422, json={"errors": [{"message": "email taken"}]})
    out = sync_matter(api, matter(), None, None, dry_run=False, users=StaffUsers(set()))
    assert out.state == MatterState.FAILED and out.error.startswith(f"could not create Case Status user {LEAD.email}")
    assert cases.writes == []


# --- judge_failure: what a failure means ---------------------------------------------------------------
@pytest.mark.parametrize("exc, done, state, unavailable", [
    (OutcomeUnknown("Case Status", "PATCH", "/c/1", None, "timed out"), Reached(known=True, writing=True),
     MatterState.PENDING, False),
    (ServiceError("Case Status", "PATCH", "/c/1", 422, "no"), Reached(known=True, writing=True),
     MatterState.FAILED, False),
    (ServiceError("Case Status", "GET", "/c", 422, "no"), Reached(known=False), MatterState.PENDING, False),
    (ServiceError("Case Status", "POST", "/c/1/close", 502, "bad gateway", repeated=True),
     Reached(known=True, writing=True), MatterState.PENDING, True),
    # A write answered once with a gateway error (not repeated: it may have landed): pending, the run goes on.
    (ServiceError("Case Status", "POST", "/c", 502, "bad gateway"), Reached(known=True, writing=True),
     MatterState.PENDING, False),
    (ServiceError("Case Status", "POST", "/c", 503, "busy", repeated=True), Reached(known=True, writing=True),
     MatterState.PENDING, True),
    (ServiceError("Case Status", "PATCH", "/c/1", 404, "gone"), Reached(known=True, casestatus_id=1),
     MatterState.PENDING, False),
    (TemporaryError("Case Status is busy"), Reached(), MatterState.PENDING, True),
])
def test_judge_failure(exc, done, state, unavailable):
    got_state, error, got_unavailable = judge_failure(exc, done)
    assert got_state == state and error and bool(got_unavailable) == unavailable


# --- the import run around it: skip, record, retry ---------------------------------------------------------
def mycase_case(mid: int = 101, **changes) -> dict:
    case = {"id": mid, "case_number": f"2024-{mid}", "name": "Doe v. Roe", "description": "Slip and fall",
            "opened_date": "2024-01-02", "practice_area": "Personal Injury", "case_stage": "Intake",
            "status": "open", "staff": [{"id": 7, "lead_lawyer": True}],
            "clients": [{"first_name": "Jane", "last_name": "Doe", "email": "jane@example.com",
                         "cell_phone_number": "(206) 555-0101"}],
            "created_at": "2026-11-01T00:00:00Z", "updated_at": "2026-11-30T00:00:00Z"}
    return {**case, **changes}


@pytest.fixture
def run(settings, api, tmp_path):
    store = open_store(settings.db_path)
    runs = []

    def make(dry_run=False, create_staff=False, users=(LEAD.email,)):
        app = SimpleNamespace(settings=settings, store=store, mycase=None, casestatus=api)
        one = ImportRun(app, "run-1", dry_run=dry_run, create_staff=create_staff, report=open_report(None))
        one.staff = {7: LEAD}
        one.users = StaffUsers(set(users))
        runs.append(one)
        return one

    yield make
    for one in runs:
        one.pool.shutdown(wait=True)
    store.close()


def stored(run_) -> dict:
    return {r["mycase_id"]: r for r in run_.store.db.query("select * from matters")}


def test_the_run_records_a_created_matter_and_then_finds_it_unchanged_without_a_request(run, cases, requests_mock):
    first = run()
    first.take(mycase_case(), listed=True)
    first.drain()
    row = stored(first)["101"]
    assert first.counts["created"] == 1 and row["state"] == "synced" and row["casestatus_id"] == 70101
    assert json.loads(row["fields"])["readable_id"] == "2024-101"
    before = requests_mock.call_count
    second = run()
    second.take(mycase_case(), listed=True)
    second.drain()
    assert second.counts["unchanged"] == 1 and requests_mock.call_count == before


def test_a_lead_who_is_not_a_user_skips_the_matter_and_waits_for_the_user(run, cases):
    one = run(users=())
    one.take(mycase_case(), listed=True)
    one.drain()
    row = stored(one)["101"]
    assert one.counts["skipped"] == 1 and row["state"] == "skipped" and row["waiting_for"] == LEAD.email
    assert row["attempts"] == 0 and cases.writes == []
    later = run()  # the user exists now: the matter is retried by id
    later.load_retry_set()
    assert later.retry == {"101"}


def test_a_broken_record_fails_and_each_failed_run_counts_one_attempt(run, cases):
    for attempt in (1, 2):
        one = run()
        one.take(mycase_case(status="archived"), listed=True)
        one.drain()
        row = stored(one)["101"]
        assert row["state"] == "failed" and row["attempts"] == attempt and "neither open nor closed" in row["last_error"]
    assert cases.writes == []


def test_a_write_of_unknown_outcome_leaves_the_row_pending_and_the_next_run_reads_first(run, cases, requests_mock):
    post = requests_mock.post(f"{CS}/v1/api/cases", exc=requests.exceptions.ConnectionError("reset by peer"))
    one = run()
    one.take(mycase_case(), listed=True)
    one.drain()
    assert stored(one)["101"]["state"] == "pending" and post.call_count >= 1
    cases.add(fields())  # the create had landed after all
    requests_mock.post(f"{CS}/v1/api/cases", json=cases._create)
    again = run()
    again.load_retry_set()
    assert again.retry == {"101"}
    again.take(mycase_case(), listed=False)
    again.drain()
    assert again.counts["unchanged"] == 1 and len(cases.cases) == 1
    assert stored(again)["101"]["state"] == "synced" and stored(again)["101"]["casestatus_id"] == 70101


def test_case_status_down_stops_the_run_and_charges_no_matter(run, cases, requests_mock):
    requests_mock.get(f"{CS}/v1/api/cases", status_code=503, json={})
    one = run()
    one.take(mycase_case(), listed=True)
    with pytest.raises(TemporaryError):
        one.drain()
    row = stored(one)["101"]
    assert row["state"] == "pending" and row["attempts"] == 0


def test_writes_answered_by_gateway_errors_in_a_row_stop_the_run_and_charge_no_matter(run, cases, requests_mock):
    """Each such create is sent once (it may have landed), so without a stop the run would send every
    matter once more to a service that is not there: FAULTS_IN_A_ROW of them in a row mean it is down."""
    requests_mock.post(f"{CS}/v1/api/cases", status_code=503, json={"message": "Service Unavailable"})
    one = run()
    with pytest.raises(TemporaryError) as down:
        for mid in range(101, 121):
            one.take(mycase_case(mid, case_number=f"2024-{mid}"), listed=True)
        one.drain()
    assert "Case Status unavailable" in str(down.value) and f"{FAULTS_IN_A_ROW} writes in a row" in str(down.value)
    assert sum(1 for r in requests_mock.request_history if r.method == "POST") < 20  # it stopped before the end
    rows = stored(one)
    assert {r["state"] for r in rows.values()} == {"pending"} and {r["attempts"] for r in rows.values()} == {0}


def test_one_gateway_error_among_good_writes_leaves_that_matter_pending_and_the_run_goes_on(run, cases,
                                                                                           requests_mock):
    answers = [{"json": cases._create}] * 3 + [{"status_code": 502, "json": {"message": "Bad Gateway"}}] * 2 + \
        [{"json": cases._create}] * 10
    requests_mock.post(f"{CS}/v1/api/cases", answers)
    one = run()
    for mid in range(101, 111):
        one.take(mycase_case(mid, case_number=f"2024-{mid}"), listed=True)
    one.drain()
    assert one.temporary is None and one.counts["created"] >= 9 and len(cases.cases) == 10


def test_create_staff_makes_the_user_a_step_of_the_write_and_counts_it(run, cases):
    one = run(create_staff=True, users=())
    one.take(mycase_case(101), listed=True)
    one.take(mycase_case(102), listed=True)
    one.drain()
    assert one.counts["users_created"] == 1 and one.counts["created"] == 2
    assert [w[1] for w in cases.writes].count("users") == 1
    assert cases.writes[0][1] == "users"  # before the first case that names the lead


def test_create_staff_in_a_dry_run_notes_the_user_and_writes_nothing(run, cases):
    one = run(dry_run=True, create_staff=True, users=())
    one.take(mycase_case(), listed=True)
    one.drain()
    assert one.counts["created"] == 1 and cases.writes == [] and stored(one) == {}
    assert one.with_notes == 1



def test_a_matter_listed_twice_in_a_backfill_after_a_lost_create_is_not_created_again(run, cases, requests_mock):
    """The open listing, then the closed one: a matter closed while the backfill runs comes twice. When
    its first create's answer was lost (it had landed), only the scan made at the start could say
    whether it exists, and that scan is older than the create: the matter waits for the next run's
    lookup instead of being created a second time (no 409 for a repeated integration_id is promised)."""
    def lands_then_drops(request, context):
        cases.add(request.json())
        raise requests.exceptions.ConnectionError("connection reset by peer")

    def no_conflict(request, context):
        context.status_code = 201
        return cases.add(request.json())

    requests_mock.post(f"{CS}/v1/api/cases", [{"json": lands_then_drops}, {"json": no_conflict}])
    one = run()
    one.prefetch_cases()  # a backfill: the Case Status case list read once, at the start (empty)
    one.take(mycase_case(), listed=True)
    one.drain()
    assert len(cases.cases) == 1 and stored(one)["101"]["state"] == "pending"
    one.take(mycase_case(status="closed", closed_date="2026-11-30"), listed=True)
    one.drain()
    assert len(cases.cases) == 1, "the matter was created twice in Case Status"
    assert stored(one)["101"]["state"] == "pending"  # the next run looks it up first


def test_a_matter_to_retry_that_a_filter_ignoring_listing_brings_from_outside_the_window_is_still_retried(run, cases):
    """A MyCase that ignores filter[updated_after] lists old matters too; those outside the window are
    skipped, but one that is to be retried by id (failed, pending) must not be: taken from the listing,
    it is no longer read by id, and skipping it would leave it failed or pending for ever."""
    import datetime as dt

    one = run()
    one.floor = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)  # after the case's created_at and updated_at
    one.retry = {"101"}
    one.take(mycase_case(), listed=True)
    one.drain()
    assert one.counts["created"] == 1 and one.retry == set()
    assert stored(one)["101"]["state"] == "synced"
