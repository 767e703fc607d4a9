"""The push ledger: one row per Case Status message or file, and where its send stands.

Exactly once without idempotency keys (mbsync's way): a row is *claimed* (committed) before its
write goes out, and a claimed row whose answer was never confirmed is in doubt: the next attempt
looks for its marker in MyCase before sending again. Being in doubt is the row's state (CLAIMED),
nothing else. A document's `remote_id` is committed as soon as MyCase created the record, so
a later attempt completes it with a new version instead of creating a second one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable

from mycase_sync.store.ignored import IgnoreList
from mycase_sync.store.matters import IMPORTED
from mycase_sync.store.states import ItemState
from mycase_sync.values import iso, utcnow

MAX_FAILED_RUNS = 10
_CHUNK = 500  # ids per `in (...)`: under SQLite's variable limit


def cutover_key(job: str) -> str:
    """The cursors row holding a push job's cut-over (set by --since): items before it are never sent."""
    return f"{job}:cutover"


@dataclass
class Item:
    """One ledger row being worked on; `integration_id` is the MyCase case id it goes to."""

    kind: str
    item_id: int
    integration_id: str | None
    state: str
    attempts: int
    record: dict  # the Case Status record, so a retry needs no re-listing
    remote_id: str | None = None  # the MyCase note or document id, once known
    sha256: str | None = None
    size: int | None = None
    case_imported: bool = False  # the import has made its case in Case Status: it can go
    counted: bool = False  # this run already counted an attempt against it

    @property
    def in_doubt(self) -> bool:
        """A write of ours may have landed without its answer being committed: look before sending."""
        return self.state == ItemState.CLAIMED


