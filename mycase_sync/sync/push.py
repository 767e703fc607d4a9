"""What push-documents and push-messages share: polling from a cursor, the ledger, markers, retries.

Exactly once without idempotency keys, the way mbsync does it:
1. An item gets a ledger row the first time a poll sees it (committed with the cursor that
   covers it, so an interrupted run never skips anything).
2. Before its write is sent the row is *claimed* (committed); the MyCase id is committed as soon
   as the answer confirms it. Every record we write carries a marker with the Case Status id.
3. A claimed row without a confirmed answer (timeout, dropped connection, crash) is "in doubt":
   the next attempt lists the matter's records and sends again only if the marker is absent.
4. A failed item is retried on every later run; after MAX_FAILED_RUNS it is parked as failed
   (`status` shows it, `--retry-failed` puts it back).

The polling side (Cursor, Poller) knows nothing of the store; the Ledger knows nothing of HTTP.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import re
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import click

from mycase_sync.casestatus.client import PAGE_SIZE
from mycase_sync.errors import AuthorizationError, OutcomeUnknown, ServiceError, TemporaryError
from mycase_sync.output import Progress
from mycase_sync.redact import redact
from mycase_sync.store import iso, utcnow

log = logging.getLogger(__name__)

MAX_FAILED_RUNS = 10
FIRST_RUN_WINDOW = dt.timedelta(days=30)
FIND_PAGES = 40  # pages a search for a moved record may read before giving up

PENDING, CLAIMED, SENT, WAITING, FAILED = "pending", "claimed", "sent", "waiting", "failed"
ASC, DESC = "asc", "desc"
PAGE_KEY = "_listed_on_page"  # kept in the ledger's copy of a record: where to list it again


# --- markers ---------------------------------------------------------------------------------
def marker(word: str, item_id: int) -> str:
    """The tag every pushed record carries: unambiguous ("]" ends the id) and searchable."""
    return f"[casestatus:{word}:{int(item_id)}]"


def markers_in(text: Any, word: str) -> list[int]:
    """The Case Status ids of `word` markers in a text (a note body, a document description)."""
    if not isinstance(text, str):
        return []
    return [int(found) for found in re.findall(rf"\[casestatus:{re.escape(word)}:(\d+)\]", text)]


# --- reading Case Status lists -----------------------------------------------------------------
def record_id(record: Any) -> int | None:
    """A record's Case Status id, or None for a record too malformed to track."""
    if not isinstance(record, dict):
        return None
    value = record.get("id")
    if isinstance(value, bool):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def parse_moment(value: Any) -> dt.datetime | None:
    """A Case Status timestamp as an aware UTC datetime; None when absent or unreadable."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def page_order(records: list[dict]) -> str | None:
    """ASC or DESC as a page shows it; None when a page is too short to tell."""
    ids = [record_id(r) for r in records]
    if len(ids) < 2 or ids[0] == ids[-1]:
        return None
    return ASC if ids[0] < ids[-1] else DESC


@dataclass
class Cursor:
    """Where the last poll stopped: the last page that held records, the highest id seen, the order."""

    page: int = 1
    highest: int = 0
    order: str = ASC
    size: int = PAGE_SIZE

    @classmethod
    def load(cls, value: Any, size: int = PAGE_SIZE) -> "Cursor | None":
        if not isinstance(value, dict):
            return None
        try:
            cursor = cls(int(value["page"]), int(value["highest"]), str(value.get("order") or ASC),
                         int(value.get("size") or size))
        except (KeyError, TypeError, ValueError):
            return None
        if cursor.order not in (ASC, DESC) or cursor.page < 1 or cursor.size < 1:
            return None
        if cursor.size != size:  # the same position counted in pages of the new size
            cursor.page = (cursor.page - 1) * cursor.size // size + 1
            cursor.size = size
        return cursor

    def dump(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class Batch:
    """Records to put in the ledger, and the cursor to save in the same transaction (if any)."""

    page: int
    records: list[dict]
    cursor: Cursor | None


class Poller:
    """Finds what is new in an id-ordered Case Status list, reading as few pages as it can.

    Incremental (a cursor, no backfill): ascending lists resume at the cursor's page (walking
    back if records were deleted) and read on while pages come back full; newest-first lists
    are read from page 1 until a page holds anything already seen. A run with nothing new reads
    one page (two when the last page was exactly full).
    Full scan (first run, --since, --all): every page, taking records in the window (or all)
    and anything newer than the cursor; a newest-first list stops once a page is all old.
    """

    def __init__(self, fetch: Callable[[int], list], cursor: Cursor | None, *, full: bool,
                 window_start: dt.datetime | None, moment: Callable[[dict], dt.datetime | None],
                 size: int = PAGE_SIZE):
        self._fetch_page = fetch
        self.cursor = cursor or Cursor(size=size)
        self.known = cursor.highest if cursor else None  # ids above this are new
        self.full = full or cursor is None
        self.window_start = window_start
        self.moment = moment
        self.size = size
        self.requests = 0
        self.malformed = 0
        self.out_of_window = 0

    def _fetch(self, page: int) -> list[dict]:
        self.requests += 1
        raw = self._fetch_page(page)
        records = [r for r in raw if record_id(r) is not None]
        self.malformed += len(raw) - len(records)
        return records

    def _is_new(self, record: dict) -> bool:
        return self.known is not None and record_id(record) > self.known

    def _in_window(self, record: dict) -> bool:
        if self.window_start is None:
            return True
        moment = self.moment(record)
        return moment is None or moment >= self.window_start  # an undated record is never dropped

    def _take(self, records: list[dict]) -> list[dict]:
        taken = []
        for record in records:
            if self._is_new(record):
                taken.append(record)
            elif self.full and self._in_window(record):
                taken.append(record)
            elif self.full:
                self.out_of_window += 1
        return taken

    def _highest(self, highest: int, records: list[dict]) -> int:
        return max([highest, *(record_id(r) for r in records)])

    def batches(self) -> Iterator[Batch]:
        start = 1 if self.full else self.cursor.page
        records = self._fetch(start)
        order = page_order(records) or self.cursor.order
        if order == DESC:
            yield from self._newest_first(records if start == 1 else self._fetch(1))
            return
        page = start
        if not self.full:
            # Deleted records shift later ones to earlier pages: step back until this page
            # reaches what we had seen, so nothing that moved down is skipped.
            while page > 1 and (not records or min(record_id(r) for r in records) > self.cursor.highest):
                page -= 1
                records = self._fetch(page)
        yield from self._oldest_first(page, records)

    def _oldest_first(self, page: int, records: list[dict]) -> Iterator[Batch]:
        highest = self.cursor.highest
        keep_page = self.cursor.page if (self.full and self.known is not None) else 1
        while True:
            if records or page == 1:
                highest = self._highest(highest, records)
                cursor = Cursor(max(keep_page, page), highest, ASC, self.size)
                yield Batch(page, self._take(records), cursor)
            if len(records) < self.size:
                return
            page += 1
            records = self._fetch(page)

    def _reached_old(self, records: list[dict]) -> bool:
        """A newest-first page past which nothing more can be taken."""
        if not self.full:
            return any(not self._is_new(r) for r in records)  # ids only grow: the rest was seen
        if self.window_start is None or any(self._is_new(r) for r in records):
            return False
        return all((m := self.moment(r)) is not None and m < self.window_start for r in records)

    def _newest_first(self, records: list[dict]) -> Iterator[Batch]:
        """The cursor moves only at the end: until every new page is in, the old highest id stands."""
        page, highest = 1, self.cursor.highest
        while True:
            order = page_order(records)
            if order == ASC and page == 1:  # it flipped back: read it as an ascending list
                yield from self._oldest_first(1, records)
                return
            highest = self._highest(highest, records)
            yield Batch(page, self._take(records), None)
            if len(records) < self.size or self._reached_old(records):
                break
            page += 1
            records = self._fetch(page)
        yield Batch(page, [], Cursor(1, highest, DESC, self.size))


def find_record(fetch: Callable[[int], list], item_id: int, page: int, order: str,
                size: int = PAGE_SIZE) -> tuple[dict, int] | None:
    """List a record again (for a fresh download link): start at the page it was on, follow the ids.

    Returns (record, page) or None when it is no longer listed.
    """
    page = max(int(page or 1), 1)
    seen: set[int] = set()
    for _ in range(FIND_PAGES):
        if page in seen or page < 1:
            return None
        seen.add(page)
        records = [r for r in fetch(page) if record_id(r) is not None]
        for record in records:
            if record_id(record) == item_id:
                return record, page
        if not records:
            page -= 1  # past the end: the list got shorter
            continue
        ascending = (page_order(records) or order) == ASC
        ids = [record_id(r) for r in records]
        low, high = min(ids), max(ids)
        if low <= item_id <= high:
            return None  # within this page's range but absent: deleted
        toward_start = item_id < low if ascending else item_id > high
        if toward_start:
            page -= 1
        elif len(records) < size:
            return None  # beyond the last page
        else:
            page += 1
    return None


# --- the ledger --------------------------------------------------------------------------------
@dataclass
class Item:
    """One ledger row being worked on, plus what this run learnt about it."""

    kind: str
    item_id: int
    integration_id: str | None
    state: str
    attempts: int
    record: dict
    remote_id: str | None = None
    sha256: str | None = None
    size: int | None = None
    matter_id: str | None = None  # the MyCase case id it goes to (mapped by the import)
    in_doubt: bool = False  # a write of ours may have landed: look for the marker first
    counted: bool = False  # this run already counted an attempt


IMPORTED = "select mycase_id from matters where casestatus_id is not null"


class Ledger:
    """The ledger rows of one kind (document or message); every change is its own transaction."""

    def __init__(self, store, kind: str):
        self.store = store
        self.kind = kind

    def _now(self) -> str:
        return iso(utcnow())

    def _select_in(self, sql: str, values: list, params: tuple = ()) -> list[tuple]:
        """Rows for `... in (values)`, in chunks that stay under SQLite's variable limit."""
        rows: list[tuple] = []
        for start in range(0, len(values), 500):
            chunk = values[start:start + 500]
            marks = ",".join("?" for _ in chunk)
            rows += self.store.db.execute(sql.format(marks=marks), [*params, *chunk]).fetchall()
        return rows

    def known_ids(self, ids: list[int]) -> set[int]:
        rows = self._select_in("select item_id from ledger where kind = ? and item_id in ({marks})", ids, (self.kind,))
        return {row[0] for row in rows}

    def imported(self, integration_ids: set[str]) -> dict[str, str]:
        """integration id -> MyCase case id, for the cases this tool imported."""
        rows = self._select_in(IMPORTED + " and mycase_id in ({marks})", sorted(i for i in integration_ids if i))
        return {row[0]: row[0] for row in rows}

    def add(self, batch: Batch, integration_id: Callable[[dict], str | None], job: str) -> int:
        """Record newly seen items (waiting until their case maps) and the cursor, together."""
        now = self._now()
        added = 0
        with self.store.transaction() as db:
            for record in batch.records:
                stored = dict(record)
                stored[PAGE_KEY] = batch.page
                cursor = db.execute(
                    "insert or ignore into ledger (kind, item_id, integration_id, state, attempts, item,"
                    " created_at, updated_at) values (?, ?, ?, ?, 0, ?, ?, ?)",
                    [self.kind, record_id(record), integration_id(record), WAITING, json.dumps(stored), now, now])
                added += cursor.rowcount
            if batch.cursor is not None:
                self.store.set_cursor(job, batch.cursor.dump())
        return added

    def match_cases(self) -> None:
        """Waiting items whose case is now imported become pending; pending ones that lost it wait."""
        now = self._now()
        with self.store.transaction() as db:
            db.execute(f"update ledger set state = ?, updated_at = ? where kind = ? and state = ?"
                       f" and integration_id in ({IMPORTED})", [PENDING, now, self.kind, WAITING])
            db.execute(f"update ledger set state = ?, updated_at = ? where kind = ? and state = ?"
                       f" and (integration_id is null or integration_id not in ({IMPORTED}))",
                       [WAITING, now, self.kind, PENDING])

    def unpark(self) -> int:
        """--retry-failed: parked items go back, in doubt (the marker is looked for first), attempts reset."""
        with self.store.transaction() as db:
            return db.execute("update ledger set state = ?, attempts = 0, updated_at = ? where kind = ? and state = ?",
                              [CLAIMED, self._now(), self.kind, FAILED]).rowcount

    def rows(self, states: tuple[str, ...]) -> list[Item]:
        marks = ",".join("?" for _ in states)
        rows = self.store.db.execute(
            "select l.item_id, l.integration_id, l.state, l.attempts, l.item, l.remote_id, l.sha256, l.size,"
            f" m.mycase_id from ledger l left join ({IMPORTED}) m on m.mycase_id = l.integration_id"
            f" where l.kind = ? and l.state in ({marks}) order by l.item_id", [self.kind, *states]).fetchall()
        items = []
        for item_id, iid, state, attempts, text, remote_id, sha, size, matter in rows:
            try:
                record = json.loads(text or "{}")
            except ValueError:
                record = {}
            items.append(Item(self.kind, item_id, iid, state, attempts or 0, record if isinstance(record, dict) else {},
                              remote_id, sha, size, matter, in_doubt=(state == CLAIMED)))
        return items

    def count(self, state: str) -> int:
        return self.store.db.execute("select count(*) from ledger where kind = ? and state = ?",
                                     [self.kind, state]).fetchone()[0]

    def _update(self, row: Item, **values: Any) -> None:
        values["updated_at"] = self._now()
        sets = ", ".join(f"{name} = ?" for name in values)
        with self.store.transaction() as db:
            db.execute(f"update ledger set {sets} where kind = ? and item_id = ?",
                       [*values.values(), self.kind, row.item_id])

    def claim(self, item: Item) -> None:
        """Committed before the write goes out: from here on a crash leaves it in doubt, not lost."""
        attempts = item.attempts + (0 if item.counted else 1)
        self._update(item, state=CLAIMED, attempts=attempts, sha256=item.sha256, size=item.size)
        item.state, item.attempts, item.counted = CLAIMED, attempts, True

    def remember_record(self, item: Item, record: dict) -> None:
        self._update(item, item=json.dumps(record))
        item.record = record

    def created(self, item: Item, remote_id: Any) -> None:
        """A MyCase record exists for it (its bytes may still be missing): never create a second."""
        self._update(item, state=CLAIMED, remote_id=str(remote_id))
        item.remote_id, item.in_doubt = str(remote_id), False

    def confirm(self, item: Item, remote_id: Any) -> None:
        self._update(item, state=SENT, remote_id=str(remote_id), last_error=None)
        item.remote_id, item.state, item.in_doubt = str(remote_id), SENT, False

    def fail(self, item: Item, error: str) -> str:
        """Count the failed run; park at MAX_FAILED_RUNS. Returns the new state."""
        attempts = item.attempts + (0 if item.counted else 1)
        if attempts >= MAX_FAILED_RUNS:
            state = FAILED
        else:
            state = CLAIMED if (item.in_doubt or item.remote_id) else PENDING
        self._update(item, state=state, attempts=attempts, last_error=error[:500])
        item.state, item.attempts, item.counted = state, attempts, True
        return state

    def release(self, item: Item) -> None:
        """The run stopped for a reason that is not the item's (service down, auth): no attempt counted."""
        if item.state == SENT:
            return
        attempts = max(item.attempts - (1 if item.counted else 0), 0)
        self._update(item, state=CLAIMED if (item.in_doubt or item.remote_id) else PENDING, attempts=attempts)


