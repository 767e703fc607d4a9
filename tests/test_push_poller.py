"""The polling half of the push jobs: which pages a run reads and what it takes (no HTTP, no store)."""

from __future__ import annotations

import datetime as dt

import pytest

from mycase_sync.sync.markers import marker, markers_in
from mycase_sync.sync.poller import ASC, DESC, Cursor, Poller, find_record, page_order

NOW = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
SIZE = 100


class FakeList:
    """An id-ordered Case Status list, served in pages; counts the pages read."""

    def __init__(self, ids, newest_first=False, days_old=None):
        self.ids = list(ids)
        self.newest_first = newest_first
        self.days_old = days_old or (lambda i: 0)
        self.reads: list[int] = []

    def record(self, i):
        created = NOW - dt.timedelta(days=self.days_old(i))
        return {"id": i, "created_at": created.isoformat().replace("+00:00", "Z")}

    def __call__(self, page):
        self.reads.append(page)
        order = sorted(self.ids, reverse=self.newest_first)
        return [self.record(i) for i in order[(page - 1) * SIZE:page * SIZE]]


def run(source, cursor, full=False):
    """Read like a run does: collect taken ids, keep the last cursor handed back."""
    poller = Poller(source, cursor, full=full, size=SIZE)
    taken, saved = [], cursor
    for batch in poller.batches():
        taken += [r["id"] for r in batch.records]
        saved = batch.cursor or saved
    return taken, saved, poller


def test_first_run_takes_the_whole_history_and_leaves_a_cursor_at_the_last_page():
    source = FakeList(range(1, 251), days_old=lambda i: 300 - i)  # ids 1..250, up to 299 days old
    taken, cursor, poller = run(source, None)
    assert taken == list(range(1, 251))  # what is never sent (a cut-over) is the ledger's decision
    # The list was seen to end after page 3 (50 records), and the server serves up to 100 a page.
    assert cursor == Cursor(page=3, highest=250, order=ASC, size=SIZE, end_count=50, served_max=100)
    assert source.reads == [1, 2, 3, 4]  # a short page does not end a list: the empty one after it does


def test_first_run_on_an_empty_list_still_saves_a_cursor():
    taken, cursor, _ = run(FakeList([]), None)
    assert taken == [] and cursor == Cursor(1, 0, ASC, SIZE)


# One page when it is as the last run left it and shorter than a page the server has served; two (the
# empty page ends it) when it was full, or when no page has shown how many the server puts on one.
@pytest.mark.parametrize("count, reads", [(250, 1), (300, 2), (50, 2)])
def test_an_idle_run_reads_one_page_or_two_when_the_last_was_full(count, reads):
    source = FakeList(range(1, count + 1))
    _, cursor, _ = run(source, None, full=True)
    source.reads.clear()
    taken, after, poller = run(source, cursor)
    assert taken == [] and poller.requests == reads
    assert after == cursor


class FixedPages(FakeList):
    """A server that serves `served` records a page whatever page[size] asks."""

    def __init__(self, ids, served):
        super().__init__(ids)
        self.served = served

    def __call__(self, page):
        self.reads.append(page)
        order = sorted(self.ids)
        return [self.record(i) for i in order[(page - 1) * self.served:page * self.served]]


@pytest.mark.parametrize("served", [10, 100])
def test_a_new_record_on_the_page_after_a_full_one_is_never_missed(served):
    """A page as long as the server serves is never taken for the end, however unchanged it looks."""
    source = FixedPages(range(1, 3 * served + 1), served)
    _, cursor, _ = run(source, None, full=True)
    assert cursor.end_count == served
    source.ids.append(3 * served + 1)  # lands alone on the next page; the last one is unchanged
    taken, _, _ = run(source, cursor)
    assert taken == [3 * served + 1]


