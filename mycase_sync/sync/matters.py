"""import-matters: every open and closed MyCase matter, once in Case Status, kept in step.

Flow: MyCase pages (read on this thread, 1000 at a time) -> mapping.map_matter (pure) -> a bounded
pool of workers writing to Case Status -> one row per matter in the store's `matters` table,
committed on this thread as each matter finishes. Nothing is held back for the end of the run,
and memory stays flat: pages are streamed, at most workers × 4 matters are in flight, and the
mapping table is read one row at a time.

Exactly once, whatever happens:
- `matters` keeps MyCase id -> Case Status id and the fields Case Status holds (with their hash).
  Unchanged matter: no request. Changed: one PATCH with the changed fields only (a stage only when
  it changed: each stage write sends the client a survey), and close/reopen for the status.
- Before a matter's writes are sent its row is marked `pending`. A write whose outcome is unknown
  (timeout, dropped connection, crash, kill -9) leaves it `pending`, and the next run first reads
  the case as Case Status holds it (by integration_id) and writes only the difference.
- A new matter is looked up by integration_id first (it may exist from a crashed run or the hosted
  integration), then created (closed ones in the same request); a 409 adopts the existing case.
  During the backfill (no import completed yet) the lookup is one read of the whole Case Status
  case list at the start (100 cases a request) instead of one request per matter: half the
  requests of a 10-year backfill.

Which matters (the window): the first run and --full take everything updated in the last 10
years; later runs take what was updated since the earlier of (start − 30 days) and (start of the
last successful import − 1 day, for clocks that disagree); --since sets it by hand; --case takes just those ids. Matters that
failed, whose write is pending, or that wait for their lead attorney's Case Status user (now
present) are retried by id even outside the window.

When the window moves: the run's start time (taken before the first request: MyCase lists have no
order, so only the start is a safe bound) is saved after all of the run's writes are committed, and
only when the run went through: a run that stopped (exception, exit 75 or 3) never moves it. A
partial run (some matters failed, exit 1) moves it, because each failed matter is queued in the
store and retried by id; a record whose id could not be read cannot be queued, so then it does not
move. --since moves it only when it reached back at least as far as a normal run; --case and
--dry-run never do.

Skipped (reported, exit code unchanged): no attorney on the case, a lead attorney who is not a
Case Status user. These are the firm's to fix, not failures of the run: they are logged at
WARNING once when they first appear (so cron mails once), then at INFO. They are retried when the
matter changes in MyCase (it comes back in the window) or, for a missing user, as soon as the user
exists. Failed (exit 1, retried by id next run): broken records (unknown staff id, unparseable
date, no Case ID at all, ...), and Case Status refusals (422).

--dry-run reads both services (lists, lookups) and reports what would be written; it writes
nothing to either service nor to the store (no run row, no matter rows, no window), apart from a
MyCase token refresh, which must be saved since refresh tokens are single-use.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import logging
import threading
import time
from collections import Counter, deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from mycase_sync.casestatus import client as cs
from mycase_sync.errors import EXIT_OK, EXIT_PARTIAL, OutcomeUnknown, ServiceError, TemporaryError
from mycase_sync.locks import job_lock
from mycase_sync.mycase import client as mc
from mycase_sync.output import Progress
from mycase_sync.report import ReportRow, open_report
from mycase_sync.store import iso, utcnow
from mycase_sync.sync.mapping import (
    FAILED, SKIPPED, MappedMatter, MappingProblem, apply_step, as_int, case_id_of, check_lead_is_user, fields_hash,
    held_from_case, index_staff, map_matter, normal_lower_bound, parse_timestamp, plan_writes,
)

log = logging.getLogger(__name__)

JOB = "import-matters"
CURSOR_KEY = "last_success_start"
IN_FLIGHT_PER_WORKER = 4
SYNCED, PENDING = "synced", "pending"
ABSENT: dict = {}  # "read, and not there" (a distinct object: compared with `is`)
UNAVAILABLE = (429, 502, 503, 504)  # after the HTTP layer's retries: the service is down, not this record
ACTIONS = ("created", "updated", "closed", "reopened", "unchanged", "skipped", "failed")


@dataclass
class Row:
    """A matter as the store knows it."""

    mycase_id: str
    casestatus_id: int | None
    fields: dict | None  # what Case Status is known to hold
    fields_hash: str | None
    state: str | None
    attempts: int
    last_error: str | None

    @property
    def trusted(self) -> bool:
        """The stored fields are what Case Status holds (no write of unknown outcome since)."""
        return self.casestatus_id is not None and self.fields is not None and self.state != PENDING


@dataclass
class Outcome:
    """What one worker did for one matter (recorded on the main thread)."""

    matter: MappedMatter
    action: str
    casestatus_id: int | None = None
    held: dict | None = None  # what Case Status holds now, as far as we know
    changed: list[str] = field(default_factory=list)
    state: str = SYNCED
    error: str | None = None
    temporary: TemporaryError | None = None
    adopted: bool = False


class ImportRun:
    def __init__(self, app, run_id: str, dry_run: bool, create_staff: bool, report):
        self.app = app
        self.settings = app.settings
        self.store = app.store
        self.mycase = app.mycase
        self.casestatus = app.casestatus
        self.run_id = run_id
        self.dry_run = dry_run
        self.create_staff = create_staff
        self.report = report
        self.counts: Counter = Counter({a: 0 for a in ACTIONS})
        self.with_notes = 0
        self.unqueued = 0  # failures the store could not queue for retry (no usable id)
        self.temporary: TemporaryError | None = None
        self.unavailable = threading.Event()  # a worker found Case Status down: the others stop writing
        self.staff: dict = {}
        self.users: set[str] = set()
        self.retry: set[str] = set()
        self.floor: dt.datetime | None = None  # listed matters older than this are outside the window
        self.pool = ThreadPoolExecutor(max_workers=self.settings.workers, thread_name_prefix="casestatus")
        self.in_flight: dict[Future, str] = {}
        self.window = self.settings.workers * IN_FLIGHT_PER_WORKER
        self.progress: Progress | None = None
        self.prefetched = False

    # --- a backfill reads the Case Status case list once instead of one lookup per matter ---------
    def prefetch_cases(self) -> None:
        """Every Case Status case with an integration_id, into a TEMP table (memory stays flat; the
        store file is not written): a first backfill then needs no lookup per new matter. A case
        created meanwhile by someone else is refused with 409 at create time and adopted."""
        db = self.store.db
        with self.store.transaction():
            db.execute("create temp table if not exists casestatus_cases"
                       " (integration_id text primary key, case_json text)")
            db.execute("delete from casestatus_cases")
        batch: list[tuple[str, str]] = []
        for case in self.casestatus.iter_all(cs.CASES):
            iid = case.get(cs.F_INTEGRATION_ID) if isinstance(case, dict) else None
            if iid:
                batch.append((str(iid), json.dumps(case)))
            if len(batch) >= cs.PAGE_SIZE:
                self._save_prefetched(batch)
        self._save_prefetched(batch)
        self.prefetched = True

    def _save_prefetched(self, batch: list) -> None:
        if batch:
            with self.store.transaction() as db:
                db.conn.executemany("insert or replace into casestatus_cases values (?, ?)", batch)
            batch.clear()

    def prefetched_case(self, mycase_id: str) -> dict | None:
        """The case read at the start of the run, ABSENT when there was none, None when nothing was read."""
        if not self.prefetched:
            return None
        found = self.store.db.execute("select case_json from casestatus_cases where integration_id = ?",
                                      [mycase_id]).fetchone()
        return json.loads(found[0]) if found else ABSENT

    # --- reading ----------------------------------------------------------------------------
    def load_people(self) -> None:
        """MyCase staff and Case Status users, once per run (not once per matter)."""
        self.staff = index_staff(self.mycase.list_staff())
        self.users = {str(u.get(cs.USER_EMAIL) or "").strip().lower() for u in self.casestatus.list_users()}
        self.users.discard("")

    def load_retry_set(self) -> None:
        """Ids retried by id whatever the window: failed, pending, and skipped ones whose user now exists."""
        for mid, state, waiting in self.store.db.execute(
                "select mycase_id, state, waiting_for from matters where state in (?, ?)"
                " or (state = ? and waiting_for is not null)", [FAILED, PENDING, SKIPPED]).fetchall():
            if state != SKIPPED or self.create_staff or (waiting or "").lower() in self.users:
                self.retry.add(mid)

    def row(self, mycase_id: str) -> Row | None:
        found = self.store.db.execute(
            "select casestatus_id, fields, fields_hash, state, attempts, last_error from matters where mycase_id = ?",
            [mycase_id]).fetchone()
        if found is None:
            return None
        cs_id, fields, digest, state, attempts, error = found
        return Row(mycase_id, cs_id, json.loads(fields) if fields else None, digest, state, attempts or 0, error)

    # --- one matter, on the main thread ---------------------------------------------------------
    def take(self, case: Any, listed: bool) -> None:
        if self.temporary is not None:
            raise self.temporary
        if not isinstance(case, dict):
            self.problem(None, {}, MappingProblem(FAILED, f"a case record is not an object: {type(case).__name__}"))
            return
        mid = case_id_of(case)
        if mid is not None:
            self.retry.discard(mid)
            if mid in self.in_flight.values():  # the same case twice in one run: finish the first
                self.collect(until=lambda: mid not in self.in_flight.values())
        try:
            matter = map_matter(case, self.staff, self.settings.phone_region)
            if listed and self.outside_window(matter):
                self.finish_report(matter.mycase_id, matter.readable_id, SKIPPED, [],
                                   f"outside the window (updated before {self.floor:%Y-%m-%d})")
                self.counts[SKIPPED] += 1
                return
            self.ensure_lead(matter)
        except MappingProblem as problem:
            self.problem(mid, case, problem)
            return
        row = self.row(matter.mycase_id)
        if row is not None and row.trusted and row.fields_hash == fields_hash(matter.fields):
            self.unchanged(matter, row)
            return
        if not self.dry_run:
            self.mark_pending(matter, row)
        found = self.prefetched_case(matter.mycase_id) if row is None or not row.trusted else None
        future = self.pool.submit(self.sync_case, matter, row, found)
        self.in_flight[future] = matter.mycase_id
        self.collect(until=lambda: len(self.in_flight) < self.window)

    def outside_window(self, matter: MappedMatter) -> bool:
        """A defence against a list that ignored the filter: never import what the window excludes."""
        times = [t for t in (matter.created_at, matter.updated_at) if t is not None]
        return self.floor is not None and len(times) == 2 and max(times) < self.floor

    def ensure_lead(self, matter: MappedMatter) -> None:
        """The lead attorney must be a Case Status user; --create-staff creates one, else skip."""
        email = matter.lead.email or ""
        if email.lower() in self.users or not self.create_staff:
            check_lead_is_user(matter, self.users)
            return
        lead = matter.lead
        if self.dry_run:
            matter.notes.append(f"would create Case Status user {email} for lead attorney {lead.name}")
        else:
            try:
                self.casestatus.create_user(email, lead.first_name or email.split("@")[0], lead.last_name or "-",
                                            cs.ROLE_ATTORNEY)
            except ServiceError as exc:
                raise MappingProblem(FAILED, f"could not create Case Status user {email}: {exc}") from None
            self.counts["users_created"] += 1
            matter.notes.append(f"created Case Status user {email} for lead attorney {lead.name}")
            log.info("created Case Status user %s for lead attorney %s", email, lead.name)
        self.users.add(email.lower())

    def mark_pending(self, matter: MappedMatter, row: Row | None) -> None:
        """Before any write is sent: a crash from here on makes the next run read Case Status first."""
        with self.store.transaction() as db:
            if row is None:
                db["matters"].insert({"mycase_id": matter.mycase_id, "readable_id": matter.readable_id,
                                      "state": PENDING, "attempts": 0, "updated_at": iso(utcnow())})
            else:
                db.execute("update matters set state = ?, updated_at = ? where mycase_id = ?",
                           [PENDING, iso(utcnow()), matter.mycase_id])

    def unchanged(self, matter: MappedMatter, row: Row) -> None:
        if row.state != SYNCED and not self.dry_run:  # e.g. a failure fixed in MyCase back to what was written
            with self.store.transaction() as db:
                db.execute("update matters set state = ?, last_error = null, waiting_for = null, attempts = 0,"
                           " readable_id = ?, updated_at = ? where mycase_id = ?",
                           [SYNCED, matter.readable_id, iso(utcnow()), matter.mycase_id])
        self.counts["unchanged"] += 1
        self.finish(matter, "unchanged", [], "; ".join(matter.notes))

    def problem(self, mid: str | None, case: dict, problem: MappingProblem) -> None:
        """A matter that cannot be written: recorded (and so retried) with its reason."""
        readable = _readable(case)
        if mid is None:
            self.unqueued += 1
            mid_text = str(case.get(mc.CASE_ID)) if isinstance(case, dict) else "?"
            log.warning("matter %s (%s): %s: %s (cannot be queued for retry)", mid_text, readable or "no Case ID",
                        problem.kind, problem.reason)
            self.finish_report(mid_text, readable, FAILED, [], problem.reason)
            self.counts[FAILED] += 1
            return
        row = self.row(mid)
        first_time = row is None or row.state != problem.kind or row.last_error != problem.reason
        level = logging.WARNING if problem.kind == FAILED or first_time else logging.INFO
        log.log(level, "matter %s (%s): %s: %s", mid, readable or "no Case ID", problem.kind, problem.reason)
        if not self.dry_run:
            attempts = (row.attempts if row else 0) + (1 if problem.kind == FAILED else 0)
            with self.store.transaction() as db:
                db["matters"].upsert({"mycase_id": mid, "readable_id": readable, "state": problem.kind,
                                      "attempts": attempts, "last_error": problem.reason,
                                      "waiting_for": problem.waiting_for, "updated_at": iso(utcnow())},
                                     pk="mycase_id")
        self.counts[problem.kind] += 1
        self.finish_report(mid, readable, problem.kind, [], problem.reason)

    # --- one matter, in a worker ----------------------------------------------------------------
    def sync_case(self, matter: MappedMatter, row: Row | None, found: dict | None = None) -> Outcome:
        """Read what must be read, write only the difference; never raises for one matter's trouble.

        On trouble the outcome's state says what the next run may trust: FAILED when we know what
        Case Status holds (a refusal changed nothing), PENDING when we do not (a write without an
        answer, a gateway error on a write, a read that never happened): then it reads first.
        """
        api = self.casestatus
        wanted = matter.fields
        out = Outcome(matter, FAILED)
        if self.unavailable.is_set():  # queued before another worker found Case Status down: not tried
            out.state, out.error = (PENDING if row is None or not row.trusted else row.state), "not tried: Case Status unavailable"
            out.temporary = TemporaryError("Case Status unavailable")
            return out
        known = row is not None and row.trusted  # do we know what Case Status holds?
        writing = False
        retried = True  # the request that failed was repeated by the HTTP layer before giving up
        try:
            if known:
                out.held, out.casestatus_id = row.fields, row.casestatus_id
            else:
                if found is None:  # no list read at the start of this run: look it up
                    found = api.find_case(matter.mycase_id)
                elif found is ABSENT:
                    found = None
                known = True
                if found is not None:
                    out.held, out.casestatus_id = held_from_case(found), as_int(found.get(cs.F_ID))
                    out.adopted = row is None or row.casestatus_id is None
            if out.held is None:
                if self.dry_run:
                    return Outcome(matter, "created", changed=_filled(wanted))
                writing, retried = True, True
                cs_id, created = api.create_case(wanted)
                writing = False
                if created:
                    return Outcome(matter, "created", cs_id, dict(wanted), _filled(wanted))
                known = False  # 409: it exists after all; adopt it and write the difference
                found = api.find_case(matter.mycase_id)
                if found is None:
                    raise ServiceError(cs.SERVICE, "POST", cs.CASES, 409, "exists, but cannot be found by integration_id")
                known, out.casestatus_id, out.held, out.adopted = True, cs_id, held_from_case(found), True
            plan = plan_writes(wanted, out.held)
            if plan.empty:
                out.action = "unchanged"
                return out
            out.changed = plan.changed_fields()
            action = "reopened" if plan.reopen else "closed" if plan.close else "updated"
            if self.dry_run:
                out.action = action
                return out
            cs_id = out.casestatus_id
            for step, send in (("reopen", plan.reopen and (lambda: api.reopen_case(cs_id))),
                               ("patch", plan.patch and (lambda: api.update_case(cs_id, plan.patch))),
                               ("close", plan.close and (lambda: api.close_case(cs_id, plan.closed_date)))):
                if send:
                    writing = True
                    retried = step != "patch" or cs.F_STAGE not in plan.patch  # a stage PATCH is sent once
                    send()
                    writing = False
                    out.held = apply_step(out.held, step, plan)
            out.action = action
            return out
        except OutcomeUnknown as exc:
            out.state, out.error = PENDING, f"{exc} (Case Status is read again before the next write)"
        except ServiceError as exc:
            if exc.status in UNAVAILABLE and retried:  # still after the retries: Case Status is down, stop
                out.temporary = TemporaryError(f"Case Status unavailable: {exc}")
                self.unavailable.set()
            if exc.status == 404 and out.casestatus_id is not None:
                out.state, out.error = PENDING, f"case {out.casestatus_id} is no longer in Case Status: {exc}"
            elif not known or (writing and (exc.status is None or exc.status >= 500)):
                # A gateway error on a write may hide a write that landed: read before writing again.
                out.state, out.error = PENDING, f"{exc} (Case Status is read again before the next write)"
            else:
                out.state, out.error = FAILED, str(exc)
        except TemporaryError as exc:
            out.state, out.error, out.temporary = PENDING, str(exc), exc
            self.unavailable.set()
        out.action = FAILED
        return out

    # --- results, on the main thread ------------------------------------------------------------
    def collect(self, until: Callable[[], bool]) -> None:
        while self.in_flight and not until():
            done, _ = wait(list(self.in_flight), return_when=FIRST_COMPLETED)
            for future in done:
                self.in_flight.pop(future)
                self.record(future.result())

    def record(self, out: Outcome) -> None:
        matter = out.matter
        if not self.dry_run:
            row = {"mycase_id": matter.mycase_id, "readable_id": matter.readable_id, "state": out.state,
                   "waiting_for": None, "updated_at": iso(utcnow())}
            if out.casestatus_id is not None:
                row["casestatus_id"] = out.casestatus_id
            if out.held is not None:
                row["fields"] = json.dumps(out.held, sort_keys=True, ensure_ascii=False)
                row["fields_hash"] = fields_hash(out.held)
            with self.store.transaction() as db:
                if out.state == SYNCED:
                    row.update(attempts=0, last_error=None)
                else:
                    previous = db.execute("select attempts from matters where mycase_id = ?", [matter.mycase_id]).fetchone()
                    tries = (previous[0] or 0) if previous else 0
                    # Case Status down is not the matter's fault: no attempt counted against it.
                    row.update(attempts=tries + (0 if out.temporary else 1), last_error=out.error)
                db["matters"].upsert(row, pk="mycase_id")
        if out.error is not None:
            if out.temporary is not None and self.temporary is None:
                self.temporary = out.temporary
            # Case Status down is said once, by the run's exit-75 line; not once per matter in flight.
            log.log(logging.INFO if out.temporary else logging.WARNING, "matter %s (%s): failed: %s",
                    matter.mycase_id, matter.readable_id, out.error)
            self.counts[FAILED] += 1
            self.finish(matter, FAILED, out.changed, out.error)
            return
        self.counts[out.action] += 1
        extra = ["already in Case Status: adopted"] if out.adopted else []
        self.finish(matter, out.action, out.changed, "; ".join(extra + matter.notes))

    def finish(self, matter: MappedMatter, action: str, changed: list[str], reason: str) -> None:
        if matter.notes:
            self.with_notes += 1
            log.debug("matter %s (%s): %s", matter.mycase_id, matter.readable_id, "; ".join(matter.notes))
        self.finish_report(matter.mycase_id, matter.readable_id, action, changed, reason)

    def finish_report(self, mid: str, readable: str | None, action: str, changed: list[str], reason: str) -> None:
        shown = f"would {_VERB[action]}" if self.dry_run and action in _VERB else action
        self.report.write(ReportRow(mid, readable, shown, changed, reason))
        if self.progress is not None:
            self.progress.advance()

    # --- the run --------------------------------------------------------------------------------
    def retry_by_id(self) -> None:
        """Read each matter to retry by id and take it, in id order.

        The reads overlap, `workers` at a time: each is one MyCase round trip (0.9 s to 20 s live), and
        read one after another they made a quiet night on a big firm wait on them alone. The window
        stays small so that memory stays flat and an outage stops the run soon.
        """
        order = iter(sorted(self.retry, key=lambda v: (len(v), v)))
        readers = ThreadPoolExecutor(max_workers=self.settings.workers, thread_name_prefix="mycase")
        ahead: deque[tuple[str, Future]] = deque()
        try:
            while True:
                for mid in itertools.islice(order, self.settings.workers - len(ahead)):
                    ahead.append((mid, readers.submit(self.mycase.get_case, mid)))
                if not ahead:
                    break
                mid, reading = ahead.popleft()
                if self.temporary is not None:
                    raise self.temporary
                try:
                    case = reading.result()
                except ServiceError as exc:
                    if exc.status in UNAVAILABLE:
                        raise
                    self.problem(mid, {}, MappingProblem(FAILED, f"could not read it from MyCase: {exc}"))
                    continue
                if case is None:
                    self.problem(mid, {}, MappingProblem(SKIPPED, "no longer in MyCase (deleted); not retried"))
                    continue
                self.take(case, listed=False)
        finally:
            readers.shutdown(wait=True, cancel_futures=True)
        self.retry.clear()

    def drain(self) -> None:
        self.collect(until=lambda: False)
        if self.temporary is not None:
            raise self.temporary

    def shutdown(self) -> None:
        """After an error: let started writes finish and record them, cancel the rest (they stay pending)."""
        self.pool.shutdown(wait=True, cancel_futures=True)
        for future, _ in list(self.in_flight.items()):
            if future.done() and not future.cancelled() and future.exception() is None:
                try:
                    self.record(future.result())
                except Exception:  # already failing: the row stays pending, the next run reads Case Status
                    log.debug("could not record a finished matter while stopping", exc_info=True)
        self.in_flight.clear()


_VERB = {"created": "create", "updated": "update", "closed": "close", "reopened": "reopen"}


def _filled(fields: dict) -> list[str]:
    return sorted(k for k, v in fields.items() if v not in (None, [], ""))


def _readable(case: dict) -> str | None:
    if not isinstance(case, dict):
        return None
    for key in (mc.CASE_NUMBER, mc.CASE_NAME):
        value = case.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


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
    last = parse_timestamp(cursor.get(CURSOR_KEY))
    normal = normal_lower_bound(start, last, full)
    bound = since or normal
    moves_window = not dry_run and not case_ids and bound <= normal
    try:
        with Progress("Importing matters") as progress, _unavailable_is_temporary():
            run.progress = progress
            run.load_people()
            if case_ids:
                scope = f"case{'s' if len(case_ids) > 1 else ''} {', '.join(case_ids)}"
                for mid in case_ids:
                    case = app.mycase.get_case(mid)
                    if case is None:
                        run.finish_report(mid, None, FAILED, [], "not found in MyCase")
                        log.warning("matter %s: not found in MyCase", mid)
                        run.counts[FAILED] += 1
                        continue
                    run.take(case, listed=False)
            else:
                if last is None:  # no import has completed yet: this is the backfill
                    run.prefetch_cases()
                run.load_retry_set()
                run.floor = bound.replace(microsecond=0)  # as sent: the filter is whole seconds
                scope = f"matters updated since {bound:%Y-%m-%d %H:%M} UTC" + (
                    " (--since)" if since else " (10 years)" if bound == normal and (full or last is None) else "")
                for page in app.mycase.iter_case_pages(updated_after=_as_param(bound)):
                    for case in page:
                        run.take(case, listed=True)
                run.retry_by_id()
            run.drain()
    except BaseException:
        run.shutdown()
        writer.close()
        raise
    run.pool.shutdown(wait=True)
    writer.close()
    if moves_window and run.unqueued == 0:
        store.set_cursor(JOB, {CURSOR_KEY: iso(start), "window_from": iso(bound), "run_id": run_id})
    counts = {k: v for k, v in run.counts.items() if v or k in ACTIONS}
    _summary(run, scope, time.monotonic() - began, app)
    return counts


def _summary(run: ImportRun, scope: str, seconds: float, app) -> None:
    c = run.counts
    words = ", ".join(f"{c[a]} {a}" for a in ACTIONS)
    if c.get("users_created"):
        words += f", {c['users_created']} Case Status users created"
    prefix = "dry run, nothing written: would have " if run.dry_run else ""
    notes = f"; {run.with_notes} imported with notes (see --report)" if run.with_notes else ""
    # With failures the totals go to cron's mail too, under the failures listed one per line.
    level = logging.WARNING if c[FAILED] else logging.INFO
    log.log(level, "import-matters: %s%s (%s)%s; %d MyCase and %d Case Status requests in %.1f s", prefix, words,
            scope, notes, app.mycase.session.requests_sent, app.casestatus.session.requests_sent, seconds)
