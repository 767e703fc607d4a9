"""Reads by id that start before their results are wanted: the nightly import's retries.

The matters retried by id (failed, pending, waiting for a user) used to be read after the MyCase
listing, when the Case Status writes of the listed matters were nearly done: on a quiet night the
run then waited on MyCase alone. Read ahead, they share MyCase's pace with the listing instead.

While the listing is read, only a few reads are in flight (each listing page waits in the pace's
queue behind them, and the listing feeds the Case Status writes); `widen()` lets all the workers
read once it is done. At most `held` results wait to be taken, so memory stays flat however many
matters are to be retried. Results come out in the order of the ids.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterable, Iterator

DURING_LISTING = 2  # reads in flight while the listing is read


class ReadAhead:
    def __init__(self, read: Callable[[str], Any], ids: Iterable[str], workers: int, held: int,
                 wanted: Callable[[str], bool] = lambda _: True):
        self._read = read
        self._wanted = wanted  # asked again just before each read: an id taken meanwhile is not read
        self._workers = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mycase")
        self._in_flight = threading.Semaphore(min(DURING_LISTING, workers))
        self._room = threading.Semaphore(held)
        self._results: queue.Queue = queue.Queue()
        self._stopped = False
        self._widened = False
        self._feeder = threading.Thread(target=self._feed, args=(iter(ids),), name="read-ahead", daemon=True)
        self._feeder.start()

    def _feed(self, ids: Iterator[str]) -> None:
        try:
            for mid in ids:
                self._room.acquire()
                self._in_flight.acquire()
                if self._stopped:
                    break
                if not self._wanted(mid):
                    self._room.release()
                    self._in_flight.release()
                    continue
                try:
                    reading = self._pool.submit(self._one, mid)
                except RuntimeError:  # closed meanwhile (the pool is shut): stop as at the check above
                    break
                self._results.put((mid, reading))
        finally:
            self._results.put(None)

    def _one(self, mid: str) -> Any:
        try:
            return self._read(mid)
        finally:
            self._in_flight.release()

    def widen(self) -> None:
        """The listing is done: every worker may read now."""
        if not self._widened:
            self._widened = True
            for _ in range(self._workers - min(DURING_LISTING, self._workers)):
                self._in_flight.release()

    def __iter__(self) -> Iterator[tuple[str, Future]]:
        """(id, future of its read), in id order, as they are submitted; widens first."""
        self.widen()
        while True:
            item = self._results.get()
            if item is None:
                return
            self._room.release()
            yield item

    def close(self) -> None:
        """Stop reading: reads not started are dropped, those under way finish."""
        self._stopped = True
        for _ in range(self._workers):  # a feeder waiting for room or a worker goes on, and stops
            self._room.release()
            self._in_flight.release()
        self._pool.shutdown(wait=True, cancel_futures=True)
