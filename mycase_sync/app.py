"""What every command shares: settings, the state store, the two API clients, the run record.

Everything is created on first use, so `--help` and an idle run import and open only
what they need (cron starts this tool every 5 minutes).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from mycase_sync.config import Settings, is_loopback
from mycase_sync.errors import EXIT_OK, EXIT_PARTIAL, AuthorizationError, SyncError, TemporaryError
from mycase_sync.locks import job_lock
from mycase_sync.output import set_run_id

log = logging.getLogger("mycase_sync")


@dataclass
class App:
    settings: Settings
    _store: Any = field(default=None, repr=False)
    _mycase: Any = field(default=None, repr=False)
    _casestatus: Any = field(default=None, repr=False)

    @property
    def store(self):
        if self._store is None:
            from mycase_sync.store import open_store

            self._store = open_store(self.settings.db_path)
        return self._store

    @property
    def allow_loopback_urls(self) -> bool:
        """Upload/download URLs on 127.0.0.1 are followed only when we talk to a local sandbox."""
        from urllib.parse import urlsplit

        return is_loopback(urlsplit(self.settings.mycase_api_url).hostname) and is_loopback(
            urlsplit(self.settings.casestatus_api_url).hostname
        )

    @property
    def mycase(self):
        """The MyCase API client, authorised with the stored token (refreshing as needed)."""
        if self._mycase is None:
            from mycase_sync.mycase.auth import TokenManager
            from mycase_sync.mycase.client import MyCaseClient

            self.settings.require("MYCASE_CLIENT_ID", "MYCASE_CLIENT_SECRET")
            self._mycase = MyCaseClient(self.settings, TokenManager(self.settings, self.store))
        return self._mycase

    @property
    def casestatus(self):
        if self._casestatus is None:
            from mycase_sync.casestatus.client import CaseStatusClient

            self.settings.require("CASESTATUS_API_KEY")
            self._casestatus = CaseStatusClient(self.settings)
        return self._casestatus

    def close(self) -> None:
        for client in (self._mycase, self._casestatus):
            if client is not None:
                client.close()
        if self._store is not None:
            self._store.close()


def run_job(app: App, job: str, work: Callable[[str], dict]) -> int:
    """Lock the job, record the run, call work(run_id) -> counts, and map the outcome to an exit code.

    `work` returns counts; a "failed" count above zero makes the run partial (exit 1).
    Errors are recorded in run history and re-raised for the CLI to print as one line.
    """
    with job_lock(app.settings.db_path, job):
        store = app.store
        run_id = store.start_run(job)
        set_run_id(run_id)
        try:
            counts = work(run_id)
        except AuthorizationError as exc:
            store.finish_run(run_id, "auth", error=str(exc))
            raise
        except TemporaryError as exc:
            store.finish_run(run_id, "temporary", error=str(exc))
            raise
        except SyncError as exc:
            store.finish_run(run_id, "failed", error=str(exc))
            raise
        except KeyboardInterrupt:
            store.finish_run(run_id, "interrupted", error="interrupted")
            raise
        except BaseException as exc:
            store.finish_run(run_id, "failed", error=f"internal error: {type(exc).__name__}")
            raise
        failed = int(counts.get("failed", 0) or 0)
        store.finish_run(run_id, "partial" if failed else "success", counts)
        return EXIT_PARTIAL if failed else EXIT_OK
