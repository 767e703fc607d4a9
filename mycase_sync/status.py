"""`mycase-sync status`: is the sync healthy, and if not, why — read from the state store alone.

It makes no network request, so a monitoring system can call `status --check` as often as
it likes. Thresholds: authorization expiring within 3 days, no successful import in 26
hours (nightly job plus slack), no successful push in 1 hour (jobs run every 5 and 20
minutes), anything parked as failed.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import click

from mycase_sync.store import Store, parse_iso, utcnow

JOBS = ("import-matters", "push-documents", "push-messages")
STALE_AFTER = {
    "import-matters": dt.timedelta(hours=26),
    "push-documents": dt.timedelta(hours=1),
    "push-messages": dt.timedelta(hours=1),
}
REFRESH_WARNING = dt.timedelta(days=3)
LEDGER_KINDS = {"document": "documents", "message": "messages"}
SHOWN_FAILURES = 10


def _connection(store: Store, now: dt.datetime) -> dict[str, Any]:
    row = next(iter(store.db.query("select * from tokens order by id limit 1")), None)
    if not row or not row.get("access_token"):
        return {"connected": False, "needs_reauth": False}
    return {
        "connected": not row.get("needs_reauth"),
        "needs_reauth": bool(row.get("needs_reauth")),
        "reauth_reason": row.get("reauth_reason"),
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
        "error": run.get("error"),
    }


def _ledger(store: Store, kind: str) -> dict[str, Any]:
    counts = {state: n for state, n in store.db.execute(
        "select state, count(*) from ledger where kind = ? group by state", [kind]).fetchall()}
    failed = [
        {"item_id": item_id, "integration_id": iid, "attempts": attempts, "last_error": err}
        for item_id, iid, attempts, err in store.db.execute(
            "select item_id, integration_id, attempts, last_error from ledger where kind = ? and state = 'failed'"
            " order by item_id limit ?", [kind, SHOWN_FAILURES]).fetchall()
    ]
    return {
        "sent": counts.get("sent", 0),
        "pending": counts.get("pending", 0) + counts.get("claimed", 0),
        "waiting_for_case": counts.get("waiting", 0),
        "failed": counts.get("failed", 0),
        "failed_items": failed,
    }


def _matters(store: Store) -> dict[str, Any]:
    counts = {state: n for state, n in store.db.execute("select state, count(*) from matters group by state").fetchall()}
    failed = [
        {"mycase_id": mid, "last_error": err}
        for mid, err in store.db.execute(
            "select mycase_id, last_error from matters where state in ('failed', 'skipped') order by mycase_id limit ?",
            [SHOWN_FAILURES]).fetchall()
    ]
    return {
        "imported": sum(n for state, n in counts.items() if state not in ("failed", "skipped")),
        "failed": counts.get("failed", 0),
        "skipped": counts.get("skipped", 0),
        "problems": failed,
    }


def collect(store: Store, now: dt.datetime | None = None) -> dict[str, Any]:
    """Everything `status` shows, as one JSON-ready dict (keys documented in the README)."""
    now = now or utcnow()
    jobs = {}
    for job in JOBS:
        last_success = store.last_run(job, "success")
        jobs[job] = {"last_run": _run_summary(store.last_run(job)), "last_success": last_success["started_at"] if last_success else None}
    report = {
        "checked_at": now.isoformat(),
        "connection": _connection(store, now),
        "jobs": jobs,
        "matters": _matters(store),
        **{name: _ledger(store, kind) for kind, name in LEDGER_KINDS.items()},
    }
    report["problems"] = problems(report, now)
    report["healthy"] = not report["problems"]
    return report


def problems(report: dict, now: dt.datetime) -> list[str]:
    """One line per reason the sync is unhealthy; empty when all is well."""
    found: list[str] = []
    conn = report["connection"]
    if conn.get("needs_reauth"):
        found.append("MyCase authorization expired or revoked: run `mycase-sync auth`")
    elif not conn.get("connected"):
        found.append("MyCase is not connected: run `mycase-sync auth`")
    else:
        refresh_expires = parse_iso(conn.get("refresh_expires_at"))
        if refresh_expires and refresh_expires - now < REFRESH_WARNING:
            found.append(
                f"MyCase authorization expires {refresh_expires:%Y-%m-%d %H:%M} UTC (nothing refreshed it: is cron running?);"
                " run any job or `mycase-sync auth`")
    for job, info in report["jobs"].items():
        last = parse_iso(info["last_success"])
        if last is None:
            found.append(f"{job} has never succeeded")
        elif now - last > STALE_AFTER[job]:
            hours = (now - last).total_seconds() / 3600
            found.append(f"{job}: no successful run for {hours:.0f} hours (last {last:%Y-%m-%d %H:%M} UTC)")
    for name in LEDGER_KINDS.values():
        failed = report[name]["failed"]
        if failed:
            found.append(f"{failed} {name} parked as failed (see `mycase-sync status`; retry with --retry-failed)")
    return found


def show_status(app, as_json: bool = False, check: bool = False) -> int:
    report = collect(app.store)
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=True))
    elif check:
        for line in report["problems"]:
            click.echo(line)
    else:
        _print_table(report)
    return 1 if check and report["problems"] else 0


def _print_table(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    conn = report["connection"]
    if conn.get("connected"):
        console.print(f"MyCase: connected as {conn.get('user') or '?'} to {conn.get('firm') or '?'}; "
                      f"access token until {conn.get('access_expires_at')}, refresh until {conn.get('refresh_expires_at')}")
    else:
        console.print("MyCase: [bold red]not connected[/]")
    table = Table("job", "last run", "duration", "outcome", "counts", "last success")
    for job, info in report["jobs"].items():
        run = info["last_run"] or {}
        counts = ", ".join(f"{k} {v}" for k, v in (run.get("counts") or {}).items() if v)
        table.add_row(job, run.get("started_at") or "never", f"{run['duration_s']} s" if run.get("duration_s") is not None else "",
                      run.get("outcome") or "", counts, info["last_success"] or "never")
    console.print(table)
    m = report["matters"]
    console.print(f"Matters: {m['imported']} imported, {m['failed']} failed, {m['skipped']} skipped")
    for name in LEDGER_KINDS.values():
        led = report[name]
        console.print(f"{name.capitalize()}: {led['sent']} sent, {led['pending']} pending, "
                      f"{led['waiting_for_case']} waiting for their case, {led['failed']} parked as failed")
        for item in led["failed_items"]:
            console.print(f"  failed: Case Status {name[:-1]} {item['item_id']} (matter {item['integration_id']}): {item['last_error']}")
    if report["problems"]:
        console.print("[bold red]Problems:[/]")
        for line in report["problems"]:
            console.print(f"  - {line}")
    else:
        console.print("[green]Healthy.[/]")
