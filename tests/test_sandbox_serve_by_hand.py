"""`mycase-sync sandbox serve` followed by hand, as the README says: its printed lines point every
command at the sandbox and at a throw-away state store, never the real one; its --help states
every default."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import click
import requests

from conftest import Cli
from mycase_sync.sandbox.cli import serve


def exported(lines: list[str]) -> dict[str, str]:
    env = {}
    for line in lines:
        words = shlex.split(line)
        assert words[0] == "export" and len(words) == 2, line
        name, _, value = words[1].partition("=")
        env[name] = value
    return env


def test_following_the_printed_lines_keeps_the_sandbox_out_of_the_real_state_store(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "mycase_sync", "sandbox", "serve", "--port", "0", "--matters", "10"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr.readline().startswith("# MyCase ")  # said after every line was printed
        os.set_blocking(proc.stdout.fileno(), False)
        env = exported(os.read(proc.stdout.fileno(), 65536).decode().splitlines())
        scratch = Path(env["MYCASE_SYNC_DB"]).parent
        assert scratch.is_dir() and (scratch.stat().st_mode & 0o077) == 0
        assert not Path(env["MYCASE_SYNC_DB"]).is_relative_to(tmp_path)

        cli = Cli(env={**env, "HOME": str(tmp_path)}, cwd=tmp_path)  # the real default store would be under HOME
        auth = cli.popen("auth", "--no-browser", "--timeout", "30")
        url = auth.stdout.readline().strip()
        landing = requests.get(url, allow_redirects=False, timeout=10).headers["Location"]
        requests.get(landing, timeout=10)
        out, err = auth.communicate(timeout=30)
        assert auth.returncode == 0 and out.startswith("Connected to MyCase as "), err
        assert Path(env["MYCASE_SYNC_DB"]).is_file()
        assert not (tmp_path / ".local").exists() and not (tmp_path / "xdg-state").exists()
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=10)
    err = proc.stderr.read()
    assert code == 0, err
    assert f"# sandbox stopped; its state store {scratch} is removed" in err
    assert not scratch.exists()


def test_sandbox_serve_help_states_every_default():
    for option in serve.params:
        if isinstance(option, click.Option) and not option.is_flag and option.name != "help":
            assert option.show_default or "[default: " in (option.help or ""), option.name
    result = Cli(env={"COLUMNS": "200"}).invoke("sandbox", "serve", "--help")
    assert result.code == 0
    text = " ".join(result.stdout.split())
    assert "[default: NTH 1, TIMES 1; no failure planned]" in text
    assert "[default: 25 for MyCase (its documented limit), none for Case Status]" in text
    assert "Each --alternative flag is off by default" in text