# --- marker search -----------------------------------------------------------------------------
class Markers:
    """The Case Status ids already filed in each matter, read from MyCase once per matter per run."""

    def __init__(self, word: str, list_records: Callable[[str], list[dict]], text_of: Callable[[dict], Any]):
        self.word = word
        self.list_records = list_records
        self.text_of = text_of
        self._lock = threading.Lock()
        self._matter_locks: dict[str, threading.Lock] = {}
        self._index: dict[str, dict[int, str]] = {}
        self.lists = 0

    def lookup(self, matter_id: str, item_id: int) -> str | None:
        """The MyCase id of the record carrying this item's marker, or None if there is none."""
        with self._lock:
            lock = self._matter_locks.setdefault(matter_id, threading.Lock())
        with lock:
            if matter_id not in self._index:
                self.lists += 1
                index: dict[int, str] = {}
                for record in sorted(self.list_records(matter_id), key=_oldest_first):
                    for found in markers_in(self.text_of(record), self.word):
                        index.setdefault(found, str(record.get("id")))
                self._index[matter_id] = index
            return self._index[matter_id].get(item_id)


def _oldest_first(record: dict) -> tuple:
    """Should a marker appear twice (it never should), the older record is the one we keep."""
    text = str(record.get("id"))
    return (len(text), text)


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

    def push(self, ctx: "Context", item: Item) -> None:
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
        """Send one MyCase write for the item. It stays in doubt until its answer is committed
        (Ledger.created / confirm), unless MyCase answered "no"."""
        before = item.in_doubt
        item.in_doubt = True
        try:
            return call()
        except Exception as exc:
            if refused(exc):  # answered "no": nothing landed
                item.in_doubt = before
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
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
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
def run_push(app, job: Job, run_id: str, *, dry_run: bool = False, since: dt.datetime | None = None,
             all_items: bool = False, retry_failed: bool = False) -> dict:
    """One run of a push job: poll, record, then push what is pending. Returns the run's counts."""
    store = app.store
    ledger = Ledger(store, job.kind)
    counts: Counter = Counter()
    if retry_failed and not dry_run:
        counts["unparked"] = ledger.unpark()
    cursor = Cursor.load(store.get_cursor(job.name))
    window = None if all_items else (since or (utcnow() - FIRST_RUN_WINDOW if cursor is None else None))
    poller = Poller(lambda page: job.list_page(app.casestatus, page, PAGE_SIZE), cursor,
                    full=all_items or since is not None, window_start=window, moment=job.moment)
    listed: dict[int, dict] = {}  # (dry run) what the poll would record
    for batch in poller.batches():
        if dry_run:
            listed.update({record_id(r): r for r in batch.records})
        elif batch.records or (batch.cursor and batch.cursor != cursor):
            counts["new"] += ledger.add(batch, lambda r: integration_text(job.integration_id(r)), job.name)
            cursor = batch.cursor or cursor
    counts["list_requests"] = poller.requests
    if poller.out_of_window:
        counts["older_than_window"] = poller.out_of_window
    if poller.malformed:
        log.warning("%s: %d Case Status records without a usable id were ignored", job.name, poller.malformed)
    if dry_run:
        return _dry_run(job, ledger, listed, retry_failed, counts)
    ledger.match_cases()
    items = [i for i in ledger.rows((PENDING, CLAIMED)) if i.matter_id]
    counts["waiting"] = ledger.count(WAITING)
    if not items:
        return _finish(job, counts)
    ctx_markers = job.markers(app.mycase)  # the MyCase client (and its token) only when there is work
    with job.resources(app) as resources:
        ctx = Context(app, job, ledger, ctx_markers, cursor, resources)
        counts.update(deliver(ctx, items, app.settings.workers))
    counts["marker_lists"] = ctx_markers.lists
    return _finish(job, counts)


