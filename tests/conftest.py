"""Shared fixtures: a throw-away state store, the sandbox over real HTTP, and the real CLI.

No test touches a real service or the user's real state: every test gets its own
MYCASE_SYNC_DB under tmp_path, and the environment is rebuilt from scratch for each CLI call.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import pytest

# Variables from the developer's shell must never leak into a test's configuration.
_OURS = ("MYCASE_", "CASESTATUS_", "XDG_STATE_HOME")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith(_OURS):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    monkeypatch.chdir(tmp_path)  # no stray .env from the checkout


# --- the secret scanner ------------------------------------------------------------------------
# Every byte the CLI prints (stdout and stderr of every Cli.run and of every Cli.popen read through
# communicate()), every file a test's run leaves in its tmp_path (logs, reports), and every table of
# the state store except `tokens` is searched for every secret the test knows of: the client secret
# and API key the CLI was given (environment, ./.env, --env-file), the tokens in its state store, and
# whatever the sandbox issued (access and refresh tokens, authorization codes).
SECRET_VARIABLES = ("MYCASE_CLIENT_SECRET", "CASESTATUS_API_KEY")
MIN_SECRET_LENGTH = 6  # shorter test values ("x") would match ordinary words
_live_clis: list["Cli"] = []


def sandbox_secrets(sandbox) -> dict[str, str]:
    """Every secret the running sandbox has handed out or been configured with, by description."""
    found = {
        "client secret": sandbox.config.client_secret,
        "Case Status API key": sandbox.config.api_key,
    }
    mycase = sandbox.mycase
    if mycase is not None:
        with mycase.lock:
            for n, token in enumerate(list(mycase._access)):
                found[f"access token #{n}"] = token
            for n, token in enumerate(list(mycase._refresh)):
                found[f"refresh token #{n}"] = token
            for n, code in enumerate(list(mycase._codes)):
                found[f"authorization code #{n}"] = code
    return found


def store_token_secrets(db_path: str | os.PathLike | None) -> dict[str, str]:
    """The tokens a state store holds (read-only; nothing if there is no store yet)."""
    found: dict[str, str] = {}
    if not db_path or not Path(db_path).is_file():
        return found
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
        try:
            rows = conn.execute("select access_token, refresh_token from tokens").fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return found
    for n, (access, refresh) in enumerate(rows):
        found[f"stored access token #{n}"] = access
        found[f"stored refresh token #{n}"] = refresh
    return found


def store_text_without_tokens(db_path: str | os.PathLike) -> str:
    """Every value in every table of the state store except `tokens`, as one text."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        tables = [r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")]
        parts = []
        for table in tables:
            if table == "tokens":
                continue
            for row in conn.execute(f'select * from "{table}"'):
                parts.append(" ".join("" if v is None else (v.decode("latin-1") if isinstance(v, bytes) else str(v)) for v in row))
        return "\n".join(parts)
    finally:
        conn.close()


def find_secrets(text: str, secrets: dict[str, str]) -> list[str]:
    """The descriptions of the secrets present in text (never the secrets themselves)."""
    return sorted({name for name, value in secrets.items() if value and len(value) >= MIN_SECRET_LENGTH and value in text})


def assert_no_secrets(text: str, secrets: dict[str, str], where: str) -> None:
    leaked = find_secrets(text, secrets)
    assert not leaked, f"secret(s) leaked into {where}: {', '.join(leaked)}"


