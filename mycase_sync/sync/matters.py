"""import-matters: every open and closed MyCase matter, once in Case Status, kept in step.

Which matters (the window): the first run and --full take everything updated in the last 10
years; later runs take what was updated since the earlier of (start − 30 days) and (start of the
last successful import − 1 day, for clocks that disagree); --since sets it by hand; --case takes just those ids. Matters that
failed, whose write is pending, or that wait for their lead attorney's Case Status user (now
present) are retried by id even outside the window. So are the imported matters of the clients
created or edited in the window (GET /clients), unless the window's listing brings them anyway:
editing a client need not change its cases' updated_at (not documented), and a client's new mobile
number must reach Case Status, or the client cannot log in. The backfill and --full read no clients.

When the window moves: the run's start time (taken before the first request: MyCase lists have no
order, so only the start is a safe bound) is saved after all of the run's writes are committed, and
only when the run went through: a run that stopped (exception, exit 75 or 3) never moves it. A
partial run (some matters failed, exit 1) moves it, because each failed matter is queued in the
store and retried by id; a record whose id could not be read cannot be queued, so then it does not
move. --since moves it only when it reached back at least as far as a normal run; --case and
--dry-run never do.

How each matter is read, mapped, written and recorded: import_run.py.

--dry-run reads both services (lists, lookups) and reports what would be written; it writes
nothing to either service nor to the store (no run row, no matter rows, no window), apart from a
MyCase token refresh, which must be saved since refresh tokens are single-use.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from typing import Iterator

from mycase_sync.errors import ServiceError, TemporaryError
from mycase_sync.report import open_report
from mycase_sync.sync.import_run import SHOWN_OUTCOMES, ImportRun
from mycase_sync.sync.import_summary import ACTIONS, OUTSIDE_WINDOW, left_out, summary
from mycase_sync.sync.mapping import normal_lower_bound
from mycase_sync.values import iso, parse_iso, utcnow

log = logging.getLogger(__name__)

JOB = "import-matters"
CURSOR_KEY = "last_success_start"


@contextlib.contextmanager
def _unavailable_is_temporary() -> Iterator[None]:
    """A list or staff read that still gets 5xx/429 after the retries: the service is down for now (exit 75)."""
    try:
        yield
    except TemporaryError:
        raise
    except ServiceError as exc:
        if exc.status is None or exc.status >= 500 or exc.status == 429:
            raise TemporaryError(f"{exc}; try again later") from None
        raise


def _as_param(moment: dt.datetime) -> str:
    """filter[updated_after] is inclusive: whole seconds, rounded down, in UTC."""
    return moment.astimezone(dt.timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def import_matters(app, run_id: str, full: bool = False, since: dt.datetime | None = None,
                   case_ids: list[str] | None = None, dry_run: bool = False, report: str | None = None,
                   create_staff: bool = False) -> dict:
    """The import-matters job (see the module docstring); returns the counts for the run record."""
    start = utcnow()  # before the first request: the bound the next run starts from
    began = time.monotonic()
    case_ids = [c.strip() for c in case_ids or []]
    app.mycase.tokens.ensure_connected()
    writer = open_report(report)
    run = ImportRun(app, run_id, dry_run, create_staff, writer)
    store = app.store
    cursor = store.get_cursor(JOB) or {}
    last = parse_iso(cursor.get(CURSOR_KEY))
    normal = normal_lower_bound(start, last, full)
    bound = since or normal
    moves_window = not dry_run and not case_ids and bound <= normal
    ten_years = not case_ids and not since and bound == normal and (full or last is None)
    try:
        with app.progress(JOB + (" (dry run)" if dry_run else ""), outcomes=SHOWN_OUTCOMES) as progress:
            run.progress = progress
            try:
                with _unavailable_is_temporary():
                    run.load_people()
                    if case_ids:
                        scope = f"case{'s' if len(case_ids) > 1 else ''} {', '.join(case_ids)}"
                        run.take_ids(case_ids)
                    else:
                        if last is None:  # no import has completed yet: this is the backfill
                            run.prefetch_cases()
                        run.load_retry_set()
                        run.floor = bound.replace(microsecond=0)  # as sent: the filter is whole seconds
                        if last is not None:  # a nightly run: what it retries is mostly outside its window
                            run.read_ahead()
                        if last is not None and not full:
                            added = run.add_client_changes(_as_param(bound))
                            if added:
                                log.info("clients edited since %s: %d of their imported matters are read by id "
                                         "unless listed", _as_param(bound), added)
                        scope = f"matters updated since {bound:%Y-%m-%d %H:%M} UTC" + (
                            " (--since)" if since else " (10 years)" if ten_years else "")
                        run.show_total(_as_param(bound))
                        for page in app.mycase.iter_case_pages(updated_after=_as_param(bound)):
                            for case in page:
                                run.take(case, listed=True)
                        run.retry_by_id()
                    run.drain()
            except BaseException:
                run.shutdown()  # inside the progress display: what an interruption says it did includes these
                raise
    except BaseException:
        writer.close()
        raise
    run.pool.shutdown(wait=True)
    writer.close()
    run.keep_staff_gone()
    if moves_window and run.unqueued == 0:
        store.set_cursor(JOB, {CURSOR_KEY: iso(start), "window_from": iso(bound), "run_id": run_id})
    if ten_years:
        older = left_out(app, _as_param(bound))
        if older is not None:
            run.counts[OUTSIDE_WINDOW] = older
            scope += f"; {older} older matter{'s' if older != 1 else ''} left out"
    counts = {k: v for k, v in run.counts.items() if v or k in ACTIONS}
    summary(run, scope, time.monotonic() - began, app, report)
    return counts

