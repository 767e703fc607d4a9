"""import-matters when things go wrong: kill -9 mid-backfill, writes without an answer, refusals.

Whatever happens, the next run ends with each matter exactly once in Case Status, and no stage is
written twice (each stage write sends the client a survey; the sandbox logs a repeat as a violation).
"""

from __future__ import annotations

import collections

import pytest

from conftest import KillAtWrite
from mycase_sync.sandbox.server import SandboxConfig
from mycase_sync.store import open_store
from oracle import assert_matters_once, expected_matters

JOB = "import-matters"


@pytest.fixture
def sandbox_config():
    return SandboxConfig(matters=150, seed=11, mycase_rate_limit=None)  # the pace is not the point here


def run_killed_at(connected, sandbox, method: str, path_regex: str, nth: int) -> None:
    """Run the CLI and SIGKILL it once the nth matching Case Status write is committed, before its answer leaves the server."""
    KillAtWrite(sandbox, nth, method=method, path=path_regex, services=["casestatus"]).run(connected, JOB)


def test_killed_mid_backfill_and_run_again_ends_with_each_matter_exactly_once(connected, sandbox, db_path):
    wanted = expected_matters(sandbox)
    run_killed_at(connected, sandbox, "POST", r"/v1/api/cases", 20)
    made = len(sandbox.casestatus.cases)
    assert 20 <= made < len(wanted)
    store = open_store(db_path)
    try:
        pending = [r["mycase_id"] for r in store.db.query("select mycase_id from matters where state = 'pending'")]
    finally:
        store.close()
    assert pending  # the writes in flight at the kill are marked: the next run reads before writing

    sandbox.casestatus.reset_journal()
    again = connected.run(JOB)
    assert again.code == 1, again.output  # only the malformed records fail
    assert_matters_once(sandbox, db_path, wanted)
    with sandbox.casestatus.lock:
        refused = [e for e in sandbox.casestatus.journal if e["status"] == 409]
        posts = sum(1 for e in sandbox.casestatus.journal if e["method"] == "POST" and e["path"] == "/v1/api/cases")
    assert refused == []  # a case landed before the kill was found by lookup, not re-posted
    assert posts == len(wanted) - made


def test_killed_during_stage_changes_never_sends_a_stage_twice(connected, sandbox, db_path):
    wanted = expected_matters(sandbox)
    connected.run(JOB)
    targets = [k for k, f in wanted.items() if f["status"] == "open" and f["stage"] not in (None, "Trial")][:10]
    for key in targets:
        sandbox.mycase.update_case(int(key), case_stage="Trial")
        wanted[key]["stage"] = "Trial"
    before = len(sandbox.casestatus.stage_changes)
    run_killed_at(connected, sandbox, "PATCH", r"/v1/api/cases/\d+", 3)

    assert connected.run(JOB).code == 1
    changes = sandbox.casestatus.stage_changes[before:]
    assert sorted(c["integration_id"] for c in changes) == sorted(targets)  # each exactly once
    assert sandbox.casestatus.violations == []
    for key in targets:
        assert sandbox.casestatus.case_by_integration_id(key)["stage"] == "Trial"


@pytest.mark.parametrize("kind", ["drop", pytest.param("timeout", marks=pytest.mark.soak), "504"])  # landed, landed, not
def test_a_stage_write_without_an_answer_is_read_back_not_resent(connected, sandbox, db_path, kind):
    wanted = expected_matters(sandbox)
    connected.run(JOB)
    key = next(k for k, f in wanted.items() if f["status"] == "open" and f["stage"] not in (None, "Trial"))
    sandbox.mycase.update_case(int(key), case_stage="Trial", description="Set for trial.")
    sandbox.casestatus.faults.timeout_hold = 0.3
    sandbox.casestatus.faults.add("PATCH", r"/v1/api/cases/\d+", kind)
    before = len(sandbox.casestatus.stage_changes)
    first = connected.run(JOB)
    assert first.code == 1 and key in first.stderr and "read again" in first.stderr, first.output
    assert "Traceback" not in first.output
    sandbox.casestatus.faults.clear()
    with _store(db_path) as store:
        row = next(store.db.query("select state from matters where mycase_id = ?", [key]))
    assert row["state"] == "pending"

    sandbox.casestatus.reset_journal()
    second = connected.run(JOB)
    assert second.code == 1
    with sandbox.casestatus.lock:
        writes = [e for e in sandbox.casestatus.journal if e["write"]]
        lookups = [e for e in sandbox.casestatus.journal if e["query"].get("integration_id") == [key]]
    landed = kind in ("drop", "timeout")  # a 504 from the gateway: nothing was written
    assert lookups, "the case is read back before any write"
    if landed:
        assert writes == []
    else:
        assert [(e["method"], e.get("body")) for e in writes] == [("PATCH", {"stage": "Trial", "description": "Set for trial."})]
    assert [c["new"] for c in sandbox.casestatus.stage_changes[before:]] == ["Trial"]
    assert sandbox.casestatus.violations == []
    sandbox.casestatus.reset_journal()
    connected.run(JOB)
    assert sandbox.casestatus.count(writes_only=True) == 0