@pytest.mark.parametrize("change", ["added", "deleted and added", "deleted"])
def test_a_changed_last_page_is_read_on_as_before(change):
    source = FakeList(range(1, 251))
    _, cursor, _ = run(source, None, full=True)
    if change != "added":
        source.ids.remove(240)
    if change != "deleted":
        source.ids.append(251)
    source.reads.clear()
    taken, _, poller = run(source, cursor)
    assert taken == ([] if change == "deleted" else [251]) and poller.requests == 2


def test_a_server_whose_page_size_shrank_is_read_on():
    """Served 100 a page, then 10: the cursor's page now holds other records, so the list is read on."""
    source = FixedPages(range(1, 251), 100)
    _, cursor, _ = run(source, None, full=True)  # page 3 of 100: 50 records, 201-250
    source.served = 10
    source.ids.append(251)
    taken, _, _ = run(source, cursor)
    assert 251 in taken


def test_a_thousand_pushed_and_three_new_reads_two_pages():
    source = FakeList(range(1, 1001))
    _, cursor, _ = run(source, None, full=True)
    source.ids += [1001, 1002, 1003]
    source.reads.clear()
    taken, cursor, poller = run(source, cursor)
    assert taken == [1001, 1002, 1003]
    assert source.reads == [10, 11, 12]
    assert cursor == Cursor(11, 1003, ASC, SIZE, end_count=3, served_max=100)


def test_new_items_across_several_pages_are_all_taken_and_the_cursor_moves_page_by_page():
    source = FakeList(range(1, 151))
    _, cursor, _ = run(source, None, full=True)
    source.ids += list(range(151, 460))
    poller = Poller(source, cursor, full=False, size=SIZE)
    batches = list(poller.batches())
    assert [r["id"] for b in batches for r in b.records] == list(range(151, 460))
    assert [b.cursor.page for b in batches] == [2, 3, 4, 5, 5]  # the last: the list ends after page 5
    assert [b.cursor.highest for b in batches] == [200, 300, 400, 459, 459]
    assert batches[-1].records == [] and batches[-1].cursor.end_count == 59


def test_deleted_records_shift_pages_down_and_nothing_that_moved_is_skipped():
    source = FakeList(range(1, 301))
    _, cursor, _ = run(source, None, full=True)  # page 3, highest 300
    source.ids = [i for i in source.ids if i > 150] + list(range(301, 311))  # 150 deleted, 10 new
    source.reads.clear()
    taken, cursor, _ = run(source, cursor)
    assert taken == list(range(301, 311))
    assert source.reads == [3, 2, 3]  # stepped back from the page that is now past the end
    assert cursor.highest == 310 and cursor.page == 2


def test_newest_first_is_detected_and_the_run_stops_at_the_first_page_with_anything_seen():
    source = FakeList(range(1, 501), newest_first=True)
    taken, cursor, _ = run(source, None, full=True)
    assert sorted(taken) == list(range(1, 501)) and cursor == Cursor(1, 500, DESC, SIZE)
    source.ids += [501, 502, 503]
    source.reads.clear()
    taken, cursor, poller = run(source, cursor)
    assert sorted(taken) == [501, 502, 503] and source.reads == [1]
    assert cursor == Cursor(1, 503, DESC, SIZE)
    source.reads.clear()
    taken, _, _ = run(source, cursor)
    assert taken == [] and source.reads == [1]


def test_newest_first_with_more_than_a_page_new_reads_on_and_moves_the_cursor_only_at_the_end():
    source = FakeList(range(1, 51), newest_first=True)
    _, cursor, _ = run(source, None, full=True)
    source.ids += list(range(51, 300))
    poller = Poller(source, cursor, full=False, size=SIZE)
    batches = list(poller.batches())
    assert [b.cursor for b in batches[:-1]] == [None] * (len(batches) - 1)
    assert batches[-1].cursor == Cursor(1, 299, DESC, SIZE)
    assert sorted(r["id"] for b in batches for r in b.records) == list(range(51, 300))


