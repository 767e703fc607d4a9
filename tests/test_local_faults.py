"""Local faults are temporary and named; a store that cannot be written is a permissions problem;
"not a usable SQLite database" only for a file that is not one.

Tests run as root here, so a read-only directory cannot be made with chmod: the faults are
simulated in-process (a file whose writes fail with ENOSPC or EIO, os.access saying "read-only",
SQLite opened read-only or with a page limit), each through the real CLI (`Cli.invoke`).
"""

from __future__ import annotations

import errno
import os
import re
import sqlite3
import types

import pytest

from conftest import Cli
from mycase_sync.mycase.tokens import save_token_set
from mycase_sync.store import database
from mycase_sync.sync import documents

from test_push_jobs import FakeCaseStatus, FakeMyCase, imported, ledger, new_app, settings_env  # noqa: F401


@pytest.fixture
def setup(new_app, settings_env, requests_mock):
    """A store with its token and one imported matter holding 3 files; the CLI that uses it."""
    app = new_app()
    save_token_set(app.store, {"access_token": "access-abcdef", "refresh_token": "refresh-abcdef",
                               "token_type": "Bearer", "expires_in": 86400})
    cs, mc = FakeCaseStatus(requests_mock), FakeMyCase(requests_mock)
    imported(app, 11)
    for n in range(3):
        cs.add_file(11, f"scan{n}.pdf")
    return app, Cli(env=dict(settings_env)), mc


def one_line(result) -> str:
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


class _FailingFile:
    def __init__(self, code: int):
        self.code = code

    def write(self, data):
        raise OSError(self.code, os.strerror(self.code))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "the disk is full (No space left on device) writing"),
                                         (errno.EIO, "disk I/O error (Input/output error) on")])
def test_a_full_disk_or_io_error_exits_75_naming_the_file_and_charges_no_attempt(setup, monkeypatch, code, words):
    app, cli, mc = setup
    monkeypatch.setattr(documents, "open", lambda path, mode: _FailingFile(code), raising=False)
    for _ in range(12):  # more runs than MAX_FAILED_RUNS: nothing is ever parked
        result = cli.invoke("push-documents")
        assert result.code == 75
        line = one_line(result)
        assert re.fullmatch(rf"mycase-sync: {re.escape(words)} \S+/push-documents\.tmp/file-900\d\.part; nothing "
                            r"lost and nothing counted against any item: .*, the next run continues", line), line
    rows = ledger(app, "document")
    assert [row["attempts"] for row in rows.values()] == [0, 0, 0]
    assert {row["state"] for row in rows.values()} == {"pending"} and mc.documents == {}
    monkeypatch.undo()
    # The disk has room again: everything goes, once.
    assert cli.invoke("push-documents", extra_env=None).code == 0
    assert len(mc.documents) == 3


def patch_connect(monkeypatch, connect) -> None:
    """sqlite3.connect as the store module sees it (the test's own reads of the store stay real)."""
    fake = types.SimpleNamespace(**vars(sqlite3))
    fake.connect = connect
    monkeypatch.setattr(database, "sqlite3", fake)


def _connect_with(setup_sql: str | None = None, uri: str | None = None):
    real = sqlite3.connect

    def connect(path, *args, **kwargs):
        if uri:
            conn = real(uri.format(path=path), *args, uri=True, **kwargs)
        else:
            conn = real(path, *args, **kwargs)
        if setup_sql:
            conn.execute(setup_sql)
        return conn
    return connect


def test_a_full_disk_when_the_store_is_made_exits_75_not_unusable(tmp_path, monkeypatch, settings_env):
    """SQLite's own "database or disk is full" (a page limit stands in for the disk)."""
    patch_connect(monkeypatch, _connect_with("PRAGMA max_page_count = 2"))
    # (a job on a store that does not exist yet exits 3 before making it: accept-casestatus-key makes it)
    result = Cli(env=dict(settings_env)).invoke("accept-casestatus-key")
    line = one_line(result)
    assert result.code == 75, line
    assert line.startswith("mycase-sync: the disk is full (database or disk is full) writing state store ")
    assert "not a usable" not in line and "state/state.db" in line