class ScannedPopen(subprocess.Popen):
    """A Popen whose communicate() output is searched for secrets (a SIGKILLed run's too)."""

    def __init__(self, *args, scan: Callable[[str, str], None], **kwargs):
        super().__init__(*args, **kwargs)
        self._scan = scan

    def communicate(self, input=None, timeout=None):
        out, err = super().communicate(input, timeout)
        self._scan(out or "", "stdout")
        self._scan(err or "", "stderr")
        return out, err


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class Cli:
    """Runs `python -m mycase_sync ...` as a real subprocess with a controlled environment."""

    env: dict = field(default_factory=dict)
    cwd: Path | None = None
    # Extra places secrets come from (the sandbox fixture adds the tokens it issues).
    secret_sources: list[Callable[[], dict[str, str]]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        _live_clis.append(self)

    def db_path(self, extra: dict | None = None) -> str | None:
        return self.environment(extra).get("MYCASE_SYNC_DB")

    def secrets(self, args: Iterable[str] = (), extra: dict | None = None) -> dict[str, str]:
        """Every secret this CLI run could know: its settings, its state store, the sandbox."""
        from dotenv import dotenv_values

        env = self.environment(extra)
        found: dict[str, str] = {}
        files = [Path(self.cwd or ".") / ".env"]
        args = list(args)
        for n, arg in enumerate(args):
            if arg == "--env-file" and n + 1 < len(args):
                files.append(Path(self.cwd or ".") / args[n + 1])
            elif arg.startswith("--env-file="):
                files.append(Path(self.cwd or ".") / arg.split("=", 1)[1])
        for path in files:
            if path.is_file():
                values = dotenv_values(path)
                for name in SECRET_VARIABLES:
                    if values.get(name):
                        found[f"{name} from {path.name}"] = values[name].strip()
        for name in SECRET_VARIABLES:
            if env.get(name):
                found[name] = env[name].strip()
        found.update(store_token_secrets(env.get("MYCASE_SYNC_DB")))
        for source in self.secret_sources:
            found.update(source())
        return found

    def scan(self, text: str, where: str, args: Iterable[str] = (), extra: dict | None = None) -> None:
        assert_no_secrets(text, self.secrets(args, extra), f"{where} of `mycase-sync {' '.join(args)}`")

    def environment(self, extra: dict | None = None) -> dict:
        base = {k: v for k, v in os.environ.items() if not k.startswith(_OURS)}
        base.update(self.env)
        base.update(extra or {})
        base.setdefault("MYCASE_SYNC_BACKOFF", "0.05")
        return base

    def popen(self, *args: str, extra_env: dict | None = None, **kwargs) -> subprocess.Popen:
        """Read its output with communicate(): that is where it is searched for secrets."""
        return ScannedPopen(
            [sys.executable, "-m", "mycase_sync", *args],
            env=self.environment(extra_env), cwd=self.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, scan=lambda text, where: self.scan(text, where, args, extra_env), **kwargs,
        )

    def run(self, *args: str, extra_env: dict | None = None, input: str | None = None, timeout: float = 120) -> CliResult:
        proc = subprocess.run(
            [sys.executable, "-m", "mycase_sync", *args],
            env=self.environment(extra_env), cwd=self.cwd, capture_output=True, text=True,
            input=input, timeout=timeout,
        )
        self.scan(proc.stdout, "stdout", args, extra_env)
        self.scan(proc.stderr, "stderr", args, extra_env)
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    def invoke(self, *args: str, extra_env: dict | None = None, input: str | None = None) -> CliResult:
        """`mycase-sync ARGS` in this process: `mycase_sync.cli.main` (its exit-code mapping included)
        with the environment and working directory `run` would give, the output captured and scanned.

        For what needs no real process: help, options, usage and configuration errors, `status`.
        Where a process is the point (kill, locks, signals, cron's view of a run, a real run against
        the sandbox) use `run` or `popen`.
        """
        import click
        from click.testing import CliRunner

        from mycase_sync.cli import main

        with _in_process(self.environment(extra_env), self.cwd):
            with CliRunner().isolation(input=input) as (out, err, _):
                click.formatting.FORCED_WIDTH = None  # help wrapped as a real process wraps it (isolation restores it)
                try:
                    main(list(args))
                    code = 0  # main always exits; kept for a main that would return
                except SystemExit as exit:
                    code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
                sys.stdout.flush()
                sys.stderr.flush()
                stdout = out.getvalue().decode("utf-8", "replace")
                stderr = err.getvalue().decode("utf-8", "replace")
        self.scan(stdout, "stdout", args, extra_env)
        self.scan(stderr, "stderr", args, extra_env)
        return CliResult(code, stdout, stderr)


@contextlib.contextmanager
def _in_process(environment: dict, cwd: Path | None):
    """Run with exactly `environment` and in `cwd`, then put back what a CLI run changes in a process:
    the environment, the directory, the tool's logging and the secrets registered for redaction."""
    from mycase_sync import output, redact

    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    logger = logging.getLogger(output.LOGGER)
    saved_logger = (list(logger.handlers), logger.level, logger.propagate)
    saved_run_id = getattr(getattr(output, "RunIdFilter", None), "run_id", None)
    saved_secrets = (set(getattr(redact, "_secrets", ())), getattr(redact, "_pattern", None))
    os.environ.clear()
    os.environ.update(environment)
    if cwd is not None:
        os.chdir(cwd)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
        for handler in list(logger.handlers):
            if handler not in saved_logger[0]:
                logger.removeHandler(handler)
                handler.close()
        logger.handlers[:] = saved_logger[0]
        logger.level, logger.propagate = saved_logger[1], saved_logger[2]
        if saved_run_id is not None:
            output.RunIdFilter.run_id = saved_run_id
        if all(hasattr(redact, name) for name in ("_lock", "_secrets", "_pattern")):
            with redact._lock:
                redact._secrets.clear()
                redact._secrets.update(saved_secrets[0])
                redact._pattern = saved_secrets[1]


def reset_logging() -> None:
    """Undo output.setup_logging in this process (a test that called it), for the tests that follow."""
    from mycase_sync import output

    root = logging.getLogger(output.LOGGER)
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.propagate, root.level = True, logging.NOTSET


# Files a test's runs leave behind that are not output: the state store (its `tokens` table is
# where the tokens belong; the other tables are searched separately), locks, and .env files a test
# wrote on purpose.
_NOT_OUTPUT = re.compile(r"(\.db(-wal|-shm|-journal)?|\.lock|\.env|^\.env)$")


@pytest.fixture(autouse=True)
def _no_secrets_left_behind(tmp_path):
    """After each test: no secret any of its CLIs knew is in a file under tmp_path or the store's other tables."""
    start = len(_live_clis)
    yield
    clis = _live_clis[start:]
    del _live_clis[start:]
    if not clis:
        return
    secrets: dict[str, str] = {}
    stores: set[str] = set()
    for cli in clis:
        secrets.update(cli.secrets())
        db = cli.db_path()
        if db and Path(db).is_file():
            stores.add(db)
    for path in sorted(tmp_path.rglob("*")):
        if not path.is_file() or _NOT_OUTPUT.search(path.name):
            continue
        assert_no_secrets(path.read_bytes().decode("utf-8", "replace"), secrets, f"file {path.relative_to(tmp_path)}")
    for db in sorted(stores):
        try:
            text = store_text_without_tokens(db)
        except sqlite3.Error:  # a test that wrote garbage into the store on purpose
            continue
        assert_no_secrets(text, secrets, f"the state store {db} (tables other than tokens)")


@pytest.fixture
def db_path(tmp_path) -> Path:
    return tmp_path / "state" / "state.db"


@pytest.fixture
def sandbox_config():
    """Override in a test module to change the firm size, latency, lifetimes...

    MyCase's own rate limit (25 requests/s) is off here, and the `cli` fixture then runs unpaced:
    where the pace is not what a test is about, waiting for it only makes the run slow. A module
    about pacing keeps the limit on (the SandboxConfig default), and `cli` keeps under it."""
    from mycase_sync.sandbox.server import SandboxConfig

    return SandboxConfig(matters=60, seed=7, mycase_rate_limit=None)


@pytest.fixture
def sandbox(sandbox_config):
    from mycase_sync.sandbox.server import Sandbox

    with Sandbox(sandbox_config) as running:
        yield running


@pytest.fixture
def cli(sandbox, db_path, tmp_path) -> Cli:
    """The real CLI pointed at the sandbox, with its own state store (not yet connected).

    Toward MyCase it keeps under the sandbox's rate limit (22 against 25 requests/s) where the
    sandbox has one, and is unpaced (1000/s) where it has none. Toward Case Status (the sandbox
    keeps no limit there unless a test sets one) it is unpaced too: 2000/s."""
    mycase_rate = "22" if sandbox.config.mycase_rate_limit else "1000"
    return sandbox_cli(sandbox, tmp_path, db_path, MYCASE_RATE_LIMIT=mycase_rate, CASESTATUS_RATE_LIMIT="2000",
                       # not the pace-derived default (64 at 2000/s): tests count in-flight work
                       MYCASE_SYNC_WORKERS="8")


@pytest.fixture
def connected(cli, sandbox, db_path) -> Cli:
    """The CLI with a MyCase token already in the store, as after `mycase-sync auth`."""
    seed_tokens(sandbox, db_path)
    return cli


# --- helpers for tests that start a sandbox of their own, or set a scene in one ------------------
def sandbox_cli(sandbox, home: Path, db_path: Path, **env: str) -> Cli:
    """The real CLI pointed at a running sandbox, with the state store `db_path`, run in `home`."""
    full = dict(sandbox.env(), MYCASE_SYNC_DB=str(db_path), MYCASE_SYNC_TIMEOUT="5")
    full.update(env)
    return Cli(env=full, cwd=home, secret_sources=[lambda: sandbox_secrets(sandbox)])


def seed_tokens(sandbox, db_path, lifetime: int | None = None) -> None:
    """A MyCase token set in the store, as after `mycase-sync auth`; access tokens of `lifetime` seconds if asked."""
    from mycase_sync.mycase.tokens import save_token_set
    from mycase_sync.store import open_store

    if lifetime is not None:
        sandbox.mycase.access_token_lifetime = lifetime
    store = open_store(db_path)
    try:
        save_token_set(store, sandbox.mycase.issue_tokens())
    finally:
        store.close()


def active_cases(sandbox) -> list[int]:
    """MyCase case ids the seeded firm has Case Status messages or files for."""
    ids = {m["integration_id"] for m in sandbox.firm.messages} | {f["integration_id"] for f in sandbox.firm.files}
    return sorted(int(i) for i in ids)


def create_casestatus_cases(sandbox, case_ids) -> dict[str, int]:
    """Case Status cases for these MyCase ids, as another integration or a person would make them (their
    activity is visible in Case Status; this tool has not imported them). MyCase id -> Case Status id;
    a case that exists already is kept."""
    email = next(iter(sandbox.casestatus.users.values()))["email"]
    made = {}
    for case_id in case_ids:
        case = sandbox.casestatus.case_by_integration_id(str(case_id)) or sandbox.casestatus.create_case(
            integration_id=str(case_id), readable_id=f"R-{case_id}", primary_attorney_email=email)
        made[str(case_id)] = case["id"]
    return made


def mapped_cases(db_path) -> set[str]:
    """The MyCase ids the store maps to a Case Status case."""
    from mycase_sync.store import open_store

    store = open_store(db_path)
    try:
        return {row[0] for row in store.db.execute("select mycase_id from matters where casestatus_id is not null")}
    finally:
        store.close()


def seed_imported(sandbox, db_path, case_ids) -> set[str]:
    """These matters as import-matters leaves them: a Case Status case each, recorded in the store."""
    from mycase_sync.store import open_store

    made = create_casestatus_cases(sandbox, case_ids)
    store = open_store(db_path)
    try:
        with store.transaction() as db:
            for mycase_id, casestatus_id in made.items():
                db["matters"].insert({"mycase_id": mycase_id, "casestatus_id": casestatus_id, "state": "synced"},
                                     replace=True)
    finally:
        store.close()
    return set(made)


# How a CLI run ends after each signal: SIGKILL kills it; the others stop it at a safe point.
EXIT_AFTER_SIGNAL = {signal.SIGKILL: -signal.SIGKILL, signal.SIGTERM: 143, signal.SIGHUP: 143, signal.SIGINT: 130}


class KillAtWrite:
    """SIGKILL a CLI run at its k-th write (to `services`, of `method` and a path matching `path`; any by default),
    or send it `signum` (SIGTERM...) there.

    "after": once the write is committed, before its answer is sent (the after-write hook).
    "before": as the write arrives, before anything is committed. After SIGKILL it is dropped unanswered
    (nobody is left to answer); after another signal it is then handled as usual (the run is still there).
    """

    def __init__(self, sandbox, k: int, when: str = "after", method: str | None = None, path: str | None = None,
                 services: Iterable[str] = ("mycase", "casestatus"), signum: int = signal.SIGKILL):
        self.sandbox = sandbox
        self.signum = signum
        self.stdout = self.stderr = ""
        self.k = k
        self.when = when
        self.method = method
        self.path = re.compile(path) if path else None
        self.seen = 0
        self.proc = None
        self.killed: dict | None = None
        self._lock = threading.Lock()
        self._services = [getattr(sandbox, name) for name in services]
        for service in self._services:
            if when == "after":
                service.after_write_hooks.append(self._after)
            else:
                service.handle = self._before(service.handle)

    def _matches(self, method: str, path: str) -> bool:
        return (self.method is None or method == self.method) and (self.path is None or bool(self.path.fullmatch(path)))

    def _hit(self, entry: dict) -> bool:
        if not self._matches(entry["method"], entry["path"]):
            return False
        with self._lock:
            self.seen += 1
            if self.seen != self.k or self.proc is None:
                return False
            os.kill(self.proc.pid, self.signum)
            self.killed = entry
            return True

    def _after(self, entry: dict) -> None:
        self._hit(entry)

    def _before(self, handle):
        from mycase_sync.sandbox.core import WRITE_METHODS

        def wrapped(req):
            if req.method in WRITE_METHODS and self._hit({"method": req.method, "path": req.path}) \
                    and self.signum == signal.SIGKILL:
                return None, "drop_before"  # the client is gone: nothing is committed, nothing answered
            return handle(req)

        return wrapped

    def remove(self) -> None:
        for service in self._services:
            if self.when == "after":
                service.after_write_hooks.remove(self._after)
            else:
                del service.handle  # back to the class's method

    def run(self, cli: Cli, *args: str, extra_env: dict | None = None, timeout: float = 120) -> dict:
        """Run `mycase-sync ARGS` until this kills (or stops) it; the hooks are removed after. Returns the write
        it died at, once every request the run had sent has landed in the sandbox or been dropped (none commits
        later). What the run printed is kept in `stdout` and `stderr`."""
        try:
            self.proc = cli.popen(*args, extra_env=extra_env)
            self.stdout, self.stderr = self.proc.communicate(timeout=timeout)
        finally:
            self.remove()
        self.sandbox.wait_until_idle()
        assert self.killed is not None, f"the run ended after {self.seen} writes, before write {self.k}"
        assert self.proc.returncode == EXIT_AFTER_SIGNAL[self.signum], (self.proc.returncode, self.stderr)
        return self.killed
