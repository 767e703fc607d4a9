"""`mycase-sync status`: is the sync healthy, and if not, why — read from the state store alone.

It makes no network request and never creates the state store, so a monitoring system can
call `status --check` as often as it likes. Thresholds: authorization expiring within 3 days,
no completed import in 26 hours (nightly job plus slack), no completed push in 1 hour (jobs run
every 5 and 20 minutes), anything parked as failed. The JSON keys are documented in the README.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import click

from mycase_sync.redact import redact
from mycase_sync.store import Store, parse_iso, utcnow

JOBS = ("import-matters", "push-documents", "push-messages")
STALE_AFTER = {
    "import-matters": dt.timedelta(hours=26),
    "push-documents": dt.timedelta(hours=1),
    "push-messages": dt.timedelta(hours=1),
}
REFRESH_WARNING = dt.timedelta(days=3)
LEDGER_JOBS = {"push-documents": "document", "push-messages": "message"}
# A run "completed" when it went through its work: success, or partial (some records failed,
# and those are counted and reported on their own). Staleness is measured from its end.
COMPLETED = ("success", "partial")
SHOWN_ITEMS = 10
DIAGNOSTIC_COUNTS = {"list_requests", "marker_lists"}  # in the JSON, not worth a place on the screen


def _text(value: Any) -> str | None:
    return redact(value) if value else None


def connection_summary(store: Store) -> dict[str, Any]:
    """The stored MyCase connection (who, which firm, token expiries), shared with `auth status`."""
    row = next(iter(store.db.query("select * from tokens order by id limit 1")), None)
    if not row or not row.get("access_token"):
        return {"connected": False, "needs_reauth": False, "reauth_reason": None, "user": None, "user_email": None,
                "firm": None, "access_expires_at": None, "refresh_expires_at": None, "last_refresh_at": None}
    return {
        "connected": not row.get("needs_reauth"),
        "needs_reauth": bool(row.get("needs_reauth")),
        "reauth_reason": _text(row.get("reauth_reason")),
        "user": row.get("user_name") or row.get("user_email"),
        "user_email": row.get("user_email"),
        "firm": row.get("firm_name"),
        "access_expires_at": row.get("expires_at"),
        "refresh_expires_at": row.get("refresh_expires_at"),
        "last_refresh_at": row.get("last_refresh_at"),
    }


def _run_summary(run: dict | None) -> dict | None:
    if not run:
        return None
    started, finished = parse_iso(run["started_at"]), parse_iso(run.get("finished_at"))
    return {
        "run_id": run["run_id"],
        "started_at": run["started_at"],
        "finished_at": run.get("finished_at"),
        "duration_s": round((finished - started).total_seconds(), 1) if finished and started else None,
        "outcome": run["outcome"],
        "counts": run.get("counts") or {},
        "error": _text(run.get("error")),
    }


def _last_completed(store: Store, job: str) -> str | None:
    marks = ",".join("?" for _ in COMPLETED)
    row = store.db.execute(
        f"select finished_at from runs where job = ? and outcome in ({marks}) order by id desc limit 1",
        [job, *COMPLETED]).fetchone()
    return row[0] if row else None


def _ledger(store: Store, kind: str) -> dict[str, Any]:
    counts = dict(store.db.execute(
        "select state, count(*) from ledger where kind = ? group by state", [kind]).fetchall())
    retrying = store.db.execute(
        "select count(*) from ledger where kind = ? and state in ('pending', 'claimed') and attempts > 0", [kind]).fetchone()[0]
    failed = [
        {"item_id": item_id, "integration_id": iid, "attempts": attempts, "last_error": _text(err)}
        for item_id, iid, attempts, err in store.db.execute(
            "select item_id, integration_id, attempts, last_error from ledger where kind = ? and state = 'failed'"
            " order by updated_at desc, item_id limit ?", [kind, SHOWN_ITEMS]).fetchall()
    ]
    return {
        "sent": counts.get("sent", 0),
        "pending": counts.get("pending", 0) + counts.get("claimed", 0),
        "retrying": retrying,
        "waiting_for_case": counts.get("waiting", 0),
        "failed": counts.get("failed", 0),
        "failed_items": failed,
    }


def _matter_rows(store: Store, state: str) -> list[dict]:
    return [
        {"mycase_id": mid, "readable_id": readable, "attempts": attempts, "last_error": _text(err)}
        for mid, readable, attempts, err in store.db.execute(
            "select mycase_id, readable_id, attempts, last_error from matters where state = ?"
            " order by updated_at desc, mycase_id limit ?", [state, SHOWN_ITEMS]).fetchall()
    ]


def reason_counts(store: Store, state: str, limit: int = SHOWN_ITEMS) -> list[dict[str, Any]]:
    """Why matters are skipped (or failed), most common reason first, with how many each."""
    return [{"reason": _text(reason) or "no reason recorded", "count": n} for reason, n in store.db.execute(
        "select last_error, count(*) as n from matters where state = ? group by last_error"
        " order by n desc, last_error limit ?", [state, limit]).fetchall()]


def _matters(store: Store) -> dict[str, Any]:
    counts = dict(store.db.execute("select state, count(*) from matters group by state").fetchall())
    return {
        "imported": counts.get("synced", 0),
        "pending": counts.get("pending", 0),
        "failed": counts.get("failed", 0),
        "skipped": counts.get("skipped", 0),
        "failed_items": _matter_rows(store, "failed"),
        "skipped_items": _matter_rows(store, "skipped"),
        "skipped_reasons": reason_counts(store, "skipped"),
    }


def collect(store: Store, now: dt.datetime | None = None) -> dict[str, Any]:
    """Everything `status` shows, as one JSON-ready dict (keys documented in the README)."""
    now = now or utcnow()
    jobs = {}
    for job in JOBS:
        items = _ledger(store, LEDGER_JOBS[job]) if job in LEDGER_JOBS else _matters(store)
        jobs[job] = {
            "last_run": _run_summary(store.last_run(job)),
            "last_success": _last_completed(store, job),
            "items": items,
        }
    report = {
        "checked_at": now.isoformat(),
        "state_store": str(store.path),
        "connection": connection_summary(store),
        "jobs": jobs,
    }
    report["problems"] = problems(report, now)
    report["healthy"] = not report["problems"]
    return report


def missing_store_report(path: Path, now: dt.datetime | None = None) -> dict[str, Any]:
    """What `status` says when the state store does not exist: nothing ever ran with these settings."""
    now = now or utcnow()
    line = (f"no state store at {path}: nothing has run with these settings"
            " (does cron use the same --env-file / MYCASE_SYNC_DB?)")
    return {"checked_at": now.isoformat(), "state_store": str(path), "connection": None, "jobs": None,
            "problems": [line], "healthy": False}


def problems(report: dict, now: dt.datetime) -> list[str]:
    """One line per reason the sync is unhealthy; empty when all is well."""
    found: list[str] = []
    conn = report["connection"]
    refresh_expires = parse_iso(conn.get("refresh_expires_at"))
    if conn.get("needs_reauth"):
        found.append("MyCase authorization expired or revoked: run `mycase-sync auth`")
    elif not conn.get("connected"):
        found.append("MyCase is not connected: run `mycase-sync auth`")
    elif refresh_expires and refresh_expires <= now:
        found.append(f"MyCase authorization expired {refresh_expires:%Y-%m-%d %H:%M} UTC (nothing refreshed it:"
                     " is cron running?): run `mycase-sync auth`")
    elif refresh_expires and refresh_expires - now < REFRESH_WARNING:
        found.append(f"MyCase authorization expires {refresh_expires:%Y-%m-%d %H:%M} UTC (nothing refreshed it:"
                     " is cron running?): run any job, or `mycase-sync auth`")
    for job, info in report["jobs"].items():
        last = parse_iso(info["last_success"])
        if last is None:
            found.append(f"{job} has never completed a run")
        elif now - last > STALE_AFTER[job]:
            hours = (now - last).total_seconds() / 3600
            found.append(f"{job}: no completed run for {hours:.0f} hours (last {last:%Y-%m-%d %H:%M} UTC):"
                         " is cron running? see `mycase-sync status`")
    failed = report["jobs"]["import-matters"]["items"]["failed"]
    if failed:
        found.append(f"{_plural(failed, 'matter')} failed to import{_last_error(report['jobs']['import-matters'])};"
                     " retried every night (details: `mycase-sync status`)")
    for job, kind in LEDGER_JOBS.items():
        failed = report["jobs"][job]["items"]["failed"]
        if failed:
            found.append(f"{_plural(failed, kind)} parked as failed{_last_error(report['jobs'][job])};"
                         f" after fixing the cause run `mycase-sync {job} --retry-failed`")
    return found


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _last_error(info: dict) -> str:
    items = info["items"]["failed_items"]
    error = items[0]["last_error"] if items else None
    return f" (latest: {error})" if error else ""


def show_status(app, as_json: bool = False, check: bool = False) -> int:
    """Print the report (table, JSON, or with --check only the problems); --check exits 1 when unhealthy."""
    path = Path(app.settings.db_path)
    report = collect(app.store) if path.exists() else missing_store_report(path)
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=True))
    elif check:
        for line in report["problems"]:
            click.echo(line)
    else:
        _print_table(report)
    return 1 if check and report["problems"] else 0


def format_when(value: str | None, zone: str = " UTC") -> str:
    """An ISO time as 'YYYY-MM-DD HH:MM UTC', short enough for a table."""
    moment = parse_iso(value)
    return f"{moment.astimezone(dt.timezone.utc):%Y-%m-%d %H:%M}{zone}" if moment else "never"


def _jobs_table(jobs: dict):
    """One column per job, one row per fact: fits 80 columns (cron mail, SSH sessions)."""
    from rich import box
    from rich.table import Table

    table = Table("", *jobs, box=box.SIMPLE_HEAD, pad_edge=False)
    runs = {job: info["last_run"] or {} for job, info in jobs.items()}
    items = {job: info["items"] for job, info in jobs.items()}

    def row(label: str, cell) -> None:
        table.add_row(label, *(cell(job) for job in jobs))

    row("last run (UTC)", lambda job: format_when(runs[job].get("started_at"), ""))
    row("outcome", lambda job: runs[job].get("outcome") or "")
    row("duration", lambda job: f"{runs[job]['duration_s']:g} s" if runs[job].get("duration_s") is not None else "")
    row("counts", lambda job: ", ".join(
        f"{k} {v}" for k, v in (runs[job].get("counts") or {}).items() if v and k not in DIAGNOSTIC_COUNTS))
    row("last completed", lambda job: format_when(jobs[job]["last_success"], ""))
    row("imported / sent", lambda job: str(items[job].get("sent", items[job].get("imported", 0))))
    row("pending", lambda job: str(items[job]["pending"]))
    row("  after an error", lambda job: str(items[job]["retrying"]) if "retrying" in items[job] else "-")
    row("waiting for case", lambda job: str(items[job]["waiting_for_case"]) if "waiting_for_case" in items[job] else "-")
    row("failed", lambda job: str(items[job]["failed"]))
    row("skipped", lambda job: str(items[job]["skipped"]) if "skipped" in items[job] else "-")
    return table


def _print_table(report: dict) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False, soft_wrap=True)

    def say(text: str, style: str | None = None) -> None:
        console.print(escape(text), style=style)

    say(f"State store: {report['state_store']}")
    if report["jobs"] is None:
        say(report["problems"][0], "bold red")
        return
    conn = report["connection"]
    if conn["connected"]:
        say(f"MyCase: connected as {conn['user'] or '?'} to {conn['firm'] or '?'}; "
            f"access token until {format_when(conn['access_expires_at'])}, "
            f"authorization (refresh token) until {format_when(conn['refresh_expires_at'])}")
    elif conn["needs_reauth"]:
        say(f"MyCase: authorization expired or revoked ({conn['reauth_reason'] or 'no reason given'})", "bold red")
    else:
        say("MyCase: not connected", "bold red")
    console.print(_jobs_table(report["jobs"]))
    for job, info in report["jobs"].items():
        run = info["last_run"] or {}
        if run.get("error"):
            say(f"{job}: last run ended with: {run['error']}")
    matters = report["jobs"]["import-matters"]["items"]
    for item in matters["failed_items"]:
        say(f"  failed: MyCase case {item['mycase_id']} ({item['readable_id'] or 'no number'}):"
            f" {item['last_error'] or 'no reason recorded'}")
    for group in matters["skipped_reasons"]:
        say(f"  skipped {group['count']}: {group['reason']}")
    for job, kind in LEDGER_JOBS.items():
        for item in report["jobs"][job]["items"]["failed_items"]:
            say(f"  failed: Case Status {kind} {item['item_id']} (MyCase case {item['integration_id']},"
                f" {item['attempts']} attempts): {item['last_error'] or 'no reason recorded'}")
    if report["problems"]:
        say("Problems:", "bold red")
        for line in report["problems"]:
            say(f"  - {line}")
    else:
        say("Healthy.", "green")
