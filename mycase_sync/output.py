"""Logging and progress for people and for cron.

On a terminal: progress bars and info lines. Under cron (no terminal): nothing on success,
so cron mails only what went wrong. `--log-file` appends one timestamped line per event.
Every handler masks secrets.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from typing import Iterator

from mycase_sync.errors import ConfigError
from mycase_sync.redact import RedactingFilter

LOGGER = "mycase_sync"
RUN_LOGGER = "mycase_sync.runs"  # the one summary line per run, for the log file


class RunIdFilter(logging.Filter):
    run_id = "-"

    def filter(self, record: logging.LogRecord) -> bool:
        record.run_id = RunIdFilter.run_id
        return True


class LogFileFormatter(logging.Formatter):
    """`2025-03-10T21:15:02Z 3f9c0a1b2c4d INFO message`: UTC, the run id, one line per event."""

    converter = time.gmtime

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(run_id)s %(levelname)s %(message)s", datefmt="%Y-%m-%dT%H:%M:%SZ")

    def format(self, record: logging.LogRecord) -> str:
        return " | ".join(line for line in super().format(record).splitlines() if line.strip())


def is_terminal() -> bool:
    return sys.stderr.isatty()


def setup_logging(verbose: int = 0, quiet: bool = False, log_file: str | None = None, errors_only: bool = False) -> None:
    """The console shows what cron would mail (warnings: failures; errors), plus information on a
    terminal unless `quiet`; `errors_only` (the demo) hides the warnings too."""
    root = logging.getLogger(LOGGER)
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    if verbose:
        level = logging.DEBUG
    elif errors_only:
        level = logging.ERROR
    elif quiet or not is_terminal():  # -q leaves what cron would mail: warnings (failures) and errors
        level = logging.WARNING
    else:
        level = logging.INFO
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(level)
    console.setFormatter(logging.Formatter("%(message)s"))
    console.addFilter(RedactingFilter())
    if not verbose:
        console.addFilter(lambda record: record.name != RUN_LOGGER)
    root.addHandler(console)
    root.setLevel(logging.DEBUG)
    root.propagate = False
    if log_file:
        try:
            os.close(os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600))  # names clients: 0600
            handler = logging.FileHandler(log_file, encoding="utf-8", errors="replace")
        except OSError as exc:
            raise ConfigError(f"cannot open the log file {log_file}: {exc.strerror or exc}") from None
        handler.setLevel(logging.DEBUG if verbose else logging.INFO)
        handler.setFormatter(LogFileFormatter())
        handler.addFilter(RedactingFilter())
        handler.addFilter(RunIdFilter())
        root.addHandler(handler)


def set_run_id(run_id: str) -> None:
    RunIdFilter.run_id = run_id


class Progress:
    """A rich progress bar on a terminal, nothing otherwise (cron, pipes, tests)."""

    def __init__(self, description: str, total: int | None = None):
        self._bar = None
        self._task = None
        if is_terminal():
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(transient=True, console=_console())
            self._task = self._bar.add_task(description, total=total)

    def __enter__(self) -> "Progress":
        if self._bar:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar:
            self._bar.stop()

    def advance(self, amount: int = 1) -> None:
        if self._bar:
            self._bar.advance(self._task, amount)

    def total(self, total: int) -> None:
        if self._bar:
            self._bar.update(self._task, total=total)


def _console():
    from rich.console import Console

    return Console(stderr=True)


@contextlib.contextmanager
def nothing() -> Iterator[None]:
    yield
