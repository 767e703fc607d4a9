"""Finding what is new in a Case Status list (messages, files) from a saved cursor.

Case Status lists are id-ordered pages; which way they run is read off the pages themselves.
Where a listing ends is PageWatch's call (an empty page, a page with nothing new, never a page
shorter than asked: a server may serve 10 a page whatever page[size] says; a repeated full page is
an error; at most MAX_PAGES pages).
The poller knows nothing of the store: it yields batches of records with the cursor that covers
them, and the push run saves both in one transaction.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from mycase_sync.casestatus.client import PAGE_SIZE, PageWatch, record_id

FIND_PAGES = 40  # pages a search for a moved record may read before giving up
ASC, DESC = "asc", "desc"


def page_order(records: list[dict]) -> str | None:
    """ASC or DESC as a page shows it; None when a page is too short to tell."""
    ids = [record_id(r) for r in records]
    if len(ids) < 2 or ids[0] == ids[-1]:
        return None
    return ASC if ids[0] < ids[-1] else DESC


@dataclass
class Cursor:
    """Where the last poll stopped: the last page that held records, the highest id seen, the order.

    `end_count`: how many records that page held when the page after it was read and found to end
    the list (0: not known); `served_max`: the most records the server has put on one page of this
    list. Together they let an idle run stop after one page (see Poller.unchanged_end)."""

    page: int = 1
    highest: int = 0
    order: str = ASC
    size: int = PAGE_SIZE
    end_count: int = 0
    served_max: int = 0

    @classmethod
    def load(cls, value: Any, size: int = PAGE_SIZE) -> "Cursor | None":
        if not isinstance(value, dict):
            return None
        try:
            cursor = cls(int(value["page"]), int(value["highest"]), str(value.get("order") or ASC),
                         int(value.get("size") or size), int(value.get("end_count") or 0),
                         int(value.get("served_max") or 0))
        except (KeyError, TypeError, ValueError):
            return None
        if cursor.order not in (ASC, DESC) or cursor.page < 1 or cursor.size < 1:
            return None
        if cursor.size != size:  # the same position counted in pages of the new size
            cursor.page = (cursor.page - 1) * cursor.size // size + 1
            cursor.size = size
            cursor.end_count = cursor.served_max = 0
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
    back if records were deleted) and read on until a page is empty or holds nothing new;
    newest-first lists are read from page 1 until a page holds anything already seen. A run with
    nothing new reads one page when that page is exactly as it was when the last run saw the list
    end after it, and shorter than a page the server has served (`unchanged_end`); else two (the
    cursor's, and the empty one after it).
    Full scan (first run, --since, --all): every page, every record. Which of them are sent is
    the ledger's business (what it holds already is never sent again; see the cut-over).
    """

    def __init__(self, fetch: Callable[[int], list], cursor: Cursor | None, *, full: bool, size: int = PAGE_SIZE,
                 path: str = "list"):
        self._fetch_page = fetch
        self.path = path
        self.cursor = cursor or Cursor(size=size)
        self.known = cursor.highest if cursor else None  # ids above this are new
        self.full = full or cursor is None
        self.size = size
        self.requests = 0
        self.malformed = 0
        self.served_max = self.cursor.served_max

    def _fetch(self, page: int) -> list[dict]:
        self.requests += 1
        raw = self._fetch_page(page)
        self.served_max = max(self.served_max, len(raw))
        records = [r for r in raw if record_id(r) is not None]
        self.malformed += len(raw) - len(records)
        return records

    def _is_new(self, record: dict) -> bool:
        return self.known is not None and record_id(record) > self.known

    def _take(self, records: list[dict]) -> list[dict]:
        return list(records) if self.full else [r for r in records if self._is_new(r)]

    def _highest(self, highest: int, records: list[dict]) -> int:
        return max([highest, *(record_id(r) for r in records)])

    def unchanged_end(self, records: list[dict]) -> bool:
        """The cursor's page holds what it held when the last run saw the list end after it (the same
        number of records, the same highest id: ids only grow, so nothing was added nor removed), and
        fewer than the server puts on a page: a new record would be on this page, so none came.

        Never from a page as long as any the server serves: a server serving 10 a page whatever was
        asked puts a new record on the next page, and a full page of its own would look unchanged."""
        cursor = self.cursor
        return (not self.full and cursor.order == ASC and cursor.end_count > 0
                and len(records) == cursor.end_count < self.served_max
                and self._highest(0, records) == cursor.highest)

    def batches(self) -> Iterator[Batch]:
        start = 1 if self.full else self.cursor.page
        records = self._fetch(start)
        if self.malformed == 0 and self.unchanged_end(records):
            return
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
        watch = PageWatch(self.path, self.size)
        last: tuple[int, int] | None = None  # (page, records on it) of the last page that held records
        while True:
            goes_on = watch.goes_on(page, records)
            if goes_on or page == 1:
                highest = self._highest(highest, records)
                cursor = Cursor(max(keep_page, page), highest, ASC, self.size, 0, self.served_max)
                yield Batch(page, self._take(records), cursor)
                last = (cursor.page, len(records)) if cursor.page == page else None
            if not goes_on:
                if last is not None and self.malformed == 0:  # the list was seen to end after that page
                    yield Batch(page, [], Cursor(last[0], highest, ASC, self.size, last[1], self.served_max))
                return
            page += 1
            records = self._fetch(page)

    def _reached_old(self, records: list[dict]) -> bool:
        """A newest-first page past which nothing more can be taken."""
        # Ids only grow: past a page holding one already seen, the rest was seen too.
        return not self.full and any(not self._is_new(r) for r in records)

    def _newest_first(self, records: list[dict]) -> Iterator[Batch]:
        """The cursor moves only at the end: until every new page is in, the old highest id stands."""
        page, highest = 1, self.cursor.highest
        watch = PageWatch(self.path, self.size)
        while True:
            order = page_order(records)
            if order == ASC and page == 1:  # it flipped back: read it as an ascending list
                yield from self._oldest_first(1, records)
                return
            if not watch.goes_on(page, records):
                break
            highest = self._highest(highest, records)
            yield Batch(page, self._take(records), None)
            if self._reached_old(records):
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
        # Toward the end, never stop at a short page (a server may serve 10 whatever was asked):
        # past the last page comes an empty one, and from there back to a page already read.
        page = page - 1 if toward_start else page + 1
    return None
