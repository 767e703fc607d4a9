"""The state store: migrations once, private file modes, all-or-nothing transactions.

Durability is checked through a second connection (what the next cron run would see),
never through the connection that wrote.
"""

from __future__ import annotations

import signal
import sqlite3
import stat
import subprocess
import sys

import pytest

from mycase_sync.store import schema as store_module
from mycase_sync.errors import ConfigError, TemporaryError
from mycase_sync.signals import Interrupted, handled
from mycase_sync.store import open_store


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def migration_rows(db_path) -> list[str]:
    with sqlite3.connect(db_path) as conn:
        return [row[0] for row in conn.execute("select name from _sqlite_migrations order by id")]


def registered() -> list[str]:
    return [m.name for m in store_module.migrations._migrations]


def next_run_sees(db_path, job: str) -> tuple:
    """What a new connection (the next cron run) finds: the job's cursor and the matters' ids."""
    other = open_store(db_path)
    try:
        return other.get_cursor(job), [row["mycase_id"] for row in other.db["matters"].rows]
    finally:
        other.close()


# --- migrations ------------------------------------------------------------------------------
def test_migrations_are_applied_once_and_reopening_applies_nothing(db_path):
    open_store(db_path).close()
    open_store(db_path).close()
    assert migration_rows(db_path) == registered()
    assert "0001_initial" in registered()
    store = open_store(db_path)
    assert {"tokens", "cursors", "matters", "ledger", "runs"} <= set(store.db.table_names())
    store.close()


def test_a_new_migration_runs_once_on_an_existing_store(db_path, monkeypatch):
    open_store(db_path).close()
    calls = []

    def add_column(db):
        calls.append(1)
        db["cursors"].add_column("note", str)

    later = store_module.migrations._Migration("9999_test_add_column", add_column)
    monkeypatch.setattr(store_module.migrations, "_migrations", [*store_module.migrations._migrations, later])
    open_store(db_path).close()
    open_store(db_path).close()
    assert calls == [1]
    assert migration_rows(db_path) == registered()
    assert migration_rows(db_path).count("9999_test_add_column") == 1


OPEN_IN_CHILD = """
import sys
from mycase_sync.store import open_store
print("ready", flush=True)
sys.stdin.readline()  # start together
try:
    open_store(sys.argv[1]).close()
except Exception as exc:
    print(type(exc).__name__, exc)
    sys.exit(1)
"""


