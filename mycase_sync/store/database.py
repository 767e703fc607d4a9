"""The SQLite connection every command shares, its transactions, and the cursors and run history.

One file (WAL mode, so readers never block the writer) that three cron jobs use at once.
Schema changes are numbered migrations (schema.py) applied under a lock. The file is 0600 in a
0700 directory: it holds the MyCase tokens. Each table's statements live in its own module here
(tokens, matters, ledger, pacing); nothing outside this package writes SQL.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sqlite3
import threading
import uuid
from pathlib import Path
from typing import Any, Iterator

from sqlite_utils import Database

from mycase_sync.errors import ConfigError, LocalPermission, SyncError, os_fault, store_fault
from mycase_sync.locks import blocking_lock, private_dirs
from mycase_sync.signals import uncut
from mycase_sync.store.identity import IdentityTable
from mycase_sync.store.ledger import Ledger
from mycase_sync.store.matters import MatterTable
from mycase_sync.store.pacing import PaceTable
from mycase_sync.store.schema import migrations
from mycase_sync.store.states import RunKind, RunOutcome
from mycase_sync.store.tokens import TokenTable
from mycase_sync.values import iso, parse_iso, utcnow

BUSY_TIMEOUT_MS = 30_000
_KIND = f"coalesce(kind, '{RunKind.SCHEDULED}')"  # a run's RunKind; older runs have none: scheduled
CHECKED_KEY = "store_checked_at"  # (in `cursors`) when quick_check last found the file sound
CHECK_EVERY = dt.timedelta(days=1)


class _SerialDatabase(Database):
    """sqlite-utils wraps every query() in a SAVEPOINT. On a connection that worker threads share,
    one thread's read savepoint would open, join or end another thread's transaction ("no such
    savepoint"), so reads and statements take the store's lock like transactions do.

    A local fault met by any statement (full disk, I/O error, lock, read-only, a damaged file)
    becomes its one-line SyncError (errors.store_fault); any other sqlite3 error stays itself."""

    def __init__(self, conn: sqlite3.Connection, lock: Any, path: Path, **kwargs: Any):
        self.lock = lock  # before sqlite-utils' own __init__, which runs statements
        self.path = path
        super().__init__(conn, **kwargs)

    def query(self, sql: str, params: Any = None) -> Iterator[dict]:
        with serial(self.lock), named_faults(self.path):
            return iter(list(super().query(sql, params)))

    def execute(self, sql: str, parameters: Any = None) -> sqlite3.Cursor:
        with serial(self.lock), named_faults(self.path):
            return super().execute(sql, parameters)


@contextlib.contextmanager
def serial(lock: Any) -> Iterator[None]:
    """The store's lock, held in a section no stop signal cuts (signals.uncut).

    A signal raises Interrupted wherever the main thread is; between two steps of a statement or a
    transaction (BEGIN and the block that would roll it back, a savepoint and its release, a context
    manager's enter and its block) it would leave a transaction open that silently swallows every
    later write, the run's own "interrupted" record included. It takes effect once the section ends."""
    with uncut(), lock:
        yield


@contextlib.contextmanager
def named_faults(path: Path) -> Iterator[None]:
    """sqlite3 errors that are the machine's or the file's (not ours) as their one-line SyncError."""
    try:
        yield
    except (sqlite3.OperationalError, sqlite3.DatabaseError) as exc:
        if type(exc) not in (sqlite3.OperationalError, sqlite3.DatabaseError):
            raise  # IntegrityError, ProgrammingError...: a bug of ours, shown as one
        fault = store_fault(exc, path)
        if fault is None:
            raise
        raise fault from None


class Store:
    """The state store. Writes that belong together go through `transaction()`.

    The connection may be used from worker threads (a lock serialises it), but jobs
    keep writes on the main thread where they can.
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._lock = threading.RLock()
        conn = _connect(self.path)
        try:
            self.db = _SerialDatabase(conn, self._lock, self.path, execute_plugins=False)
            self.db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            self.db.execute("PRAGMA synchronous=NORMAL")
            # Jobs started by cron in the same minute open the store at once; on a new file or
            # after an upgrade, one would find the tables half-made or the file locked.
            with blocking_lock(self.path, "init"), named_faults(self.path):
                self.db.execute("PRAGMA journal_mode=WAL")
                migrations.apply(self.db)
            with named_faults(self.path):  # outside the lock: jobs opening at once do not wait on each other's check
                self._check()
        except (sqlite3.Error, SyncError, OSError) as exc:
            conn.close()
            raise _open_error(exc, self.path) from None
        self.tokens = TokenTable(self)
        self.matters = MatterTable(self)
        self.identity = IdentityTable(self)
        self.pacing = PaceTable(self)

    def _check(self) -> None:
        """SQLite's quick_check of the file's structure, at open, once a day (the moment of the last
        clean check is kept in the store): a damaged store then stops every job alike (exit 2).
        Between two checks, damage that a job meets is named the same way (named_faults). Not at
        every open: on a big store it costs more than the rest of an idle run (cron: every 5 minutes)."""
        checked = parse_iso(self.get_cursor(CHECKED_KEY))
        now = utcnow()
        if checked is not None and dt.timedelta(0) <= now - checked < CHECK_EVERY:
            return
        found = [row[0] for row in self.db.conn.execute("PRAGMA quick_check(3)").fetchall()]
        if found != ["ok"]:
            raise sqlite3.DatabaseError(f"database disk image is malformed: {'; '.join(map(str, found))[:200]}")
        self.set_cursor(CHECKED_KEY, iso(now))

    def ledger(self, kind: str) -> Ledger:
        """The push ledger of one kind of item ("document" or "message")."""
        return Ledger(self, kind)

    def close(self) -> None:
        self.db.close()

    def backup(self, target: Path | str) -> Path:
        """A consistent copy of the live store (SQLite's online backup: safe while jobs write),
        made private (0600) and complete before it takes the target's name."""
        target = Path(target).expanduser().resolve()
        if target == self.path.resolve():
            raise ConfigError(f"the backup would overwrite the state store itself: {target}")
        if target.is_dir():
            raise ConfigError(f"{target} is a directory: name the backup file")
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        try:
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.close(fd)
            os.chmod(partial, 0o600)
            copy = sqlite3.connect(str(partial))
            try:
                with self._lock:
                    self.db.conn.backup(copy)
                copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
            finally:
                copy.close()
            os.replace(partial, target)
        except (OSError, sqlite3.Error) as exc:
            with contextlib.suppress(OSError):
                partial.unlink()
            raise ConfigError(f"cannot write the backup {target}: {exc}") from None
        return target

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Database]:
        """BEGIN IMMEDIATE ... COMMIT: the writes inside land together or not at all."""
        with serial(self._lock):
            conn = self.db.conn
            if conn.in_transaction:
                with self.db.atomic():
                    yield self.db
                return
            try:
                with named_faults(self.path):  # busy past BUSY_TIMEOUT_MS (a long writer elsewhere), a full disk...
                    conn.execute("BEGIN IMMEDIATE")
                yield self.db
                with named_faults(self.path):
                    conn.execute("COMMIT")
            except BaseException:
                # Also when COMMIT itself fails: a transaction left open would swallow every later write.
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):  # SQLite may have rolled it back already
                        conn.execute("ROLLBACK")
                raise

    # --- cursors -------------------------------------------------------------------------
    def get_cursor(self, job: str) -> Any:
        row = self.db.execute("select value from cursors where job = ?", [job]).fetchone()
        return json.loads(row[0]) if row else None

    def set_cursor(self, job: str, value: Any) -> None:
        with self.transaction() as db:
            db["cursors"].upsert({"job": job, "value": json.dumps(value), "updated_at": iso(utcnow())}, pk="job")

    def first_time(self, key: str) -> bool:
        """True the first time `key` is asked for in this store: a notice said once, not every run.
        Read first: a notice already said costs no write (cron asks on every run while it stands)."""
        if self.get_cursor(f"notice:{key}") is not None:
            return False
        with self.transaction() as db:
            return db.execute("insert or ignore into cursors (job, value, updated_at) values (?, 'true', ?)",
                              [f"notice:{key}", iso(utcnow())]).rowcount == 1

    # --- run history ---------------------------------------------------------------------
    def start_run(self, job: str, kind: str = RunKind.SCHEDULED) -> str:
        run_id = uuid.uuid4().hex[:12]
        with self.transaction() as db:
            db["runs"].insert({"run_id": run_id, "job": job, "started_at": iso(utcnow()), "outcome": RunOutcome.RUNNING,
                               "counts": "{}", "kind": kind})
        return run_id

    def finish_run(self, run_id: str, outcome: str, counts: dict | None = None, error: str | None = None) -> None:
        with self.transaction() as db:
            db.execute(
                "update runs set finished_at = ?, outcome = ?, counts = ?, error = ? where run_id = ?",
                [iso(utcnow()), outcome, json.dumps(counts or {}), error, run_id],
            )

    def last_run(self, job: str, outcome: str | None = None, kind: str | None = None) -> dict | None:
        """The job's latest run (of this outcome, of this RunKind: runs from before kinds were recorded
        count as scheduled), counts decoded; None if there is none."""
        sql = "select * from runs where job = ?"
        params: list = [job]
        if outcome:
            sql += " and outcome = ?"
            params.append(outcome)
        if kind:
            sql += f" and {_KIND} = ?"
            params.append(kind)
        sql += " order by id desc limit 1"
        rows = list(self.db.query(sql, params))
        if not rows:
            return None
        row = rows[0]
        row["counts"] = json.loads(row["counts"] or "{}")
        return row

    def last_completed(self, job: str) -> str | None:
        """When the job's last scheduled-style run that went through its work finished (see
        RunOutcome.COMPLETED): a run by hand (--case, --since) says nothing of cron's runs."""
        marks = ",".join("?" for _ in RunOutcome.COMPLETED)
        row = self.db.execute(
            f"select finished_at from runs where job = ? and outcome in ({marks}) and {_KIND} = ?"
            " order by id desc limit 1", [job, *RunOutcome.COMPLETED, RunKind.SCHEDULED]).fetchone()
        return row[0] if row else None


def _open_error(exc: BaseException, path: Path) -> SyncError:
    """Why the store cannot be opened, as one line: a local fault (75), permissions (2), a file that
    is not a database (2, restore from a backup), or whatever else SQLite said (2)."""
    if isinstance(exc, SyncError):
        return exc
    fault = os_fault(exc, path) if isinstance(exc, OSError) else store_fault(exc, path)
    return fault or ConfigError(f"cannot open state store {path}: {exc}")


def _writable(path: Path) -> None:
    """The store's directory (SQLite makes -wal and -shm beside it) and file must be writable."""
    for where in (path.parent, path):
        if where.exists() and not os.access(where, os.W_OK):
            raise LocalPermission(f"state store {path} cannot be written: {where} is read-only for this user: a "
                                  "permissions problem, not corruption: make the file and its directory writable by "
                                  "the user cron runs as")


def _connect(path: Path) -> sqlite3.Connection:
    """Create the directory 0700 and the file 0600 before SQLite touches them."""
    try:
        private_dirs(path.parent)
        _writable(path)
        old = os.umask(0o077)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                if os.fstat(fd).st_mode & 0o077:  # an older or copied file: SQLite gives -wal/-shm the same mode
                    os.fchmod(fd, 0o600)
            except PermissionError:  # not ours to change; the owner chose to share it
                pass
            finally:
                os.close(fd)
            conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
            conn.execute("select 1")
        finally:
            os.umask(old)
    except (OSError, sqlite3.Error) as exc:
        raise _open_error(exc, path) from None
    return conn


def open_store(path: Path | str) -> Store:
    return Store(path)
