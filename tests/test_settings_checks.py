"""Settings are checked, and shown (issue 17, items 4 and 5).

A region phonenumbers does not know, a date in the future, a yes-or-no in another spelling, a
secrets file others can read; `mycase-sync config` and the settings each command's --help names.
No request reaches any service here: every URL is a closed loopback port, and a configuration
error stops the command before it creates anything.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import Cli
from mycase_sync import output
from mycase_sync.config import load_settings
from mycase_sync.errors import ConfigError

OFFLINE = {
    "MYCASE_AUTH_URL": "http://127.0.0.1:9",
    "MYCASE_API_URL": "http://127.0.0.1:9/v1",
    "CASESTATUS_API_URL": "http://127.0.0.1:9",
    "MYCASE_CLIENT_ID": "client-id",
    "MYCASE_CLIENT_SECRET": "client-secret-0123456",
    "CASESTATUS_API_KEY": "casestatus-key-0123456",
}


def cli_for(tmp_path: Path, without: tuple[str, ...] = (), **env: str) -> Cli:
    full = {**OFFLINE, "MYCASE_SYNC_DB": str(tmp_path / "state" / "state.db"), **env}
    return Cli(env={k: v for k, v in full.items() if k not in without}, cwd=tmp_path)


def refused(result, *words: str) -> str:
    assert result.code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


# --- checked: nothing is created on disk by a refusal ------------------------------------------------
def test_a_phone_region_phonenumbers_does_not_know_is_refused_before_anything(tmp_path):
    result = cli_for(tmp_path, MYCASE_SYNC_PHONE_REGION="XX").invoke("import-matters", "--dry-run")
    refused(result, "MYCASE_SYNC_PHONE_REGION", "'XX'")
    assert not (tmp_path / "state").exists()
    assert load_settings(environ={"MYCASE_SYNC_PHONE_REGION": "gb"}).phone_region == "GB"


@pytest.mark.parametrize("job", ["import-matters", "push-documents", "push-messages"])
def test_a_since_date_in_the_future_is_refused(tmp_path, job):
    result = cli_for(tmp_path).invoke(job, "--since", "2999-01-01")  # a usage error, in click's own words
    assert result.code == 2 and result.stderr.splitlines()[-1] == (
        "Error: Invalid value for --since: '2999-01-01' is in the future (dates are UTC unless an offset is given)")
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize("word, meaning", [
    ("1", True), ("true", True), ("Yes", True), ("on", True), ("0", False), ("false", False), ("no", False), ("OFF", False),
])
def test_every_spelling_of_yes_and_no_is_accepted(word, meaning):
    assert load_settings(environ={"MYCASE_SYNC_CREATE_STAFF": word}).create_staff is meaning


def test_a_yes_or_no_in_no_known_spelling_names_the_spellings(tmp_path):
    with pytest.raises(ConfigError, match=r"MYCASE_SYNC_CREATE_STAFF must be one of 1/0, true/false, yes/no, on/off"):
        load_settings(environ={"MYCASE_SYNC_CREATE_STAFF": "2"})


# --- a secrets file others can read ---------------------------------------------------------------
def secrets_file(tmp_path: Path, mode: int) -> Path:
    path = tmp_path / "sync.env"
    path.write_text(f"CASESTATUS_API_KEY={OFFLINE['CASESTATUS_API_KEY']}\n")
    path.chmod(mode)
    return path


def test_a_secrets_file_others_can_read_is_said_on_a_terminal_and_once_in_the_log(tmp_path, monkeypatch):
    from mycase_sync.store import open_store

    env_file = secrets_file(tmp_path, 0o644)
    log = tmp_path / "sync.log"
    open_store(tmp_path / "state" / "state.db").close()
    cli = cli_for(tmp_path, without=("CASESTATUS_API_KEY",), MYCASE_SYNC_LOG=str(log))
    monkeypatch.setattr(output, "is_terminal", lambda: True)
    on_terminal = cli.invoke("--env-file", str(env_file), "status")
    warning = f"mycase-sync: warning: {env_file} holds secrets and can be read by its group and others (mode 0644)"
    assert on_terminal.stderr.startswith(warning)
    monkeypatch.setattr(output, "is_terminal", lambda: False)
    for _ in range(2):  # under cron: no mail for it, one line in the log
        assert cli.invoke("--env-file", str(env_file), "status").stderr == ""
    assert log.read_text().count("holds secrets and can be read by") == 1
    env_file.chmod(0o600)
    monkeypatch.setattr(output, "is_terminal", lambda: True)
    assert "warning" not in cli.invoke("--env-file", str(env_file), "status").stderr


# --- `mycase-sync config` ------------------------------------------------------------------------
def test_config_shows_each_setting_where_it_came_from_and_never_a_secret(tmp_path):
    env_file = secrets_file(tmp_path, 0o600)
    with env_file.open("a") as file:
        file.write("MYCASE_SYNC_TIMEOUT=30\n")
    cli = cli_for(tmp_path, without=("CASESTATUS_API_KEY", "MYCASE_CLIENT_SECRET"), MYCASE_RATE_LIMIT="15")
    result = cli.invoke("--env-file", str(env_file), "--log-file", str(tmp_path / "x.log"), "config", "--json")
    assert result.code == 0, result.output
    assert OFFLINE["CASESTATUS_API_KEY"] not in result.output
    report = json.loads(result.stdout)
    rows = {row["name"]: row for row in report["settings"]}
    assert rows["CASESTATUS_API_KEY"] == {"name": "CASESTATUS_API_KEY", "value": "set", "from": f"env file {env_file}"}
    assert rows["MYCASE_CLIENT_SECRET"]["value"] == "not set"
    assert (rows["MYCASE_RATE_LIMIT"]["value"], rows["MYCASE_RATE_LIMIT"]["from"]) == ("15", "environment")
    assert (rows["MYCASE_SYNC_TIMEOUT"]["value"], rows["MYCASE_SYNC_TIMEOUT"]["from"]) == ("30", f"env file {env_file}")
    assert rows["MYCASE_SYNC_PHONE_REGION"] == {"name": "MYCASE_SYNC_PHONE_REGION", "value": "US", "from": "default"}
    assert report["state_store"] == {"path": str(tmp_path / "state" / "state.db"), "exists": False}
    assert report["log_file"] == {"path": str(tmp_path / "x.log"), "from": "--log-file"}
    text = cli.invoke("--env-file", str(env_file), "config")
    assert f"  CASESTATUS_API_KEY        set  (env file {env_file})" in text.stdout.splitlines()
    assert f"State store: {tmp_path / 'state' / 'state.db'} (not created yet)" in text.stdout
    assert not (tmp_path / "state").exists()


def test_config_refuses_a_bad_setting_naming_it(tmp_path):
    refused(cli_for(tmp_path, MYCASE_SYNC_PHONE_REGION="ZZ").invoke("config"), "MYCASE_SYNC_PHONE_REGION")


@pytest.mark.parametrize("command, names", [
    (("import-matters",), ("MYCASE_CLIENT_SECRET", "CASESTATUS_API_KEY", "MYCASE_SYNC_PHONE_REGION",
                           "MYCASE_SYNC_CREATE_STAFF", "MYCASE_SYNC_DB")),
    (("push-documents",), ("MYCASE_API_URL", "CASESTATUS_API_URL", "MYCASE_DOCUMENTS_FOLDER", "MYCASE_SYNC_LOG")),
    (("push-messages",), ("MYCASE_CLIENT_ID", "CASESTATUS_RATE_LIMIT", "MYCASE_SYNC_WORKERS")),
    (("auth",), ("MYCASE_REDIRECT_URI", "MYCASE_AUTH_URL", "MYCASE_SYNC_DB")),
    (("status",), ("MYCASE_SYNC_DB",)),
    (("ignore",), ("MYCASE_SYNC_DB",)),
    (("accept-casestatus-key",), ("CASESTATUS_API_KEY",)),
])
def test_each_commands_help_lists_the_settings_it_reads(tmp_path, command, names):
    help_text = " ".join(cli_for(tmp_path).invoke(*command, "--help").stdout.split())
    assert "Settings read (environment or env file; `mycase-sync config` shows them):" in help_text
    for name in names:
        assert name in help_text.split("Settings read", 1)[1], name
    assert os.listdir(tmp_path) == []  # --help creates nothing
