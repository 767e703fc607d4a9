"""Exit codes that mean one thing, and what `status --check` says about them (issue 17, item 1).

A key or URL refused at first contact is a setting to fix: exit 2 and one line naming it, never
exit 1 ("some records failed"). Every job checks the stored MyCase authorization before anything
else (exit 3). `-q` hides progress and information, never a failure. Run in this process
(`Cli.invoke`) against the sandbox over real HTTP: no real process is needed for an exit code.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from conftest import Cli, seed_imported, seed_tokens
from mycase_sync.store import iso, open_store, utcnow

JOBS = ("import-matters", "push-documents", "push-messages")


@pytest.fixture
def sandbox_config():
    from mycase_sync.sandbox.server import SandboxConfig

    return SandboxConfig(matters=60, seed=7, mycase_rate_limit=None)


def one_line(result) -> str:
    lines = result.output.splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


# --- a setting refused at first contact: exit 2, one line naming it --------------------------------
@pytest.mark.parametrize("job", JOBS)
def test_a_wrong_casestatus_api_key_is_a_configuration_error(connected, job, db_path):
    result = connected.invoke(job, extra_env={"CASESTATUS_API_KEY": "not-the-firms-key-0123"})
    assert result.code == 2, result.output
    assert one_line(result).startswith("mycase-sync: CASESTATUS_API_KEY was refused by Case Status (")
    # The key that never worked is not recorded as the store's: the right key works at once.
    assert connected.invoke(job).code in (0, 1)


@pytest.mark.parametrize("wrong", ["/v2", ""])
def test_a_mycase_api_url_with_no_api_behind_it_is_a_configuration_error(connected, sandbox, wrong):
    result = connected.invoke("import-matters", extra_env={"MYCASE_API_URL": sandbox.mycase_url + wrong})
    assert result.code == 2, result.output
    assert one_line(result).startswith(f"mycase-sync: MYCASE_API_URL={sandbox.mycase_url + wrong} has no MyCase API")


def test_a_record_that_is_gone_is_not_a_wrong_url(connected, sandbox):
    """A 404 on a record's path, before MyCase answered anything else: GET /firm tells the two apart."""
    from mycase_sync.app import App
    from mycase_sync.config import load_settings

    app = App(load_settings(environ=connected.environment()))
    try:
        assert app.mycase.get_case("999999999") is None  # no exception: the base URL answers /firm
        assert app.mycase.reached
    finally:
        app.close()


def test_auth_status_verify_exit_codes_match_its_help(cli, sandbox, db_path):
    assert "3   not connected" in cli.invoke("auth", "status", "--help").stdout
    assert cli.invoke("auth", "status", "--verify").code == 3  # no store: not connected
    seed_tokens(sandbox, db_path)
    assert cli.invoke("auth", "status", "--verify").code == 0
    wrong = cli.invoke("auth", "status", "--verify", extra_env={"MYCASE_API_URL": sandbox.mycase_url})
    assert wrong.code == 2 and "MYCASE_API_URL" in one_line(wrong)


# --- -q never hides a failure ----------------------------------------------------------------------
def test_quiet_import_that_fails_prints_its_failure_lines(connected, sandbox):
    result = connected.invoke("-q", "import-matters")
    assert result.code == 1, result.output
    failed = [line for line in result.stderr.splitlines() if ": failed: " in line]
    assert failed, result.output
    assert "failed" in result.stderr.splitlines()[-1]  # and the totals under them


# --- every job checks the stored authorization first: exit 3, no request ----------------------------
@pytest.mark.parametrize("job", JOBS)
def test_a_job_on_a_store_never_authorised_exits_3_and_creates_nothing(cli, sandbox, db_path, job):
    result = cli.invoke(job)
    assert result.code == 3, result.output
    assert one_line(result) == "mycase-sync: MyCase is not connected: run `mycase-sync auth`"
    assert not db_path.parent.exists()
    assert sandbox.casestatus.journal == [] and sandbox.mycase.journal == []


