"""`status`, `status --json`, `status --check`: what a sysadmin and a monitoring system see.

The state store is seeded with a known history (tokens, runs, ledger, matters); the report is
checked key by key, and `--check` once per unhealthy condition through the CLI's entry point
(`mycase_sync.cli.main` in this process: `status` reads the state store alone, so no real process is
needed for what it prints and its exit code).
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from conftest import Cli
from mycase_sync.status import collect
from mycase_sync.store import iso, open_store, utcnow

NOW = dt.datetime(2025, 3, 10, 12, 0, tzinfo=dt.timezone.utc)


def seed_token(store, now, **over):
    row = {
        "access_token": "at-0123456789", "refresh_token": "rt-0123456789", "token_type": "Bearer",
        "expires_at": iso(now + dt.timedelta(hours=20)), "refresh_expires_at": iso(now + dt.timedelta(days=13)),
        "obtained_at": iso(now - dt.timedelta(days=30)), "last_refresh_at": iso(now - dt.timedelta(hours=4)),
        "firm_uuid": "f-1", "user_name": "Ada Lovelace", "user_email": "ada@firm.example", "firm_name": "Lovelace LLP",
        "needs_reauth": 0, "reauth_reason": None,
    }
    row.update(over)
    store.db["tokens"].insert(row)


def seed_run(store, job, started, seconds, outcome, counts=None, error=None, run_id=None):
    store.db["runs"].insert({
        "run_id": run_id or f"{job[:4]}{started:%H%M%S}{outcome[:2]}", "job": job, "started_at": iso(started),
        "finished_at": iso(started + dt.timedelta(seconds=seconds)) if outcome != "running" else None,
        "outcome": outcome, "counts": json.dumps(counts or {}), "error": error,
    })


def seed_item(store, kind, item_id, state, case="1001", attempts=0, error=None, updated=NOW):
    store.db["ledger"].insert({
        "kind": kind, "item_id": item_id, "integration_id": case, "state": state, "attempts": attempts,
        "last_error": error, "created_at": iso(updated), "updated_at": iso(updated),
    })


def seed_matter(store, mycase_id, state, error=None, readable=None, updated=NOW):
    store.db["matters"].insert({
        "mycase_id": mycase_id, "casestatus_id": None if state in ("failed", "skipped") else int(mycase_id) + 5000,
        "readable_id": readable or f"C-{mycase_id}", "state": state, "attempts": 1, "last_error": error,
        "updated_at": iso(updated),
    })


def seed_healthy(store, now):
    """Connected, every job completed a few minutes ago, nothing failed."""
    seed_token(store, now)
    seed_run(store, "import-matters", now - dt.timedelta(hours=14), 300, "success", {"created": 3})
    seed_run(store, "push-documents", now - dt.timedelta(minutes=9), 4, "success", {"sent": 1})
    seed_run(store, "push-messages", now - dt.timedelta(minutes=3), 2, "success", {"sent": 2})
    seed_matter(store, "1001", "synced")
    seed_item(store, "document", 1, "sent")
    seed_item(store, "message", 1, "sent")


@pytest.fixture
def store(db_path):
    opened = open_store(db_path)
    yield opened
    opened.close()


@pytest.fixture
def status_cli(db_path, tmp_path) -> Cli:
    return Cli(env={"MYCASE_SYNC_DB": str(db_path)}, cwd=tmp_path)


# --- the report after a known sequence of runs ---------------------------------------------------
def test_json_keys_and_values_after_a_known_sequence(store, status_cli):
    now = utcnow().replace(microsecond=0)
    seed_token(store, now)
    # import-matters: a success last night, then tonight a partial run that is the last run.
    seed_run(store, "import-matters", now - dt.timedelta(hours=25), 100, "success", {"created": 10})
    seed_run(store, "import-matters", now - dt.timedelta(hours=2), 62.5, "partial",
             {"created": 2, "updated": 1, "failed": 1}, run_id="imp-partial")
    # push-documents: a success, then a run that ended on an error (the newest).
    seed_run(store, "push-documents", now - dt.timedelta(minutes=40), 3, "success", {"sent": 4})
    seed_run(store, "push-documents", now - dt.timedelta(minutes=20), 1, "temporary", {},
             error="Case Status GET /api/v1/files: no answer", run_id="doc-temp")
    # push-messages: only successes; the newest is the one reported.
    seed_run(store, "push-messages", now - dt.timedelta(minutes=10), 2, "success", {"sent": 1})
    seed_run(store, "push-messages", now - dt.timedelta(minutes=5), 1.25, "success", {"sent": 3}, run_id="msg-last")
    for mycase_id in ("1", "2", "3"):
        seed_matter(store, mycase_id, "synced")
    seed_matter(store, "4", "pending")
    seed_matter(store, "5", "failed", error="Case Status POST /api/v1/cases: HTTP 422: bad email")
    seed_matter(store, "6", "skipped", error="no name and no case number")
    seed_item(store, "document", 10, "sent")
    seed_item(store, "document", 11, "pending")
    seed_item(store, "document", 12, "claimed", attempts=2, error="MyCase POST /v1/cases/1001/documents: no answer")
    seed_item(store, "document", 13, "waiting", case="2002")
    seed_item(store, "message", 20, "sent")
    seed_item(store, "message", 21, "sent")
    seed_item(store, "message", 22, "failed", attempts=5, error="MyCase POST /v1/cases/3/notes: HTTP 422: too long")
    store.pacing.keep("Case Status", 87.5, 97.0)  # the pace the last import found

    result = status_cli.invoke("status", "--json")
    assert result.code == 0, result.output
    assert result.stderr == ""
    report = json.loads(result.stdout)
    assert set(report) == {"checked_at", "state_store", "connection", "jobs", "pace", "problems", "healthy"}
    assert report["pace"]["MyCase"] == {"rate": None, "refused": None, "updated_at": None, "ceiling": 25}
    assert {k: v for k, v in report["pace"]["Case Status"].items() if k != "updated_at"} == \
        {"rate": 87.5, "refused": 97.0, "ceiling": 500}
    assert report["state_store"] == str(store.path)
    assert report["connection"] == {
        "connected": True, "needs_reauth": False, "reauth_reason": None, "user": "Ada Lovelace",
        "user_email": "ada@firm.example", "firm": "Lovelace LLP",
        "access_expires_at": iso(now + dt.timedelta(hours=20)), "refresh_expires_at": iso(now + dt.timedelta(days=13)),
        "last_refresh_at": iso(now - dt.timedelta(hours=4)), "connected_at": iso(now - dt.timedelta(days=30)),
    }
    jobs = report["jobs"]
    assert list(jobs) == ["import-matters", "push-documents", "push-messages"]
    for info in jobs.values():
        assert set(info) == {"last_run", "last_run_by_hand", "last_success", "items"}
        assert info["last_run_by_hand"] is None
        assert set(info["last_run"]) == {"run_id", "started_at", "finished_at", "duration_s", "outcome", "counts", "error"}

    imp = jobs["import-matters"]
    assert imp["last_run"] == {
        "run_id": "imp-partial", "started_at": iso(now - dt.timedelta(hours=2)),
        "finished_at": iso(now - dt.timedelta(hours=2) + dt.timedelta(seconds=62.5)), "duration_s": 62.5,
        "outcome": "partial", "counts": {"created": 2, "updated": 1, "failed": 1}, "error": None,
    }
    # A partial run went through its work: it counts as completed; its failure is reported on its own.
    assert imp["last_success"] == imp["last_run"]["finished_at"]
    assert imp["items"] == {
        "imported": 3, "pending": 1, "failed": 1, "skipped": 1,
        "failed_items": [{"mycase_id": "5", "readable_id": "C-5", "attempts": 1,
                          "last_error": "Case Status POST /api/v1/cases: HTTP 422: bad email"}],
        "skipped_items": [{"mycase_id": "6", "readable_id": "C-6", "attempts": 1,
                           "last_error": "no name and no case number"}],
        "skipped_reasons": [{"reason": "no name and no case number", "count": 1}],
        "ignored": 0, "ignored_items": [],
    }

    docs = jobs["push-documents"]
    assert docs["last_run"]["outcome"] == "temporary"
    assert docs["last_run"]["error"] == "Case Status GET /api/v1/files: no answer"
    assert docs["last_run"]["duration_s"] == 1.0
    assert docs["last_success"] == iso(now - dt.timedelta(minutes=40) + dt.timedelta(seconds=3))
    assert docs["items"] == {"sent": 1, "pending": 2, "retrying": 1, "waiting_for_case": 1, "failed": 0, "failed_items": [],
                             "before_cutover": 0, "cutover": None, "ignored": 0, "ignored_items": []}

    msgs = jobs["push-messages"]
    assert msgs["last_run"]["run_id"] == "msg-last"
    assert msgs["last_run"]["counts"] == {"sent": 3}
    assert msgs["last_success"] == iso(now - dt.timedelta(minutes=5) + dt.timedelta(seconds=1.25))
    assert msgs["items"] == {
        "sent": 2, "pending": 0, "retrying": 0, "waiting_for_case": 0, "failed": 1,
        "failed_items": [{"item_id": 22, "integration_id": "1001", "attempts": 5,
                          "last_error": "MyCase POST /v1/cases/3/notes: HTTP 422: too long"}],
        "before_cutover": 0, "cutover": None, "ignored": 0, "ignored_items": [],
    }

    assert report["healthy"] is False
    assert report["problems"] == [
        "1 matter failed to import (latest: Case Status POST /api/v1/cases: HTTP 422: bad email);"
        " retried every night (details: `mycase-sync status`)",
        "1 message parked as failed (latest: MyCase POST /v1/cases/3/notes: HTTP 422: too long);"
        " after fixing the cause run `mycase-sync push-messages --retry-failed`",
    ]
    checked = dt.datetime.fromisoformat(report["checked_at"])
    assert abs((checked - utcnow()).total_seconds()) < 60


def test_empty_store_reports_every_job_as_never_run(store):
    report = collect(store, NOW)
    assert report["connection"]["connected"] is False
    for info in report["jobs"].values():
        assert info["last_run"] is None and info["last_success"] is None
    assert report["jobs"]["push-messages"]["items"] == {
        "sent": 0, "pending": 0, "retrying": 0, "waiting_for_case": 0, "failed": 0, "failed_items": [],
        "before_cutover": 0, "cutover": None, "ignored": 0, "ignored_items": []}
    assert report["problems"] == [
        "MyCase is not connected: run `mycase-sync auth`",
        "import-matters has never completed a run",
        "push-documents has never completed a run",
        "push-messages has never completed a run",
    ]


def test_a_run_still_going_has_no_duration_and_does_not_count_as_completed(store):
    seed_healthy(store, NOW)
    seed_run(store, "push-messages", NOW - dt.timedelta(seconds=30), 0, "running", run_id="now-running")
    info = collect(store, NOW)["jobs"]["push-messages"]
    assert info["last_run"]["outcome"] == "running"
    assert info["last_run"]["finished_at"] is None and info["last_run"]["duration_s"] is None
    assert info["last_success"] == iso(NOW - dt.timedelta(minutes=3) + dt.timedelta(seconds=2))


def test_failed_runs_do_not_count_as_completed(store):
    seed_healthy(store, NOW)
    for minutes in (50, 30, 10):
        seed_run(store, "push-documents", NOW - dt.timedelta(minutes=minutes), 1, "failed",
                 error="internal error: KeyError")
    report = collect(store, NOW)
    assert report["jobs"]["push-documents"]["last_success"] == iso(NOW - dt.timedelta(minutes=9, seconds=-4))
    seed_run(store, "push-documents", NOW - dt.timedelta(minutes=70), 1, "failed")  # older: changes nothing
    assert collect(store, NOW + dt.timedelta(minutes=52))["problems"] == [
        "push-documents: no completed run for 1 hours (last 2025-03-10 11:51 UTC): is cron running? see `mycase-sync status`"]


def test_errors_shown_by_status_are_redacted(store):
    seed_healthy(store, NOW)
    seed_item(store, "document", 7, "failed", error="upload refused: Authorization: Bearer sekrit-token-123")
    item = collect(store, NOW)["jobs"]["push-documents"]["items"]["failed_items"][0]
    assert "sekrit" not in item["last_error"] and "Bearer ***" in item["last_error"]


# --- thresholds, at their edges (fixed clock) -----------------------------------------------------
def test_healthy_store_has_no_problems(store):
    seed_healthy(store, NOW)
    report = collect(store, NOW)
    assert report["problems"] == [] and report["healthy"] is True


@pytest.mark.parametrize("job, limit", [
    ("import-matters", dt.timedelta(hours=26)),
    ("push-documents", dt.timedelta(hours=1)),
    ("push-messages", dt.timedelta(hours=1)),
])
def test_staleness_threshold_per_job(store, job, limit):
    seed_token(store, NOW, refresh_expires_at=iso(NOW + dt.timedelta(days=30)))
    for other in ("import-matters", "push-documents", "push-messages"):
        if other != job:
            seed_run(store, other, NOW - dt.timedelta(minutes=1), 1, "success")
    finished = NOW - limit
    seed_run(store, job, finished - dt.timedelta(seconds=10), 10, "success")
    assert collect(store, NOW - dt.timedelta(minutes=1))["problems"] == []
    assert collect(store, NOW)["problems"] == []  # exactly at the limit: still fine
    late = collect(store, NOW + dt.timedelta(minutes=1))["problems"]
    assert len(late) == 1 and late[0].startswith(f"{job}: no completed run for ")


def test_authorization_expiry_thresholds(store):
    seed_healthy(store, NOW)
    store.db.execute("update tokens set refresh_expires_at = ?", [iso(NOW + dt.timedelta(days=3, minutes=1))])
    assert collect(store, NOW)["problems"] == []
    store.db.execute("update tokens set refresh_expires_at = ?", [iso(NOW + dt.timedelta(days=2, hours=23))])
    assert collect(store, NOW)["problems"] == [
        "MyCase authorization expires 2025-03-13 11:00 UTC (nothing refreshed it: is cron running?):"
        " run any job, or `mycase-sync auth`"]
    store.db.execute("update tokens set refresh_expires_at = ?", [iso(NOW - dt.timedelta(minutes=1))])
    assert collect(store, NOW)["problems"] == [
        "MyCase authorization expired 2025-03-10 11:59 UTC (nothing refreshed it: is cron running?):"
        " run `mycase-sync auth`"]


# --- `status --check` through the real CLI: one test per unhealthy condition -----------------------
def _now():
    return utcnow().replace(microsecond=0)


def test_check_is_silent_and_exits_0_when_healthy(store, status_cli):
    seed_healthy(store, _now())
    result = status_cli.invoke("status", "--check")
    assert (result.code, result.stdout, result.stderr) == (0, "", "")


UNHEALTHY = {
    "authorization revoked": (
        lambda store, now: store.db.execute("update tokens set needs_reauth = 1, reauth_reason = 'invalid_grant'"),
        ["MyCase authorization expired or revoked: run `mycase-sync auth`"]),
    "never connected": (
        lambda store, now: store.db.execute("delete from tokens"),
        ["MyCase is not connected: run `mycase-sync auth`"]),
    "authorization expires within 3 days": (
        lambda store, now: store.db.execute("update tokens set refresh_expires_at = ?",
                                            [iso(now + dt.timedelta(days=2))]),
        ["MyCase authorization expires "]),
    "no import in 26 hours": (
        lambda store, now: store.db.execute("update runs set finished_at = ? where job = 'import-matters'",
                                            [iso(now - dt.timedelta(hours=27))]),
        ["import-matters: no completed run for 27 hours"]),
    "import never completed": (
        lambda store, now: store.db.execute("update runs set outcome = 'failed' where job = 'import-matters'"),
        ["import-matters has never completed a run"]),
    "no document push in 1 hour": (
        lambda store, now: store.db.execute("update runs set finished_at = ? where job = 'push-documents'",
                                            [iso(now - dt.timedelta(minutes=75))]),
        ["push-documents: no completed run for 1 hours"]),
    "no message push in 1 hour": (
        lambda store, now: store.db.execute("update runs set finished_at = ? where job = 'push-messages'",
                                            [iso(now - dt.timedelta(hours=3))]),
        ["push-messages: no completed run for 3 hours"]),
    "documents parked as failed": (
        lambda store, now: seed_item(store, "document", 9, "failed", error="HTTP 413"),
        ["1 document parked as failed (latest: HTTP 413); after fixing the cause run"
         " `mycase-sync push-documents --retry-failed`"]),
    "messages parked as failed": (
        lambda store, now: [seed_item(store, "message", n, "failed", error=f"err {n}", updated=now - dt.timedelta(minutes=n))
                            for n in (5, 6)],
        ["2 messages parked as failed (latest: err 5); after fixing the cause run"
         " `mycase-sync push-messages --retry-failed`"]),
    "matters failed": (
        lambda store, now: seed_matter(store, "77", "failed", error="HTTP 422"),
        ["1 matter failed to import (latest: HTTP 422)"]),
}


@pytest.mark.parametrize("condition", list(UNHEALTHY))
def test_check_exits_1_with_one_line_per_problem(store, status_cli, condition):
    now = _now()
    seed_healthy(store, now)
    spoil, expected = UNHEALTHY[condition]
    spoil(store, now)
    result = status_cli.invoke("status", "--check")
    assert result.code == 1, result.output
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert len(lines) == len(expected), lines
    for line, start in zip(lines, expected):
        assert line.startswith(start), line
    report = json.loads(status_cli.invoke("status", "--json").stdout)
    assert report["healthy"] is False and report["problems"] == lines


def test_check_lists_every_problem_at_once(store, status_cli):
    now = _now()
    seed_healthy(store, now)
    for spoil, _ in (UNHEALTHY["authorization revoked"], UNHEALTHY["no message push in 1 hour"],
                     UNHEALTHY["documents parked as failed"]):
        spoil(store, now)
    result = status_cli.invoke("status", "--check")
    assert result.code == 1
    assert len(result.stdout.splitlines()) == 3


def test_skipped_matters_are_shown_but_are_not_a_problem(store, status_cli):
    now = _now()
    seed_healthy(store, now)
    seed_matter(store, "88", "skipped", error="opened_date '2019-13-45' is not a date")
    assert status_cli.invoke("status", "--check").code == 0
    result = status_cli.invoke("status")
    assert result.code == 0
    assert "skipped 1: opened_date '2019-13-45' is not a date" in result.stdout


def test_skipped_matters_are_counted_by_reason(store):
    seed_healthy(store, NOW)
    for n in range(12):
        seed_matter(store, str(500 + n), "skipped", error="lead attorney Ann Bee is not a Case Status user")
    for n in range(3):
        seed_matter(store, str(600 + n), "skipped", error="no attorney on the case in MyCase")
    seed_matter(store, "700", "skipped")
    items = collect(store, NOW)["jobs"]["import-matters"]["items"]
    assert items["skipped"] == 16 and len(items["skipped_items"]) == 10
    assert items["skipped_reasons"] == [
        {"reason": "lead attorney Ann Bee is not a Case Status user", "count": 12},
        {"reason": "no attorney on the case in MyCase", "count": 3},
        {"reason": "no reason recorded", "count": 1},
    ]


def test_json_with_check_prints_the_report_and_exits_1_when_unhealthy(store, status_cli):
    seed_healthy(store, _now())
    seed_item(store, "document", 9, "failed", error="HTTP 413")
    result = status_cli.invoke("status", "--json", "--check")
    assert result.code == 1
    assert json.loads(result.stdout)["healthy"] is False


# --- the screen a sysadmin reads -----------------------------------------------------------------
def test_table_shows_connection_jobs_counts_and_failures(store, status_cli):
    now = _now()
    seed_healthy(store, now)
    seed_item(store, "document", 31, "waiting", case="4040")
    seed_item(store, "document", 32, "failed", case="4041", attempts=3,
              error="MyCase POST /v1/cases/4041/documents: HTTP 404 [bold]not[/bold] found")
    result = status_cli.invoke("status")
    assert result.code == 0, result.output  # plain `status` reports; only --check judges
    out = result.stdout
    assert f"State store: {store.path}" in out
    assert "connected as Ada Lovelace to Lovelace LLP" in out
    for job in ("import-matters", "push-documents", "push-messages"):
        assert job in out
    assert "failed: Case Status document 32 (MyCase case 4041, 3 attempts): MyCase POST /v1/cases/4041/documents: HTTP 404 [bold]not[/bold] found" in out
    assert "Problems:" in out and "1 document parked as failed" in out
    assert "at-0123456789" not in out and "rt-0123456789" not in out


def test_table_says_healthy(store, status_cli):
    seed_healthy(store, _now())
    result = status_cli.invoke("status")
    assert result.code == 0 and "Healthy." in result.stdout


def test_missing_state_store_is_a_problem_and_is_not_created(status_cli, db_path):
    result = status_cli.invoke("status", "--check")
    assert result.code == 1
    assert result.stdout.strip() == (
        f"no state store at {db_path}: nothing has run with these settings"
        " (does cron use the same --env-file / MYCASE_SYNC_DB?)")
    assert not db_path.exists()
    report = json.loads(status_cli.invoke("status", "--json").stdout)
    assert report["healthy"] is False and report["jobs"] is None
    plain = status_cli.invoke("status")
    assert plain.code == 0 and "no state store at" in plain.stdout
    assert not db_path.exists()


def test_a_corrupt_state_store_is_one_line_and_exit_2(status_cli, db_path):
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(b"this is not sqlite" * 100)
    result = status_cli.invoke("status", "--check")
    assert result.code == 2
    assert result.stderr.startswith("mycase-sync: state store ") and len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.output


def test_table_shows_the_pace_to_one_decimal(store, status_cli):
    seed_healthy(store, _now())
    store.pacing.keep("Case Status", 118.926, 0.0)  # as a run leaves it (the JSON keeps it whole)
    store.pacing.keep("MyCase", 25.0, 0.0)
    out = status_cli.invoke("status").stdout
    assert "Pace: MyCase 25/s (at most 25), Case Status 118.9/s (at most 500)" in out