def deliver(ctx: Context, items: list[Item], workers: int) -> Counter:
    """Push each lane of items (in order within a lane), lanes in parallel, bounded by `workers`."""
    job = ctx.job
    lanes = [lane for lane in job.lanes(items) if lane]
    results: Counter = Counter()
    lock = threading.Lock()
    stop = threading.Event()
    aborted: list[BaseException] = []

    def attempt(item: Item) -> str:
        try:
            job.push(ctx, item)
        except (AuthorizationError, TemporaryError) as exc:
            ctx.ledger.release(item)
            with lock:
                aborted.append(exc)
            stop.set()
            return "aborted"
        except Exception as exc:  # recorded against the item; the run goes on with the others
            log.debug("%s failed", job.describe(item), exc_info=True)
            error = error_text(exc)
            state = ctx.ledger.fail(item, error)
            if state == FAILED:
                log.warning("%s: %s; parked after %d failed runs (after fixing the cause: mycase-sync %s --retry-failed)",
                            job.describe(item), error, MAX_FAILED_RUNS, job.name)
                return "parked"
            log.warning("%s: %s; retried next run (%d of %d)", job.describe(item), error, item.attempts, MAX_FAILED_RUNS)
            return "failed"
        log.debug("%s: sent as MyCase %s", job.describe(item), item.remote_id)
        return "sent"

    def run_lane(lane: list[Item], progress: Progress) -> None:
        for n, item in enumerate(lane):
            if stop.is_set():
                return
            outcome = attempt(item)
            with lock:
                results[outcome] += 1
                progress.advance()
            if outcome in ("failed", "parked") and job.ordered and n + 1 < len(lane):
                with lock:
                    results["held_back"] += len(lane) - n - 1
                return

    with Progress(job.name, total=sum(len(lane) for lane in lanes)) as progress:
        pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(lanes))), thread_name_prefix=job.kind)
        try:
            futures = [pool.submit(run_lane, lane, progress) for lane in lanes]
            for future in as_completed(futures):
                future.result()
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
    sent, failed, waiting = counts.get("sent", 0), counts.get("failed", 0), counts.get("waiting", 0)
    if sent or failed:
        log.info("%s: %d sent, %d failed, %d waiting for their case to be imported", job.name, sent, failed, waiting)
    return {key: value for key, value in counts.items() if value}