def test_a_create_without_an_answer_is_adopted_not_duplicated(connected, sandbox):
    wanted = expected_matters(sandbox)
    sandbox.casestatus.faults.timeout_hold = 0.3
    sandbox.casestatus.faults.add("POST", r"/v1/api/cases", "drop", nth=3)
    sandbox.casestatus.faults.add("POST", r"/v1/api/cases", "timeout", nth=9)
    result = connected.run(JOB)
    assert result.code == 1
    assert_matters_once(sandbox, None, wanted)  # the repeated POST got 409 and adopted the case


@pytest.mark.soak  # test_reliability_faults' storm (all requests, all three jobs) is the default run's
def test_a_storm_of_faults_on_case_status_writes_converges(connected, sandbox, db_path):
    wanted = expected_matters(sandbox)
    sandbox.casestatus.faults.timeout_hold = 0.2
    sandbox.casestatus.faults.storm(0.25, ["drop", "timeout", "502", "503", "504", "429"], seed=5, writes_only=True)
    connected.run(JOB)
    connected.run(JOB)
    sandbox.casestatus.faults.clear()
    connected.run(JOB)
    assert_matters_once(sandbox, db_path, wanted)
    sandbox.casestatus.reset_journal()
    connected.run(JOB)
    assert sandbox.casestatus.count(writes_only=True) == 0


def test_a_case_status_refusal_is_recorded_and_retried_next_run(connected, sandbox, db_path, tmp_path):
    """A lead's Case Status user disappears mid-run: Case Status answers 422; the rest syncs."""
    wanted = expected_matters(sandbox)
    lead = collections.Counter(f["primary_attorney_email"] for f in wanted.values()).most_common(1)[0][0]
    removed: dict = {}

    def remove_user(entry: dict) -> None:
        with sandbox.casestatus.lock:
            if not removed:
                uid = sandbox.casestatus._user_by_email.pop(lead.lower())
                removed["id"] = uid

    sandbox.casestatus.after_write_hooks.append(remove_user)
    result = connected.run(JOB, "--report", str(tmp_path / "r.csv"))
    sandbox.casestatus.after_write_hooks.clear()
    assert result.code == 1
    with _store(db_path) as store:
        refused = {r["mycase_id"]: r for r in store.db.query("select * from matters where last_error like '%422%'")}
    assert refused and all(r["state"] == "failed" for r in refused.values())
    assert all(wanted[k]["primary_attorney_email"] == lead for k in refused)
    assert all("primary_attorney_email" in r["last_error"] for r in refused.values())
    others = {k for k in wanted if k not in refused}
    assert others <= {c["integration_id"] for c in sandbox.casestatus.cases.values()}

    with sandbox.casestatus.lock:
        sandbox.casestatus._user_by_email[lead.lower()] = removed["id"]
    connected.run(JOB)
    assert_matters_once(sandbox, db_path, wanted)


@pytest.mark.parametrize("method, path", [("POST", r"/v1/api/cases"), ("GET", r"/v1/api/cases")])
def test_case_status_down_mid_run_is_exit_75_and_the_next_run_finishes(connected, sandbox, db_path, method, path):
    wanted = expected_matters(sandbox)
    if method == "GET":  # lookups happen once the backfill is done: a new matter after it
        connected.run(JOB)
        lead = next(f["primary_attorney_email"] for f in wanted.values())
        lead_id = next(s["id"] for s in sandbox.mycase.staff.values() if s["email"] == lead)
        for n in range(3):
            new = sandbox.mycase.add_case(name=f"Later {n}", case_number=f"2099-0000{n}", clients=[],
                                          staff=[{"id": lead_id, "lead_lawyer": True}])
            wanted[str(new["id"])] = {**next(iter(wanted.values())), "integration_id": str(new["id"]),
                                      "readable_id": f"2099-0000{n}", "description": None,
                                      "case_date": new["opened_date"], "practice_area": None, "stage": None,
                                      "primary_attorney_email": lead, "attorney_emails": [], "paralegal_emails": [],
                                      "clients": [], "status": "open", "closed_date": None}
    sandbox.casestatus.faults.add(method, path, "503", nth=20 if method == "POST" else 1, times=10_000)
    result = connected.run(JOB)
    assert result.code == 75, result.output
    assert "Case Status unavailable" in result.stderr and "Traceback" not in result.output
    # cron mails one line for the outage, not one per matter that was in flight
    assert len([line for line in result.stderr.splitlines() if "unavailable" in line]) == 1, result.stderr
    with sandbox.casestatus.lock:
        attempts = sum(1 for e in sandbox.casestatus.journal if e["method"] == method and e["path"] == "/v1/api/cases")
    assert attempts < len(wanted)  # it stopped rather than trying every matter
    with _store(db_path) as store:  # Case Status being down is no matter's fault: none charged an attempt
        charged = store.db.execute("select count(*) from matters where attempts > 0 and last_error like '%unavailable%'").fetchone()[0]
    assert charged == 0
    sandbox.casestatus.faults.clear()
    assert connected.run(JOB).code == 1
    assert_matters_once(sandbox, db_path, wanted)


class _store:
    def __init__(self, path):
        self.store = open_store(path)

    def __enter__(self):
        return self.store

    def __exit__(self, *exc):
        self.store.close()
