"""The ledger over a real state store: rows, states, counting runs, and threads sharing the store."""

from __future__ import annotations

import threading

from mycase_sync.store import ItemState, open_store
from mycase_sync.store.ledger import MAX_FAILED_RUNS
from mycase_sync.sync.poller import Cursor

CLAIMED, FAILED, PENDING, SENT, WAITING = (ItemState.CLAIMED, ItemState.FAILED, ItemState.PENDING, ItemState.SENT,
                                           ItemState.WAITING)


def make(tmp_path):
    store = open_store(tmp_path / "state.db")
    return store, store.ledger("message")


def add(ledger, *records, cursor=None):
    rows = [(record["id"], record.get("integration_id"), record, WAITING) for record in records]
    return ledger.add(rows, ("push-messages", cursor.dump()) if cursor else None)


def map_case(store, mycase_id, casestatus_id=70001):
    with store.transaction() as db:
        db["matters"].insert({"mycase_id": mycase_id, "casestatus_id": casestatus_id, "state": "synced"})


def ready(tmp_path, count=1):
    """A ledger holding `count` pending messages of imported case 11."""
    store, ledger = make(tmp_path)
    map_case(store, "11")
    for n in range(1, count + 1):
        add(ledger, {"id": n, "integration_id": "11"})
    ledger.match_cases()
    return store, ledger


def test_items_are_recorded_once_with_their_cursor_and_wait_for_their_case(tmp_path):
    store, ledger = make(tmp_path)
    assert add(ledger, {"id": 1, "integration_id": "11"}, {"id": 2, "integration_id": None},
               cursor=Cursor(1, 2)) == 2
    assert add(ledger, {"id": 1, "integration_id": "11"}) == 0  # seen again: ignored
    assert store.get_cursor("push-messages") == {"page": 1, "highest": 2, "order": "asc", "size": 100, "end_count": 0,
                                                 "served_max": 0}
    assert ledger.count(WAITING) == 2
    map_case(store, "11")
    ledger.match_cases()
    items = {i.item_id: i for i in ledger.rows((PENDING, CLAIMED, WAITING))}
    assert items[1].state == PENDING and items[1].case_imported and items[1].integration_id == "11"
    assert items[2].state == WAITING and not items[2].case_imported
    with store.transaction() as db:  # a matter unmapped again (store edited by hand): it waits
        db.execute("delete from matters")
    ledger.match_cases()
    assert ledger.count(WAITING) == 2
    store.close()


def test_attempts_count_failed_runs_and_park_at_the_limit(tmp_path):
    store, ledger = ready(tmp_path)
    for run in range(1, MAX_FAILED_RUNS + 1):
        (item,) = ledger.rows((PENDING, CLAIMED))
        ledger.claim(item)
        if run % 2:  # MyCase answered "no": nothing landed, no longer in doubt
            ledger.refused(item)
        assert item.in_doubt == (run % 2 == 0)
        state = ledger.fail(item, "boom")
        assert item.attempts == run  # claim and fail in one run count once
        assert state == (FAILED if run == MAX_FAILED_RUNS else CLAIMED if item.in_doubt else PENDING)
    assert ledger.rows((PENDING, CLAIMED)) == []
    assert ledger.unpark() == 1
    (item,) = ledger.rows((PENDING, CLAIMED))
    assert item.state == CLAIMED and item.in_doubt and item.attempts == 0
    ledger.release(item)  # nothing counted this run: stays in doubt, attempts untouched
    ledger.confirm(item, 42)
    assert ledger.count(SENT) == 1
    store.close()


def test_a_release_gives_back_the_attempt_of_a_run_stopped_by_an_outage(tmp_path):
    store, ledger = ready(tmp_path)
    (item,) = ledger.rows((PENDING,))
    ledger.release(item)  # stopped before its send began: still simply pending
    (item,) = ledger.rows((PENDING, CLAIMED))
    assert item.attempts == 0 and item.state == PENDING
    ledger.claim(item)  # its send began, then the outage: in doubt, and still no attempt counted
    ledger.release(item)
    (item,) = ledger.rows((PENDING, CLAIMED))
    assert item.attempts == 0 and item.state == CLAIMED and item.in_doubt
    store.close()


def test_worker_threads_write_the_ledger_while_others_read_the_store(tmp_path):
    """sqlite-utils reads use savepoints: on a shared connection they must not cut into a transaction."""
    store, ledger = ready(tmp_path, 40)
    items = ledger.rows((PENDING,))
    errors = []

    def worker(chunk):
        try:
            for item in chunk:
                ledger.claim(item)
                ledger.created(item, item.item_id + 1000)
                ledger.confirm(item, item.item_id + 1000)
        except Exception as exc:  # pragma: no cover - the failure being tested for
            errors.append(repr(exc))

    def reader():
        try:
            for _ in range(300):
                list(store.db.query("select * from tokens"))
                store.get_cursor("push-messages")
        except Exception as exc:  # pragma: no cover
            errors.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(items[n::8],)) for n in range(8)]
    threads += [threading.Thread(target=reader) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert ledger.count(SENT) == 40
    store.close()
