"""429 storms, with and without Retry-After: the tool waits as told, never sends faster than its
configured rate (counted per sliding second from the sandbox's own arrival times), and finishes
with the end state exact.
"""

from __future__ import annotations

import pytest

from mycase_sync.sandbox.server import SandboxConfig
from conftest import active_cases, seed_imported
from oracle import (
    assert_documents_once, assert_matters_once, assert_messages_once, expected_matters, no_contract_breach,
)


@pytest.fixture
def sandbox_config():
    # 40 matters (33 to create); the sandbox's own MyCase limit (25/s) stays on, above the tool's rate.
    return SandboxConfig(matters=40, seed=7)


RATE = 20  # the rate the tool is configured with, below the sandbox's 25 per second
TOLERANCE = 0.02  # seconds: the sandbox times arrivals, a few milliseconds after the tool sent them


def arrival_times(service, prefix: str) -> list[tuple[float, dict]]:
    with service.lock:
        entries = [e for e in service.journal if e["path"].startswith(prefix)]
    return sorted(((e["at"].timestamp(), e) for e in entries), key=lambda pair: pair[0])


def busiest_second(times: list[float]) -> int:
    """The most requests that arrived within any one second (less the arrival-timing tolerance)."""
    most, start = 0, 0
    for end, moment in enumerate(times):
        while moment - times[start] >= 1.0 - TOLERANCE:
            start += 1
        most = max(most, end - start + 1)
    return most


def test_busiest_second_counts_a_sliding_window():
    assert busiest_second([0.0, 0.1, 0.2]) == 3
    assert busiest_second([i * 0.05 for i in range(40)]) == 20  # 20 per second, evenly spaced
    assert busiest_second([i * 0.045 for i in range(40)]) == 22
    assert busiest_second([0.0, 0.5, 0.99, 1.5]) == 2


# With Retry-After (one worker, each 429 a one-second pause) under soak; test_http checks the wait it asks for.
@pytest.mark.parametrize("retry_after", [pytest.param(1, marks=pytest.mark.soak), None], ids=["retry-after", "no-retry-after"])
def test_a_mycase_429_storm_slows_the_push_down_within_its_rate_and_it_finishes(connected, sandbox, db_path, retry_after):
    mapped = seed_imported(sandbox, db_path, active_cases(sandbox))
    for n in range(40 - len(sandbox.casestatus.messages)):
        sandbox.casestatus.add_message(sorted(mapped)[n % len(mapped)], "incoming", f"message {n}", "Jane Doe")
    sandbox.mycase.retry_after = retry_after
    sandbox.mycase.faults.storm(0.15, ["429"], seed=3, path_regex=r"/v1/.*")
    env = {"MYCASE_RATE_LIMIT": str(RATE), "MYCASE_SYNC_WORKERS": "1" if retry_after else "8",
           "MYCASE_SYNC_BACKOFF": "0.2"}
    result = connected.run("push-messages", "--all", extra_env=env)
    assert result.code == 0, result.output
    assert_messages_once(sandbox, mapped)

    arrivals = arrival_times(sandbox.mycase, "/v1/")
    storm_429s = [e for _, e in arrivals if e["fault"] == "429"]
    assert len(storm_429s) >= 3
    assert not any(e.get("rate_limited") for _, e in arrivals)  # never tripped the sandbox's own 25/s
    assert busiest_second([t for t, _ in arrivals]) <= RATE
    if retry_after:
        # One worker: after a 429 nothing at all is sent until Retry-After has passed.
        for (t, entry), (t_next, _) in zip(arrivals, arrivals[1:]):
            if entry["fault"] == "429":
                assert t_next - t >= retry_after - TOLERANCE, f"sent {t_next - t:.3f}s after a 429 (Retry-After: 1)"
    else:
        # No Retry-After: each refused request comes back after a backoff, never at once.
        for n, (t, entry) in enumerate(arrivals):
            if entry["fault"] == "429":
                again = next(t2 for t2, e2 in arrivals[n + 1:]
                             if (e2["method"], e2["path"]) == (entry["method"], entry["path"]))
                assert again > t
    no_contract_breach(sandbox)


@pytest.mark.soak  # 6 s of Retry-After pauses; the MyCase storm without Retry-After stays in the default run
def test_a_case_status_429_storm_during_a_backfill_keeps_to_the_rate_and_the_import_is_exact(connected, sandbox, db_path):
    rate = 30
    sandbox.casestatus.faults.storm(0.15, ["429"], seed=4, path_regex=r"/v1/api/.*")  # Retry-After: 1, as promised
    result = connected.run("import-matters", extra_env={"CASESTATUS_RATE_LIMIT": str(rate), "MYCASE_RATE_LIMIT": "20"})
    assert result.code in (0, 1), result.output
    assert_matters_once(sandbox, db_path, expected_matters(sandbox))
    arrivals = arrival_times(sandbox.casestatus, "/v1/api/")
    assert sum(1 for _, e in arrivals if e["fault"] == "429") >= 3
    assert busiest_second([t for t, _ in arrivals]) <= rate
    no_contract_breach(sandbox)


@pytest.mark.soak  # about 8 s at 10/s; test_http checks the shared slot file with three real processes
def test_two_jobs_at_once_share_one_mycase_rate(connected, sandbox, db_path):
    """Cron runs push-messages and push-documents at the same minute: the MyCase limit belongs to the
    account, so together they keep the configured rate, not twice it."""
    rate = 10
    mapped = sorted(seed_imported(sandbox, db_path, active_cases(sandbox)))
    for n in range(24):
        sandbox.casestatus.add_message(mapped[n % len(mapped)], "incoming", f"message {n}", "Jane Doe")
        sandbox.casestatus.add_file(mapped[n % len(mapped)], f"scan {n}.pdf", data=f"page {n}".encode())
    # Configured 5% under the account's limit, as the README advises: arrivals jitter by tens of ms
    # (two processes, a 2-CPU machine), so a limiter at exactly 10/s can land 11 in one second.
    env = {"MYCASE_RATE_LIMIT": str(rate * 0.95)}
    procs = [connected.popen(job, "--all", extra_env=env) for job in ("push-messages", "push-documents")]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, out + err
    assert_messages_once(sandbox, mapped)
    assert_documents_once(sandbox, mapped)

    arrivals = arrival_times(sandbox.mycase, "/v1/")
    notes = [t for t, e in arrivals if e["path"].endswith("/notes")]
    documents = [t for t, e in arrivals if e["path"].endswith("/documents")]
    overlap = min(notes[-1], documents[-1]) - max(notes[0], documents[0])
    assert overlap > 1.0, "the two jobs must really have run at the same time"
    assert busiest_second([t for t, _ in arrivals]) <= rate
    no_contract_breach(sandbox)
