"""MyCase as API-NOTES Part 3 says it may really be, the real CLI against the sandbox: /cases without
filter[status] lists open cases only, /staff active staff only, next-page links that keep page_token
alone. Each reaches the end state of the default sandbox (tests/oracle.py)."""

from __future__ import annotations

import pytest

from conftest import mapped_cases
from test_alternatives_casestatus import alternative
from oracle import assert_job_end_state, assert_matters_once, expected_matters

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
