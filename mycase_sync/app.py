"""What every command shares: settings, the state store, the two API clients, the run record.

Everything is created on first use, so `--help` and an idle run import and open only
what they need (cron starts this tool every 5 minutes).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from mycase_sync.config import Settings
from mycase_sync.errors import EXIT_OK, EXIT_PARTIAL, AuthorizationError, ConfigError, SyncError, TemporaryError
from mycase_sync.locks import job_lock
from mycase_sync.output import RUN_LOGGER, set_run_id
from mycase_sync.signals import Interrupted, check as check_signals

log = logging.getLogger("mycase_sync")
# One line per finished run: written to the log file; on the console only with -v (the command prints its own summary).
run_log = logging.getLogger(RUN_LOGGER)
# Its level follows the outcome, so that grepping the log for WARNING or ERROR finds every run cron would mail.
SUMMARY_LEVEL = {"success": logging.INFO, "partial": logging.WARNING, "temporary": logging.WARNING,
                 "interrupted": logging.WARNING}  # auth, config, failed: ERROR


class NoProgress:
    """What a job shows of its progress when nobody asked to see it (tests, the library)."""

    visible = False

    def __init__(self, description: str, total: int | None = None, outcomes: tuple[str, ...] = ()):
        pass

    def __enter__(self) -> "NoProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def advance(self, amount: int = 1, outcome: str | None = None) -> None:
        pass

    def total(self, total: int | None) -> None:
        pass


JOB_SETTINGS = ("MYCASE_CLIENT_ID", "MYCASE_CLIENT_SECRET", "CASESTATUS_API_KEY")  # what every job needs


@dataclass
class App:
    """`progress(description, total=None, outcomes=())` makes the progress display a job updates
    (`advance(outcome=...)`, `total(n)`, `visible`): the command line gives output.Progress (a bar on
    a terminal, nothing under cron)."""

    settings: Settings
    progress: Callable[..., Any] = NoProgress
    notices: tuple[tuple[str, str], ...] = ()  # (key, line) for the log file, once per store: see Store.first_time
    _store: Any = field(default=None, repr=False)
    _mycase: Any = field(default=None, repr=False)
    _casestatus: Any = field(default=None, repr=False)
    keep_pace: bool = True  # store the pace learned at close (a dry run changes nothing in the store)

    @property
    def store(self):
        if self._store is None:
            from mycase_sync.store import open_store

            self._store = open_store(self.settings.db_path)
            for key, line in self.notices:
                if self._store.first_time(key):
                    run_log.warning("%s", line)
        return self._store

    @property
    def mycase(self):
        """The MyCase API client, authorised with the stored token (refreshing as needed)."""
        if self._mycase is None:
            from mycase_sync.mycase.tokens import TokenManager
            from mycase_sync.mycase.client import MyCaseClient

            self.settings.require("MYCASE_CLIENT_ID", "MYCASE_CLIENT_SECRET")
            self._mycase = MyCaseClient(self.settings, TokenManager(self.settings, self.store))
            self._resume_pace(self._mycase.session)
        return self._mycase

    @property
    def casestatus(self):
        """The Case Status client, once the store is known to belong to this API key's account."""
        if self._casestatus is None:
            from mycase_sync.ownership import check_casestatus_key, forget_casestatus_key

            self.settings.require("CASESTATUS_API_KEY")
            first_use = check_casestatus_key(self.store, self.settings.casestatus_api_key)
            self._casestatus = self.new_casestatus_client()
            if first_use:
                self._casestatus.on_key_refused = lambda: forget_casestatus_key(self.store)
            self._resume_pace(self._casestatus.session)
        return self._casestatus

    def check_ready(self) -> None:
        """What every job checks before it does anything (no request, no file created): the settings it
        needs (exit 2), and a stored MyCase authorization not known to be missing or expired (exit 3)."""
        from pathlib import Path

        from mycase_sync.mycase.tokens import NOT_CONNECTED_MESSAGE

        self.settings.require(*JOB_SETTINGS)
        if not Path(self.settings.db_path).exists():
            raise AuthorizationError(NOT_CONNECTED_MESSAGE)
        self.mycase.tokens.ensure_connected()

    def new_casestatus_client(self):
        """A Case Status client with no ownership check (for accept-casestatus-key, which makes it)."""
        from mycase_sync.casestatus.client import CaseStatusClient

        self.settings.require("CASESTATUS_API_KEY")
        return CaseStatusClient(self.settings)

    def _resume_pace(self, session) -> None:
        """Start from the pace the last run found (used when no job shares one right now)."""
        known = self.store.pacing.get(session.service)
        if known is not None:
            session.pacer.seed(known["rate"], known["refused"] or 0.0)

    def _keep_pace(self, session) -> None:
        """Store the pace this run found, when it moved (one write at most, none for an idle run)."""
        if not session.pacer.granted:  # nothing sent (the MyCase client of an idle push): nothing learned here
            return
        rate, refused = session.pacer.learned()
        if session.pacer.moved(rate, refused) or self.store.pacing.get(session.service) is not None:
            self.store.pacing.keep(session.service, rate, refused)

    def close(self) -> None:
        for client in (self._mycase, self._casestatus):
            if client is not None:
                try:
                    if self.keep_pace:
                        self._keep_pace(client.session)
                except (SyncError, OSError) as exc:  # the pace is a hint: losing it loses nothing else
                    log.debug("could not store the pace: %s", exc)
                client.close()
        if self._store is not None:
            self._store.close()


