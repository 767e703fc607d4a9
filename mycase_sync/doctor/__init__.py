"""`mycase-sync doctor`: does each service behave as the tool assumes? Read-only, one line per assumption.

Every assumption the client depends on (API-NOTES, README "Assumptions") is looked at against the
configured services: `ok`, `differs` (what was seen, and what the tool does about it) or `not
checked` (why). Nothing is written to either service, nor to the state store but a MyCase token
refresh (refresh tokens are single-use: a refreshed one must be saved). The checks of each service
live in doctor/mycase.py and doctor/casestatus.py; every path and field name they read comes from
the two client modules.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from mycase_sync.errors import (EXIT_AUTH, EXIT_CONFIG, EXIT_OK, EXIT_PARTIAL, EXIT_TEMPORARY, AuthorizationError,
                                ServiceError, SettingRefused, SyncError, TemporaryError)

OK, DIFFERS, NOT_CHECKED = "ok", "differs", "not checked"
# When several things went wrong, the exit code of the most fundamental one.
_PRECEDENCE = (EXIT_CONFIG, EXIT_AUTH, EXIT_TEMPORARY, EXIT_PARTIAL, EXIT_OK)


@dataclass
class Check:
    key: str  # stable, for --json: "mycase.status_default"
    assumption: str  # what the tool depends on, in words
    result: str  # OK | DIFFERS | NOT_CHECKED
    seen: str  # what was seen; for NOT_CHECKED, why not
    does: str = ""  # for DIFFERS: what the tool does about it


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    stops: list[str] = field(default_factory=list)  # why a service could not be checked further
    codes: set[int] = field(default_factory=set)

    @property
    def exit_code(self) -> int:
        codes = self.codes | ({EXIT_PARTIAL} if any(c.result == DIFFERS for c in self.checks) else set())
        return next((c for c in _PRECEDENCE if c in codes), EXIT_OK)

    def as_dict(self) -> dict:
        return {"exit_code": self.exit_code, "stops": self.stops, "checks": [asdict(c) for c in self.checks]}


class Seen(Exception):
    """Raised by a check to give its line: Seen(OK, "what was seen") or Seen(DIFFERS, seen, does)."""

    def __init__(self, result: str, seen: str, does: str = ""):
        super().__init__(seen)
        self.result, self.seen, self.does = result, seen, does


class Stop(SyncError):
    """The service cannot be checked further (its credential refused): the check's line is `differs`."""

    def __init__(self, message: str, exit_code: int, does: str = ""):
        super().__init__(message)
        self.exit_code = exit_code
        self.does = does


def ok(seen: str) -> Seen:
    return Seen(OK, seen)


def differs(seen: str, does: str) -> Seen:
    return Seen(DIFFERS, seen, does)


def not_checked(why: str) -> Seen:
    return Seen(NOT_CHECKED, why)


def missing_fields(records: list, names) -> list[str]:
    """The field names that no record carries (present and null counts as carried)."""
    return [n for n in names if not any(isinstance(r, dict) and n in r for r in records)]


class Probe:
    """Runs one service's checks in order. After authorization fails or the service cannot be
    reached, its remaining checks are `not checked`, and the report's exit code says why."""

    def __init__(self, service: str, report: Report):
        self.service = service
        self.report = report
        self.stopped: str | None = None

    def stop(self, reason: str, exit_code: int) -> None:
        self.stopped = reason
        self.report.stops.append(reason)
        self.report.codes.add(exit_code)

    def check(self, key: str, assumption: str, look: Callable[[], None]) -> None:
        """`look()` raises Seen with the line (or Stop, AuthorizationError, TemporaryError, ServiceError)."""
        if self.stopped is not None:
            self.report.checks.append(Check(key, assumption, NOT_CHECKED, self.stopped))
            return
        try:
            look()
            raise not_checked("nothing to look at")  # a check that found nothing to say
        except Seen as line:
            found = Check(key, assumption, line.result, line.seen, line.does)
        except Stop as exc:
            self.stop(str(exc), exc.exit_code)
            found = Check(key, assumption, DIFFERS, str(exc), exc.does)
        except SettingRefused as exc:  # a key or URL refused at first contact: every job exits 2 alike
            self.stop(str(exc), EXIT_CONFIG)
            found = Check(key, assumption, DIFFERS, str(exc), f"every job stops with exit 2: check {exc.setting}")
        except AuthorizationError as exc:
            self.stop(str(exc), EXIT_AUTH)
            found = Check(key, assumption, NOT_CHECKED, str(exc))
        except TemporaryError as exc:
            self.stop(str(exc) if self.service in str(exc) else f"{self.service} unreachable: {exc}", EXIT_TEMPORARY)
            found = Check(key, assumption, NOT_CHECKED, self.stopped)
        except ServiceError as exc:  # refused or unusable: that is what the service does
            found = Check(key, assumption, DIFFERS, str(exc),
                          "the tool's jobs send this request too: they would get the same answer")
        self.report.checks.append(found)


def run_doctor(app) -> Report:
    """Every check against the configured services (settings validated: both must be configured)."""
    from mycase_sync.doctor.casestatus import casestatus_checks
    from mycase_sync.doctor.mycase import mycase_checks

    settings = app.settings
    settings.require("MYCASE_CLIENT_ID", "MYCASE_CLIENT_SECRET", "CASESTATUS_API_KEY")
    report = Report()
    store = app.store if Path(settings.db_path).exists() else None  # never created by a check
    mycase = Probe("MyCase", report)
    if store is None:
        mycase.stop(f"MyCase is not connected (no state store at {settings.db_path}): run `mycase-sync auth`",
                    EXIT_AUTH)
    mycase_checks(mycase, app if store is not None else None)
    casestatus_checks(Probe("Case Status", report), app, store)
    return report
