"""A case create whose answer was lost, against a Case Status that does not answer 409 for a repeated
integration_id (API-NOTES Part 3): the create is never sent again before a lookup says the case is not
there, so no matter ever gets two cases. The real CLI against the sandbox."""

from __future__ import annotations

import pytest

from test_alternatives_casestatus import alternative
from oracle import assert_matters_once, expected_matters

CREATE = r"/v1/api/cases"


@pytest.fixture(params=("default", "casestatus_no_conflict"))
def sandbox_config(request):
    return alternative(request.param)


def creates(sandbox) -> int:
    return sandbox.casestatus.count("POST", CREATE)


@pytest.mark.parametrize("kind", ["drop", "timeout"])
def test_a_backfill_create_without_an_answer_waits_for_the_next_run_lookup(connected, sandbox, db_path, kind):
    """In the backfill only the scan made at its start could say: the matter stays pending, the next run looks."""
    sandbox.casestatus.faults.add("POST", CREATE, kind, nth=3)
    result = connected.run("import-matters", extra_env={"MYCASE_SYNC_TIMEOUT": "2"})
    assert result.code == 1, result.output
    assert "Traceback" not in result.output
    wanted = expected_matters(sandbox)
    assert creates(sandbox) == len(wanted)  # each create sent once: the lost one too
    result = connected.run("import-matters")
    assert result.code in (0, 1), result.output  # the firm's malformed records
    assert creates(sandbox) == len(wanted)  # the lost one was found by its integration_id: adopted
    assert_matters_once(sandbox, db_path, wanted)


def test_a_nightly_create_without_an_answer_is_looked_up_before_anything_is_sent_again(connected, sandbox, db_path):
    assert connected.run("import-matters").code in (0, 1)
    wanted = expected_matters(sandbox)
    lead = next(f["primary_attorney_email"] for f in wanted.values())
    lead_id = next(s["id"] for s in sandbox.mycase.staff.values() if s["email"] == lead)
    new = sandbox.mycase.add_case(name="New v. Matter", case_number="2099-00001",
                                  staff=[{"id": lead_id, "lead_lawyer": True}])
    sandbox.casestatus.reset_journal()
    sandbox.casestatus.faults.add("POST", CREATE, "drop")
    result = connected.run("import-matters")
    assert result.code in (0, 1), result.output
    assert creates(sandbox) == 1  # lost, looked up, found: adopted within the run
    assert sandbox.casestatus.case_by_integration_id(str(new["id"])) is not None
    assert_matters_once(sandbox, db_path, expected_matters(sandbox))