def test_a_disk_io_error_at_open_exits_75(tmp_path, monkeypatch, settings_env):
    def connect(*args, **kwargs):
        exc = sqlite3.OperationalError("disk I/O error")
        exc.sqlite_errorcode = 778  # SQLITE_IOERR_WRITE
        raise exc
    patch_connect(monkeypatch, connect)
    result = Cli(env=dict(settings_env)).invoke("accept-casestatus-key")
    line = one_line(result)
    assert result.code == 75 and "not a usable" not in line
    assert re.fullmatch(r"mycase-sync: disk I/O error \(disk I/O error\) on state store \S+state\.db; nothing lost .*",
                        line), line


def test_a_read_only_state_directory_is_a_permissions_problem(setup, monkeypatch):
    app, cli, _ = setup
    state_dir = str(app.settings.db_path.parent)
    real = database.os.access
    monkeypatch.setattr(database.os, "access",
                        lambda path, mode: False if str(path) == state_dir and mode == database.os.W_OK else real(path, mode))
    for job in ("push-documents", "import-matters", "status"):
        result = cli.invoke(job)
        line = one_line(result)
        assert result.code == 2, line
        assert re.fullmatch(r"mycase-sync: state store \S+ cannot be written: \S+ is read-only for this user: a "
                            r"permissions problem, not corruption: .*", line), line


def test_sqlite_refusing_to_write_is_a_permissions_problem(setup, monkeypatch):
    app, cli, _ = setup
    app.close()
    patch_connect(monkeypatch, _connect_with(uri="file:{path}?mode=ro"))
    result = cli.invoke("push-documents")
    line = one_line(result)
    assert result.code == 2, line
    assert "attempt to write a readonly database" in line and "a permissions problem" in line
    assert "not corruption" in line and "not a usable" not in line
    monkeypatch.undo()
    assert cli.invoke("push-documents").code == 0  # writable again: the run goes through


def test_a_file_that_is_not_a_database_says_so_with_the_way_to_restore(tmp_path, settings_env):
    db = tmp_path / "state" / "state.db"
    db.parent.mkdir(mode=0o700)
    db.write_bytes(b"this is not SQLite at all, but some other file " * 100)
    cli = Cli(env=dict(settings_env))
    for job in ("push-messages", "import-matters", "status"):
        result = cli.invoke(job)
        line = one_line(result)
        assert result.code == 2, line
        assert line == (f"mycase-sync: state store {db} is not a usable SQLite database (file is not a database): "
                        "restore it from a backup (mycase-sync backup FILE): while no job runs, copy the backup in "
                        "its place and remove the -wal and -shm files beside it (README, \"The state store\")")


def test_a_damaged_store_stops_every_job_alike_at_open(setup):
    app, cli, _ = setup
    db = app.settings.db_path
    app.store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    app.close()
    data = bytearray(db.read_bytes())
    page = 4096
    assert len(data) >= 4 * page
    for at in range(2 * page, len(data), page):  # every page but the first two: the header stays valid
        data[at:at + 64] = b"\xff" * 64
    db.write_bytes(bytes(data))
    for job in ("push-documents", "push-messages", "import-matters", "status"):
        result = cli.invoke(job)
        line = one_line(result)
        assert result.code == 2, (job, line)
        assert re.fullmatch(rf"mycase-sync: state store {re.escape(str(db))} is not a usable SQLite database \(.*\): "
                            r"restore it from a backup \(mycase-sync backup FILE\): .*", line), (job, line)


def test_a_locked_store_exits_75(setup, monkeypatch):
    app, cli, _ = setup
    monkeypatch.setattr(database, "BUSY_TIMEOUT_MS", 100)
    holder = sqlite3.connect(str(app.settings.db_path), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        result = cli.invoke("push-documents")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    line = one_line(result)
    assert result.code == 75, line
    assert re.fullmatch(r"mycase-sync: state store \S+ is locked by another process \(database is locked\); "
                        r"nothing lost, the next run continues", line), line
