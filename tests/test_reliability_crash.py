"""Crash anywhere: SIGKILL the CLI at its k-th write, rerun, check the end state.

For each job a clean run first counts the writes it makes (both services); then, for 20 points k
spread over that count, a fresh firm is run with a hook that kills the CLI as soon as the k-th
write is committed and before its answer leaves the sandbox, and for 6 more points as the k-th
write arrives, before anything is committed. That covers a matter created whose answer never
arrived, a note committed whose answer never arrived, a document created whose bytes were never
sent (between its two steps), bytes uploaded whose confirmation was never recorded, and the last
write of the run. The next run must finish as a clean run does and leave every matter once in
Case Status with the right fields (and its stage written once), every message once as a note and
every document once with the right bytes.

The same 26 points again with SIGTERM (what `timeout`, systemd and a shutdown send) in place of
SIGKILL: the run stops at its next safe point, exits 143 with one line, and its run row says
`interrupted`; the next run ends in the same exact state.

The default run kills each job at 4 of those points (the first, a middle and the last after a
write, and one before a write; between them every kind of write), and stops it with SIGTERM at 2
(a middle one after a write, one before); the soak run (`-m soak`) takes all 26 of each, and then
every single write of every job with SIGKILL.
"""

from __future__ import annotations

import signal

import pytest

from conftest import Cli, KillAtWrite, active_cases, sandbox_cli, seed_imported, seed_tokens
from mycase_sync.sandbox.server import Sandbox, SandboxConfig
from mycase_sync.store import open_store
from oracle import assert_job_end_state