def test_a_list_that_turns_newest_first_is_noticed_from_the_resumed_page():
    source = FakeList(range(1, 351))
    _, cursor, _ = run(source, None, full=True)  # asc, page 4
    source.newest_first = True
    source.ids += [351, 352]
    source.reads.clear()
    taken, cursor, _ = run(source, cursor)
    assert sorted(taken) == [351, 352]
    assert source.reads == [4, 1] and cursor.order == DESC


def test_a_list_that_turns_back_to_oldest_first_is_read_again_from_page_one():
    source = FakeList(range(1, 151), newest_first=True)
    _, cursor, _ = run(source, None, full=True)
    source.newest_first = False
    source.ids += [151]
    taken, cursor, _ = run(source, cursor)
    assert taken == [151] and cursor == Cursor(2, 151, ASC, SIZE, end_count=51, served_max=100)


def test_first_run_newest_first_reads_every_page():
    source = FakeList(range(1, 1001), newest_first=True, days_old=lambda i: (1000 - i) // 10)
    taken, cursor, _ = run(source, None)
    assert sorted(taken) == list(range(1, 1001))
    assert source.reads == list(range(1, 12))  # ten full pages, then the empty eleventh ends it
    assert cursor.highest == 1000


def test_all_and_since_rescan_from_page_one_taking_old_items_and_keep_the_cursor_page():
    source = FakeList(range(1, 301), days_old=lambda i: 301 - i)
    _, cursor, _ = run(source, None)
    assert cursor.page == 3
    taken, after, _ = run(source, cursor, full=True)
    assert taken == list(range(1, 301))  # the ledger ignores those it already has
    assert after.page == 3 and after.highest == 300


def test_records_without_a_usable_id_are_ignored_and_counted():
    def fetch(page):
        return [{"id": 1}, {"id": None}, {"id": "x"}, "junk", {"id": True}, {"id": 2}] if page == 1 else []

    poller = Poller(fetch, None, full=True, size=SIZE)
    assert [r["id"] for b in poller.batches() for r in b.records] == [1, 2]
    assert poller.malformed == 4


def test_a_cursor_saved_with_another_page_size_is_converted():
    cursor = Cursor.load({"page": 5, "highest": 480, "order": "asc", "size": 50}, size=100)
    assert cursor == Cursor(3, 480, ASC, 100)
    assert Cursor.load({"page": "x"}) is None and Cursor.load(None) is None
    assert Cursor.load({"page": 1, "highest": 1, "order": "sideways"}) is None


def test_page_order():
    assert page_order([{"id": 1}, {"id": 5}]) == ASC
    assert page_order([{"id": 5}, {"id": 1}]) == DESC
    assert page_order([{"id": 5}]) is None


@pytest.mark.parametrize("newest_first", [False, True])
def test_find_record_follows_the_ids_from_a_stale_page(newest_first):
    source = FakeList(range(1, 1001), newest_first=newest_first)
    found = find_record(source, 123, page=1 if not newest_first else 10, order=DESC if newest_first else ASC)
    assert found is not None and found[0]["id"] == 123
    source.ids = [i for i in source.ids if i != 500]
    assert find_record(source, 500, page=5, order=ASC) is None
    assert find_record(source, 5000, page=5, order=ASC) is None


def test_markers_are_exact():
    text = f"hello\n\n{marker('message', 42)}"
    assert markers_in(text, "message") == [42]
    assert markers_in("[casestatus:message:420]", "message") == [420]
    assert markers_in(text, "file") == [] and markers_in(None, "message") == []


def test_a_resumed_page_holding_only_new_ids_steps_back_so_none_is_missed():
    source = FakeList(range(1, 301))
    _, cursor, _ = run(source, None, full=True)  # page 3, highest 300
    source.ids = list(range(101, 351))  # 1-100 deleted: page 3 now holds only new ids
    source.reads.clear()
    taken, cursor, _ = run(source, cursor)
    assert taken == list(range(301, 351))
    assert source.reads == [3, 2, 3, 4] and cursor == Cursor(3, 350, ASC, SIZE, end_count=50, served_max=100)
