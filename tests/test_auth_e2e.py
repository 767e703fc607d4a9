"""`mycase-sync auth` end to end: the real CLI in subprocesses against the sandbox over HTTP.

The test plays the browser: it fetches the printed authorization URL, reads the sandbox's
redirect, and delivers it to the CLI's loopback listener (or pastes it). Token expiry is real
(a 2-second access token); the only waiting is for that deadline to pass.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
import requests

from conftest import seed_tokens
from mycase_sync.errors import REAUTH_MESSAGE
from mycase_sync.mycase.tokens import NOT_CONNECTED_MESSAGE
from test_auth_unit import stored  # the token row as the next process reads it


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def sandbox_config():
    from mycase_sync.sandbox.server import SandboxConfig

    return SandboxConfig(matters=12, seed=3, redirect_uri=f"http://127.0.0.1:{free_port()}/callback")


def connect_directly(sandbox, db_path, lifetime: int | None = None) -> dict:
    """A stored token set, as after `auth` (with a short access-token lifetime if asked); the row as stored."""
    seed_tokens(sandbox, db_path, lifetime)
    return stored(db_path)


def wait_until_expired(db_path) -> None:
    """Let the stored access token's real expiry pass (a deadline, not a guess about another process)."""
    expires = dt.datetime.fromisoformat(stored(db_path)["expires_at"])
    remaining = (expires - dt.datetime.now(dt.timezone.utc)).total_seconds()
    if remaining > 0:
        time.sleep(remaining + 0.05)