def test_jobs_opening_a_new_store_at_the_same_moment_all_succeed(db_path):
    """Cron starts two or three jobs in the same minute; on first install they race to create the schema."""
    children = [
        subprocess.Popen([sys.executable, "-c", OPEN_IN_CHILD, str(db_path)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(8)
    ]
    for child in children:
        assert child.stdout.readline() == "ready\n"
    for child in children:
        child.stdin.write("go\n")
        child.stdin.flush()
    failures = [out for child in children if (out := child.communicate(timeout=60)[0]) or child.returncode]
    assert failures == []
    assert migration_rows(db_path) == registered()


def test_a_file_that_is_not_a_database_is_a_config_error(db_path):
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ConfigError, match="not a usable SQLite database") as caught:
        open_store(db_path)
    assert caught.value.exit_code == 2


def test_a_store_path_under_a_file_is_a_config_error(tmp_path):
    (tmp_path / "plain-file").write_text("x")
    with pytest.raises(ConfigError, match="cannot open state store"):
        open_store(tmp_path / "plain-file" / "state.db")


# --- file modes ------------------------------------------------------------------------------
def test_store_file_is_0600_in_a_0700_directory_including_wal_and_shm(tmp_path):
    db_path = tmp_path / "new" / "state.db"
    store = open_store(db_path)
    store.set_cursor("push-messages", {"page": 3})  # a write: the -wal and -shm files exist now
    wal, shm = db_path.with_name("state.db-wal"), db_path.with_name("state.db-shm")
    assert wal.exists() and shm.exists()
    assert mode(db_path.parent) == 0o700
    assert {p.name: mode(p) for p in (db_path, wal, shm)} == {p.name: 0o600 for p in (db_path, wal, shm)}
    store.close()


def test_an_existing_store_readable_by_others_is_made_private(db_path):
    open_store(db_path).close()
    db_path.chmod(0o644)
    store = open_store(db_path)
    store.set_cursor("job", 1)
    assert mode(db_path) == 0o600
    assert mode(db_path.with_name("state.db-wal")) == 0o600
    store.close()


# --- transactions ----------------------------------------------------------------------------
def test_transaction_rolls_back_every_write_on_an_exception(db_path):
    store = open_store(db_path)
    with pytest.raises(RuntimeError):
        with store.transaction() as db:
            db["cursors"].upsert({"job": "push-messages", "value": "1", "updated_at": "t"}, pk="job")
            db["matters"].insert({"mycase_id": "42", "state": "synced"})
            db.execute("update runs set outcome = 'x'")
            raise RuntimeError("crash half-way")
    assert not store.db.conn.in_transaction
    assert next_run_sees(db_path, "push-messages") == (None, [])
    store.close()


def test_transaction_commits_for_the_next_connection(db_path):
    store = open_store(db_path)
    with store.transaction() as db:
        db["matters"].insert({"mycase_id": "42", "state": "synced"})
        store.set_cursor("import-matters", {"since": "2025-01-01"})  # nested: joins the outer transaction
    assert next_run_sees(db_path, "import-matters") == ({"since": "2025-01-01"}, ["42"])
    store.close()


def test_a_failed_nested_block_rolls_back_alone(db_path):
    store = open_store(db_path)
    with store.transaction() as db:
        db["matters"].insert({"mycase_id": "1", "state": "synced"})
        with pytest.raises(ValueError):
            with store.transaction() as inner:
                inner["matters"].insert({"mycase_id": "2", "state": "synced"})
                raise ValueError("inner")
    assert next_run_sees(db_path, "import-matters") == (None, ["1"])
    store.close()


def test_a_commit_that_fails_leaves_no_transaction_open(db_path):
    """A refused COMMIT must not leave later writes inside a transaction nobody will commit."""
    store = open_store(db_path)
    store.db.execute("PRAGMA foreign_keys=ON")
    store.db.execute("create table parent (id integer primary key)")
    store.db.execute("create table child (parent_id integer references parent(id) deferrable initially deferred)")
    with pytest.raises(sqlite3.IntegrityError):
        with store.transaction() as db:
            db.execute("insert into child values (7)")  # checked only at COMMIT
    assert not store.db.conn.in_transaction
    store.set_cursor("push-messages", {"page": 2})
    store.close()
    assert next_run_sees(db_path, "push-messages") == ({"page": 2}, [])


class _SignalRightAfterBegin:
    """The store's connection, but SIGTERM lands the moment BEGIN returns (before the next statement)."""

    def __init__(self, conn):
        self._conn = conn

    def __getattr__(self, name):
        return getattr(self._conn, name)

    def execute(self, sql, *args):
        cursor = self._conn.execute(sql, *args)
        if sql.startswith("BEGIN"):
            signal.raise_signal(signal.SIGTERM)  # under handled(): Interrupted at the next line of Python
        return cursor


def test_a_stop_signal_right_after_begin_leaves_no_transaction_open(db_path):
    """Found by the SIGTERM crash matrix: the run row stayed `running` after exit 143, because the
    interrupted run's final write went into a transaction nobody would commit."""
    store = open_store(db_path)
    real = store.db.conn
    store.db.conn = _SignalRightAfterBegin(real)
    try:
        with pytest.raises(Interrupted), handled():
            with store.transaction() as db:
                db["matters"].insert({"mycase_id": "1", "state": "synced"})
    finally:
        store.db.conn = real
    assert not real.in_transaction
    store.set_cursor("push-messages", {"page": 2})  # what the run records next (its outcome) is kept
    store.close()
    assert next_run_sees(db_path, "push-messages") == ({"page": 2}, ["1"])  # the signal waited for the commit


def test_a_stop_signal_inside_a_transaction_takes_effect_once_it_is_committed(db_path):
    """Found by the SIGTERM crash matrix: a signal landing between a transaction's enter and its block left
    it open, and the run's `interrupted` record went into it, never committed. The store defers it instead."""
    store = open_store(db_path)
    with pytest.raises(Interrupted), handled():
        with store.transaction() as db:
            db["matters"].insert({"mycase_id": "1", "state": "synced"})
            signal.raise_signal(signal.SIGTERM)
            db["matters"].insert({"mycase_id": "2", "state": "synced"})
    assert not store.db.conn.in_transaction
    store.set_cursor("push-messages", {"page": 2})
    store.close()
    assert next_run_sees(db_path, "push-messages") == ({"page": 2}, ["1", "2"])


def test_a_store_busy_past_the_timeout_is_a_temporary_error(db_path):
    store = open_store(db_path)
    store.db.execute("PRAGMA busy_timeout=50")
    writer = sqlite3.connect(db_path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(TemporaryError, match="busy") as caught:
            with store.transaction():
                pass
        assert caught.value.exit_code == 75
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    with store.transaction():  # usable again once the other writer is gone
        pass
    store.close()


# --- cursors and runs ------------------------------------------------------------------------
def test_cursor_round_trip_survives_reopening(db_path):
    store = open_store(db_path)
    assert store.get_cursor("push-documents") is None
    store.set_cursor("push-documents", {"page": 4, "seen": [1, 2]})
    store.set_cursor("push-documents", {"page": 5, "seen": []})
    store.close()
    assert next_run_sees(db_path, "push-documents") == ({"page": 5, "seen": []}, [])


def test_run_history(db_path):
    store = open_store(db_path)
    first = store.start_run("push-messages")
    store.finish_run(first, "success", {"sent": 3})
    second = store.start_run("push-messages")
    assert store.last_run("push-messages")["outcome"] == "running"
    store.finish_run(second, "partial", {"failed": 1}, error="one failed")
    last = store.last_run("push-messages")
    assert (last["run_id"], last["outcome"], last["counts"], last["error"]) == (second, "partial", {"failed": 1}, "one failed")
    assert store.last_run("push-messages", outcome="success")["run_id"] == first
    assert store.last_run("import-matters") is None
    store.close()


def test_the_structure_check_runs_once_a_day_and_names_the_damage_it_finds(db_path):
    """quick_check costs more than the rest of an idle run on a big store: once a day, not per open."""
    import datetime as dt

    from mycase_sync.store.database import CHECKED_KEY
    from mycase_sync.errors import StoreUnusable
    from mycase_sync.values import iso, utcnow

    store = open_store(db_path)
    with store.transaction() as db:  # pages the open never reads
        db["ledger"].insert_all({"kind": "message", "item_id": n, "state": "sent", "item": "x" * 300}
                                for n in range(3000))
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    data = bytearray(db_path.read_bytes())
    for at in range(len(data) - 20 * 4096, len(data), 4096):  # the last pages: the ledger's
        data[at:at + 64] = b"\xff" * 64
    db_path.write_bytes(bytes(data))
    store = open_store(db_path)  # checked less than a day ago: not again
    store.set_cursor(CHECKED_KEY, iso(utcnow() - dt.timedelta(days=1, minutes=1)))
    store.close()
    with pytest.raises(StoreUnusable, match="is not a usable SQLite database"):
        open_store(db_path)  # a day later: checked, and the damage named


def test_a_notice_already_said_takes_no_write_lock(tmp_path):
    """cron asks on every run while a settings warning stands: once said, asking again neither writes
    nor waits for the store's write lock (another job may hold it for a while)."""
    store = open_store(tmp_path / "state.db")
    other = sqlite3.connect(tmp_path / "state.db")
    try:
        assert store.first_time("k") is True
        store.db.execute("PRAGMA busy_timeout = 0")
        other.execute("BEGIN IMMEDIATE")  # another job is writing
        assert store.first_time("k") is False
    finally:
        other.rollback()
        other.close()
        store.close()
