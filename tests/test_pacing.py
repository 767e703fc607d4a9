"""The pace: it rises while answers come back without 429, falls on a 429, honours Retry-After, is
shared by the processes of one store, is kept in the store, and never passes its ceiling.

Fake clocks only: time moves when someone sleeps or when a test says so.
"""

from __future__ import annotations

import subprocess
import sys
from collections import deque

import pytest
from hypothesis import given, settings, strategies as st

from test_http import FakeClock
from mycase_sync.pacing import BETA, DOUBLING, RECOVERY, START_RATE, Pacer, SharedPacer, pace_start, rate_file
from mycase_sync.rate_limit_headers import rate_limit_hint


def Clock() -> FakeClock:
    """A fake wall clock (the shared pacer keeps wall-clock times in its file)."""
    clock = FakeClock()
    clock.now = 1_800_000_000.0
    return clock


def pacer(ceiling: float = 500, start: float | None = None, clock: FakeClock | None = None, **kw) -> tuple[Pacer, FakeClock]:
    clock = clock or Clock()
    return Pacer(ceiling, start, clock=clock, sleep=clock.sleep, **kw), clock


def busy_for(p: Pacer, clock: FakeClock, seconds: float) -> list:
    """Requests one after another for `seconds` (as fast as the pace lets them go)."""
    grants, end = [], clock.now + seconds
    while clock.now < end:
        grants.append(p.acquire())
    return grants


class SlidingWindowService:
    """A service that admits `limit` requests in any one second and refuses the rest (429)."""

    def __init__(self, limit: int):
        self.limit = limit
        self.admitted: deque[float] = deque()

    def answer(self, moment: float) -> int:
        while self.admitted and self.admitted[0] <= moment - 1.0:
            self.admitted.popleft()
        if len(self.admitted) >= self.limit:
            return 429
        self.admitted.append(moment)
        return 200


def run_against(limit: int, seconds: float, ceiling: float = 500, retry_after: float = 1.0):
    """One worker sending as fast as the pace allows to a service of `limit`/s; (grants, statuses)."""
    p, clock = pacer(ceiling)
    service, grants, statuses = SlidingWindowService(limit), [], []
    end = clock.now + seconds
    while clock.now < end:
        grant = p.acquire()
        status = service.answer(clock.now)
        if status == 429:
            p.throttled(grant, retry_after)
        grants.append(grant)
        statuses.append(status)
    return p, grants, statuses


# --- it rises ------------------------------------------------------------------------------------
def test_without_a_limit_known_it_starts_low_and_doubles_while_answers_come_back():
    p, clock = pacer()
    assert p.acquire().rate == START_RATE
    grants = busy_for(p, clock, 1.0)
    assert grants[-1].rate >= START_RATE * 2 ** (0.5 / DOUBLING)  # slow start: a few doublings in a second
    busy_for(p, clock, 2.0)
    assert p.learned() == (500, 0.0)  # up to the ceiling, never past it


def test_an_idle_gap_is_not_time_without_429():
    p, clock = pacer()
    p.acquire()
    clock.now += 3600  # an hour without a request: nothing was learned meanwhile
    assert p.acquire().rate == START_RATE


def test_a_rate_limit_that_was_set_is_where_the_pace_starts():
    assert pace_start(40, given=True) == 40
    assert pace_start(500, given=False) == START_RATE
    assert pace_start(4, given=False) == 4  # never above the ceiling


# --- it falls ------------------------------------------------------------------------------------
def test_a_429_cuts_the_pace_below_what_was_sent_and_a_burst_of_them_cuts_once():
    p, clock = pacer(start=200)
    p.seed(200, 0.0)
    grants = busy_for(p, clock, 1.5)  # more than a second of sends behind the 429: it is believed
    in_flight = grants[-5:]  # sent before the first 429 came back
    p.throttled(in_flight[0], 1.0)
    sent = in_flight[0].sent_last_second
    assert p.learned() == (pytest.approx(BETA * min(sent, in_flight[0].rate)), min(sent, in_flight[0].rate))
    for grant in in_flight[1:]:
        p.throttled(grant, 1.0)  # the same overshoot: already answered by the cut
    assert p.learned()[0] == pytest.approx(BETA * min(sent, in_flight[0].rate))


def test_after_a_cut_the_pace_climbs_back_to_the_refused_rate_in_recovery_busy_seconds_then_probes():
    p, clock = pacer(ceiling=1000)
    p.seed(100 * BETA, 100)  # as read from the store: just cut after a 429 at 100/s
    assert p.learned() == (pytest.approx(100 * BETA), 100)
    busy_for(p, clock, RECOVERY / 2)
    assert 100 * BETA < p.learned()[0] < 100
    busy_for(p, clock, RECOVERY / 2)
    assert p.learned()[0] == pytest.approx(100, rel=0.02)
    busy_for(p, clock, RECOVERY)
    assert p.learned()[0] > 105  # the limit may have been raised: it is tried, slowly