def browse(url: str) -> str:
    """What a browser does at MyCase's consent page: follow it to the redirect (not delivered yet)."""
    answer = requests.get(url, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text[:200]
    return answer.headers["Location"]


def with_query(url: str, **changes) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


def last_line(text: str) -> str:
    """The error line (`auth` first says on stderr where it is waiting)."""
    return text.strip().splitlines()[-1]


def start_listening(cli, *extra: str):
    """`auth --no-browser`: returns the process and the one line it printed (the URL)."""
    proc = cli.popen("auth", "--no-browser", *extra)
    url = proc.stdout.readline().strip()
    assert url.startswith("http"), proc.communicate(timeout=30)
    return proc, url


# --- the full flow -------------------------------------------------------------------------------
def test_no_browser_prints_the_url_alone_and_finishes_from_the_redirect_on_the_listener(cli, sandbox, db_path):
    proc, url = start_listening(cli, "--timeout", "60")
    parts = urlsplit(url)
    assert parts.path == "/login_sessions/new"
    query = parse_qs(parts.query)
    assert set(query) == {"client_id", "redirect_uri", "response_type", "state"}
    assert query["redirect_uri"] == [sandbox.config.redirect_uri] and query["response_type"] == ["code"]
    landing = browse(url)
    assert "%2B" in landing  # the sandbox's codes carry '+': the listener must decode it
    page = requests.get(landing, timeout=10)
    assert page.status_code == 200 and "close this window" in page.text
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    me = sandbox.mycase.staff[sandbox.mycase.me_staff_id]
    assert out.strip() == (f"Connected to MyCase as {me['first_name']} {me['last_name']} <{me['email']}>,"
                                   f" firm {sandbox.mycase.firm['name']}.")
    row = stored(db_path)
    assert row["firm_uuid"] == sandbox.mycase.firm_uuid and row["user_email"] == me["email"]
    assert row["needs_reauth"] == 0 and row["access_token"] in sandbox.mycase._access
    assert sandbox.mycase.token_calls == 1 and sandbox.mycase.refresh_calls == 0
    assert sandbox.mycase.violations == []
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600
    status = cli.run("auth", "status", "--json")
    report = json.loads(status.stdout)
    assert status.code == 0 and report["connected"] and report["firm"] == sandbox.mycase.firm["name"]
    assert report["warnings"] == [] and report["last_refresh_at"] is None


def test_a_fake_browser_opener_gets_the_url_and_the_flow_finishes(cli, sandbox, db_path, tmp_path):
    opener = tmp_path / "fake-browser"
    opener.write_text(f"#!{sys.executable}\nimport sys, requests\n"
                      "landing = requests.get(sys.argv[1], allow_redirects=False).headers['Location']\n"
                      "requests.get(landing)\n")
    opener.chmod(0o700)
    result = cli.run("auth", "--timeout", "60", extra_env={"BROWSER": str(opener), "DISPLAY": ""})
    assert result.code == 0, result.stderr
    assert result.stdout.startswith("Connected to MyCase as ") and "Opened a browser" in result.stderr
    assert stored(db_path)["access_token"]


def test_redirect_url_given_directly_finishes_a_flow_another_process_started(cli, sandbox, db_path):
    waiting, url = start_listening(cli, "--timeout", "3")
    landing = browse(url)
    finished = cli.run("auth", "--redirect-url", landing)
    assert finished.code == 0, finished.stderr
    assert finished.stdout.startswith("Connected to MyCase as ")
    first = stored(db_path)
    out, err = waiting.communicate(timeout=30)  # the listener saw nothing and gives up
    assert waiting.returncode == 3 and "no redirect arrived within 3 seconds" in err
    assert stored(db_path) == first  # its timeout leaves the working token alone
    again = cli.run("auth", "--redirect-url", landing)  # a state is good once
    assert again.code == 3 and "state does not match" in again.stderr
    assert stored(db_path) == first and sandbox.mycase.token_calls == 1


def test_redirect_url_without_a_value_prints_the_url_then_prompts(cli, sandbox, db_path):
    proc = cli.popen("auth", "--redirect-url", stdin=subprocess.PIPE)
    url = proc.stdout.readline().strip()
    landing = browse(url)
    out, err = proc.communicate(landing + "\n", timeout=60)
    assert proc.returncode == 0, err
    assert "URL the browser landed on" in err and "Connected to MyCase as " in out
    assert stored(db_path)["firm_uuid"] == sandbox.mycase.firm_uuid


# --- refusals ------------------------------------------------------------------------------------
def test_a_wrong_state_is_refused_and_the_earlier_token_survives(cli, sandbox, db_path):
    before = connect_directly(sandbox, db_path)
    proc, url = start_listening(cli, "--timeout", "60")
    forged = with_query(browse(url), state="forged-state")
    page = requests.get(forged, timeout=10)
    assert "Authorization failed" in page.text
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3
    assert last_line(err).startswith("mycase-sync: the redirect's state does not match")
    assert stored(db_path) == before and sandbox.mycase.token_calls == 0
    pasted = cli.run("auth", "--redirect-url", with_query(browse(url), state="made-up"))
    assert pasted.code == 3 and "state does not match" in pasted.stderr
    assert stored(db_path) == before and sandbox.mycase.token_calls == 0


def test_access_denied_in_the_browser_is_one_line_and_changes_nothing(cli, sandbox, db_path):
    before = connect_directly(sandbox, db_path)
    sandbox.mycase.consent = "deny"
    proc, url = start_listening(cli, "--timeout", "60")
    landing = browse(url)
    assert "error=access_denied" in landing
    requests.get(landing, timeout=10)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3
    assert last_line(err) == "mycase-sync: access was denied in the browser (access_denied): nothing changed"
    assert stored(db_path) == before and sandbox.mycase.token_calls == 0


def test_a_timeout_is_one_line_and_nonzero(cli, sandbox, db_path):
    result = cli.run("auth", "--no-browser", "--timeout", "1")
    assert result.code == 3
    assert last_line(result.stderr) == (
        "mycase-sync: no redirect arrived within 1 seconds: run `mycase-sync auth` again (or finish with --redirect-url)")
    assert stored(db_path) == {}


def test_a_refused_code_leaves_the_earlier_token_untouched(cli, sandbox, db_path):
    before = connect_directly(sandbox, db_path)
    proc, url = start_listening(cli, "--timeout", "60")
    requests.get(with_query(browse(url), code="not+a+real+code"), timeout=10)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3
    assert last_line(err).startswith("mycase-sync: MyCase refused the authorization code (invalid_grant")
    assert stored(db_path) == before and sandbox.mycase.token_calls == 1


def test_an_unreachable_token_endpoint_during_the_flow_is_temporary(cli, sandbox, db_path):
    before = connect_directly(sandbox, db_path)
    sandbox.mycase.faults.add("POST", "/tokens", "503", times=20)
    proc, url = start_listening(cli, "--timeout", "60")
    requests.get(browse(url), timeout=10)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 75
    assert last_line(err) == "mycase-sync: MyCase token endpoint answered HTTP 503; try again later"
    assert stored(db_path) == before


def test_the_listener_port_in_use_is_a_clear_error(cli, sandbox):
    port = urlsplit(sandbox.config.redirect_uri).port
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        result = cli.run("auth", "--no-browser", "--timeout", "5")
    assert result.code == 2
    assert result.stderr.startswith(f"mycase-sync: cannot listen on 127.0.0.1:{port} for the redirect")
    assert result.stdout == ""


# --- refresh under cron --------------------------------------------------------------------------
def test_a_token_that_expired_between_two_commands_is_refreshed_once_and_rotates(cli, sandbox, db_path):
    first = connect_directly(sandbox, db_path, lifetime=2)
    ok = cli.run("auth", "status", "--verify")
    assert ok.code == 0, ok.stderr
    assert sandbox.mycase.refresh_calls == 0
    wait_until_expired(db_path)
    again = cli.run("auth", "status", "--verify", "--json")
    assert again.code == 0, again.stderr
    assert sandbox.mycase.refresh_calls == 1
    now = stored(db_path)
    assert now["refresh_token"] != first["refresh_token"] and now["access_token"] != first["access_token"]
    assert now["refresh_token"] in sandbox.mycase._refresh and not sandbox.mycase._refresh[now["refresh_token"]]["used"]
    assert sandbox.mycase._refresh[first["refresh_token"]]["used"]  # the old one is spent: single-use
    report = json.loads(again.stdout)
    assert report["verified"] and report["last_refresh_at"] == now["last_refresh_at"] is not None
    assert sandbox.mycase.count("GET", "/v1/me") == 2  # no 401 on the way: refreshed before use
    assert sandbox.mycase.violations == []


def test_a_token_the_server_expired_early_is_refreshed_after_a_401_and_the_call_retried(cli, sandbox, db_path):
    connect_directly(sandbox, db_path, lifetime=3600)
    sandbox.clock.offset += 7200  # MyCase thinks the hour is up; our clock does not
    result = cli.run("auth", "status", "--verify")
    assert result.code == 0, result.stderr
    assert sandbox.mycase.refresh_calls == 1
    assert [e["status"] for e in sandbox.mycase.journal if e["path"] == "/v1/me"] == [401, 200]


def test_runs_started_together_after_expiry_refresh_exactly_once_and_all_succeed(cli, sandbox, db_path):
    first = connect_directly(sandbox, db_path, lifetime=2)
    sandbox.mycase.latency = (0.2, 0.2)  # a slow /tokens widens the window two refreshes would need
    wait_until_expired(db_path)
    procs = [cli.popen("auth", "status", "--verify") for _ in range(4)]
    results = [(p, *p.communicate(timeout=60)) for p in procs]
    assert [p.returncode for p, _, _ in results] == [0, 0, 0, 0], [err for _, _, err in results]
    assert sandbox.mycase.refresh_calls == 1
    assert stored(db_path)["refresh_token"] != first["refresh_token"]
    assert stored(db_path)["needs_reauth"] == 0


def test_a_revoked_refresh_token_exits_3_and_later_runs_do_not_call_mycase(cli, sandbox, db_path):
    connect_directly(sandbox, db_path)
    sandbox.mycase.revoke_all()
    result = cli.run("auth", "status", "--verify")
    assert result.code == 3
    assert result.stderr.strip() == f"mycase-sync: {REAUTH_MESSAGE}"
    assert sandbox.mycase.refresh_calls == 1
    row = stored(db_path)
    assert row["needs_reauth"] == 1 and "invalid_grant" in row["reauth_reason"]
    calls = len(sandbox.mycase.journal)
    again = cli.run("auth", "status", "--verify")
    assert again.code == 3 and again.stderr.strip() == f"mycase-sync: {REAUTH_MESSAGE}"
    assert len(sandbox.mycase.journal) == calls  # needs_reauth answers at once, without MyCase
    status = cli.run("auth", "status", "--json")
    assert status.code == 3 and json.loads(status.stdout)["needs_reauth"] is True
    # Reconnecting by hand clears it.
    proc, url = start_listening(cli, "--timeout", "60")
    requests.get(browse(url), timeout=10)
    assert proc.communicate(timeout=60) and proc.returncode == 0
    assert cli.run("auth", "status", "--verify").code == 0


def test_a_5xx_from_tokens_is_temporary_and_the_stored_token_survives(cli, sandbox, db_path):
    first = connect_directly(sandbox, db_path, lifetime=2)
    wait_until_expired(db_path)
    sandbox.mycase.faults.add("POST", "/tokens", "500", times=3)
    result = cli.run("auth", "status", "--verify")
    assert result.code == 75
    assert result.stderr.strip() == "mycase-sync: MyCase token endpoint answered HTTP 500; try again later"
    assert stored(db_path) == first
    sandbox.mycase.faults.clear()
    later = cli.run("auth", "status", "--verify")  # the chain is intact: the next run refreshes
    assert later.code == 0, later.stderr
    assert sandbox.mycase.refresh_calls == 1 and stored(db_path)["refresh_token"] != first["refresh_token"]


# --- status and logout ---------------------------------------------------------------------------
def test_status_warns_when_nothing_refreshed_for_eleven_days(connected, db_path):
    soon = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2, hours=12)).isoformat()
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute("update tokens set refresh_expires_at = ?", [soon])
    conn.close()
    result = connected.run("auth", "status")
    assert result.code == 0 and "MyCase: connected as " in result.stdout
    assert result.stderr.startswith("Warning: MyCase authorization expires ")
    assert "is cron running?" in result.stderr
    report = json.loads(connected.run("auth", "status", "--json").stdout)
    assert len(report["warnings"]) == 1 and report["refresh_expires_at"] == soon


def test_status_never_creates_a_store_and_logout_deletes_the_tokens(cli, sandbox, db_path):
    result = cli.run("auth", "status")
    assert result.code == 3 and "not connected" in result.stdout and not db_path.exists()
    connect_directly(sandbox, db_path)
    status = cli.run("auth", "status", "--json")
    report = json.loads(status.stdout)
    assert status.code == 0 and report["connected"]
    assert not any(key in report for key in ("access_token", "refresh_token"))
    out = cli.run("auth", "logout")
    assert out.code == 0 and out.stdout.strip() == "Deleted the stored MyCase tokens."
    assert stored(db_path) == {}
    assert cli.run("auth", "logout").stdout.strip() == "MyCase was not connected; nothing to delete."
    verify = cli.run("auth", "status", "--verify")
    assert verify.code == 3 and verify.stderr.strip() == f"mycase-sync: {NOT_CONNECTED_MESSAGE}"
    assert sandbox.mycase.journal == []
