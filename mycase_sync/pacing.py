"""Pacing: how fast each service is sent requests, found from its answers without being told.

Case Status publishes no rate limit and MyCase documents one (25/s) that an account may not get,
so the pace is learned: it starts low, rises while answers come back without 429, is cut on a 429
(and nobody sends until its Retry-After has passed), and what was learned is kept for the next run.
The configured rate limit is only a ceiling the pace never passes.

Why CUBIC (the curve of the AWS SDKs' "adaptive" retry mode) and not AIMD: every 429 costs a
Retry-After pause for every worker, so what matters is how rarely the pace is refused, not only
how close it runs. AIMD climbs back at a constant slope and spends half its time well below the
limit; its probes come at a period that grows with the rate. CUBIC makes the rate a function of
the time since the last 429: it climbs back fast to just under the rate that was refused,
dwells there, and only then probes beyond it (the limit may have been raised). Here the curve is
scaled to the refused rate, so the time between probes (RECOVERY) is the same at 5/s and 300/s,
and its clock runs only while the pace is actually used (an idle night does not count as
"answers without 429"). Before the first 429 the rate doubles every DOUBLING seconds (TCP's slow
start), so a fast service is found within seconds; on a 429 the refused rate is what was actually
sent in the second before the refused request, not the (possibly far higher) pace being tried (a
429 with less than a second of sends behind it cuts the pace, but is believed only the second time:
a gateway's or another client's 429 would otherwise crush the pace for minutes). A 429 with
Retry-After holds every request of every job until it has passed; one without holds only the
refused request (its backoff), and the cut pace does the rest.

`RateLimit-*` / `X-RateLimit-*` answer headers are used when present: a stated policy (a quota
per window) becomes the ceiling and the pace, and "0 remaining" holds everyone until the reset.

Shared by every process of one state store: the pace belongs to the account, and cron may run the
import and both pushes at once. The state (next free slot, pace, refused rate, the sends of the
last second) lives in a small file beside the store, read and written under flock per request;
the learned pace is copied into the store once per run (App.close), never per request.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping

from mycase_sync.locks import open_private
from mycase_sync.rate_limit_headers import MAX_WAIT, rate_limit_hint

START_RATE = 10.0  # requests/s when nothing is known or configured
MIN_RATE = 0.5  # however many 429s: one request every 2 s still gets through
BETA = 0.9  # after a 429 the pace is this share of the rate that was refused
RECOVERY = 20.0  # busy seconds from a cut back up to the refused rate (CUBIC's K)
CUBIC = (1 - BETA) / RECOVERY**3  # so that the curve starts at BETA × refused rate
DOUBLING = 0.25  # seconds: before the first 429 the pace doubles this often while it is used
STEP_CAP = 0.5  # seconds: the most of a gap between two requests that counts as busy time
BUCKET = 0.1  # seconds: the sends of the last second are counted in BUCKETS buckets of this size
BUCKETS = 10
SETTLE = 1.0  # seconds after a cut before a 429 can cut again: the services count sends over one second,
# so a 429 that soon may still answer the sends made before the cut
MAX_AHEAD = MAX_WAIT + 180.0  # a slot further ahead than any queue plus pause: the clock was set back


@dataclass(frozen=True)
class Grant:
    """One request's turn: its slot (on the pacer's clock), the pace then, and the requests sent in
    the second before it (itself included): on a 429 during a slow start, that count is the rate
    the service refused."""

    slot: float
    rate: float
    sent_last_second: int
    full: bool = True  # requests went out all through that second (no gap): the count covers a whole window


@dataclass
class PaceState:
    """What every process of one store shares for a service (times on the pacer's clock)."""

    rate: float
    refused: float = 0.0  # the rate the last 429 refused (CUBIC's W_max); 0: none yet, slow start
    busy: float = 0.0  # busy seconds since the last cut
    next_slot: float = 0.0
    cut_at: float = 0.0  # a 429 to a request granted before this does not cut again (SETTLE)
    last: float = 0.0  # the slot of the last grant
    streak_since: float = 0.0  # the slot since which requests have gone out with no gap over STEP_CAP
    doubted: bool = False  # a 429 in this slow start was doubted (too few sends behind it): the next is believed
    bucket: int = 0  # the bucket number (slot // BUCKET) of counts[-1]
    counts: list[int] = field(default_factory=lambda: [0] * BUCKETS)

    def sent_in_last_second(self, slot: float) -> int:
        self.advance(slot)
        return sum(self.counts)

    def sent_in_last_half_second(self, slot: float) -> int:
        self.advance(slot)
        return sum(self.counts[BUCKETS // 2:])

    def count(self, slot: float) -> None:
        self.advance(slot)
        self.counts[-1] += 1

    def advance(self, slot: float) -> None:
        """Move the buckets on to the one of `slot` (slots never go back, short of a clock step)."""
        moved = int(slot // BUCKET) - self.bucket
        if 0 < moved < BUCKETS:
            self.counts = self.counts[moved:] + [0] * moved
        elif moved >= BUCKETS or moved <= -BUCKETS:
            self.counts = [0] * BUCKETS
        if moved > 0 or moved <= -BUCKETS:
            self.bucket = int(slot // BUCKET)


def cubic_rate(refused: float, busy: float) -> float:
    """The pace `busy` seconds after a cut: BETA × refused at 0, refused at RECOVERY, then beyond."""
    return refused * (1 + CUBIC * (busy - RECOVERY) ** 3)


def busy_for(rate: float, refused: float) -> float:
    """Where on the curve a pace stands (the inverse of cubic_rate): for a pace read from the store."""
    ratio = rate / refused - 1
    return max(0.0, RECOVERY + math.copysign(abs(ratio / CUBIC) ** (1 / 3), ratio))


class Pacer:
    """The pace of one service for the threads of this process: a token bucket of depth one.

    Depth one (no burst) because services count in sliding windows: a burst on top of a steady
    rate is what trips them. `ceiling` is never passed; `start` is the pace to begin with, and
    `refused` the rate a 429 refused, when known (from the store).
    """

    def __init__(self, ceiling: float, start: float | None = None, refused: float = 0.0,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        self.ceiling = ceiling
        self.start = _clamp(start if start is not None else START_RATE, ceiling)
        self.start_refused = refused if refused > 0 else 0.0
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()  # the state
        self._turn = threading.Lock()  # the one thread of this process waiting for a slot
        self._state = self.fresh_state()
        self.granted = 0
        self._stated: tuple[float, float] | None = None  # the last RateLimit policy seen (quota, window)

    def seed(self, start: float, refused: float = 0.0) -> None:
        """Begin from this pace (and refused rate) when no process shares one right now."""
        self.start = _clamp(start, self.ceiling)
        self.start_refused = refused if refused > 0 else 0.0
        with self._lock:
            self._state = self.fresh_state()

    def moved(self, rate: float, refused: float) -> bool:
        """True when (rate, refused) is not where this pacer began: something was learned."""
        return abs(rate - self.start) > 1e-9 or abs(refused - self.start_refused) > 1e-9

    def fresh_state(self) -> PaceState:
        refused = self.start_refused
        return PaceState(rate=self.start, refused=refused, busy=busy_for(self.start, refused) if refused else 0.0)

    # --- the three events: a request is about to go, a 429 came back, an answer carried headers ---------
    def acquire(self) -> Grant:
        """Wait for the next free slot; the pace rises here while it is used and no 429 comes back.

        One thread of a process at a time waits for a slot (the others queue behind it), and a
        slot is taken at most one interval ahead: a slot handed out seconds ahead would be sent
        at a pace decided before a 429 that came back meanwhile. The last wait, to the slot taken,
        is outside the queue: the next thread may take the slot after it meanwhile."""
        with self._turn:
            while True:
                grant, wait = self.try_acquire()
                if grant is not None:
                    break
                self._sleep(wait)
        if wait > 0:
            self._sleep(wait)
        return grant

    def try_acquire(self) -> tuple[Grant | None, float]:
        """A slot now or within one interval (the grant, and the wait until it), else (None, the
        wait before asking again)."""
        with self._lock, self._shared() as state:
            now = self._clock()
            slot = max(now, state.next_slot)
            ahead = slot - now - 1.0 / state.rate
            if ahead > 1e-6:
                return None, ahead
            if slot - state.last > STEP_CAP:
                state.streak_since = slot
            self._grow(state, slot)
            state.count(slot)
            state.next_slot = slot + 1.0 / state.rate
            state.last = slot
            self.granted += 1
            full = slot - state.streak_since >= BUCKET * BUCKETS
            return Grant(slot, state.rate, state.sent_in_last_second(slot), full), slot - now

    def throttled(self, grant: Grant | None, seconds: float) -> None:
        """After a 429 to `grant`: nobody sends for `seconds`, and the pace is cut, once per burst:
        a 429 to a request granted before the last cut had settled tells nothing new."""
        with self._lock, self._shared() as state:
            now = self._clock()
            if grant is not None and grant.slot >= state.cut_at:
                self._cut(state, grant)
                state.cut_at = max(now, state.next_slot) + SETTLE
            state.next_slot = max(state.next_slot, now + seconds)

    def slow_down(self, seconds: float) -> None:
        """Nobody sends before `seconds` from now (a pause with no cut of the pace)."""
        self.throttled(None, seconds)

    def observe(self, headers: Mapping[str, str]) -> None:
        """RateLimit-* / X-RateLimit-* headers of an answer, when the service sends them."""
        hint = rate_limit_hint(headers)
        if hint is None:
            return
        policy, remaining, reset = hint
        if policy is not None and policy != self._stated:
            self._stated = policy
            stated = max(policy[0] / policy[1], MIN_RATE)  # a quota per day must not make it one request a day
            self.ceiling = min(self.ceiling, stated)
            with self._lock, self._shared() as state:
                state.rate = state.refused = _clamp(stated, self.ceiling)
                state.busy = RECOVERY
        if remaining is not None and remaining <= 0 and reset:
            self.slow_down(reset)

    # --- what the store keeps ------------------------------------------------------------------------------
    def learned(self) -> tuple[float, float]:
        """The pace now and the rate the last 429 refused (0: none yet), for the store."""
        with self._lock, self._shared() as state:
            return state.rate, state.refused

    def _cut(self, state: PaceState, grant: Grant) -> None:
        """After a slow start, the service refused what was sent in the second before the 429 (the
        pace itself had raced ahead of what the service counted); the pace becomes BETA of that.
        A count of less than a second of sends may be a 429 that has nothing to do with the pace
        (a gateway's, another client's): the pace is cut to it but the slow start goes on, and
        only a second such 429 is believed. Later, each 429 cuts the pace to BETA of itself."""
        sent = max(MIN_RATE, min(grant.sent_last_second, grant.rate))
        if state.refused:
            state.refused = grant.rate
        elif grant.full or state.doubted:
            state.refused, state.doubted = sent, False
        else:
            state.rate, state.doubted = _clamp(BETA * sent, self.ceiling), True
            return
        state.rate = _clamp(BETA * state.refused, self.ceiling)
        state.busy = 0.0

    def _grow(self, state: PaceState, slot: float) -> None:
        """Raise the pace if it is busy (the last half second carried at least half of it)."""
        step = min(max(slot - state.last, 0.0), STEP_CAP) if state.last else 0.0
        if state.sent_in_last_half_second(slot) < state.rate / 4:
            return
        if state.refused:
            state.busy += step
            rate = cubic_rate(state.refused, state.busy)
        else:
            rate = state.rate * 2 ** (step / DOUBLING)
        state.rate = _clamp(rate, self.ceiling)

    @contextlib.contextmanager
    def _shared(self) -> Iterator[PaceState]:
        """Where a subclass reads and writes the state from outside this process."""
        yield self._state

    def close(self) -> None:
        pass


class SharedPacer(Pacer):
    """The same pace, shared by every process that uses one state store (a file beside it, flock).

    Times in the file are wall-clock seconds, with the moment it was written: a file written
    "later" than now means the clock was stepped back since, and its times keep only the lead they
    had when written (else every job would stall by the step).
    """

    def __init__(self, ceiling: float, path: Path, start: float | None = None, refused: float = 0.0,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep):
        super().__init__(ceiling, start, refused, clock=clock, sleep=sleep)
        self.path = path
        self._fd: int | None = None

    @contextlib.contextmanager
    def _shared(self) -> Iterator[PaceState]:
        if self._fd is None:
            self._fd = open_private(self.path)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            state = self._read(os.pread(self._fd, 512, 0), self._clock())
            yield state
            os.pwrite(self._fd, _encode(state, self._clock()), 0)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _read(self, data: bytes, now: float) -> PaceState:
        try:
            fields = [float(f) for f in data.split()]
        except ValueError:  # a torn or foreign file: start afresh
            fields = []
        state = self.fresh_state()
        if not fields:
            return state
        written = fields[1] if len(fields) > 1 else now
        lag = min(now - written, 0.0)  # negative when the clock was stepped back since
        state.next_slot = _sane(fields[0] + lag, now)
        if len(fields) == 10 + BUCKETS and fields[2] > 0:  # this format (an older file holds the slot only)
            state.rate = _clamp(fields[2], self.ceiling)
            state.refused = max(fields[3], 0.0)
            state.busy = max(fields[4], 0.0)
            state.cut_at = _sane(fields[5] + lag, now)
            state.last = _sane(fields[6] + lag, now)
            state.streak_since = _sane(fields[7] + lag, now)
            state.doubted = fields[8] == 1
            if not lag:
                state.bucket = int(fields[9])
                state.counts = [int(c) for c in fields[10:]]
        return state

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _encode(state: PaceState, now: float) -> bytes:
    numbers = [f"{state.next_slot:.6f}", f"{now:.6f}", f"{state.rate:.6g}", f"{state.refused:.6g}",
               f"{state.busy:.4f}", f"{state.cut_at:.6f}", f"{state.last:.6f}", f"{state.streak_since:.6f}",
               str(int(state.doubted)),
               str(state.bucket), *map(str, state.counts)]
    return " ".join(numbers).encode().ljust(511) + b"\n"


def _sane(moment: float, now: float) -> float:
    """A time from the file, forgotten when it lies further ahead than the pacer could have put it."""
    return moment if moment <= now + MAX_AHEAD else 0.0


def _clamp(rate: float, ceiling: float) -> float:
    return min(max(rate, MIN_RATE), ceiling)


def pace_start(ceiling: float, given: bool) -> float:
    """Where a service's pace starts when no run has learned it: at a rate limit the user set (the
    account's known limit), else at START_RATE."""
    return ceiling if given else min(START_RATE, ceiling)


def rate_file(db_path: Path, service: str) -> Path:
    """`state.db.mycase.rate`: the shared pacing file of one service, beside the state store."""
    return db_path.with_name(f"{db_path.name}.{service.lower().replace(' ', '')}.rate")