def _dry_run(job: Job, ledger: Ledger, listed: dict[int, dict], retry_failed: bool, counts: Counter) -> dict:
    """Print what a real run would push (and what waits for its case); change nothing."""
    states = (PENDING, CLAIMED, WAITING) + ((FAILED,) if retry_failed else ())
    items = ledger.rows(states)
    in_ledger = ledger.known_ids(list(listed))
    new_items = [Item(job.kind, i, integration_text(job.integration_id(record)), PENDING, 0, record)
                 for i, record in listed.items() if i not in in_ledger]
    mapping = ledger.imported({item.integration_id for item in new_items if item.integration_id})
    for item in new_items:
        item.matter_id = mapping.get(item.integration_id or "")
    everything = sorted(items + new_items, key=lambda i: i.item_id)
    would = [i for i in everything if i.matter_id]
    waiting = [i for i in everything if not i.matter_id]
    for item in would:
        click.echo(f"would push {job.describe(item)}")
    for item in waiting:
        click.echo(f"waiting: {job.describe(item)}: case {item.integration_id or '(no integration id)'} is not imported yet")
    click.echo(f"{job.name} --dry-run: {len(would)} would be pushed, {len(waiting)} waiting for their case; nothing changed")
    counts["would_push"] = len(would)
    counts["waiting"] = len(waiting)
    return {key: value for key, value in counts.items() if value}