@pytest.mark.parametrize("limit", [5, 40, 300])
def test_against_a_service_that_tells_nothing_it_finds_the_limit_and_is_rarely_refused(limit):
    """From 10/s, a sliding-window service of 5, 40 and 300 per second is found within seconds."""
    p, grants, statuses = run_against(limit, seconds=60)
    refused = statuses.count(429)
    assert refused / len(statuses) <= 0.03
    admitted = statuses.count(200)
    assert admitted >= 0.8 * limit * 60  # within 20% of the most the service allows over the minute
    assert 0.8 * limit <= p.learned()[0] <= 1.1 * limit


def test_a_429_after_part_of_a_second_of_sends_cuts_the_pace_but_is_believed_only_the_second_time():
    """A lone early 429 may have nothing to do with the pace (a gateway's): the slow start goes on."""
    p, clock = pacer(ceiling=100, start=100)
    grants = busy_for(p, clock, 0.2)  # 20 requests, then a 429
    p.throttled(grants[-1], 0.0)
    assert p.learned() == (pytest.approx(BETA * len(grants)), 0.0)  # cut, but no limit believed yet
    busy_for(p, clock, 1.0)
    assert p.learned()[0] == 100  # the slow start took it back up
    grant = p.acquire()
    p.throttled(grant, 0.0)  # again: believed
    assert p.learned() == (pytest.approx(BETA * grant.sent_last_second), grant.sent_last_second)


# --- Retry-After ---------------------------------------------------------------------------------
def test_retry_after_holds_every_request_and_is_not_cut_short_by_a_later_one():
    p, clock = pacer(ceiling=50, start=50)
    grant = p.acquire()
    asked_at = clock.now
    p.throttled(grant, 7.0)
    p.slow_down(2.0)  # a shorter pause never pulls the next slot earlier
    assert p.acquire().slot >= asked_at + 7.0


# --- shared between processes --------------------------------------------------------------------
def test_processes_on_one_store_share_the_pace_and_a_cut_seen_by_one(tmp_path):
    clock = Clock()
    path = rate_file(tmp_path / "state.db", "Case Status")
    one = SharedPacer(500, path, start=100, clock=clock, sleep=clock.sleep)
    two = SharedPacer(500, path, start=START_RATE, clock=clock, sleep=clock.sleep)
    grant = one.acquire()
    assert two.acquire().rate == pytest.approx(100, rel=0.05)  # the pace in the file, not its own start
    busy_for(one, clock, 0.5)
    one.throttled(one.acquire(), 1.0)
    cut = one.learned()[0]
    assert two.learned()[0] == cut and two.acquire().slot >= clock.now  # the other process is cut too
    slots = [g.slot for g in busy_for(two, clock, 1.0) + busy_for(one, clock, 1.0)]
    assert slots == sorted(slots) and len(set(slots)) == len(slots)
    one.close(), two.close()
    assert grant.slot < slots[0]


_PACED_WORKER = """
import sys, time
from pathlib import Path
from mycase_sync.pacing import SharedPacer
pacer = SharedPacer(float(sys.argv[2]), Path(sys.argv[1]), start=20)
print("\\n".join(repr(pacer.acquire().slot) for _ in range(int(sys.argv[3]))))
"""


def test_three_real_processes_rising_together_never_pass_the_ceiling_between_them(tmp_path):
    path = tmp_path / "state.db.casestatus.rate"
    ceiling = 80
    procs = [subprocess.Popen([sys.executable, "-c", _PACED_WORKER, str(path), str(ceiling), "40"],
                              stdout=subprocess.PIPE, text=True) for _ in range(3)]
    slots = sorted(float(line) for proc in procs for line in proc.communicate(timeout=60)[0].split())
    assert all(proc.returncode == 0 for proc in procs) and len(slots) == 120
    assert min(later - earlier for earlier, later in zip(slots, slots[1:])) >= 1 / ceiling - 1e-6


# --- never past the ceiling ----------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(ceiling=st.sampled_from([2, 25, 120]),
       events=st.lists(st.tuples(st.sampled_from(["send", "429", "idle"]), st.floats(0, 0.3)), max_size=300))
def test_the_pace_never_passes_its_ceiling_in_any_second(ceiling, events):
    p, clock = pacer(ceiling)
    slots, last = [], None
    for kind, seconds in events:
        if kind == "send":
            last = p.acquire()
            slots.append(last.slot)
        elif kind == "429" and last is not None:
            p.throttled(last, seconds)
        clock.now += seconds if kind == "idle" else 0
        assert 0 < p.learned()[0] <= ceiling
    window = deque()
    for slot in slots:
        window.append(slot)
        while window[0] <= slot - 1.0:
            window.popleft()
        assert len(window) <= ceiling + 1