@pytest.mark.parametrize("job", ["push-documents", "push-messages"])
def test_a_push_job_with_nothing_to_send_and_an_expired_authorization_exits_3_without_a_request(
        connected, sandbox, db_path, job):
    long_ago = utcnow() - dt.timedelta(days=20)
    store = open_store(db_path)
    try:
        store.tokens.update({"expires_at": iso(long_ago), "refresh_expires_at": iso(long_ago + dt.timedelta(days=13))})
    finally:
        store.close()
    result = connected.invoke(job)
    assert result.code == 3, result.output
    assert "run `mycase-sync auth`" in one_line(result)
    assert sandbox.mycase.journal == [] and sandbox.casestatus.journal == []


@pytest.mark.parametrize("job", JOBS)
def test_a_missing_setting_creates_no_store_and_records_no_run(cli, db_path, job):
    result = cli.invoke(job, extra_env={"MYCASE_CLIENT_ID": ""})
    assert result.code == 2, result.output
    assert one_line(result).startswith("mycase-sync: MYCASE_CLIENT_ID is not set")
    assert not db_path.exists()


# --- status --check: at once for a configuration error; a new installation is "not yet run" ---------
def test_status_check_reports_a_configuration_error_at_once(connected, sandbox):
    connected.invoke("push-messages", extra_env={"CASESTATUS_API_KEY": "not-the-firms-key-0123"})
    check = connected.invoke("status", "--check")
    assert check.code == 1
    assert check.stdout.splitlines() == [line for line in check.stdout.splitlines() if line.startswith("push-messages")]
    assert "stopped on a configuration error: CASESTATUS_API_KEY was refused" in check.stdout
    report = json.loads(connected.invoke("status", "--json").stdout)
    assert report["jobs"]["push-messages"]["last_run"]["outcome"] == "config"


def test_a_new_installation_is_not_yet_run_for_26_hours_after_auth(sandbox, db_path, tmp_path):
    status_cli = Cli(env={"MYCASE_SYNC_DB": str(db_path)}, cwd=tmp_path)
    seed_tokens(sandbox, db_path)
    check = status_cli.invoke("status", "--check")
    assert (check.code, check.stdout) == (0, "")
    assert "not yet run" in status_cli.invoke("status").stdout
    store = open_store(db_path)
    try:
        store.tokens.update({"obtained_at": iso(utcnow() - dt.timedelta(hours=27))})
    finally:
        store.close()
    late = status_cli.invoke("status", "--check")
    assert late.code == 1
    assert late.stdout.splitlines() == [f"{job} has never completed a run" for job in JOBS]


# --- runs by hand do not hide the nightly (item 3) ---------------------------------------------------
def test_a_run_by_hand_does_not_hide_a_nightly_that_stopped_completing(connected, sandbox, db_path):
    assert connected.invoke("import-matters").code in (0, 1)
    store = open_store(db_path)
    try:  # the nightly last completed 27 hours ago
        long_ago = iso(utcnow() - dt.timedelta(hours=27))
        store.db.execute("update runs set started_at = ?, finished_at = ? where job = 'import-matters'",
                         [long_ago, long_ago])
        case = store.db.execute("select mycase_id from matters where state = 'synced' limit 1").fetchone()[0]
    finally:
        store.close()
    assert connected.invoke("import-matters", "--case", case).code == 0
    check = connected.invoke("status", "--check")
    assert check.code == 1 and "import-matters: no completed run for 27 hours" in check.stdout
    jobs = json.loads(connected.invoke("status", "--json").stdout)["jobs"]
    imp = jobs["import-matters"]
    assert imp["last_run"]["started_at"] == long_ago and imp["last_success"] == long_ago
    assert imp["last_run_by_hand"]["outcome"] == "success"
    assert "last run by hand" in connected.invoke("status").stdout


def test_a_push_with_work_and_a_wrong_mycase_api_url_counts_nothing_against_its_items(connected, sandbox, db_path):
    case = min(seed_imported(sandbox, db_path, [next(iter(sorted(sandbox.mycase.cases)))]))
    sandbox.casestatus.add_message(case, "incoming", "hello", "Jane Doe")
    result = connected.invoke("push-messages", extra_env={"MYCASE_API_URL": sandbox.mycase_url + "/v2"})
    assert result.code == 2, result.output
    assert one_line(result).startswith(f"mycase-sync: MYCASE_API_URL={sandbox.mycase_url}/v2 has no MyCase API")
    store = open_store(db_path)
    try:
        assert store.db.execute("select max(attempts) from ledger").fetchone()[0] == 0
    finally:
        store.close()
    assert connected.invoke("push-messages").code == 0  # the right URL: sent at once
