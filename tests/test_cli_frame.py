"""The command-line frame: help, version, usage errors.

Whatever goes wrong, the user sees a usage message or one line, and an exit code from the
documented table; never a traceback. These run `mycase_sync.cli.main` in this process (Cli.invoke:
the same exit-code mapping, environment and output a real run has); the version and the help's
imports are checked through a real `python -m mycase_sync`.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from importlib.metadata import version

import click
import pytest

from conftest import Cli
from mycase_sync.cli import main_group, parse_date


def command_paths(group: click.Group, ctx: click.Context, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        paths.append((*prefix, name))
        if isinstance(command, click.Group):
            paths.extend(command_paths(command, ctx, (*prefix, name)))
    return paths


ALL_COMMANDS = command_paths(main_group, click.Context(main_group))


@pytest.fixture
def cli(tmp_path) -> Cli:
    # Overrides the sandbox-backed fixture: nothing here may reach a service or a real store.
    return Cli(env={"MYCASE_SYNC_DB": str(tmp_path / "state" / "state.db")}, cwd=tmp_path)


def assert_clean(result) -> None:
    assert "Traceback" not in result.output, result.output


def test_every_command_is_listed():
    expected = {("auth",), ("auth", "status"), ("auth", "logout"), ("import-matters",), ("push-documents",),
                ("push-messages",), ("status",), ("doctor",), ("demo",), ("sandbox",), ("sandbox", "serve")}
    assert expected <= set(ALL_COMMANDS)


@pytest.mark.parametrize("path", [(), *ALL_COMMANDS], ids=lambda p: " ".join(p) or "top")
def test_help_for_every_command_exits_0(cli, path):
    result = cli.invoke(*path, "--help")
    assert result.code == 0, result.output
    assert result.stdout.startswith(f"Usage: mycase-sync {' '.join(path)}".rstrip())
    assert result.stderr == ""
    assert not (cli.cwd / "state").exists()  # help opens no state store


def test_top_level_help_documents_the_exit_codes(cli):
    out = cli.invoke("-h").stdout
    for code in ("0 ", "1 ", "2 ", "3 ", "75 "):
        assert f"  {code}" in out


def test_help_imports_none_of_the_heavy_parts():
    probe = (
        "import sys\n"
        "from mycase_sync.cli import main\n"
        "try:\n    main(['push-documents', '--help'])\n"
        "except SystemExit as exit:\n    assert exit.code == 0\n"
        "print(sorted(m for m in ('requests', 'sqlite_utils', 'rich', 'mycase_sync.store', 'mycase_sync.sync.documents') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_version(cli):
    result = cli.run("--version")  # a real `python -m mycase_sync`: the entry point itself works
    assert result.code == 0
    assert result.stdout.strip() == f"mycase-sync, version {version('mycase-sync')}"


@pytest.mark.parametrize("args", [
    ("--no-such-option",),
    ("import-matters", "--no-such-option"),
    ("push-messages", "--bogus", "1"),
    ("status", "--jsn"),
    ("auth", "status", "--nope"),
])
def test_an_unknown_option_is_a_usage_error(cli, args):
    result = cli.invoke(*args)
    assert result.code == 2
    assert_clean(result)
    assert "Usage: mycase-sync" in result.stderr
    assert "No such option" in result.stderr
    assert result.stdout == ""


def test_an_unknown_command_is_a_usage_error(cli):
    result = cli.invoke("import-everything")
    assert result.code == 2
    assert_clean(result)
    assert "No such command 'import-everything'" in result.stderr


@pytest.mark.parametrize("args,message", [
    (("import-matters", "--since", "last tuesday"), "is not a date"),
    (("push-documents", "--since", "2024-13-01"), "is not a date"),
    (("import-matters", "--full", "--since", "2024-01-01"), "--full cannot be combined"),
    (("import-matters", "--report", "out.txt"), ".csv or .json"),
    (("auth", "--timeout", "0"), "--timeout"),
])
def test_bad_option_values_are_usage_errors(cli, args, message):
    result = cli.invoke(*args)
    assert result.code == 2
    assert_clean(result)
    assert message in result.stderr


def test_parse_date_takes_dates_and_iso_times_as_utc():
    utc = dt.timezone.utc
    assert parse_date("2024-03-05", "--since") == dt.datetime(2024, 3, 5, tzinfo=utc)
    assert parse_date("2024-03-05T10:20:30Z", "--since") == dt.datetime(2024, 3, 5, 10, 20, 30, tzinfo=utc)
    assert parse_date("2024-03-05T10:20:30+02:00", "--since") == dt.datetime(2024, 3, 5, 8, 20, 30, tzinfo=utc)
    assert parse_date(None, "--since") is None
    with pytest.raises(click.BadParameter):
        parse_date("yesterday", "--since")
