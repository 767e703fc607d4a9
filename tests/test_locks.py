"""Per-job kernel locks: a second run of the same job exits 75 at once; other jobs go ahead;
a killed holder leaves no stale lock. Holders in other processes are real subprocesses,
synchronised through a pipe (they say "held"), never by sleeping.
"""

from __future__ import annotations

import signal
import stat
import subprocess
import sys
import threading

import pytest

from conftest import Cli
from mycase_sync.errors import LockHeld, TemporaryError
from mycase_sync.locks import blocking_lock, job_lock, lock_path

HOLDER = """
import sys
from pathlib import Path
from mycase_sync.locks import job_lock
with job_lock(Path(sys.argv[1]), sys.argv[2]):
    print("held", flush=True)
    sys.stdin.read()  # hold until the test closes our stdin or kills us
"""


@pytest.fixture(autouse=True)
def deadline():
    """A lock that blocked instead of refusing would hang the whole run: make it fail instead."""

    def expired(signum, frame):
        raise TimeoutError("a lock call blocked")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def holder(db_path):
    """Start a subprocess that holds a job's lock; yields a function taking the job name."""
    started: list[subprocess.Popen] = []

    def hold(job: str) -> subprocess.Popen:
        child = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(db_path), job],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        started.append(child)
        assert child.stdout.readline().strip() == "held"
        return child

    yield hold
    for child in started:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=30)


def test_same_job_in_one_process_is_refused_at_once(db_path):
    with job_lock(db_path, "push-messages"):
        with pytest.raises(LockHeld) as caught:
            with job_lock(db_path, "push-messages"):
                pass
        assert isinstance(caught.value, TemporaryError) and caught.value.exit_code == 75
        assert "another push-messages run is in progress" in str(caught.value)
        with job_lock(db_path, "push-documents"):  # a different job is not blocked
            pass
    with job_lock(db_path, "push-messages"):  # released on exit
        pass


def test_lock_held_by_another_process_and_freed_when_it_is_killed(db_path, holder):
    child = holder("push-messages")
    with pytest.raises(LockHeld):
        with job_lock(db_path, "push-messages"):
            pass
    with job_lock(db_path, "import-matters"):
        pass
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    with job_lock(db_path, "push-messages"):  # no stale lock after a crash
        pass


def test_lock_is_freed_when_the_holder_finishes(db_path, holder):
    child = holder("import-matters")
    child.stdin.close()
    assert child.wait(timeout=30) == 0
    with job_lock(db_path, "import-matters"):
        pass


def test_lock_files_are_private_and_beside_the_store(tmp_path):
    db_path = tmp_path / "fresh" / "state.db"
    with job_lock(db_path, "push-documents"):
        pass
    path = lock_path(db_path, "push-documents")
    assert path == tmp_path / "fresh" / "state.db.push-documents.lock"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_blocking_lock_excludes_and_waits(db_path):
    acquired = threading.Event()

    def second() -> None:
        with blocking_lock(db_path, "token-refresh"):
            acquired.set()

    with blocking_lock(db_path, "token-refresh"):
        with pytest.raises(LockHeld):  # the lock really is held: a non-blocking probe is refused
            with job_lock(db_path, "token-refresh"):
                pass
        waiter = threading.Thread(target=second)
        waiter.start()
        assert not acquired.wait(0.2)  # still waiting while we hold it
    waiter.join(timeout=30)
    assert acquired.is_set()


def connect(db_path) -> None:
    """A MyCase connection in the store, as `mycase-sync auth` leaves it (tokens valid for a day)."""
    import datetime as dt

    from mycase_sync.store import iso, open_store, utcnow

    store = open_store(db_path)
    try:
        later = iso(utcnow() + dt.timedelta(days=1))
        store.tokens.replace({"access_token": "access-token-value", "refresh_token": "refresh-token-value",
                              "expires_at": later, "refresh_expires_at": later, "obtained_at": iso(utcnow())})
    finally:
        store.close()


def test_cli_second_run_of_the_same_job_exits_75_at_once(db_path, tmp_path):
    cli = Cli(
        env={
            "MYCASE_SYNC_DB": str(db_path),
            "MYCASE_CLIENT_ID": "client-id",
            "MYCASE_CLIENT_SECRET": "client-secret-value",
            "CASESTATUS_API_KEY": "casestatus-key-value",
            # never reached: the lock is refused first; a closed loopback port in case it were not
            "MYCASE_AUTH_URL": "http://127.0.0.1:9",
            "MYCASE_API_URL": "http://127.0.0.1:9/v1",
            "CASESTATUS_API_URL": "http://127.0.0.1:9",
        },
        cwd=tmp_path,
    )
    log_file = tmp_path / "sync.log"
    connect(db_path)  # a job on a store never authorised stops at once with exit 3, lock or not
    with job_lock(db_path, "push-messages"):
        # a blocking lock would hang until the timeout fails the test
        result = cli.run("--log-file", str(log_file), "push-messages", timeout=60)
        verbose = cli.run("-v", "push-messages", timeout=60)
    assert result.code == 75 and verbose.code == 75, result.output
    # Under cron (stderr is not a terminal) an overlapping run is normal: no mail, one line in the log file.
    assert (result.stdout, result.stderr) == ("", "")
    logged = log_file.read_text().splitlines()
    assert len(logged) == 1 and "INFO another push-messages run is in progress" in logged[0]
    lines = verbose.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in verbose.output
    assert "another push-messages run is in progress" in lines[0]