class Ledger:
    """The ledger rows of one kind (document or message); every change is its own transaction."""

    def __init__(self, store, kind: str):
        self.store = store
        self.kind = kind
        self.ignoring = IgnoreList(store, "ledger", "item_id", kind)  # items given up

    def _select_in(self, sql: str, values: list, params: tuple = ()) -> list[tuple]:
        rows: list[tuple] = []
        for start in range(0, len(values), _CHUNK):
            chunk = values[start:start + _CHUNK]
            marks = ",".join("?" for _ in chunk)
            rows += self.store.db.execute(sql.format(marks=marks), [*params, *chunk]).fetchall()
        return rows

    def known_ids(self, ids: list[int]) -> set[int]:
        rows = self._select_in("select item_id from ledger where kind = ? and item_id in ({marks})", ids, (self.kind,))
        return {row[0] for row in rows}

    def imported(self, integration_ids: Iterable[str]) -> set[str]:
        """Which of these MyCase case ids the import has brought into Case Status."""
        rows = self._select_in(IMPORTED + " and mycase_id in ({marks})", sorted(i for i in integration_ids if i))
        return {row[0] for row in rows}

    def add(self, rows: list[tuple[int, str | None, dict, str]], cursor: tuple[str, Any] | None) -> int:
        """Record newly seen items (item_id, integration_id, record, state: WAITING for its case, or
        BEFORE_CUTOVER) and the poll cursor that covers them, in one transaction: an interrupted run
        skips nothing. An item already in the ledger keeps its row."""
        now = iso(utcnow())
        added = 0
        with self.store.transaction() as db:
            for item_id, integration_id, record, state in rows:
                added += db.execute(
                    "insert or ignore into ledger (kind, item_id, integration_id, state, attempts, item,"
                    " created_at, updated_at) values (?, ?, ?, ?, 0, ?, ?, ?)",
                    [self.kind, item_id, integration_id, state, json.dumps(record), now, now]).rowcount
            if cursor is not None:
                self.store.set_cursor(*cursor)
        return added

    def match_cases(self) -> None:
        """Waiting items whose case is now imported become pending; pending ones that lost it wait."""
        now = iso(utcnow())
        with self.store.transaction() as db:
            db.execute(f"update ledger set state = ?, updated_at = ? where kind = ? and state = ?"
                       f" and integration_id in ({IMPORTED})", [ItemState.PENDING, now, self.kind, ItemState.WAITING])
            db.execute(f"update ledger set state = ?, updated_at = ? where kind = ? and state = ?"
                       f" and (integration_id is null or integration_id not in ({IMPORTED}))",
                       [ItemState.WAITING, now, self.kind, ItemState.PENDING])

    def set_before_cutover(self, item_ids: list[int]) -> int:
        """A cut-over recorded after these were seen: never sent (only rows not yet claimed or sent)."""
        rows = 0
        with self.store.transaction() as db:
            for start in range(0, len(item_ids), _CHUNK):
                chunk = item_ids[start:start + _CHUNK]
                marks = ",".join("?" for _ in chunk)
                rows += db.execute(f"update ledger set state = ?, updated_at = ? where kind = ? and state in (?, ?)"
                                   f" and item_id in ({marks})",
                                   [ItemState.BEFORE_CUTOVER, iso(utcnow()), self.kind, ItemState.WAITING,
                                    ItemState.PENDING, *chunk]).rowcount
        return rows

    def unpark(self) -> int:
        """--retry-failed: parked items go back in doubt (their marker is looked for first), attempts reset."""
        with self.store.transaction() as db:
            return db.execute("update ledger set state = ?, attempts = 0, updated_at = ? where kind = ? and state = ?",
                              [ItemState.CLAIMED, iso(utcnow()), self.kind, ItemState.FAILED]).rowcount

    def rows(self, states: tuple[str, ...]) -> list[Item]:
        marks = ",".join("?" for _ in states)
        rows = self.store.db.execute(
            "select l.item_id, l.integration_id, l.state, l.attempts, l.item, l.remote_id, l.sha256, l.size,"
            f" m.mycase_id is not null from ledger l left join ({IMPORTED}) m on m.mycase_id = l.integration_id"
            f" where l.kind = ? and l.state in ({marks}) order by l.item_id", [self.kind, *states]).fetchall()
        items = []
        for item_id, iid, state, attempts, text, remote_id, sha, size, imported in rows:
            try:
                record = json.loads(text or "{}")
            except ValueError:
                record = {}
            items.append(Item(self.kind, item_id, iid, state, attempts or 0, record if isinstance(record, dict) else {},
                              remote_id, sha, size, bool(imported)))
        return items

    def count(self, state: str) -> int:
        return self.store.db.execute("select count(*) from ledger where kind = ? and state = ?",
                                     [self.kind, state]).fetchone()[0]

    def summary(self, limit: int) -> dict[str, Any]:
        """For `status`: rows per state, how many wait for a retry after an error, the latest parked."""
        db = self.store.db
        counts = dict(db.execute("select state, count(*) from ledger where kind = ? group by state",
                                 [self.kind]).fetchall())
        retrying = db.execute("select count(*) from ledger where kind = ? and state in (?, ?) and attempts > 0",
                              [self.kind, ItemState.PENDING, ItemState.CLAIMED]).fetchone()[0]
        failed = [{"item_id": item_id, "integration_id": iid, "attempts": attempts, "last_error": err}
                  for item_id, iid, attempts, err in db.execute(
                      "select item_id, integration_id, attempts, last_error from ledger where kind = ? and state = ?"
                      " order by updated_at desc, item_id limit ?", [self.kind, ItemState.FAILED, limit]).fetchall()]
        return {"counts": counts, "retrying": retrying, "failed_items": failed}

    # --- one item's way -------------------------------------------------------------------------
    def _update(self, row: Item, **values: Any) -> None:
        values["updated_at"] = iso(utcnow())
        sets = ", ".join(f"{name} = ?" for name in values)
        with self.store.transaction() as db:
            db.execute(f"update ledger set {sets} where kind = ? and item_id = ?",
                       [*values.values(), self.kind, row.item_id])

    def _charged(self, item: Item) -> int:
        return item.attempts + (0 if item.counted else 1)

    def claim(self, item: Item) -> None:
        """Committed before the write goes out: from here on a crash leaves it in doubt, not lost."""
        attempts = self._charged(item)
        self._update(item, state=ItemState.CLAIMED, attempts=attempts, sha256=item.sha256, size=item.size)
        item.state, item.attempts, item.counted = ItemState.CLAIMED, attempts, True

    def refused(self, item: Item) -> None:
        """MyCase answered "no" (4xx): nothing of this write landed, so it is no longer in doubt
        (unless an earlier step created its document)."""
        if item.state == ItemState.CLAIMED and item.remote_id is None:
            self._update(item, state=ItemState.PENDING)
            item.state = ItemState.PENDING

    def remember_record(self, item: Item, record: dict) -> None:
        self._update(item, item=json.dumps(record))
        item.record = record

    def created(self, item: Item, remote_id: Any) -> None:
        """A MyCase record exists for it (its bytes may still be missing): never create a second."""
        self._update(item, state=ItemState.CLAIMED, remote_id=str(remote_id))
        item.remote_id, item.state = str(remote_id), ItemState.CLAIMED

    def confirm(self, item: Item, remote_id: Any) -> None:
        """Sent. `remote_id` is None when MyCase's answer named no id (the send is still confirmed)."""
        remote = None if remote_id is None else str(remote_id)
        self._update(item, state=ItemState.SENT, remote_id=remote, last_error=None)
        item.remote_id, item.state = remote, ItemState.SENT

    def _unsent_state(self, item: Item) -> str:
        return ItemState.CLAIMED if (item.in_doubt or item.remote_id) else ItemState.PENDING

    def fail(self, item: Item, error: str) -> str:
        """Count the failed run; park at MAX_FAILED_RUNS. Returns the new state."""
        attempts = self._charged(item)
        state = ItemState.FAILED if attempts >= MAX_FAILED_RUNS else self._unsent_state(item)
        self._update(item, state=state, attempts=attempts, last_error=error[:500])
        item.state, item.attempts, item.counted = state, attempts, True
        return state

    def release(self, item: Item) -> None:
        """The run stopped for a reason that is not the item's (service down, auth): no attempt counted."""
        if item.state == ItemState.SENT:
            return
        attempts = max(item.attempts - (1 if item.counted else 0), 0)
        self._update(item, state=self._unsent_state(item), attempts=attempts)
