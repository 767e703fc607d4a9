"""The run both push jobs share: poll Case Status, record new items, send what is pending.

Exactly once without idempotency keys, the way mbsync does it:
1. An item gets a ledger row the first time a poll sees it (committed with the cursor that
   covers it, so an interrupted run never skips anything).
2. Before its write is sent the row is *claimed* (committed); the MyCase id is committed as soon
   as the answer confirms it. Every record we write carries a marker with the Case Status id.
3. A claimed row without a confirmed answer (timeout, dropped connection, crash) is in doubt:
   the next attempt lists the matter's records and sends again only if the marker is absent.
4. A failed item is retried on every later run; after MAX_FAILED_RUNS it is parked as failed
   (`status` shows it, `--retry-failed` puts it back).

The parts: poller.py reads Case Status lists, markers.py finds our records in MyCase, the
store's ledger keeps each item's state; documents.py and messages.py say what one send is.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Callable

from mycase_sync.casestatus.client import PAGE_SIZE
from mycase_sync.errors import (AuthorizationError, ConfigError, LocalPermission, OutcomeUnknown, ServiceError,
                                SettingRefused, StoreUnusable, SyncError, TemporaryError, os_fault)
from mycase_sync.redact import redact
from mycase_sync.signals import check as check_signals
from mycase_sync.store import ItemState
from mycase_sync.text import clean_line
from mycase_sync.store.ledger import MAX_FAILED_RUNS, Item, Ledger, cutover_key
from mycase_sync.sync.markers import Markers
from mycase_sync.sync.poller import ASC, Cursor, Poller, find_record, record_id
from mycase_sync.values import iso, parse_iso

log = logging.getLogger(__name__)

PAGE_KEY = "_listed_on_page"  # kept in the ledger's copy of a record: where to list it again


# --- one job's description ---------------------------------------------------------------------
class Job:
    """What differs between the two push jobs; `push` raises on failure, anything it raises is recorded."""

    name = ""  # the command and cursor key
    kind = ""  # the ledger kind
    word = ""  # the marker word
    ordered = False  # items of one matter go in order, a failure holds back the rest of that matter

    def list_page(self, casestatus, page: int, size: int) -> list[dict]:
        raise NotImplementedError

    def integration_id(self, record: dict) -> str | None:
        raise NotImplementedError

    def moment(self, record: dict) -> dt.datetime | None:
        raise NotImplementedError

    def describe(self, item: Item) -> str:
        raise NotImplementedError

    def markers(self, mycase) -> Markers:
        raise NotImplementedError

    def lanes(self, items: list[Item]) -> list[list[Item]]:
        return [[item] for item in items]

    def resources(self, app) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def push(self, ctx: "Context", item: Item) -> str:
        """Send one item: "sent", or "adopted" when MyCase already had it (found by its marker)."""
        raise NotImplementedError


@dataclass
class Context:
    """What a job's push needs during one run."""

    app: Any
    job: Job
    ledger: Ledger
    markers: Markers
    cursor: Cursor | None
    resources: Any = None

    @property
    def mycase(self):
        return self.app.mycase

    @property
    def casestatus(self):
        return self.app.casestatus

    def write(self, item: Item, call: Callable[[], Any]) -> Any:
        """Send one MyCase write for a claimed item. It stays in doubt until its answer is committed
        (Ledger.created / confirm), unless MyCase answered "no"."""
        try:
            return call()
        except Exception as exc:
            if refused(exc):
                self.ledger.refused(item)
            raise

    def relist(self, item: Item) -> dict | None:
        """Find the item in its Case Status list again (fresh links); updates the ledger's copy."""
        order = self.cursor.order if self.cursor else ASC
        found = find_record(lambda page: self.job.list_page(self.casestatus, page, PAGE_SIZE),
                            item.item_id, item.record.get(PAGE_KEY) or 1, order)
        if found is None:
            return None
        record, page = found
        record = {**record, PAGE_KEY: page}
        self.ledger.remember_record(item, record)
        return record


def integration_text(value: Any) -> str | None:
    """The MyCase case id an item names, as the store keys on it (cleaned: it came from outside)."""
    if value is None or isinstance(value, bool):
        return None
    text = clean_line(str(value))
    return text or None


def refused(exc: BaseException) -> bool:
    """An answer that says the write did not happen (4xx): no need to look for a marker next time."""
    return (isinstance(exc, ServiceError) and not isinstance(exc, OutcomeUnknown)
            and exc.status is not None and 400 <= exc.status < 500)


def error_text(exc: BaseException) -> str:
    if isinstance(exc, (ServiceError, ItemError)):
        return redact(exc)
    if isinstance(exc, OSError):
        return redact(f"local file error: {exc.strerror or exc}")
    return redact(f"internal error: {type(exc).__name__}: {exc}")


