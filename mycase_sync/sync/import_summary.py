"""The words of import-matters' summary line, and the count of the matters its 10-year window left out.

One line per run (WARNING when matters failed, so cron mails it under the failures; INFO otherwise):
what was done or, in a dry run, what would be, with the users --create-staff would create, the
report only when one was asked for, and the requests it took.
"""

from __future__ import annotations

import logging

log = logging.getLogger("mycase_sync.sync.matters")  # the job's own logger: its lines read as one

ACTIONS = ("created", "updated", "closed", "reopened", "unchanged", "skipped", "failed")
VERB = {"created": "create", "updated": "update", "closed": "close", "reopened": "reopen"}
OUTSIDE_WINDOW = "outside_window"  # a 10-year run's count of the matters MyCase holds that it left out
SHOWN_USERS = 20  # a dry run names at most this many users it would create


def left_out(app, updated_after: str) -> int | None:
    """How many matters MyCase holds that were last updated before the 10-year window, counted at
    one moment (both totals by Item-Count); None when MyCase does not say."""
    everything = app.mycase.count_cases()
    recent = app.mycase.count_cases(updated_after=updated_after) if everything is not None else None
    return None if recent is None else max(0, everything - recent)


def summary(run, scope: str, seconds: float, app, report: str | None) -> None:
    """Log the run's line; `run` is the ImportRun (counts, dry_run, with_notes, users_to_create)."""
    c = run.counts
    if run.dry_run:
        words = ("dry run, nothing written: would " + ", ".join(f"{VERB[a]} {c[a]}" for a in VERB) + "; "
                 + ", ".join(f"{c[a]} {a}" for a in ACTIONS if a not in VERB))
        if run.users_to_create:
            named = [f"{name} <{email}>" for email, name in sorted(run.users_to_create.items())]
            more = f" and {len(named) - SHOWN_USERS} more" if len(named) > SHOWN_USERS else ""
            words += (f"; would create {len(named)} Case Status user{'s' if len(named) > 1 else ''} for lead"
                      f" attorneys: {', '.join(named[:SHOWN_USERS])}{more}")
    else:
        words = ", ".join(f"{c[a]} {a}" for a in ACTIONS)
        if c.get("users_created"):
            words += f", {c['users_created']} Case Status users created"
    notes = ""
    if run.with_notes:
        notes = f"; {run.with_notes} with notes" + (f" (see {report})" if report else " (-v shows them)")
    # With failures the totals go to cron's mail too, under the failures listed one per line.
    level = logging.WARNING if c["failed"] else logging.INFO
    log.log(level, "import-matters: %s (%s)%s; %d MyCase and %d Case Status requests in %.1f s", words,
            scope, notes, app.mycase.session.requests_sent, app.casestatus.session.requests_sent, seconds)

