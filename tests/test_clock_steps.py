"""A wall clock stepped back (NTP, a VM restored) stalls no job: a shared rate-limit slot further
ahead than the limiter could have put it keeps only the lead it had when it was written."""

from __future__ import annotations

from mycase_sync.pacing import SharedPacer


class Clock:
    def __init__(self, now: float):
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_a_clock_stepped_back_200_seconds_stalls_nothing_beyond_one_interval(tmp_path):
    clock = Clock(1_800_000_000.0)
    path = tmp_path / "state.db.mycase.rate"
    first = SharedPacer(20, path, start=20, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        first.acquire()
    first.close()
    clock.now -= 200  # the clock is stepped back between two jobs
    clock.slept.clear()
    second = SharedPacer(20, path, start=20, clock=clock, sleep=clock.sleep)
    second.acquire()
    second.acquire()
    second.close()
    assert sum(clock.slept) <= 0.2, clock.slept  # the lead the slots had when written; before: 200 s


def test_a_slot_ahead_for_a_real_retry_after_is_kept(tmp_path):
    clock = Clock(1_800_000_000.0)
    path = tmp_path / "state.db.mycase.rate"
    first = SharedPacer(20, path, start=20, clock=clock, sleep=clock.sleep)
    first.slow_down(60)  # a 429 said: nobody for 60 s
    first.close()
    second = SharedPacer(20, path, start=20, clock=clock, sleep=clock.sleep)
    second.acquire()
    assert 59.9 < sum(clock.slept) <= 60.0, clock.slept


def test_a_slot_file_of_the_older_format_is_still_read(tmp_path):
    clock = Clock(1_800_000_000.0)
    path = tmp_path / "state.db.mycase.rate"
    path.write_bytes(f"{clock.now + 10:<32.6f}".encode())
    limiter = SharedPacer(20, path, start=20, clock=clock, sleep=clock.sleep)
    limiter.acquire()
    limiter.close()
    assert 9.9 < sum(clock.slept) <= 10.0