class ItemError(Exception):
    """This item cannot go now (size mismatch, gone from Case Status...): recorded, retried next run."""

    def __str__(self) -> str:
        return " ".join(str(self.args[0] if self.args else "").split())


# --- the run -------------------------------------------------------------------------------------
def check_cutover(store, job_name: str, since: dt.datetime | None) -> None:
    """--since sets the job's cut-over once; another date later is refused (ConfigError, exit 2)."""
    recorded = parse_iso(store.get_cursor(cutover_key(job_name)))
    if since is not None and recorded is not None and recorded != since:
        raise ConfigError(f"{job_name} already has its cut-over at {recorded:%Y-%m-%d %H:%M:%S} UTC (state store"
                          f" {store.path}); --since {since:%Y-%m-%d %H:%M:%S} UTC would change which items are"
                          " sent: give the same date, or leave --since out")


def run_push(app, job: Job, run_id: str, *, dry_run: bool = False, since: dt.datetime | None = None,
             all_items: bool = False, retry_failed: bool = False) -> dict:
    """One run of a push job: poll, record, then push what is pending. Returns the run's counts.

    The first run (no cursor), --since and --all read the whole list; anything the ledger holds is
    never sent again. --since records the job's cut-over (moving from the hosted integration):
    items created before it are recorded as before the cut-over and never sent, on every later run.
    """
    store = app.store
    ledger = store.ledger(job.kind)
    counts: Counter = Counter()
    check_cutover(store, job.name, since)
    cutover = since or parse_iso(store.get_cursor(cutover_key(job.name)))
    if since is not None and not dry_run:
        _record_cutover(store, job, ledger, since, counts)
    if retry_failed and not dry_run:
        counts["unparked"] = ledger.unpark()
    cursor = Cursor.load(store.get_cursor(job.name))
    poller = Poller(lambda page: job.list_page(app.casestatus, page, PAGE_SIZE), cursor,
                    full=all_items or since is not None)

    def state_of(record: dict) -> str:
        moment = job.moment(record)  # an undated item is never held back
        return ItemState.BEFORE_CUTOVER if cutover and moment and moment < cutover else ItemState.WAITING

    listed: dict[int, dict] = {}  # (dry run) what the poll would record
    for batch in poller.batches():
        if dry_run:
            listed.update({record_id(r): r for r in batch.records})
        elif batch.records or (batch.cursor and batch.cursor != cursor):
            rows = [(record_id(r), integration_text(job.integration_id(r)), {**r, PAGE_KEY: batch.page}, state_of(r))
                    for r in batch.records]
            counts["new"] += ledger.add(rows, (job.name, batch.cursor.dump()) if batch.cursor else None)
            cursor = batch.cursor or cursor
    counts["list_requests"] = poller.requests
    if poller.malformed:
        log.warning("%s: %d Case Status records without a usable id were ignored", job.name, poller.malformed)
    if dry_run:
        return _dry_run(job, ledger, listed, retry_failed, counts, state_of)
    ledger.match_cases()
    items = [i for i in ledger.rows((ItemState.PENDING, ItemState.CLAIMED)) if i.case_imported]
    counts["waiting"] = ledger.count(ItemState.WAITING)
    if not items:
        return _finish(job, counts)
    ctx_markers = job.markers(app.mycase)  # the MyCase client (and its token) only when there is work
    with job.resources(app) as resources:
        ctx = Context(app, job, ledger, ctx_markers, cursor, resources)
        counts.update(deliver(ctx, items, app.settings.workers))
    counts["marker_lists"] = ctx_markers.lists
    return _finish(job, counts)


def _record_cutover(store, job: Job, ledger: Ledger, since: dt.datetime, counts: Counter) -> None:
    """Save the cut-over, and hold back what the ledger already has from before it (not yet sent)."""
    store.set_cursor(cutover_key(job.name), iso(since))
    older = [item.item_id for item in ledger.rows((ItemState.WAITING, ItemState.PENDING))
             if (moment := job.moment(item.record)) is not None and moment < since]
    if older:
        counts["held_before_cutover"] = ledger.set_before_cutover(older)


