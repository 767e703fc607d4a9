"""Token trouble: short-lived access tokens while the three jobs run at once, as cron starts them.

The refresh token is single-use and shared by every process through the state store, so the
jobs must refresh one at a time and adopt each other's new tokens: one refresh per expiry, never
an `invalid_grant` (a refresh token used twice), never "database is locked", and the work still
ends exact. The sandbox's /tokens journal tells how many refreshes happened and when.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from mycase_sync.sandbox.server import SandboxConfig
from conftest import sandbox_cli, seed_tokens
from oracle import (
    assert_documents_once, assert_matters_once, assert_messages_once, expected_matters, no_contract_breach,
)

JOBS = ("import-matters", "push-messages", "push-documents")
# MYCASE_RATE_LIMIT is per process: three jobs at once share MyCase's 25 requests/s per API client,
# so each gets a third of it (at 20 each they would be answered 429 until a run gives up with exit 75).
ENV = {"MYCASE_RATE_LIMIT": "7", "CASESTATUS_RATE_LIMIT": "200"}


@pytest.fixture
def sandbox_config():
    return SandboxConfig(matters=60, seed=7, access_token_lifetime=2)


def refreshes(sandbox) -> list[tuple[float, int]]:
    """(arrival time, status) of every POST /tokens, in order."""
    with sandbox.mycase.lock:
        return sorted((e["at"].timestamp(), e["status"]) for e in sandbox.mycase.journal
                      if e["method"] == "POST" and e["path"] == "/tokens")


class Feeder:
    """New Case Status activity while the jobs run: a message and now and then a file, on imported cases."""

    def __init__(self, sandbox, case_ids: list[str]):
        self.sandbox = sandbox
        self.case_ids = case_ids
        self.added = 0

    def step(self) -> None:
        case = self.case_ids[self.added % len(self.case_ids)]
        self.sandbox.casestatus.add_message(case, "incoming", f"while refreshing {self.added}", "Jane Doe")
        if self.added % 4 == 0:
            self.sandbox.casestatus.add_file(case, f"upload {self.added}.pdf", data=b"%PDF-1.7 " + bytes([self.added % 256]) * 999)
        if self.added % 6 == 0:  # a matter changed in MyCase: the nightly import has work too
            mycase_id = int(self.case_ids[(self.added // 6) % len(self.case_ids)])
            self.sandbox.mycase.update_case(mycase_id, description=f"updated {self.added}")
        self.added += 1


def run_like_cron(cli, sandbox, seconds: float, feeder: Feeder) -> dict[str, list[subprocess.CompletedProcess]]:
    """Each job restarted as soon as its last run ends, all three at once, until `seconds` have passed.

    The loop waits on process exits (a bounded poll), never on a fixed sleep.
    """
    finished: dict[str, list] = {job: [] for job in JOBS}
    running: dict[str, tuple] = {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline or running:
        for job in JOBS:
            if job not in running and time.monotonic() < deadline:
                running[job] = (cli.popen(job, extra_env=ENV), time.monotonic())
        for job, (proc, started) in list(running.items()):
            try:
                out, err = proc.communicate(timeout=0.2)
            except subprocess.TimeoutExpired:
                assert time.monotonic() - started < 120, f"{job} hung"
                continue
            finished[job].append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
            del running[job]
            feeder.step()
    return finished


def finish_after_the_feeder(cli) -> None:
    """One more run of each job for what the feeder added after their last runs had started."""
    assert cli.run("import-matters", extra_env=ENV).code in (0, 1)
    for job in ("push-messages", "push-documents"):
        assert cli.run(job, "--all", extra_env=ENV).code == 0


def check_runs(finished: dict[str, list]) -> None:
    for job, runs in finished.items():
        assert runs, f"{job} never ran"
        for run in runs:
            output = run.stdout + run.stderr
            assert "invalid_grant" not in output and "already used" not in output, output
            assert "locked" not in output and "busy" not in output, output
            assert "Traceback" not in output
            # import-matters exits 1 for the firm's malformed records; the pushes must succeed
            assert run.returncode in ((0, 1) if job == "import-matters" else (0,)), (job, run.returncode, output)


def check_refreshes(sandbox, lifetime: float) -> int:
    """Every refresh accepted, and never two for the same expiry. Returns how many there were."""
    calls = refreshes(sandbox)
    assert calls, "the tokens never needed a refresh: the test did not test anything"
    assert all(status == 200 for _, status in calls), calls
    gaps = [b - a for (a, _), (b, _) in zip(calls, calls[1:])]
    # A token is refreshed when a quarter of its life is left: the next refresh is due 3/4 of a
    # lifetime later. Two refreshes much closer than that are two processes refreshing the same token.
    assert min(gaps, default=lifetime) >= lifetime / 2, [round(g, 2) for g in gaps]
    assert sandbox.mycase.refresh_calls == len(calls)
    return len(calls)


# Cron's loop for 10 seconds: a soak. In the default run, test_auth_e2e starts four runs together
# after an expiry (one refresh, all succeed) and test_auth_unit has managers and threads racing.
@pytest.mark.soak
def test_three_jobs_at_once_with_two_second_tokens_refresh_once_per_expiry(connected, sandbox, db_path):
    lifetime = sandbox.mycase.access_token_lifetime
    first = connected.run("import-matters", extra_env=ENV)
    assert first.code in (0, 1), first.output
    wanted = expected_matters(sandbox)
    started = time.monotonic()
    finished = run_like_cron(connected, sandbox, 10, Feeder(sandbox, sorted(wanted)))
    elapsed = time.monotonic() - started
    check_runs(finished)
    count = check_refreshes(sandbox, lifetime)
    assert count <= (elapsed + 5) / (0.75 * lifetime) + 2, (count, elapsed)
    finish_after_the_feeder(connected)
    assert_matters_once(sandbox, db_path, expected_matters(sandbox))
    assert_messages_once(sandbox, set(wanted))
    assert_documents_once(sandbox, set(wanted))
    no_contract_breach(sandbox)


@pytest.mark.soak
def test_five_second_tokens_during_a_sixty_second_backfill(tmp_path):
    """A backfill that reads MyCase page by page for a minute: each page finds its token expired."""
    from mycase_sync.sandbox.server import Sandbox

    config = SandboxConfig(matters=3200, seed=3, access_token_lifetime=5, casestatus_latency=(0.02, 0.04),
                           with_activity=False)
    db_path = tmp_path / "state" / "state.db"
    with Sandbox(config) as sandbox:
        cli = sandbox_cli(sandbox, tmp_path, db_path, **ENV)
        seed_tokens(sandbox, db_path)
        started = time.monotonic()
        result = cli.run("import-matters", extra_env={"MYCASE_SYNC_WORKERS": "2", "CASESTATUS_RATE_LIMIT": "45"},
                         timeout=170)
        elapsed = time.monotonic() - started
        assert result.code in (0, 1), result.output
        assert "invalid_grant" not in result.output
        assert elapsed >= 40, f"the backfill took only {elapsed:.0f}s"
        count = check_refreshes(sandbox, 5)
        assert 2 <= count <= elapsed / 3.75 + 2  # one per page read after an expiry, never two
        assert_matters_once(sandbox, db_path, expected_matters(sandbox))
        no_contract_breach(sandbox)


@pytest.mark.soak
def test_three_jobs_at_once_with_five_second_tokens_for_a_minute(tmp_path):
    from mycase_sync.sandbox.server import Sandbox

    db_path = tmp_path / "state" / "state.db"
    with Sandbox(SandboxConfig(matters=200, seed=5, access_token_lifetime=5)) as sandbox:
        cli = sandbox_cli(sandbox, tmp_path, db_path, **ENV)
        seed_tokens(sandbox, db_path)
        assert cli.run("import-matters", extra_env=ENV).code in (0, 1)
        wanted = expected_matters(sandbox)
        started = time.monotonic()
        finished = run_like_cron(cli, sandbox, 60, Feeder(sandbox, sorted(wanted)))
        elapsed = time.monotonic() - started
        check_runs(finished)
        count = check_refreshes(sandbox, 5)
        assert count <= (elapsed + 5) / 3.75 + 2
        finish_after_the_feeder(cli)
        assert_matters_once(sandbox, db_path, expected_matters(sandbox))
        assert_messages_once(sandbox, set(wanted))
        assert_documents_once(sandbox, set(wanted))
        no_contract_breach(sandbox)
