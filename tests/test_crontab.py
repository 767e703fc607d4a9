"""crontab.example: every line is a valid cron entry, and every command it names exists.

The entries are parsed the way cron reads them (5 time fields, then a command for /bin/sh),
and the mycase-sync arguments go through the real click parser, so a renamed command or
option breaks this test rather than a sysadmin's night.
"""

from __future__ import annotations

import re
import shlex
import warnings
from pathlib import Path

import click
import pytest

from mycase_sync.cli import main_group

CRONTAB = Path(__file__).resolve().parent.parent / "crontab.example"

FIELDS = [  # name, low, high, names allowed
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, {m: i + 1 for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])}),
    ("day of week", 0, 7, {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}),
]
ASSIGNMENT = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")


def expand_field(text: str, low: int, high: int, names: dict[str, int]) -> set[int]:
    """The set of values a cron time field matches; ValueError when cron would refuse it."""
    values: set[int] = set()
    for part in text.split(","):
        rng, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1 or (step_text and not step_text.isdigit()):
            raise ValueError(f"bad step in {part!r}")
        if rng == "*":
            start, end = low, high
        else:
            first, _, last = rng.partition("-")
            start = _value(first, names)
            end = _value(last, names) if last else (high if step_text else start)
        if not (low <= start <= high and low <= end <= high and start <= end):
            raise ValueError(f"{part!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return values


def _value(text: str, names: dict[str, int]) -> int:
    if text.lower() in names:
        return names[text.lower()]
    if not text.isdigit():
        raise ValueError(f"{text!r} is not a number")
    return int(text)


def parse_crontab(text: str):
    """(assignments, entries): entries are (line, [matched sets per field], command)."""
    assignments: dict[str, str] = {}
    entries = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = ASSIGNMENT.match(line)
        if match:
            assignments[match.group(1)] = match.group(2).strip()
            continue
        parts = stripped.split(None, 5)
        if len(parts) < 6:
            raise ValueError(f"not a cron entry (5 time fields and a command): {line!r}")
        sets = [expand_field(field, low, high, names) for field, (_, low, high, names) in zip(parts[:5], FIELDS)]
        entries.append((line, sets, parts[5]))
    return assignments, entries


def mycase_sync_args(command: str, assignments: dict[str, str]) -> list[str]:
    """The arguments after `mycase-sync` in a cron command, with crontab variables substituted."""
    words = shlex.split(command)
    words = [re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: assignments[m.group(1)], w) for w in words]
    assert Path(words[0]).name == "mycase-sync", f"cron line runs {words[0]!r}, not mycase-sync"
    return words[1:]


def parse_cli(args: list[str]) -> list[str]:
    """Parse args with the real click group and subcommand (nothing runs); returns the command path."""
    with main_group.make_context("mycase-sync", list(args), resilient_parsing=False) as ctx:
        name, command, rest = main_group.resolve_command(ctx, _unparsed(ctx))
        sub = command.make_context(name, rest, parent=ctx)
        path = [name]
        while isinstance(command, click.Group) and _unparsed(sub):
            name, command, rest = command.resolve_command(sub, _unparsed(sub))
            sub = command.make_context(name, rest, parent=sub)
            path.append(name)
        return path


def _unparsed(ctx: click.Context) -> list[str]:
    with warnings.catch_warnings():  # click 8.2 deprecates protected_args; 9.0 puts it all in args
        warnings.simplefilter("ignore", DeprecationWarning)
        return [*ctx.protected_args, *ctx.args]


def test_the_parser_refuses_what_cron_refuses():
    for bad in ("60", "24-25", "*/0", "5-1", "x", "1,,2"):
        with pytest.raises(ValueError):
            expand_field(bad, 0, 59 if bad != "24-25" else 23, {})
    assert expand_field("*/20", 0, 59, {}) == {0, 20, 40}
    assert expand_field("1-10/3,30", 0, 59, {}) == {1, 4, 7, 10, 30}
    assert expand_field("mon-fri", 0, 7, FIELDS[4][3]) == {1, 2, 3, 4, 5}
    with pytest.raises(ValueError):
        parse_crontab("15 21 * *    mycase-sync import-matters\n")
    with pytest.raises(click.UsageError):
        parse_cli(["push-messages", "--no-such-option"])
    with pytest.raises(click.UsageError):
        parse_cli(["push-everything"])


def test_crontab_example_parses_and_has_the_three_schedules_in_utc():
    assignments, entries = parse_crontab(CRONTAB.read_text())
    assert assignments["CRON_TZ"] == "UTC"
    assert "@" in assignments["MAILTO"]
    by_command = {}
    for line, sets, command in entries:
        path = parse_cli(mycase_sync_args(command, assignments))
        by_command[" ".join(path)] = (sets, command)
    every_day = [set(range(1, 32)), set(range(1, 13)), set(range(0, 8))]
    import_sets, _ = by_command["import-matters"]
    assert import_sets == [{15}, {21}, *every_day]
    documents, _ = by_command["push-documents"]
    assert documents == [{0, 20, 40}, set(range(24)), *every_day]
    messages, _ = by_command["push-messages"]
    assert messages == [set(range(0, 60, 5)), set(range(24)), *every_day]
    check_sets, check_command = by_command["status"]
    assert "--check" in shlex.split(check_command)
    assert len(check_sets[0]) >= 1 and check_sets[1] == set(range(24))  # at least hourly
    assert set(by_command) == {"import-matters", "push-documents", "push-messages", "status"}


def test_every_cron_line_reads_the_same_settings_file():
    assignments, entries = parse_crontab(CRONTAB.read_text())
    for line, _, command in entries:
        args = mycase_sync_args(command, assignments)
        assert args[:2] == ["--env-file", assignments["ENV_FILE"]], line
    assert Path(assignments["ENV_FILE"]).is_absolute()  # cron runs in $HOME: no relative paths


def test_crontab_explains_locks_and_exit_75():
    comments = " ".join(line for line in CRONTAB.read_text().splitlines() if line.lstrip().startswith("#"))
    assert "lock" in comments and "75" in comments