def deliver(ctx: Context, items: list[Item], workers: int) -> Counter:
    """Push each lane of items (in order within a lane), lanes in parallel, bounded by `workers`."""
    job = ctx.job
    lanes = [lane for lane in job.lanes(items) if lane]
    results: Counter = Counter()
    lock = threading.Lock()
    stop = threading.Event()
    aborted: list[BaseException] = []

    def abort(item: Item, exc: BaseException) -> str:
        """The run stops for a reason that is not the item's: no attempt is counted against it."""
        with lock:
            aborted.append(exc)
        stop.set()
        with contextlib.suppress(SyncError):  # may fail too (the disk is full): the first reason is the one reported
            ctx.ledger.release(item)
        return "aborted"

    def attempt(item: Item) -> str:
        try:
            outcome = job.push(ctx, item)
        except (AuthorizationError, TemporaryError, LocalPermission, StoreUnusable, SettingRefused) as exc:
            # A service down, authorization gone, a setting refused (a MYCASE_API_URL with no API behind
            # it), or the machine's fault (full disk, I/O error, a store that cannot be written): every
            # item would fail alike, and none is to blame.
            return abort(item, exc)
        except OSError as exc:
            fault = os_fault(exc)
            if fault is None:
                return recorded(item, exc)
            return abort(item, fault)
        except Exception as exc:  # recorded against the item; the run goes on with the others
            return recorded(item, exc)
        log.debug("%s: %s as MyCase %s", job.describe(item), outcome, item.remote_id)
        return outcome

    def recorded(item: Item, exc: BaseException) -> str:
        log.debug("%s failed", job.describe(item), exc_info=True)
        error = error_text(exc)
        state = ctx.ledger.fail(item, error)
        if state == ItemState.FAILED:
            log.warning("%s: %s; parked after %d failed runs (after fixing the cause: mycase-sync %s --retry-failed)",
                        job.describe(item), error, MAX_FAILED_RUNS, job.name)
            return "parked"
        log.warning("%s: %s; retried next run (%d of %d)", job.describe(item), error, item.attempts, MAX_FAILED_RUNS)
        return "failed"

    def run_lane(lane: list[Item], progress) -> None:
        for n, item in enumerate(lane):
            if stop.is_set():
                return
            outcome = attempt(item)
            with lock:
                results[outcome] += 1
                progress.advance(outcome=outcome)
            if outcome in ("failed", "parked") and job.ordered and n + 1 < len(lane):
                with lock:
                    results["held_back"] += len(lane) - n - 1
                return

    with ctx.app.progress(job.name, total=sum(len(lane) for lane in lanes), outcomes=("sent", "adopted", "failed")) \
            as progress:
        pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(lanes))), thread_name_prefix=job.kind)
        try:
            futures = [pool.submit(run_lane, lane, progress) for lane in lanes]
            for future in as_completed(futures):
                future.result()
                check_signals()  # a safe point: a stop signal a finalizer swallowed stops the run here
        except BaseException:
            stop.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    if aborted:
        raise aborted[0]
    failed = results.pop("failed", 0) + results["parked"]
    results["failed"] = failed
    results.pop("aborted", None)
    return results


def _finish(job: Job, counts: Counter) -> dict:
    sent, adopted, failed = counts.get("sent", 0), counts.get("adopted", 0), counts.get("failed", 0)
    if sent or adopted or failed:
        log.info("%s: %d sent, %d already in MyCase (adopted), %d failed, %d waiting for their case to be imported",
                 job.name, sent, adopted, failed, counts.get("waiting", 0))
    return {key: value for key, value in counts.items() if value}


def _dry_run(job: Job, ledger: Ledger, listed: dict[int, dict], retry_failed: bool, counts: Counter,
             state_of: Callable[[dict], str]) -> dict:
    """What a real run would push (and what waits for its case), as lines under "plan"; changes nothing."""
    states = (ItemState.PENDING, ItemState.CLAIMED, ItemState.WAITING) + ((ItemState.FAILED,) if retry_failed else ())
    items = [i for i in ledger.rows(states) if i.state not in (ItemState.WAITING, ItemState.PENDING)
             or state_of(i.record) != ItemState.BEFORE_CUTOVER]
    in_ledger = ledger.known_ids(list(listed))
    new_items = [Item(job.kind, i, integration_text(job.integration_id(record)), ItemState.PENDING, 0, record)
                 for i, record in listed.items() if i not in in_ledger]
    before = [i for i in new_items if state_of(i.record) == ItemState.BEFORE_CUTOVER]
    new_items = [i for i in new_items if state_of(i.record) != ItemState.BEFORE_CUTOVER]
    imported = ledger.imported(item.integration_id for item in new_items if item.integration_id)
    for item in new_items:
        item.case_imported = item.integration_id in imported
    everything = sorted(items + new_items, key=lambda i: i.item_id)
    would = [i for i in everything if i.case_imported]
    waiting = [i for i in everything if not i.case_imported]
    plan = [f"would push {job.describe(item)}" for item in would]
    plan += [f"waiting: {job.describe(item)}: case {item.integration_id or '(no integration id)'} is not imported yet"
             for item in waiting]
    held = f", {len(before)} created before the cut-over (never sent)" if before else ""
    plan.append(f"{job.name} --dry-run: {len(would)} would be pushed, {len(waiting)} waiting for their case{held};"
                " nothing changed")
    counts["would_push"] = len(would)
    counts["waiting"] = len(waiting)
    counts["before_cutover"] = len(before)
    return {"plan": plan, **{key: value for key, value in counts.items() if value}}
