"""Fault storms: a backfill and pushes while both services fail a fifth of their requests.

The sandbox answers 20% of all requests (reads, writes, S3 and file downloads) with 500, 502, 503
or 504, drops the connection after committing, or commits and never answers. The jobs are rerun
(as cron would) until they finish; the end state must be exact: every matter once with the right
fields, every message once as a note, every document once with its bytes.
"""

from __future__ import annotations

import datetime as dt
import random

import pytest

from mycase_sync.sandbox.server import SandboxConfig
from mycase_sync.store import open_store
from oracle import (
    UTC, assert_documents_once, assert_matters_once, assert_messages_once, expected_matters, expected_outcomes,
    ledger_states, no_contract_breach, ten_years_before,
)

STORM = ["500", "502", "503", "504", "drop", "timeout"]
FAST = {"MYCASE_RATE_LIMIT": "1000", "CASESTATUS_RATE_LIMIT": "1000", "MYCASE_SYNC_TIMEOUT": "1"}
MAX_RUNS = 15


# (matters, seed, messages, files): a smaller firm by default; the full one under soak.
FIRMS = {"60-matters": (60, 7, 100, 25), "150-matters": (150, 11, 200, 50)}


@pytest.fixture
def firm(request) -> tuple[int, int, int, int]:
    return FIRMS[request.param]


@pytest.fixture
def sandbox_config(firm):
    matters, seed, _, _ = firm
    return SandboxConfig(matters=matters, seed=seed, mycase_rate_limit=None)


def storm(sandbox, rate: float = 0.2, kinds=STORM) -> None:
    for seed, service in enumerate((sandbox.mycase, sandbox.casestatus)):
        service.faults.storm(rate, kinds, seed=seed + 1)
        service.timeout_hold = 1.5  # past the CLI's 1-second read timeout


def calm(sandbox) -> None:
    for service in (sandbox.mycase, sandbox.casestatus):
        service.faults.clear()


def rerun_until(cli, job: str, finished, first: tuple = (), env: dict | None = None) -> list[int]:
    """Run `job` as cron would until `finished(result)`; every run ends cleanly (no traceback)."""
    codes = []
    for n in range(MAX_RUNS):
        result = cli.run(job, *(first if n == 0 else ()), extra_env=env or FAST, timeout=180)
        codes.append(result.code)
        assert result.code in (0, 1, 75), result.output
        assert "Traceback" not in result.output
        if finished(result):
            return codes
    pytest.fail(f"{job} did not finish in {MAX_RUNS} runs: exit codes {codes}")


def matters_unfinished(db_path) -> set[str]:
    store = open_store(db_path)
    try:
        return {row[0] for row in store.db.execute("select mycase_id from matters where state in ('failed', 'pending')")}
    finally:
        store.close()


def add_activity(sandbox, case_ids: list[str], messages: int, files: int) -> None:
    """Top Case Status up to `messages` messages and `files` files on imported cases."""
    rng = random.Random(5)
    cs = sandbox.casestatus
    for n in range(messages - len(cs.messages)):
        cs.add_message(rng.choice(case_ids), rng.choice(["incoming", "outgoing"]), f"Storm message {n}: call me back",
                       rng.choice(["Jane Doe", "Lana Joseph"]))
    for n in range(files - len(cs.files)):
        cs.add_file(rng.choice(case_ids), f"exhibit {n}.pdf", data=rng.randbytes(rng.randint(1, 64 * 1024)))


@pytest.mark.parametrize("firm", ["60-matters", pytest.param("150-matters", marks=pytest.mark.soak)],
                         indirect=True)
def test_a_backfill_and_pushes_in_a_storm_of_faults_end_exact(connected, sandbox, db_path, firm):
    _, _, messages, files = firm
    wanted = expected_matters(sandbox)
    failed_in_mycase = set()  # records broken in MyCase itself fail on every run, storm or not
    for mid, (outcome, _) in expected_outcomes(sandbox, ten_years_before(dt.datetime.now(UTC))).items():
        if outcome == "failed":
            failed_in_mycase.add(mid)
    storm(sandbox)

    codes = rerun_until(connected, "import-matters",
                        lambda r: r.code in (0, 1) and matters_unfinished(db_path) == failed_in_mycase)
    assert len(codes) > 1 or sandbox.casestatus.faults.fired  # the storm did hit the backfill
    calm(sandbox)
    assert_matters_once(sandbox, db_path, wanted)

    add_activity(sandbox, sorted(wanted), messages=messages, files=files)
    assert len(sandbox.casestatus.messages) == messages and len(sandbox.casestatus.files) == files
    storm(sandbox)
    for job in ("push-messages", "push-documents"):
        # The whole history on the first run (seeded activity is older than 30 days), then as cron runs it.
        rerun_until(connected, job, lambda r: r.code == 0, first=("--all",))
    calm(sandbox)

    assert_matters_once(sandbox, db_path, wanted)
    assert_messages_once(sandbox, set(wanted))
    assert_documents_once(sandbox, set(wanted))
    for kind in ("message", "document"):
        assert set(ledger_states(db_path, kind).values()) == {"sent"}
    fired = {f["kind"] for service in (sandbox.mycase, sandbox.casestatus) for f in service.faults.fired}
    assert fired == set(STORM)
    no_contract_breach(sandbox)

