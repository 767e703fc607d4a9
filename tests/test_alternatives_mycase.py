"""MyCase as API-NOTES Part 3 says it may really be, the real CLI against the sandbox: /cases without
filter[status] lists open cases only, /staff active staff only, next-page links that keep page_token
alone. Each reaches the end state of the default sandbox (tests/oracle.py)."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from conftest import mapped_cases
from test_alternatives_casestatus import alternative
from oracle import assert_job_end_state, assert_matters_once, e164, expected_matters

SWITCHES = ("default", "mycase_cases_open_only", "mycase_staff_active_only", "mycase_bare_next_links")


@pytest.fixture(params=SWITCHES)
def sandbox_config(request):
    return alternative(request.param)


def inactive_on_a_case(sandbox) -> tuple[int, str]:
    """(a case, the inactive staff member now on it as a paralegal): departed staff stay on old matters."""
    mc = sandbox.mycase
    departed = next(s for s in mc.staff.values() if not s.get("active", True))
    departed["type"] = "Paralegal"
    case_id = int(sorted(expected_matters(sandbox), key=int)[0])
    mc.cases[case_id]["staff"].append({"id": departed["id"], "lead_lawyer": False})
    return case_id, departed["email"]


def test_backfill_nightly_and_both_pushes_reach_the_default_end_state(connected, sandbox, db_path):
    sandbox.mycase.serve_at_most = 7  # several pages of cases and of staff, so next links are followed
    case_id, departed = inactive_on_a_case(sandbox)
    result = connected.run("import-matters")
    assert result.code in (0, 1), result.output  # as against the default: the firm's malformed records fail
    assert "Traceback" not in result.output
    wanted = expected_matters(sandbox)
    assert departed in wanted[str(case_id)]["paralegal_emails"]
    assert any(f["status"] == "closed" for f in wanted.values())
    assert any(f["clients"] for f in wanted.values())
    assert_matters_once(sandbox, db_path, wanted)  # closed ones closed, clients on every page, the departed kept

    closing = next(k for k, f in wanted.items() if f["status"] == "open")
    sandbox.mycase.update_case(int(closing), status="closed", closed_date="2026-01-05")
    result = connected.run("import-matters")
    assert result.code in (0, 1), result.output
    assert sandbox.casestatus.case_by_integration_id(closing)["status"] == "closed"
    assert_matters_once(sandbox, db_path, expected_matters(sandbox))

    cases = mapped_cases(db_path)
    for job in ("push-messages", "push-documents"):
        result = connected.run(job)
        assert result.code == 0, result.output
        assert_job_end_state(sandbox, db_path, job, cases)


def test_staff_unknown_even_by_id_is_left_off_and_reported_an_unknown_lead_fails(connected, sandbox, db_path, tmp_path):
    mc = sandbox.mycase
    keys = sorted(expected_matters(sandbox), key=int)
    other, lead = int(keys[0]), int(keys[1])
    mc.cases[other]["staff"].append({"id": 990001, "lead_lawyer": False})
    mc.cases[lead]["staff"] = [{"id": 990002, "lead_lawyer": True}]
    report = tmp_path / "r.csv"
    result = connected.run("import-matters", "--report", str(report))
    assert result.code == 1, result.output
    rows = {r.split(",")[0]: r for r in report.read_text().splitlines()[1:]}
    assert "staff id 990001 is not in MyCase" in rows[str(other)] and ",created," in rows[str(other)]
    assert "lead attorney staff id 990002 is not in MyCase" in rows[str(lead)] and ",failed," in rows[str(lead)]
    assert mc.count("GET", r"/v1/staff/990001") == 1 and mc.count("GET", r"/v1/staff/990002") == 1
    assert sandbox.casestatus.case_by_integration_id(str(lead)) is None


@pytest.mark.parametrize("sandbox_config", ["default", "mycase_client_edits_keep_case_dates"], indirect=True)
def test_a_clients_new_mobile_number_reaches_case_status_on_the_next_nightly_run(connected, sandbox, db_path):
    """Whether or not a client edit moves its cases' updated_at: the nightly run reads the clients edited
    in its window and re-reads by id only those of their cases the listing did not bring."""
    assert connected.run("import-matters").code in (0, 1)
    mc = sandbox.mycase
    wanted = expected_matters(sandbox)
    month_ago = sandbox.clock.now() - dt.timedelta(days=31)
    cases_of = {}
    for cid, case in mc.cases.items():
        for client_id in case["clients"]:
            cases_of.setdefault(client_id, []).append(cid)
    # a client on imported matters that are all outside the nightly window, with a phone Case Status holds
    client_id, cases = next((k, v) for k, v in sorted(cases_of.items()) if all(
        str(c) in wanted and mc.cases[c]["updated_at"] < month_ago for c in v) and e164(mc.clients[k]["cell_phone_number"]))
    mc.update_client(client_id, cell_phone_number="(415) 555-0132")
    retried = retried_by_id(db_path)  # failed ones, read by id every night anyway
    mc.reset_journal()
    result = connected.run("import-matters")
    assert result.code in (0, 1), result.output
    for case_id in cases:
        held = sandbox.casestatus.case_by_integration_id(str(case_id))["clients"]
        assert "+14155550132" in [c["cell_phone"] for c in held]
    assert_matters_once(sandbox, db_path, expected_matters(sandbox))
    by_id = {int(c) for c in cases} if sandbox.config.mycase_client_edits_keep_case_dates else set()
    read = {int(e["path"].rsplit("/", 1)[1]) for e in mc.journal if re.fullmatch(r"/v1/cases/\d+", e["path"])}
    assert read - retried == by_id  # only the cases of the edited client, and only when the listing did not bring them


def retried_by_id(db_path) -> set[int]:
    from mycase_sync.store import open_store

    store = open_store(db_path)
    try:
        return {int(mid) for mid, _, _ in store.matters.to_retry()}
    finally:
        store.close()
