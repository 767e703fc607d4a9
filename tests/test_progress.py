"""The progress display (output.Progress): what a person at a terminal sees of a run, and what an
interrupted run says it did. The terminal is a rich Console on a StringIO, with a clock the test moves."""

from __future__ import annotations

import io
import logging
import re
import signal

import pytest
from rich.console import Console

from conftest import reset_logging
from mycase_sync import output
from mycase_sync.signals import Interrupted

OUTCOMES = ("created", "updated", "unchanged", "skipped", "failed")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def terminal(monkeypatch, capsys):
    """A terminal for the bar (lines() gives what it showed, without escape codes). A test sets up the
    tool's logging in its body (pytest swaps stderr between phases), as on a terminal."""
    screen = io.StringIO()
    clock = Clock()
    monkeypatch.setattr(output, "is_terminal", lambda: True)
    monkeypatch.setattr(output, "_console", lambda: Console(file=screen, force_terminal=True, width=80,
                                                            color_system=None, get_time=clock))
    screen.clock = clock
    screen.lines = lambda: [line.strip() for line in ANSI.sub("", screen.getvalue()).replace("\r", "\n").split("\n")]
    yield screen
    reset_logging()


def last_bar(terminal, description: str) -> tuple[str, str]:
    """The bar's last drawing on an 80-column terminal: its first line, and the outcomes on the second."""
    lines = terminal.lines()
    at = max(n for n, line in enumerate(lines) if line.startswith(description))
    assert all(len(line) <= 80 for line in lines[at:at + 2])
    return lines[at], lines[at + 1]


def test_the_bar_shows_done_of_total_the_outcomes_the_rate_and_an_eta(terminal):
    output.setup_logging()
    with output.Progress("import-matters", outcomes=OUTCOMES) as progress:
        progress.total(100)
        for outcome in ("created", "created", "failed", "created"):
            terminal.clock.now += 0.5
            progress.advance(outcome=outcome)
    shown, outcomes = last_bar(terminal, "import-matters")
    assert re.search(r" 4/100 2/s ETA 0:0[01]:\d\d$", shown), shown  # 4 in 2 s; 96 left at about 2 a second
    assert outcomes == "3 created, 0 updated, 0 unchanged, 0 skipped, 1 failed"


def test_without_a_total_the_bar_counts_and_gives_the_rate(terminal):
    output.setup_logging()
    with output.Progress("push-messages", outcomes=("sent", "adopted", "failed")) as progress:
        for _ in range(6):
            terminal.clock.now += 0.25
            progress.advance(outcome="sent")
        progress.advance(outcome="parked")  # an outcome not announced shows once it happens
    shown, outcomes = last_bar(terminal, "push-messages")
    assert re.search(r" 7 done [45]/s$", shown) and outcomes == "6 sent, 0 adopted, 0 failed, 1 parked", shown


def test_a_line_logged_while_the_bar_shows_prints_above_it_not_onto_it(terminal, capsys):
    output.setup_logging()
    log = logging.getLogger("mycase_sync.sync.matters")
    with output.Progress("import-matters", outcomes=OUTCOMES) as progress:
        progress.total(10)
        progress.advance(outcome="created")
        log.warning("matter 7 (2024-00007): failed: Case Status refused it: %s", "x" * 80)
        progress.advance(outcome="failed")
    # on its own line, and whole (the terminal wraps it: it copies as one line)
    assert f"matter 7 (2024-00007): failed: Case Status refused it: {'x' * 80}" in terminal.lines(), terminal.getvalue()
    assert capsys.readouterr().err == ""  # through the bar's console, not around it
    log.warning("after the bar")
    assert capsys.readouterr().err == "after the bar\n"  # the handler writes to stderr again


@pytest.mark.parametrize("stop", [Interrupted(signal.SIGTERM), KeyboardInterrupt()], ids=["SIGTERM", "Ctrl-C"])
@pytest.mark.parametrize("on_terminal", [True, False], ids=["terminal", "cron"])
def test_an_interrupted_run_says_what_it_did_so_far(monkeypatch, capsys, terminal, stop, on_terminal):
    monkeypatch.setattr(output, "is_terminal", lambda: on_terminal)
    output.setup_logging()
    with pytest.raises(type(stop)):
        with output.Progress("import-matters", outcomes=OUTCOMES) as progress:
            for outcome in ("created", "created", "updated", "skipped"):
                progress.advance(outcome=outcome)
            raise stop
    said = capsys.readouterr().err
    assert said == "import-matters: 2 created, 1 updated, 0 unchanged, 1 skipped, 0 failed so far\n"


def test_off_a_terminal_a_finished_run_shows_nothing(monkeypatch, capsys):
    monkeypatch.setattr(output, "is_terminal", lambda: False)
    with output.Progress("import-matters", total=3, outcomes=OUTCOMES) as progress:
        assert not progress.visible
        progress.advance(outcome="created")
    assert capsys.readouterr() == ("", "")
