"""import-matters reads the matters it retries by id several at a time, in order, and stops on an outage.

Each read is a MyCase round trip (0.9 s to 20 s live): one after another they dominated a quiet
night on a big firm (bench/incremental.py). Overlap is shown with a barrier, not a clock: a read
returns only once another is in flight with it.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from mycase_sync.errors import ServiceError
from mycase_sync.report import open_report
from mycase_sync.store import open_store
from mycase_sync.sync.import_run import ImportRun


class FakeMyCase:
    def __init__(self, answers: dict, together: int = 1):
        self.answers = answers
        self.barrier = threading.Barrier(together, timeout=10) if together > 1 else None
        self.read: list[str] = []
        self.lock = threading.Lock()

    def get_case(self, mid: str):
        with self.lock:
            self.read.append(mid)
        if self.barrier is not None:
            self.barrier.wait()  # raises BrokenBarrierError if no other read is in flight
        answer = self.answers[mid]
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def make_run(tmp_path):
    stores = []

    def make(mycase, workers: int = 4) -> ImportRun:
        store = open_store(tmp_path / "state.db")
        stores.append(store)
        app = SimpleNamespace(settings=SimpleNamespace(workers=workers, phone_region="US"), store=store,
                              mycase=mycase, casestatus=None)
        return ImportRun(app, "run-1", dry_run=True, create_staff=False, report=open_report(None))

    yield make
    for store in stores:
        store.close()


def test_retry_reads_overlap_and_every_matter_is_taken(make_run):
    ids = [str(n) for n in range(1, 10)]
    mycase = FakeMyCase({mid: None for mid in ids}, together=3)  # 9 reads, 3 at a time
    run = make_run(mycase, workers=3)
    run.retry = set(ids)
    run.retry_by_id()
    assert sorted(mycase.read, key=int) == ids
    assert run.counts["skipped"] == len(ids)  # None: deleted in MyCase, recorded as skipped
    assert run.retry == set()


def test_retry_results_are_taken_in_id_order(make_run, monkeypatch):
    ids = ["3", "10", "2", "100", "1"]
    run = make_run(FakeMyCase({mid: {"id": int(mid)} for mid in ids}), workers=2)
    taken = []
    monkeypatch.setattr(run, "take", lambda case, listed: taken.append(str(case["id"])))
    run.retry = set(ids)
    run.retry_by_id()
    assert taken == ["1", "2", "3", "10", "100"]


def test_an_unavailable_mycase_stops_the_retries(make_run):
    ids = [str(n) for n in range(1, 50)]
    answers = {mid: None for mid in ids}
    answers["1"] = ServiceError("MyCase", "GET", "/v1/cases/1", 503, "Service Unavailable")
    mycase = FakeMyCase(answers)
    run = make_run(mycase, workers=4)
    run.retry = set(ids)
    with pytest.raises(ServiceError):
        run.retry_by_id()
    assert len(mycase.read) < len(ids)  # the window: a few reads ahead, not all of them


class StaffDirectory:
    """MyCase staff as listed (id 7) and by id: id 99 was deleted (404), id 98 is refused (403)."""

    def __init__(self):
        self.asked: list[int] = []

    def list_staff(self):
        return [{"id": 7, "email": "lead@firm.example", "first_name": "Lee", "last_name": "Dean", "type": "Attorney"}]

    def get_staff(self, staff_id: int):
        self.asked.append(staff_id)
        if staff_id == 98:
            raise ServiceError("MyCase", "GET", f"/v1/staff/{staff_id}", 403, "Forbidden")
        return None


def test_staff_mycase_no_longer_has_is_asked_for_once_not_every_night(tmp_path):
    """A departed paralegal on old matters cost one MyCase round trip per night, on the main thread;
    a 404 is remembered (asked again after a week), a refusal is not."""
    case = {"id": 5, "staff": [{"id": 7, "lead_lawyer": True}, {"id": 99}, {"id": 98}]}
    directory = StaffDirectory()
    users = SimpleNamespace(list_users=lambda: [])

    def one_run(dry_run: bool = False) -> ImportRun:
        store = open_store(tmp_path / "state.db")
        app = SimpleNamespace(settings=SimpleNamespace(workers=2, phone_region="US"), store=store,
                              mycase=directory, casestatus=users)
        run = ImportRun(app, "run", dry_run=dry_run, create_staff=False, report=open_report(None))
        try:
            run.load_people()
            run.people.find(case)
            run.people.find(case)  # a second case with the same staff: asked once a run anyway
            run.keep_staff_gone()
        finally:
            run.pool.shutdown()
            store.close()
        return run

    one_run(dry_run=True)
    assert directory.asked == [99, 98]  # a dry run asks, and remembers nothing
    directory.asked.clear()
    first = one_run()
    assert directory.asked == [99, 98] and first.people.not_found == {99, 98}
    directory.asked.clear()
    second = one_run()
    assert directory.asked == [98] and second.people.not_found == {99, 98}
