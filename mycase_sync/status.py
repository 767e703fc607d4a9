"""`mycase-sync status`: is the sync healthy, and if not, why — read from the state store alone.

It makes no network request and never creates the state store, so a monitoring system can
call `status --check` as often as it likes. Thresholds: authorization expiring within 3 days,
no completed import in 26 hours (nightly job plus slack), no completed push in 1 hour (jobs run
every 5 and 20 minutes), anything parked as failed. The JSON keys are documented in the README.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from mycase_sync.health import connection_problem, connection_summary, format_when
from mycase_sync.redact import redact
from mycase_sync.store import ItemState, MatterState, RunKind, RunOutcome, Store
from mycase_sync.store.ledger import cutover_key
from mycase_sync.values import parse_iso, utcnow

JOBS = ("import-matters", "push-documents", "push-messages")
STALE_AFTER = {
    "import-matters": dt.timedelta(hours=26),
    "push-documents": dt.timedelta(hours=1),
    "push-messages": dt.timedelta(hours=1),
}
FIRST_RUN_GRACE = dt.timedelta(hours=26)  # after `auth`, a job that never ran is "not yet run", not a problem
# Outcomes no later run can get past alone: said at once, not hours later by the staleness rules.
STOPPED_ON = {RunOutcome.CONFIG: "a configuration error", RunOutcome.AUTH: "an authorization error"}
LEDGER_JOBS = {"push-documents": "document", "push-messages": "message"}
# A run "completed" when it went through its work (RunOutcome.COMPLETED: success, or partial, whose
# failed records are reported on their own). Staleness is measured from its end.
SHOWN_ITEMS = 10
DIAGNOSTIC_COUNTS = {"list_requests", "marker_lists"}  # in the JSON, not worth a place on the screen


def _text(value: Any) -> str | None:
    return redact(value) if value else None


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


def _ledger(store: Store, job: str, kind: str) -> dict[str, Any]:
    summary = store.ledger(kind).summary(SHOWN_ITEMS)
    counts = summary["counts"]
    return {
        "sent": counts.get(ItemState.SENT, 0),
        "pending": counts.get(ItemState.PENDING, 0) + counts.get(ItemState.CLAIMED, 0),
        "retrying": summary["retrying"],
        "waiting_for_case": counts.get(ItemState.WAITING, 0),
        "failed": counts.get(ItemState.FAILED, 0),
        "failed_items": [{**item, "last_error": _text(item["last_error"])} for item in summary["failed_items"]],
        "before_cutover": counts.get(ItemState.BEFORE_CUTOVER, 0),
        "cutover": store.get_cursor(cutover_key(job)),
        **_ignored(store.ledger(kind).ignoring, counts.get(ItemState.IGNORED, 0), ("item_id", "integration_id")),
    }


def _ignored(ignoring, count: int, columns: tuple[str, ...]) -> dict[str, Any]:
    """What the firm gave up (`mycase-sync ignore`): how many, and the latest with why and when."""
    return {"ignored": count,
            "ignored_items": [{**row, "reason": _text(row["reason"]), "last_error": _text(row["last_error"])}
                              for row in ignoring.latest((*columns, "last_error"), SHOWN_ITEMS)]}


def _matter_rows(store: Store, state: str) -> list[dict]:
    return [{**row, "last_error": _text(row["last_error"])} for row in store.matters.latest_in_state(state, SHOWN_ITEMS)]


def reason_counts(store: Store, state: str, limit: int = SHOWN_ITEMS) -> list[dict[str, Any]]:
    """Why matters are skipped (or failed), most common reason first, with how many each."""
    return [{"reason": _text(reason) or "no reason recorded", "count": n} for reason, n in store.matters.reasons(state, limit)]


def _matters(store: Store) -> dict[str, Any]:
    counts = store.matters.count_by_state()
    return {
        "imported": counts.get(MatterState.SYNCED, 0),
        "pending": counts.get(MatterState.PENDING, 0),
        "failed": counts.get(MatterState.FAILED, 0),
        "skipped": counts.get(MatterState.SKIPPED, 0),
        "failed_items": _matter_rows(store, MatterState.FAILED),
        "skipped_items": _matter_rows(store, MatterState.SKIPPED),
        "skipped_reasons": reason_counts(store, MatterState.SKIPPED),
        **_ignored(store.matters.ignoring, counts.get(MatterState.IGNORED, 0), ("mycase_id", "readable_id")),
    }


SERVICES = ("MyCase", "Case Status")


def _pace(store: Store, ceilings: dict[str, float]) -> dict[str, Any]:
    """The pace each service was found to allow (requests/s) at the end of the last run that moved it."""
    known = store.pacing.read()
    return {service: {"rate": (known.get(service) or {}).get("rate"),
                      "refused": (known.get(service) or {}).get("refused"),
                      "updated_at": (known.get(service) or {}).get("updated_at"),
                      "ceiling": ceilings.get(service)} for service in SERVICES}


def collect(store: Store, now: dt.datetime | None = None, ceilings: dict[str, float] | None = None) -> dict[str, Any]:
    """Everything `status` shows, as one JSON-ready dict (keys documented in the README)."""
    now = now or utcnow()
    jobs = {}
    for job in JOBS:
        items = _ledger(store, job, LEDGER_JOBS[job]) if job in LEDGER_JOBS else _matters(store)
        jobs[job] = {
            "last_run": _run_summary(store.last_run(job, kind=RunKind.SCHEDULED)),
            "last_run_by_hand": _run_summary(store.last_run(job, kind=RunKind.BY_HAND)),
            "last_success": store.last_completed(job),
            "items": items,
        }
    report = {
        "checked_at": now.isoformat(),
        "state_store": str(store.path),
        "connection": connection_summary(store),
        "jobs": jobs,
        "pace": _pace(store, ceilings or {}),
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
            "pace": None, "problems": [line], "healthy": False}


def problems(report: dict, now: dt.datetime) -> list[str]:
    """One line per reason the sync is unhealthy; empty when all is well."""
    found: list[str] = []
    connection = connection_problem(report["connection"], now)
    if connection:
        found.append(connection)
    connected_at = parse_iso(report["connection"].get("connected_at"))
    new_installation = connected_at is not None and now - connected_at <= FIRST_RUN_GRACE
    for job, info in report["jobs"].items():
        run = info["last_run"] or {}
        if run.get("outcome") in STOPPED_ON and not (run["outcome"] == RunOutcome.AUTH and connection):
            found.append(f"{job}: the last run ({format_when(run['started_at'])}) stopped on"
                         f" {STOPPED_ON[run['outcome']]}: {run.get('error') or 'no reason recorded'}")
        last = parse_iso(info["last_success"])
        if last is None:
            if not new_installation:  # a new installation: "not yet run" for its first 26 hours
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


def report_for(app) -> dict[str, Any]:
    """The report for the configured state store, without creating one that does not exist."""
    path = Path(app.settings.db_path)
    ceilings = {"MyCase": app.settings.mycase_rate_limit, "Case Status": app.settings.casestatus_rate_limit}
    return collect(app.store, ceilings=ceilings) if path.exists() else missing_store_report(path)


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
    row("last completed", lambda job: format_when(jobs[job]["last_success"], "") if jobs[job]["last_success"]
        else "not yet run")
    row("imported / sent", lambda job: str(items[job].get("sent", items[job].get("imported", 0))))
    row("pending", lambda job: str(items[job]["pending"]))
    row("  after an error", lambda job: str(items[job]["retrying"]) if "retrying" in items[job] else "-")
    row("waiting for case", lambda job: str(items[job]["waiting_for_case"]) if "waiting_for_case" in items[job] else "-")
    row("failed", lambda job: str(items[job]["failed"]))
    row("skipped", lambda job: str(items[job]["skipped"]) if "skipped" in items[job] else "-")
    if any(items[job]["ignored"] for job in jobs):
        row("ignored", lambda job: str(items[job]["ignored"]))
    by_hand = {job: info["last_run_by_hand"] or {} for job, info in jobs.items()}
    if any(by_hand.values()):
        row("last run by hand", lambda job: " ".join(filter(None, (
            format_when(by_hand[job].get("started_at"), "") if by_hand[job] else "", by_hand[job].get("outcome")))))
    if any(items[job].get("before_cutover") for job in jobs):
        row("before cut-over", lambda job: str(items[job]["before_cutover"]) if "before_cutover" in items[job] else "-")
    return table


def _pace_text(service: str, pace: dict) -> str:
    """`MyCase 23.1/s (at most 25)`: the pace found at the end of the last run, and its ceiling."""
    found = f"{service} {round(pace['rate'], 1):g}/s" if pace["rate"] else f"{service} not found yet"
    return found + (f" (at most {pace['ceiling']:g})" if pace["ceiling"] else "")


def print_table(report: dict, console) -> None:
    """The report for a person, on a rich Console."""
    from rich.markup import escape

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
    say("Pace: " + ", ".join(_pace_text(service, pace) for service, pace in report["pace"].items()))
    for job, info in report["jobs"].items():
        for label, run in (("last run", info["last_run"]), ("last run by hand", info["last_run_by_hand"])):
            if run and run.get("error"):
                say(f"{job}: {label} ended with: {run['error']}")
    matters = report["jobs"]["import-matters"]["items"]
    for item in matters["failed_items"]:
        say(f"  failed: MyCase case {item['mycase_id']} ({item['readable_id'] or 'no number'}):"
            f" {item['last_error'] or 'no reason recorded'}")
    for group in matters["skipped_reasons"]:
        say(f"  skipped {group['count']}: {group['reason']}")
    for item in matters["ignored_items"]:
        say(f"  ignored: MyCase case {item['mycase_id']} ({item['readable_id'] or 'no number'}) since"
            f" {format_when(item['ignored_at'])}: {item['reason'] or 'no reason given'}")
    for job, kind in LEDGER_JOBS.items():
        for item in report["jobs"][job]["items"]["failed_items"]:
            say(f"  failed: Case Status {kind} {item['item_id']} (MyCase case {item['integration_id']},"
                f" {item['attempts']} attempts): {item['last_error'] or 'no reason recorded'}")
        for item in report["jobs"][job]["items"]["ignored_items"]:
            say(f"  ignored: Case Status {kind} {item['item_id']} (MyCase case {item['integration_id']}) since"
                f" {format_when(item['ignored_at'])}: {item['reason'] or 'no reason given'}")
    if report["problems"]:
        say("Problems:", "bold red")
        for line in report["problems"]:
            say(f"  - {line}")
    else:
        say("Healthy.", "green")
