"""One import-matters run at work: each matter read, mapped, written by a worker, and recorded.

Flow, for each matter: fetch (MyCase pages, read on this thread, 1000 at a time) -> map
(mapping.map_matter, pure) -> write (matter_sync.sync_matter, in a bounded pool of workers: the
writes it needs, planned by mapping.plan_writes) -> record (store.matters.record, on this thread, as
each matter finishes). Nothing is held back for the end of the run,
and memory stays flat: pages are streamed, at most workers × 4 matters are in flight, and the
mapping table is read one row at a time.

Exactly once, whatever happens: the store keeps MyCase id -> Case Status id and the fields Case
Status holds (with their hash); an unchanged matter costs no request, a changed one only the
difference. Before a matter's writes are sent its row is marked pending, so a write whose outcome
is unknown (timeout, dropped connection, crash, kill -9) makes the next run read the case first
(matter_sync.py says how). During the backfill (no import completed yet) that lookup is one read
of the whole Case Status case list at the start (100 cases a request) instead of one request per
matter: half the requests of a 10-year backfill.

Skipped (reported, exit code unchanged): no attorney on the case, a lead attorney who is not a
Case Status user. These are the firm's to fix, not failures of the run: they are logged at
WARNING once when they first appear (so cron mails once), then at INFO. They are retried when the
matter changes in MyCase (it comes back in the window) or, for a missing user, as soon as the user
exists. Failed (exit 1, retried by id next run): broken records (a lead attorney unknown to MyCase
even by id, an unparseable date, no Case ID at all, ...), and Case Status refusals (422). Other
staff that neither /staff list holds are asked for by id; one not found even so is left off the
matter (said in its report), which still syncs.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Callable

from mycase_sync.casestatus import client as cs
from mycase_sync.errors import ServiceError, TemporaryError
from mycase_sync.mycase import client as mc
from mycase_sync.report import ReportRow
from mycase_sync.signals import check as check_signals
from mycase_sync.sync.import_summary import ACTIONS, VERB
from mycase_sync.store import MatterState
from mycase_sync.store.matters import CaseIndex, MatterRow
from mycase_sync.sync.mapping import (
    MappedMatter, MappingProblem, case_id_of, cases_of_client, check_lead_is_user, fields_hash, map_matter,
)
from mycase_sync.sync.matter_sync import ABSENT, STALE, UNAVAILABLE, Lookup, Outcome, StaffUsers, sync_matter
from mycase_sync.sync.read_ahead import ReadAhead
from mycase_sync.sync.staff import StaffDirectory

log = logging.getLogger(__name__)

IN_FLIGHT_PER_WORKER = 4
# Writes in a row that got no usable answer (a gateway error, a timeout, a dropped connection): Case
# Status is down, not these matters. One such write is not repeated (it may have landed), so the
# run would otherwise go on sending every matter once to a service that is not there.
FAULTS_IN_A_ROW = 5
FAILED, SKIPPED, SYNCED, PENDING = MatterState.FAILED, MatterState.SKIPPED, MatterState.SYNCED, MatterState.PENDING
IGNORED = MatterState.IGNORED
SHOWN_OUTCOMES = ("created", "updated", "unchanged", "skipped", "failed")  # on the bar from the start


class ImportRun:
    """One run's state: the people read once, the matters to retry, the workers and what is in flight."""

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
        self.users_to_create: dict[str, str] = {}  # a dry run's users it would create: email -> attorney
        self.unqueued = 0  # failures the store could not queue for retry (no usable id)
        self.temporary: TemporaryError | None = None
        self.unavailable = threading.Event()  # a worker found Case Status down: the others stop writing
        self.faults_in_a_row = 0  # matters whose write just got no usable answer, with no success since
        self.people = StaffDirectory(self.mycase, self.store)
        self.users = StaffUsers(set())
        self.retry: set[str] = set()
        self.ignored = self.store.matters.ignoring.ids()  # the firm gave these up: left alone
        self.floor: dt.datetime | None = None  # listed matters older than this are outside the window
        self.pool = ThreadPoolExecutor(max_workers=self.settings.workers, thread_name_prefix="casestatus")
        self.in_flight: dict[Future, str] = {}
        self.window = self.settings.workers * IN_FLIGHT_PER_WORKER
        self.progress = None  # the run's progress display (App.progress)
        self.done = 0  # matters finished (each has its report row)
        self.total_known = False  # the progress display was given MyCase's count
        self.cases: CaseIndex | None = None  # the backfill's one read of the Case Status case list
        self.scan_lock = threading.Lock()
        self.reads: ReadAhead | None = None  # the reads of the matters to retry, once started
        self.reading: set[str] = set()  # the ids those reads cover
        self.written: set[str] = set()  # the matters whose writes this run has sent

    # --- fetch --------------------------------------------------------------------------------
    def prefetch_cases(self) -> None:
        """Every Case Status case with an integration_id, indexed in the store's TEMP table: a first
        backfill then needs no lookup per new matter (nor a run whose lookups found the
        integration_id filter ignored). A case created meanwhile by someone else is refused with 409
        at create time and adopted (where Case Status answers 409 at all)."""
        index = CaseIndex(self.store)
        batch: list[tuple[str, dict]] = []
        for iid, case in self.casestatus.iter_cases():
            batch.append((iid, case))
            if len(batch) >= cs.PAGE_SIZE:
                index.add(batch)
                batch.clear()
        index.add(batch)
        self.cases = index

    def find_case(self, mycase_id: str) -> dict | None:
        """A worker's lookup of one case: by the integration_id filter (verified by the client) until
        it is seen to be ignored, then from one scan of the whole case list, made once per run."""
        if self.cases is None:
            try:
                return self.casestatus.find_case(mycase_id)
            except cs.FilterIgnored as exc:
                with self.scan_lock:
                    if self.cases is None:
                        log.info("%s; reading the whole Case Status case list once instead", exc)
                        self.prefetch_cases()
        return self.cases.get(mycase_id)

    def fresh_lookup(self, mycase_id: str) -> dict | None | object:
        """After a create of unknown outcome: the case as Case Status holds it now (None: absent), or
        STALE when only the scan made earlier in the run could say (then the matter waits for the next run)."""
        if self.cases is not None:
            return STALE
        return self.find_case(mycase_id)

    def prefetched_case(self, mycase_id: str) -> dict | None:
        """The case read at the start of the run, ABSENT when there was none, None when nothing was read."""
        if self.cases is None:
            return None
        return self.cases.get(mycase_id) or ABSENT

    @property
    def staff(self) -> dict:
        return self.people.staff

    @staff.setter
    def staff(self, staff: dict) -> None:
        self.people.staff = staff

    def load_people(self) -> None:
        """MyCase staff and Case Status users, once per run (not once per matter)."""
        self.people.load()
        self.users = StaffUsers({str(u.get(cs.USER_EMAIL) or "") for u in self.casestatus.list_users()})

    def keep_staff_gone(self) -> None:
        """Remember the staff ids MyCase has not, for the next runs (never in a dry run)."""
        if not self.dry_run:
            self.people.keep()

    def load_retry_set(self) -> None:
        """Ids retried by id whatever the window: failed, pending, and skipped ones whose user now exists."""
        for mid, state, waiting in self.store.matters.to_retry():
            if state != SKIPPED or self.create_staff or self.users.has(waiting):
                self.retry.add(mid)

    def add_client_changes(self, updated_after: str) -> int:
        """The imported matters of clients created or edited since `updated_after`, retried by id unless
        the listing brings them: editing a client need not change its cases' updated_at (API-NOTES
        Part 3). Matters the store never imported are left out: they are outside every window.
        Returns how many were added."""
        added = 0
        for page in self.mycase.iter_client_pages(updated_after):
            for client in page:
                for mid in cases_of_client(client):
                    if mid in self.retry:
                        continue
                    row = self.store.matters.get(mid)
                    if row is not None and row.casestatus_id is not None:
                        self.retry.add(mid)
                        added += 1
        return added

    # --- map, then hand the writes to a worker ----------------------------------------------------
    def take(self, case: Any, listed: bool) -> None:
        check_signals()  # a safe point: a stop signal a finalizer swallowed stops the run here
        if self.temporary is not None:
            raise self.temporary
        if not isinstance(case, dict):
            self.problem(None, {}, MappingProblem(FAILED, f"a case record is not an object: {type(case).__name__}"))
            return
        mid = case_id_of(case)
        if mid in self.ignored:
            log.info("matter %s: ignored (`mycase-sync ignore --undo %s` to import it again)", mid, mid)
            self.counts[IGNORED] += 1
            self.finish_report(mid, _readable(case), IGNORED, [], "ignored by `mycase-sync ignore`")
            return
        retrying = mid in self.retry  # taken here, it is not read by id: never skipped as outside the window
        if mid is not None:
            self.retry.discard(mid)
            if mid in self.in_flight.values():  # the same case twice in one run: finish the first
                self.collect(until=lambda: mid not in self.in_flight.values())
        try:
            self.people.find(case)
            matter = map_matter(case, self.staff, self.settings.phone_region)
            if listed and not retrying and self.outside_window(matter):
                self.finish_report(matter.mycase_id, matter.readable_id, SKIPPED, [],
                                   f"outside the window (updated before {self.floor:%Y-%m-%d})")
                self.counts[SKIPPED] += 1
                return
            create_lead = self.lead_to_create(matter)
        except MappingProblem as problem:
            self.problem(mid, case, problem)
            return
        row = self.store.matters.get(matter.mycase_id)
        if row is not None and row.trusted and row.fields_hash == fields_hash(matter.fields):
            self.unchanged(matter, row)
            return
        if row is not None and not row.trusted and matter.mycase_id in self.written and self.cases is not None:
            self.unknown_again(matter)
            return
        if not self.dry_run:
            self.store.matters.mark_pending(matter.mycase_id, matter.readable_id)
            self.written.add(matter.mycase_id)
        found = self.prefetched_case(matter.mycase_id) if row is None or not row.trusted else None
        future = self.pool.submit(self.write, matter, row, found, create_lead)
        self.in_flight[future] = matter.mycase_id
        self.collect(until=lambda: len(self.in_flight) < self.window)

    def outside_window(self, matter: MappedMatter) -> bool:
        """A defence against a list that ignored the filter: never import what the window excludes."""
        times = [t for t in (matter.created_at, matter.updated_at) if t is not None]
        return self.floor is not None and len(times) == 2 and max(times) < self.floor

    def lead_to_create(self, matter: MappedMatter) -> bool:
        """Case Status refuses a case whose lead attorney is not a user: skip it, or with
        --create-staff make creating the user the first step of its writes (a dry run notes it)."""
        lead = matter.lead
        if self.users.has(lead.email):
            return False
        if not self.create_staff:
            check_lead_is_user(matter, self.users.emails)
        if self.dry_run:
            matter.notes.append(f"would create Case Status user {lead.email} for lead attorney {lead.name}")
            self.users_to_create[lead.email or ""] = lead.name
            self.users.add(lead.email or "")
            return False
        return True

    def unchanged(self, matter: MappedMatter, row: MatterRow) -> None:
        if row.state != SYNCED and not self.dry_run:  # e.g. a failure fixed in MyCase back to what was written
            self.store.matters.record(matter.mycase_id, matter.readable_id, SYNCED)
        self.counts["unchanged"] += 1
        self.finish(matter, "unchanged", [], "; ".join(matter.notes))

    def unknown_again(self, matter: MappedMatter) -> None:
        """A matter met again in this run (the open listing, then the closed one) after a write of
        unknown outcome: only the scan made before that write could say what Case Status holds, and a
        create sent on its word could make the case twice. It stays pending for the next run's lookup
        (its failure is already counted and reported)."""
        log.info("matter %s (%s): met again after a write of unknown outcome in this run; left pending: the "
                 "next run reads Case Status first", matter.mycase_id, matter.readable_id)
        self.finish_report(matter.mycase_id, matter.readable_id, FAILED, [],
                           "a write earlier in this run has an unknown outcome: the next run reads Case Status first")

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
        row = self.store.matters.get(mid)
        first_time = row is None or row.state != problem.kind or row.last_error != problem.reason
        level = logging.WARNING if problem.kind == FAILED or first_time else logging.INFO
        log.log(level, "matter %s (%s): %s: %s", mid, readable or "no Case ID", problem.kind, problem.reason)
        if not self.dry_run:
            self.store.matters.record(mid, readable, problem.kind, error=problem.reason,
                                      charge=problem.kind == FAILED, waiting_for=problem.waiting_for)
        self.counts[problem.kind] += 1
        self.finish_report(mid, readable, problem.kind, [], problem.reason)

    # --- write, in a worker --------------------------------------------------------------------
    def write(self, matter: MappedMatter, row: MatterRow | None, found: dict | None, create_lead: bool) -> Outcome:
        if self.unavailable.is_set():  # queued before another worker found Case Status down: not tried
            state = PENDING if row is None or not row.trusted else row.state
            return Outcome(matter, FAILED, state=state, error="not tried: Case Status unavailable",
                           unavailable="Case Status unavailable")
        out = sync_matter(self.casestatus, matter, row, found, dry_run=self.dry_run,
                          users=self.users if create_lead else None,
                          lookup=Lookup(self.find_case, self.fresh_lookup))
        if out.unavailable is not None:
            self.unavailable.set()
        return out

    # --- record, on the main thread --------------------------------------------------------------
    def collect(self, until: Callable[[], bool]) -> None:
        while self.in_flight and not until():
            done, _ = wait(list(self.in_flight), return_when=FIRST_COMPLETED)
            for future in done:
                self.in_flight.pop(future)
                self.record(future.result())

    def record(self, out: Outcome) -> None:
        matter = out.matter
        if out.service_fault:
            self.faults_in_a_row += 1
        elif out.error is None:  # a refusal of one matter says nothing of the service: the count stands
            self.faults_in_a_row = 0
        if out.service_fault and out.unavailable is None and (
                self.faults_in_a_row >= FAULTS_IN_A_ROW or self.unavailable.is_set()):
            out.unavailable = f"Case Status unavailable: {self.faults_in_a_row} writes in a row got no usable " \
                              f"answer (the last: {out.error})"
            self.unavailable.set()
        if not self.dry_run:
            # Case Status down, or no usable answer, is not the matter's fault: no attempt counted against it.
            self.store.matters.record(
                matter.mycase_id, matter.readable_id, out.state, error=out.error,
                charge=out.unavailable is None and not out.service_fault,
                casestatus_id=out.casestatus_id, held=out.held,
                held_hash=fields_hash(out.held) if out.held is not None else None)
        if out.user_created:
            self.counts["users_created"] += 1
            log.info("created Case Status user %s for lead attorney %s", out.user_created, matter.lead.name)
        if out.error is not None:
            if out.unavailable is not None and self.temporary is None:
                self.temporary = TemporaryError(out.unavailable)
            # Case Status down is said once, by the run's exit-75 line; not once per matter in flight.
            log.log(logging.INFO if out.unavailable else logging.WARNING, "matter %s (%s): failed: %s",
                    matter.mycase_id, matter.readable_id, out.error)
            self.counts[FAILED] += 1
            self.finish(matter, FAILED, out.changed, out.error, out.notes)
            return
        self.counts[out.action] += 1
        extra = ["already in Case Status: adopted"] if out.adopted else []
        self.finish(matter, out.action, out.changed, "; ".join(extra + out.notes + matter.notes), out.notes)

    def finish(self, matter: MappedMatter, action: str, changed: list[str], reason: str,
               extra_notes: list[str] = ()) -> None:
        notes = [*extra_notes, *matter.notes]
        if notes:
            self.with_notes += 1
            log.debug("matter %s (%s): %s", matter.mycase_id, matter.readable_id, "; ".join(notes))
        self.finish_report(matter.mycase_id, matter.readable_id, action, changed, reason)

    def finish_report(self, mid: str, readable: str | None, action: str, changed: list[str], reason: str) -> None:
        shown = f"would {VERB[action]}" if self.dry_run and action in VERB else action
        self.report.write(ReportRow(mid, readable, shown, changed, reason))
        self.done += 1
        if self.progress is not None:
            self.progress.advance(outcome=action)

    # --- the run --------------------------------------------------------------------------------
    def take_ids(self, case_ids: list[str]) -> None:
        """--case: just these matters, read by id."""
        self.progress.total(len(case_ids))
        for mid in case_ids:
            case = self.mycase.get_case(mid)
            if case is None:
                self.finish_report(mid, None, FAILED, [], "not found in MyCase")
                log.warning("matter %s: not found in MyCase", mid)
                self.counts[FAILED] += 1
                continue
            self.take(case, listed=False)

    def show_total(self, updated_after: str) -> None:
        """For a person watching the bar: the listing's total as MyCase counts it, plus the retries."""
        if self.progress.visible:
            listed = self.mycase.count_cases(updated_after=updated_after)
            if listed is not None:
                self.total_known = True
                self.progress.total(listed + len(self.retry))

    def read_ahead(self) -> None:
        """Start reading the matters to retry by id, in id order, while the listing is read
        (read_ahead.py): each is one MyCase round trip (0.9 s to 20 s live); one listed before its
        read starts is taken from the listing and not read. Not in a backfill, which lists them all."""
        self.reading = set(self.retry)
        self.reads = ReadAhead(self.mycase.get_case, sorted(self.reading, key=lambda v: (len(v), v)),
                               self.settings.workers, self.window, wanted=lambda mid: mid in self.retry)

    def retry_by_id(self) -> None:
        """Take each matter to retry, as read by id, in id order (reads `workers` at a time; at most
        `window` read and waiting, so that memory stays flat and an outage stops the run soon). Those
        added once the reads had started (the cases of edited clients) are read now, after the listing:
        read ahead, one the listing was about to bring would be read twice."""
        if self.total_known:  # the listing is done: what is left is in flight, or a retry not listed
            self.progress.total(self.done + len(self.in_flight) + len(self.retry))
        if self.reads is None:
            self.read_ahead()
        self._take_reads()
        if self.retry - self.reading:
            self.retry -= self.reading
            self.read_ahead()
            self._take_reads()
        self.retry.clear()

    def _take_reads(self) -> None:
        try:
            for mid, reading in self.reads:
                if mid not in self.retry:  # listed meanwhile, and taken from the listing
                    continue
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
            self.reads.close()

    def drain(self) -> None:
        self.collect(until=lambda: False)
        if self.temporary is not None:
            raise self.temporary

    def shutdown(self) -> None:
        """After an error: let started writes finish and record them, cancel the rest (they stay pending)."""
        if self.reads is not None:
            self.reads.close()
        self.pool.shutdown(wait=True, cancel_futures=True)
        for future, _ in list(self.in_flight.items()):
            if future.done() and not future.cancelled() and future.exception() is None:
                try:
                    self.record(future.result())
                except Exception:  # already failing: the row stays pending, the next run reads Case Status
                    log.debug("could not record a finished matter while stopping", exc_info=True)
        self.in_flight.clear()



def _readable(case: dict) -> str | None:
    if not isinstance(case, dict):
        return None
    for key in (mc.CASE_NUMBER, mc.CASE_NAME):
        value = case.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None
