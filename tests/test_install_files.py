"""The README's "Installing on a server", crontab.example, contrib/systemd/ and contrib/logrotate/ agree
line for line: one user, one command, one settings file, one state store, one log file, the same
schedules. The systemd units are parsed always, and checked by `systemd-analyze verify` where it exists.
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import subprocess
import textwrap

import pytest

from test_crontab import CRONTAB, mycase_sync_args, parse_cli, parse_crontab

ROOT = CRONTAB.parent
SYSTEMD = ROOT / "contrib" / "systemd"
LOGROTATE = ROOT / "contrib" / "logrotate" / "mycase-sync"
EVERY_DAY = [set(range(1, 32)), set(range(1, 13)), set(range(0, 8))]


def install_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("\n## Installing on a server\n")
    return text[start:text.index("\n## ", start + 1)]


def code_blocks(section: str, language: str) -> list[list[str]]:
    """The lines of each fenced block of that language (indented blocks in a list included)."""
    blocks = re.findall(rf"^( *)```{language}\n(.*?)^\1```$", section, re.S | re.M)
    return [textwrap.dedent(body).strip("\n").splitlines() for _, body in blocks]


def crontab_lines() -> list[str]:
    return [line.strip() for line in CRONTAB.read_text().splitlines() if line.strip() and not line.lstrip().startswith("#")]


def units() -> dict[str, configparser.ConfigParser]:
    found = {}
    for path in sorted(SYSTEMD.iterdir()):
        parser = configparser.ConfigParser(interpolation=None, strict=True)
        parser.optionxform = str  # systemd keys are case-sensitive
        parser.read_string(path.read_text(), source=str(path))
        found[path.name] = parser
    return found


def env_block() -> dict[str, str]:
    (block,) = [b for b in code_blocks(install_section(), "sh") if any(line.startswith("MYCASE_SYNC_DB=") for line in b)]
    return dict(line.split("=", 1) for line in block)


def calendar_sets(spec: str) -> list[set[int]]:
    """The cron-style sets (minute, hour, then every day) of the OnCalendar forms the units use."""
    match = re.fullmatch(r"\*-\*-\* (\*|\d\d):(\d\d)(?:/(\d+))?:00(?: UTC)?", spec)
    assert match, f"an OnCalendar form this test does not read: {spec!r}"
    hour, minute, step = match.groups()
    minutes = set(range(int(minute), 60, int(step))) if step else {int(minute)}
    return [minutes, set(range(24)) if hour == "*" else {int(hour)}, *EVERY_DAY]


def test_the_readme_shows_crontab_example_line_for_line():
    (block,) = code_blocks(install_section(), "crontab")
    assert [line.strip() for line in block] == crontab_lines()


def test_the_readme_steps_use_the_paths_and_user_of_the_schedules():
    assignments, _ = parse_crontab(CRONTAB.read_text())
    section = install_section()
    env = env_block()
    user = {parser["Service"]["User"] for parser in units().values() if parser.has_section("Service")}.pop()
    assert f"useradd --system --create-home --home-dir {os.path.dirname(env['MYCASE_SYNC_DB'])} " in section
    assert f"install -o {user} -g {user} -m 0600 /dev/null {assignments['ENV_FILE']}" in section
    assert f"install -d -o {user} -g {user} -m 0750 {os.path.dirname(env['MYCASE_SYNC_LOG'])}" in section
    commands = [line.strip() for line in section.splitlines() if line.strip().startswith("sudo -u ")]
    assert len(commands) >= 3
    for line in commands:
        words = shlex.split(line)
        assert words[:3] == ["sudo", "-u", user], line
        assert words[3] == f"{assignments['BIN']}/mycase-sync" and words[4:6] == ["--env-file", assignments["ENV_FILE"]]
        parse_cli(words[4:])  # a real command with real options
    assert {"MYCASE_CLIENT_ID", "MYCASE_CLIENT_SECRET", "CASESTATUS_API_KEY"} <= set(env)


def test_systemd_has_a_service_and_a_timer_per_cron_line_with_the_same_command_and_time():
    assignments, entries = parse_crontab(CRONTAB.read_text())
    cron = {" ".join(mycase_sync_args(command, assignments)): sets for _, sets, command in entries}
    found = units()
    env = env_block()
    services = {name[:-len(".service")] for name in found if name.endswith(".service")}
    assert services == {name[:-len(".timer")] for name in found if name.endswith(".timer")}
    scheduled = {}
    for name in services:
        service, timer = found[f"{name}.service"], found[f"{name}.timer"]
        assert service["Service"]["Type"] == "oneshot"
        assert f"/var/lib/{service['Service']['StateDirectory']}" == os.path.dirname(env["MYCASE_SYNC_DB"])
        assert f"/var/log/{service['Service']['LogsDirectory']}" == os.path.dirname(env["MYCASE_SYNC_LOG"])
        words = shlex.split(service["Service"]["ExecStart"])
        assert words[0] == f"{assignments['BIN']}/mycase-sync"
        parse_cli(words[1:])
        assert timer["Timer"]["Persistent"] == "true" and timer["Install"]["WantedBy"] == "timers.target"
        scheduled[" ".join(words[1:])] = calendar_sets(timer["Timer"]["OnCalendar"])
    assert scheduled == cron
    assert found["mycase-sync-import-matters.timer"]["Timer"]["OnCalendar"] == "*-*-* 21:15:00 UTC"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_the_units(tmp_path):
    """verify wants the command to exist: the copies name a stand-in at the same place under tmp_path."""
    assignments, _ = parse_crontab(CRONTAB.read_text())
    command = f"{assignments['BIN']}/mycase-sync"
    stand_in = tmp_path / command.lstrip("/")
    stand_in.parent.mkdir(parents=True)
    stand_in.write_text("#!/bin/sh\n")
    stand_in.chmod(0o755)
    copies = []
    for path in sorted(SYSTEMD.iterdir()):
        copy = tmp_path / path.name
        copy.write_text(path.read_text().replace(command, str(stand_in)))
        copies.append(str(copy))
    result = subprocess.run(["systemd-analyze", "verify", *copies], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"})
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr


def test_logrotate_rotates_the_log_file_the_settings_name_as_its_owner():
    text = LOGROTATE.read_text()
    env = env_block()
    user = units()["mycase-sync-import-matters.service"]["Service"]["User"]
    body = re.search(r"^(\S+) \{\n(.*?)^\}$", text, re.S | re.M)
    assert body and body.group(1) == env["MYCASE_SYNC_LOG"]
    directives = [line.split() for line in body.group(2).splitlines() if line.strip()]
    assert ["su", user, user] in directives and ["create", "0600", user, user] in directives
    assert ["missingok"] in directives


def test_crontab_example_tells_a_cron_without_cron_tz_the_local_time_to_use():
    _, entries = parse_crontab(CRONTAB.read_text())
    (import_sets,) = [sets for _, sets, command in entries if command.endswith(" import-matters")]
    comments = "\n".join(line for line in CRONTAB.read_text().splitlines() if line.lstrip().startswith("#"))
    assert "Debian" in comments and "contrib/systemd" in comments
    (advice,) = re.findall(r"date -d '(\d\d):(\d\d) UTC' \+'%M %H'", comments)
    assert [{int(advice[1])}, {int(advice[0])}] == import_sets[:2], "the advice names the import's own time"
    if shutil.which("date") and subprocess.run(["date", "--version"], capture_output=True).returncode == 0:  # GNU
        shown = subprocess.run(["date", "-d", f"{advice[0]}:{advice[1]} UTC", "+%M %H"], capture_output=True, text=True,
                               env={**os.environ, "TZ": "America/New_York"}, check=True).stdout.split()
        assert (int(shown[1]) - int(advice[0])) % 24 in (19, 20)  # 4 or 5 hours behind UTC