# --- RateLimit headers ---------------------------------------------------------------------------
@pytest.mark.parametrize("headers, expected", [
    ({"RateLimit-Policy": "100;w=10", "RateLimit-Remaining": "7", "RateLimit-Reset": "3"}, ((100, 10), 7, 3)),
    ({"RateLimit-Policy": '"default";q=50;w=1', "RateLimit": '"default";r=0;t=1'}, ((50, 1), 0, 1)),
    ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "4"}, (None, 0, 4)),
    ({"RateLimit-Policy": "many;w=0", "RateLimit-Remaining": "lots"}, None),
    ({"Content-Type": "application/json"}, None),
])
def test_rate_limit_headers_are_read_when_present_and_odd_ones_ignored(headers, expected):
    assert rate_limit_hint(headers) == expected


def test_a_stated_policy_sets_the_pace_and_none_remaining_holds_everyone_until_the_reset():
    p, clock = pacer()
    p.acquire()
    p.observe({"RateLimit-Policy": "120;w=2", "RateLimit-Remaining": "30", "RateLimit-Reset": "1"})
    assert p.learned() == (60, 60) and p.ceiling == 60
    asked_at = clock.now
    p.observe({"RateLimit-Policy": "120;w=2", "RateLimit-Remaining": "0", "RateLimit-Reset": "1.5"})
    assert p.acquire().slot >= asked_at + 1.5


# --- kept in the store, once per run ---------------------------------------------------------------
def make_app(tmp_path, **env):
    from mycase_sync.app import App
    from mycase_sync.config import load_settings

    return App(load_settings(environ={"CASESTATUS_API_KEY": "key-for-pacing-tests", "CASESTATUS_API_URL":
                                      "http://127.0.0.1:9", "MYCASE_SYNC_DB": str(tmp_path / "state.db"), **env}))


def test_the_pace_a_run_found_is_stored_at_its_end_and_where_the_next_run_starts(tmp_path):
    app = make_app(tmp_path)
    pacer = app.casestatus.session.pacer
    assert (pacer.start, pacer.start_refused) == (START_RATE, 0.0)  # nothing known, nothing set: start low
    pacer.seed(START_RATE, refused=50)  # as if a 429 had been met at 50/s
    pacer.throttled(pacer.acquire(), 0.0)  # a 429 now: cut to BETA × the pace
    found = pacer.learned()
    assert found == (pytest.approx(BETA * START_RATE), START_RATE)
    app.close()
    app = make_app(tmp_path)
    assert app.store.pacing.get("Case Status")["rate"] == pytest.approx(found[0])
    (tmp_path / "state.db.casestatus.rate").unlink()  # no job shares a pace right now: the store's is used
    assert app.casestatus.session.pacer.learned() == (pytest.approx(found[0]), found[1])
    app.close()


def test_an_idle_run_or_a_dry_run_writes_no_pace(tmp_path):
    app = make_app(tmp_path)
    app.casestatus.session.pacer.acquire()  # one request, the pace unchanged: nothing to write
    app.close()
    app = make_app(tmp_path)
    assert app.store.pacing.read() == {}
    app.keep_pace = False  # what run_dry sets
    pacer = app.casestatus.session.pacer
    pacer.throttled(pacer.acquire(), 0.0)
    app.close()
    app = make_app(tmp_path)
    assert app.store.pacing.read() == {}
    app.close()


def test_a_service_this_run_sent_nothing_to_has_its_pace_file_left_alone(tmp_path):
    """An idle push (cron: every 5 minutes) makes the MyCase client to check the stored authorization
    but sends MyCase nothing: closing it neither creates, locks nor rewrites the MyCase pace file."""
    app = make_app(tmp_path, MYCASE_CLIENT_ID="id", MYCASE_CLIENT_SECRET="secret-for-pacing-tests")
    app.mycase  # made, never used
    app.casestatus.session.pacer.acquire()
    app.close()
    assert not (tmp_path / "state.db.mycase.rate").exists()
    assert (tmp_path / "state.db.casestatus.rate").exists()


def test_a_stated_policy_of_a_long_window_never_takes_the_pace_below_its_floor():
    """`RateLimit-Policy: 1;w=86400` (a daily quota, or a hostile header) would make the pace one
    request a day, the job holding its lock for hours; the floor that holds after any 429 holds here."""
    from mycase_sync.pacing import MIN_RATE

    p, clock = pacer()
    p.acquire()
    p.observe({"RateLimit-Policy": "1;w=86400"})
    p.acquire()
    before = clock.now
    p.acquire()
    assert clock.now - before <= 1 / MIN_RATE + 1e-9
    assert p.learned()[0] >= MIN_RATE and p.ceiling >= MIN_RATE
