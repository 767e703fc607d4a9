"""ReadAhead: the nightly import's reads by id start before they are wanted, come out in id order,
and an id taken meanwhile (from the listing) is not read."""

from __future__ import annotations

import threading

from mycase_sync.sync.read_ahead import ReadAhead


def test_reads_start_before_they_are_wanted_and_come_out_in_order_without_the_ids_taken_meanwhile():
    first_read = threading.Event()
    listing_done = threading.Event()
    read: list[str] = []
    wanted = {str(n) for n in range(1, 41)}

    def get(mid: str) -> dict:
        read.append(mid)
        first_read.set()
        listing_done.wait(10)  # the reads overlap the listing: they are under way before it ends
        return {"id": mid}

    reads = ReadAhead(get, [str(n) for n in range(1, 41)], workers=8, held=16, wanted=lambda mid: mid in wanted)
    try:
        assert first_read.wait(10)  # started before anyone asked for a result
        # Two reads in flight while the listing is read (DURING_LISTING): the rest wait, so 30 and 31 are not yet read.
        wanted -= {"30", "31"}  # taken from the listing meanwhile
        listing_done.set()
        got = [(mid, future.result()["id"]) for mid, future in reads]
    finally:
        reads.close()
    assert all(mid == read_id for mid, read_id in got)
    assert [int(mid) for mid, _ in got] == sorted(int(mid) for mid, _ in got)
    assert {"30", "31"}.isdisjoint(read) and {"30", "31"}.isdisjoint(mid for mid, _ in got)
    assert len(got) == 38


def test_closing_early_stops_the_reads_not_started():
    read: list[str] = []
    reads = ReadAhead(lambda mid: read.append(mid), [str(n) for n in range(1000)], workers=4, held=8)
    iterator = iter(reads)
    next(iterator)
    reads.close()
    assert len(read) < 1000


def test_closing_while_the_feeder_hands_out_a_read_stops_it_quietly(monkeypatch):
    """A run stopped (Ctrl-C, Case Status down) while the feeder is between its checks and handing out a
    read: the pool is shut by then, and the feeder must stop without a traceback on stderr."""
    failures: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: failures.append(args.exc_value))
    asked, closed = threading.Event(), threading.Event()

    def wanted(mid: str) -> bool:
        asked.set()
        closed.wait(10)  # the run closes the reads now
        return True

    reads = ReadAhead(lambda mid: {"id": mid}, ["1", "2"], workers=2, held=4, wanted=wanted)
    assert asked.wait(10)
    reads.close()
    closed.set()
    reads._feeder.join(10)
    assert not reads._feeder.is_alive() and failures == []
