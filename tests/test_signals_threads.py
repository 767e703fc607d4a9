"""A stop signal that arrives while a worker thread is in a section no signal cuts (a store write, a
token refresh) takes effect when that section ends, in the main thread, even while the main thread
only waits for the workers (push jobs wait on whole lanes of items)."""

from __future__ import annotations

import signal
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed

import pytest

from mycase_sync import signals
from mycase_sync.signals import Interrupted, handled, uncut


def test_a_signal_deferred_by_a_worker_stops_the_waiting_main_thread_when_the_section_ends():
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers are installed from the main thread only")
    main = threading.main_thread().ident
    stopped = threading.Event()
    seen: list[bool] = []

    def lane() -> None:
        with uncut():  # e.g. the ledger's write of this item
            signal.pthread_kill(main, signal.SIGTERM)  # the signal lands while the section is under way
            while signals._pending is None:  # the main thread's handler has put it off
                pass
        # The section is over: the rest of the lane goes on, and the main thread must stop meanwhile.
        seen.append(stopped.wait(10))

    pool = ThreadPoolExecutor(max_workers=1)
    with handled():
        try:
            for future in as_completed([pool.submit(lane)]):
                future.result()
        except Interrupted as exc:
            stopped.set()
            assert exc.exit_code == signals.EXIT_SIGTERM
    pool.shutdown(wait=True)
    assert seen == [True], "the main thread stopped only once the worker's whole lane was done"