def run_job(app: App, job: str, work: Callable[[str], dict], by_hand: bool = False) -> int:
    """Lock the job, record the run, call work(run_id) -> counts, and map the outcome to an exit code.

    `work` returns counts; a "failed" count above zero makes the run partial (exit 1).
    Errors are recorded in run history and re-raised for the CLI to print as one line.
    Each finished run leaves one line in the log file (job, outcome, counts, duration).
    `by_hand`: a part of the job's work (--case, --since), recorded apart from scheduled runs.
    """
    from mycase_sync.store import RunKind

    with job_lock(app.settings.db_path, job):
        store = app.store
        run_id = store.start_run(job, RunKind.BY_HAND if by_hand else RunKind.SCHEDULED)
        set_run_id(run_id)
        started = time.monotonic()

        def finish(outcome: str, counts: dict | None = None, error: str | None = None) -> None:
            store.finish_run(run_id, outcome, counts, error=error)
            run_log.log(SUMMARY_LEVEL.get(outcome, logging.ERROR), "%s",
                        run_summary(job, outcome, time.monotonic() - started, counts, error))

        try:
            counts = work(run_id)
            check_signals()  # a stop signal that work() never saw (see signals.check)
        except AuthorizationError as exc:
            finish("auth", error=str(exc))
            raise
        except TemporaryError as exc:
            finish("temporary", error=str(exc))
            raise
        except ConfigError as exc:
            finish("config", error=str(exc))
            raise
        except SyncError as exc:
            finish("failed", error=str(exc))
            raise
        except (KeyboardInterrupt, Interrupted) as exc:
            finish("interrupted", error=f"interrupted ({exc})" if isinstance(exc, Interrupted) else "interrupted")
            raise
        except BaseException as exc:
            finish("failed", error=f"internal error: {type(exc).__name__}")
            raise
        failed = int(counts.get("failed", 0) or 0)
        finish("partial" if failed else "success", counts)
        return EXIT_PARTIAL if failed else EXIT_OK


def run_dry(app: App, job: str, work: Callable[[str], dict]) -> tuple[int, dict]:
    """--dry-run of any job: under the job's lock (so it never races a real run) but with no run
    record (a dry run must not count as a completed run in `status`). Returns the exit code a real
    run would have had, by the same rule as run_job, and the counts (with the job's "plan" lines)."""
    app.keep_pace = False
    with job_lock(app.settings.db_path, job):
        counts = work("dry-run")
    return (EXIT_PARTIAL if int(counts.get("failed", 0) or 0) else EXIT_OK), counts


def run_summary(job: str, outcome: str, seconds: float, counts: dict | None, error: str | None) -> str:
    """`push-messages success in 0.4 s: sent=3 waiting=2`: the non-zero counts, then the error if any."""
    shown = " ".join(f"{key}={value}" for key, value in (counts or {}).items()
                     if isinstance(value, int) and not isinstance(value, bool) and value)
    line = f"{job} {outcome} in {seconds:.1f} s"
    if shown:
        line += f": {shown}"
    if error:
        line += f" ({error})"
    return line
