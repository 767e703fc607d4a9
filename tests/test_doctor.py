"""`mycase-sync doctor`, in-process against the sandbox: all `ok` against the contract as written, and
`differs` on exactly its own line for each alternative the sandbox can play (API-NOTES Part 3). It
writes nothing to either service, and nothing to the state store but tokens."""

from __future__ import annotations

import json

import pytest

from mycase_sync.sandbox.core import HttpError
from mycase_sync.sandbox.server import ALTERNATIVES
from conftest import active_cases, create_casestatus_cases, store_text_without_tokens
from test_alternatives_casestatus import alternative

# The line each alternative shows as `differs`.
DIFFERS = {
    "casestatus_fixed_page_size": "casestatus.page_size",
    "casestatus_ignores_page_number": "casestatus.page_number",
    "casestatus_ignores_integration_filter": "casestatus.integration_filter",
    "casestatus_no_conflict": "casestatus.conflict",
    "mycase_cases_open_only": "mycase.status_default",
    "mycase_staff_active_only": "mycase.staff_default",
    "mycase_bare_next_links": "mycase.next_link_params",
    "mycase_client_edits_keep_case_dates": "mycase.client_edits",
}
NEEDS_A_WRITE = "casestatus.conflict"  # `not checked` unless the data shows a second case


def test_every_alternative_has_its_line():
    assert set(DIFFERS) == set(ALTERNATIVES)


@pytest.fixture(params=["default", *DIFFERS])
def sandbox_config(request):
    return alternative(request.param)


def set_the_scene(sandbox) -> None:
    """A firm part-imported into Case Status (its messages and files then show), a client edited
    today, and a create of a case whose integration_id exists (refused, where Case Status answers 409)."""
    made = create_casestatus_cases(sandbox, active_cases(sandbox))
    mc = sandbox.mycase
    client_id = next(c for case in mc.cases.values() for c in case["clients"])
    mc.update_client(client_id, cell_phone_number="(415) 555-0132")
    email = next(iter(sandbox.casestatus.users.values()))["email"]
    try:
        sandbox.casestatus.create_case(integration_id=next(iter(made)), readable_id="again",
                                       primary_attorney_email=email)
    except HttpError:
        pass


def test_doctor_says_ok_to_the_contract_and_differs_on_each_alternatives_own_line(connected, sandbox, db_path):
    set_the_scene(sandbox)
    before = store_text_without_tokens(db_path)
    sandbox.mycase.reset_journal()
    sandbox.casestatus.reset_journal()
    result = connected.invoke("doctor", "--json")
    report = json.loads(result.stdout)
    lines = {c["key"]: c for c in report["checks"]}
    switched = [name for name in DIFFERS if getattr(sandbox.config, name)]
    expected = {DIFFERS[name] for name in switched}
    assert {k for k, c in lines.items() if c["result"] == "differs"} == expected, result.stdout
    assert {k for k, c in lines.items() if c["result"] == "not checked"} == {NEEDS_A_WRITE} - expected, result.stdout
    assert all(lines[k]["does"] for k in expected)  # what the tool does about it
    assert result.code == (1 if expected else 0) and report["exit_code"] == result.code
    # read-only: no write to either service, nothing in the store but (maybe) tokens
    assert sandbox.mycase.count(writes_only=True) == 0 and sandbox.casestatus.count(writes_only=True) == 0
    assert store_text_without_tokens(db_path) == before
    assert sandbox.mycase.violations == [] and sandbox.casestatus.violations == []


@pytest.mark.parametrize("sandbox_config", ["default"], indirect=True)
def test_the_human_lines_one_per_assumption(connected, sandbox):
    result = connected.invoke("doctor")
    assert result.code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == len(json.loads(connected.invoke("doctor", "--json").stdout)["checks"])
    assert all(line.startswith(("ok ", "differs ", "not checked ")) for line in lines)
    assert result.stderr == ""


def _lines(result) -> dict[str, dict]:
    return {c["key"]: c for c in json.loads(result.stdout)["checks"]}


@pytest.mark.parametrize("sandbox_config", ["default"], indirect=True)
def test_not_connected_is_exit_3_and_creates_no_state_store(cli, sandbox, db_path):
    result = cli.invoke("doctor", "--json")
    assert result.code == 3, result.output
    lines = _lines(result)
    assert all(c["result"] == "not checked" and "mycase-sync auth" in c["seen"]
               for k, c in lines.items() if k.startswith("mycase."))
    assert lines["casestatus.key"]["result"] == "ok"  # Case Status is still looked at
    assert not db_path.exists() and sandbox.mycase.count() == 0


@pytest.mark.parametrize("sandbox_config", ["default"], indirect=True)
def test_a_revoked_authorization_is_exit_3(connected, sandbox):
    sandbox.mycase.revoke_all()
    result = connected.invoke("doctor")
    assert result.code == 3, result.output
    assert "run `mycase-sync auth`" in result.stderr


@pytest.mark.parametrize("sandbox_config", ["default"], indirect=True)
def test_a_refused_case_status_key_is_exit_2_on_its_own_line(connected, sandbox):
    """A refused key is a setting to fix, as for every job (exit 2), not an authorization to renew (3)."""
    result = connected.invoke("doctor", "--json", extra_env={"CASESTATUS_API_KEY": "not-the-key-0000"})
    assert result.code == 2, result.output
    lines = _lines(result)
    assert lines["casestatus.key"]["result"] == "differs" and "CASESTATUS_API_KEY" in lines["casestatus.key"]["does"]
    assert {c["result"] for k, c in lines.items() if k.startswith("casestatus.") and k != "casestatus.key"} == {
        "not checked"}
    assert lines["mycase.authorization"]["result"] == "ok"


@pytest.mark.parametrize("sandbox_config", ["default"], indirect=True)
def test_an_unreachable_service_is_exit_75(connected, sandbox):
    result = connected.invoke("doctor", extra_env={"CASESTATUS_API_URL": "http://127.0.0.1:9"})
    assert result.code == 75, result.output
    assert "Case Status unreachable" in result.stderr


@pytest.mark.parametrize("sandbox_config", ["default"], indirect=True)
def test_a_missing_setting_is_exit_2(connected, sandbox):
    result = connected.invoke("doctor", extra_env={"CASESTATUS_API_KEY": ""})
    assert result.code == 2, result.output
    assert "CASESTATUS_API_KEY" in result.stderr and result.stdout == ""