POINTS = 20  # after a committed write, per job; before one: BEFORE_POINTS more
BEFORE_POINTS = 6
DEFAULT_AFTER = (0, POINTS // 2, POINTS - 1)  # the points the default run takes; the soak run all
DEFAULT_BEFORE = (BEFORE_POINTS // 2,)
DEFAULT_SIGTERM = {("after", POINTS // 2), ("before", BEFORE_POINTS // 2)}
INTERRUPTED_LINE = "mycase-sync: interrupted; nothing lost, run it again to continue"
FAST = {"MYCASE_RATE_LIMIT": "1000", "CASESTATUS_RATE_LIMIT": "1000"}
PUSH_JOBS = ["push-messages", "push-documents"]
IMPORT = "import-matters"


def firm_config() -> SandboxConfig:
    # 60 matters, 47 of them to create (the rest skipped or malformed); 30 messages and 12 files
    # (one of several MB, odd names) on 10 cases; no rate limit to wait for.
    return SandboxConfig(matters=60, seed=7, mycase_rate_limit=None)


@pytest.fixture
def sandbox_config():
    return firm_config()


def committed_writes(sandbox) -> list[tuple[str, str]]:
    """The writes both services committed, as (method, path) in the order they were journaled."""
    entries = [e for service in (sandbox.mycase, sandbox.casestatus) for e in service.journal
               if e["write"] and e["status"] is not None and e["status"] < 400]
    return [(e["method"], e["path"]) for e in sorted(entries, key=lambda e: e["at"])]


@pytest.fixture(scope="module")
def clean_writes(tmp_path_factory):
    """job -> the writes a clean run of it commits on a fresh firm (measured once per module)."""
    measured: dict[str, tuple[list[tuple[str, str]], int]] = {}

    def measure(job: str) -> list[tuple[str, str]]:
        if job not in measured:
            home = tmp_path_factory.mktemp(f"clean-{job}")
            db_path = home / "state" / "state.db"
            with Sandbox(firm_config()) as sandbox:
                cli = sandbox_cli(sandbox, home, db_path, **FAST)
                seed_tokens(sandbox, db_path)
                if job != IMPORT:
                    seed_imported(sandbox, db_path, active_cases(sandbox))
                sandbox.mycase.reset_journal()
                sandbox.casestatus.reset_journal()
                result = cli.run(job)
                assert result.code in (0, 1), result.output
                measured[job] = (committed_writes(sandbox), result.code)
        return measured[job][0]

    measure.exit_code = lambda job: measured[job][1]

    return measure


def write_kind(method: str, path: str) -> tuple[str, str]:
    """("POST", "notes"), ("POST", "documents"), ("PUT", "s3"), ("POST", "cases")...: the last word of the path."""
    if path.startswith("/s3/"):
        return method, "s3"
    words = [w for w in path.split("/") if w and not w.isdigit()]
    return method, words[-1]


def crash_points(total: int, points: int = POINTS) -> list[int]:
    """`points` values of k spread evenly over 1..total, first and last included."""
    assert total >= points, f"the clean run made only {total} writes; the matrix needs {points}"
    return sorted({round(1 + i * (total - 1) / (points - 1)) for i in range(points)})


def crash_then_finish(sandbox, connected: Cli, job: str, k: int, when: str = "after", code: int = 0,
                      signum: int = signal.SIGKILL) -> dict:
    """Run `job`, SIGKILL it (or send it `signum`) at its k-th write, then rerun until it ends as a clean run
    does (at most twice). A run stopped by SIGTERM must have said so in one line and be recorded as interrupted."""
    stop = KillAtWrite(sandbox, k, when, signum=signum)
    killed = stop.run(connected, job, extra_env=FAST)
    if signum != signal.SIGKILL:
        assert stop.stderr.strip().splitlines()[-1] == INTERRUPTED_LINE, stop.stderr
        assert "Traceback" not in stop.stderr
        store = open_store(connected.db_path())
        try:
            assert store.last_run(job)["outcome"] == "interrupted"
        finally:
            store.close()
    for _ in range(2):
        result = connected.run(job, extra_env=FAST)
        if result.code == code:
            break
    assert result.code == code, result.output
    if code == 0:
        assert result.output == ""  # cron: silent on success, even when completing a crashed run
    return killed


def test_the_crash_points_cover_every_kind_of_write(clean_writes):
    """Each kind of write (note, document record, its bytes) is among the points where a run is killed,
    in the soak run's matrix and in the default run's few points alike."""
    for job, kinds in ((IMPORT, {("POST", "cases")}),
                       ("push-messages", {("POST", "notes")}),
                       ("push-documents", {("POST", "documents"), ("PUT", "s3")})):
        writes = clean_writes(job)
        points = crash_points(len(writes))
        chosen = {write_kind(*writes[k - 1]) for k in points}
        assert chosen == kinds, (job, chosen)
        by_default = {write_kind(*writes[points[p] - 1]) for p in DEFAULT_AFTER}
        assert by_default == kinds, (job, by_default)


def by_default(signum: int, when: str, point: int) -> bool:
    if signum == signal.SIGKILL:
        return point in (DEFAULT_AFTER if when == "after" else DEFAULT_BEFORE)
    return (when, point) in DEFAULT_SIGTERM


# After a write: POINTS per job. Before a write (nothing committed): BEFORE_POINTS more. Each with
# SIGKILL and with SIGTERM. The default run takes those `by_default` says; the others are soak.
MATRIX = [pytest.param(signum, when, p, id=f"{signum.name}-{when}-{p}",
                       marks=() if by_default(signum, when, p) else pytest.mark.soak)
          for signum in (signal.SIGKILL, signal.SIGTERM)
          for when, count in (("after", POINTS), ("before", BEFORE_POINTS)) for p in range(count)]


@pytest.mark.parametrize("signum, when, point", MATRIX)
@pytest.mark.parametrize("job", [IMPORT, *PUSH_JOBS])
def test_a_job_killed_at_any_write_loses_and_duplicates_nothing(connected, sandbox, db_path, clean_writes, job,
                                                               signum, when, point):
    writes = clean_writes(job)
    k = crash_points(len(writes), POINTS if when == "after" else BEFORE_POINTS)[point]
    mapped = seed_imported(sandbox, db_path, active_cases(sandbox)) if job != IMPORT else set()
    crash_then_finish(sandbox, connected, job, k, when, code=clean_writes.exit_code(job), signum=signum)
    assert_job_end_state(sandbox, db_path, job, mapped)


@pytest.mark.soak
@pytest.mark.parametrize("job", [IMPORT, *PUSH_JOBS])
def test_killed_after_every_single_write_of_a_run(tmp_path, clean_writes, job):
    """Every k from 1 to the clean run's write count, each on a fresh firm and store."""
    total = len(clean_writes(job))
    for k in range(1, total + 1):
        home = tmp_path / f"k{k}"
        db_path = home / "state" / "state.db"
        home.mkdir()
        with Sandbox(firm_config()) as sandbox:
            cli = sandbox_cli(sandbox, home, db_path, **FAST)
            seed_tokens(sandbox, db_path)
            mapped = seed_imported(sandbox, db_path, active_cases(sandbox)) if job != IMPORT else set()
            crash_then_finish(sandbox, cli, job, k, code=clean_writes.exit_code(job))
            assert_job_end_state(sandbox, db_path, job, mapped)
