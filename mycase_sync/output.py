"""Logging and progress for people and for cron.

On a terminal: progress bars and info lines. Under cron (no terminal): nothing on success,
so cron mails only what went wrong. `--log-file` appends one timestamped line per event.
Every handler masks secrets.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import threading
import time
from typing import Iterator

from mycase_sync.errors import ConfigError
from mycase_sync.redact import RedactingFilter

LOGGER = "mycase_sync"
RUN_LOGGER = "mycase_sync.runs"  # the one summary line per run, for the log file
CONSOLE_HANDLER = "mycase_sync.console"  # the handler that writes log lines to stderr


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
    console.set_name(CONSOLE_HANDLER)
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
    """What a person at a terminal sees of a job, and what an interrupted run says it did.

    On a terminal: a bar with done/total (or, total unknown, a running count), the rate, the outcomes
    so far (`advance(outcome=...)`) and an ETA; lines logged meanwhile print above the bar, never onto
    it. Off a terminal: nothing. Anywhere: a run stopped by Ctrl-C or a signal logs (WARNING) what it
    did so far, e.g. "import-matters: 3 created, 1 updated, ... so far".
    `outcomes` are shown from the start, in that order; any other outcome once it happens.
    """

    def __init__(self, description: str, total: int | None = None, outcomes: tuple[str, ...] = ()):
        self.description = description
        self.counts: dict[str, int] = {name: 0 for name in outcomes}
        self._lock = threading.Lock()
        self._bar = None
        self._task = None
        self._handlers: list[tuple[logging.StreamHandler, object]] = []
        if is_terminal():
            self._bar = _bar(_console())
            self._task = self._bar.add_task(description, total=total, outcomes=self._outcomes())

    @property
    def visible(self) -> bool:
        """True when someone watches: worth a request or two to know the total."""
        return self._bar is not None

    def __enter__(self) -> "Progress":
        if self._bar:
            self._bar.start()
            self._lines_above_the_bar()
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if self._bar:
            for handler, stream in self._handlers:
                handler.setStream(stream)
            self._bar.stop()
        from mycase_sync.signals import Interrupted

        if kind is not None and issubclass(kind, (KeyboardInterrupt, Interrupted)):
            logging.getLogger(LOGGER).warning("%s: %s so far", self.description, self._outcomes() or "nothing done")

    def advance(self, amount: int = 1, outcome: str | None = None) -> None:
        with self._lock:
            if outcome is not None:
                self.counts[outcome] = self.counts.get(outcome, 0) + amount
            shown = self._outcomes()
        if self._bar:
            self._bar.update(self._task, advance=amount, outcomes=shown)

    def total(self, total: int | None) -> None:
        if self._bar:
            self._bar.update(self._task, total=total)

    def _outcomes(self) -> str:
        return ", ".join(f"{count} {name}" for name, count in self.counts.items())

    def _lines_above_the_bar(self) -> None:
        """Our console log handler writes through the bar's console while it shows: rich then prints
        each line above the bar instead of onto the bar's own line."""
        for handler in logging.getLogger(LOGGER).handlers:
            if handler.get_name() == CONSOLE_HANDLER and isinstance(handler, logging.StreamHandler):
                self._handlers.append((handler, handler.setStream(_AboveTheBar(self._bar.console))))


class _AboveTheBar(io.TextIOBase):
    """A stream for the log handler while a bar shows: each whole line goes through the bar's console,
    which clears the bar, prints the line (as one line: the terminal wraps it, so it copies whole) and
    draws the bar again below it."""

    def __init__(self, console):
        self.console = console
        self.partial = ""

    def write(self, text: str) -> int:
        from rich.text import Text

        *lines, self.partial = (self.partial + text).split("\n")
        for line in lines:
            self.console.print(Text(line), soft_wrap=True)
        return len(text)


def _bar(console):
    """Two lines, to fit 80 columns: `import-matters ━━━━━━ 1234/3000 41/s ETA 0:00:43`, then the
    outcomes so far. Rich is imported here, not with this module: cron's runs never draw a bar."""
    from rich.progress import BarColumn, Progress as RichProgress, ProgressColumn, TextColumn
    from rich.text import Text

    class Count(ProgressColumn):
        """`1234/3000 41/s`, or `1234 done 41/s` while the total is unknown."""

        def render(self, task):
            done = int(task.completed)
            rate = f" {task.speed:.0f}/s" if task.speed else ""
            return Text(f"{done}/{int(task.total)}{rate}" if task.total else f"{done} done{rate}")

    class Eta(ProgressColumn):
        """`ETA 0:01:23` once a total and a rate are known."""

        def render(self, task):
            left = task.time_remaining if task.total else None
            if left is None:
                return Text("")
            minutes, seconds = divmod(int(left), 60)
            hours, minutes = divmod(minutes, 60)
            return Text(f"ETA {hours}:{minutes:02d}:{seconds:02d}")

    class TwoLines(RichProgress):
        def get_renderables(self):
            yield self.make_tasks_table(self.tasks)
            for task in self.tasks:
                if task.fields.get("outcomes"):
                    yield Text("  " + task.fields["outcomes"])

    return TwoLines(TextColumn("{task.description}"), BarColumn(bar_width=24), Count(), Eta(),
                    transient=True, console=console)


def _console():
    from rich.console import Console

    return Console(stderr=True)


@contextlib.contextmanager
def nothing() -> Iterator[None]:
    yield
