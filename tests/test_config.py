"""Settings: real environment beats .env, every bad value is one line naming its variable (exit 2).

Unit tests call load_settings with an explicit environment; the CLI tests run the CLI's entry point
(`mycase_sync.cli.main`, in this process, with the environment and directory a real run gets) so that
the exit code and the single stderr line are what cron sees.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import Cli
from mycase_sync.config import Settings, load_settings
from mycase_sync.errors import ConfigError
from mycase_sync.redact import redact

# Nothing here may reach a real service: every URL points at a closed loopback port.
OFFLINE = {
    "MYCASE_AUTH_URL": "http://127.0.0.1:9",
    "MYCASE_API_URL": "http://127.0.0.1:9/v1",
    "CASESTATUS_API_URL": "http://127.0.0.1:9",
}


def write_env(path: Path, **values: str) -> Path:
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return path


# --- precedence ------------------------------------------------------------------------------
def test_real_environment_beats_dotenv_in_current_directory(tmp_path):
    write_env(tmp_path / ".env", MYCASE_CLIENT_ID="from-file", MYCASE_RATE_LIMIT="7", MYCASE_SYNC_WORKERS="3")
    settings = load_settings(environ={"MYCASE_CLIENT_ID": "from-env", "MYCASE_SYNC_WORKERS": "5"})
    assert settings.mycase_client_id == "from-env"
    assert settings.workers == 5
    assert settings.mycase_rate_limit == 7  # the file still beats the default (25)


def test_env_file_replaces_the_current_directorys_dotenv(tmp_path):
    write_env(tmp_path / ".env", MYCASE_CLIENT_ID="local", MYCASE_SYNC_TIMEOUT="11")
    other = write_env(tmp_path / "other.env", MYCASE_CLIENT_ID="named")
    settings = load_settings(env_file=other, environ={})
    assert settings.mycase_client_id == "named"
    assert settings.timeout == 60  # ./.env was not read at all


def test_env_file_that_does_not_exist_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no-such.env"):
        load_settings(env_file=tmp_path / "no-such.env", environ={})


def test_default_db_path_is_under_xdg_state_home(tmp_path):
    settings = load_settings(environ={"XDG_STATE_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path / "home")})
    assert settings.db_path == tmp_path / "xdg" / "mycase-sync" / "state.db"


def test_default_db_path_without_xdg_is_under_home_and_a_relative_xdg_is_ignored(tmp_path):
    home = tmp_path / "home"
    expected = home / ".local" / "state" / "mycase-sync" / "state.db"
    assert load_settings(environ={"HOME": str(home)}).db_path == expected
    assert load_settings(environ={"HOME": str(home), "XDG_STATE_HOME": "relative/dir"}).db_path == expected


def test_mycase_sync_db_overrides_the_default(tmp_path):
    settings = load_settings(environ={"XDG_STATE_HOME": str(tmp_path), "MYCASE_SYNC_DB": str(tmp_path / "x.db")})
    assert settings.db_path == tmp_path / "x.db"


def test_documented_defaults():
    settings = load_settings(environ={})
    assert settings.mycase_api_url == "https://external-integrations.mycase.com/v1"
    assert settings.casestatus_api_url == "https://app.casestatus.com"
    assert (settings.mycase_rate_limit, settings.casestatus_rate_limit) == (25, 500)  # ceilings of the pace
    assert (settings.mycase_rate_given, settings.casestatus_rate_given, settings.warnings) == (False, False, ())
    assert (settings.workers, settings.timeout, settings.phone_region) == (64, 60, "US")
    assert settings.create_staff is False and settings.documents_folder is None


@pytest.mark.parametrize("rates, workers", [
    ({}, 64),  # the default ceilings (25 and 500 per second): as many as the pool may have
    ({"CASESTATUS_RATE_LIMIT": "100"}, 25),  # 100/s at 0.25 s an answer
    ({"CASESTATUS_RATE_LIMIT": "10"}, 8),  # MyCase's 25/s needs 7: never fewer than 8
    ({"CASESTATUS_RATE_LIMIT": "40", "MYCASE_RATE_LIMIT": "50", "MYCASE_API_URL": "http://127.0.0.1:9/v1"}, 13),
    ({"CASESTATUS_RATE_LIMIT": "5000"}, 64),
])
def test_the_default_worker_pool_keeps_the_configured_pace(rates, workers):
    assert load_settings(environ=rates).workers == workers


def test_a_mycase_rate_limit_above_its_documented_25_is_clamped_with_a_warning():
    settings = load_settings(environ={"MYCASE_RATE_LIMIT": "30", "CASESTATUS_RATE_LIMIT": "40"})
    assert settings.mycase_rate_limit == 25
    assert [line for _, line in settings.warnings] == [
        "MYCASE_RATE_LIMIT=30 is above MyCase's documented limit of 25 requests/s: using 25"]
    assert (settings.mycase_rate_given, settings.casestatus_rate_given) == (True, True)  # the pace starts there
    # The sandbox (a loopback MyCase) has its own limit: tests and the bench may go faster.
    sandbox = load_settings(environ={"MYCASE_RATE_LIMIT": "1000", "MYCASE_API_URL": "http://127.0.0.1:9/v1"})
    assert (sandbox.mycase_rate_limit, sandbox.warnings) == (1000, ())


def test_cli_says_once_that_a_rate_limit_was_clamped(tmp_path, monkeypatch):
    """On a terminal, and once in the log: under cron it is no reason for a mail every five minutes."""
    from mycase_sync import output
    from mycase_sync.store import open_store

    log = tmp_path / "sync.log"
    open_store(tmp_path / "state" / "state.db").close()  # said once in the log: the store remembers it
    cli = cli_for(tmp_path, MYCASE_RATE_LIMIT="30", MYCASE_API_URL="https://mycase.example/v1",
                  MYCASE_SYNC_LOG=str(log))
    monkeypatch.setattr(output, "is_terminal", lambda: True)
    result = cli.invoke("status")
    assert result.code == 0  # a warning, not a configuration error
    assert [line for line in result.stderr.splitlines() if "MYCASE_RATE_LIMIT" in line] == \
        ["mycase-sync: warning: MYCASE_RATE_LIMIT=30 is above MyCase's documented limit of 25 requests/s: using 25"]
    monkeypatch.setattr(output, "is_terminal", lambda: False)
    for _ in range(2):
        assert cli.invoke("status").stderr == ""
    assert log.read_text().count("MYCASE_RATE_LIMIT=30 is above") == 1


def test_a_worker_count_that_is_set_wins_over_the_pace(tmp_path):
    assert load_settings(environ={"CASESTATUS_RATE_LIMIT": "100", "MYCASE_SYNC_WORKERS": "1"}).workers == 1
    write_env(tmp_path / ".env", MYCASE_SYNC_WORKERS="3")
    assert load_settings(tmp_path / ".env", environ={"CASESTATUS_RATE_LIMIT": "100"}).workers == 3


# --- validation ------------------------------------------------------------------------------
BAD_VALUES = [
    ("MYCASE_RATE_LIMIT", "abc"),
    ("MYCASE_RATE_LIMIT", "0"),
    ("MYCASE_RATE_LIMIT", "nan"),
    ("CASESTATUS_RATE_LIMIT", "-5"),
    ("CASESTATUS_RATE_LIMIT", "inf"),
    ("MYCASE_SYNC_WORKERS", "2.5"),
    ("MYCASE_SYNC_TIMEOUT", "0"),
    ("MYCASE_SYNC_BACKOFF", "soon"),
    ("MYCASE_SYNC_PHONE_REGION", "USA"),
    ("MYCASE_SYNC_CREATE_STAFF", "maybe"),
    ("MYCASE_DOCUMENTS_FOLDER", "a/../../etc"),
    ("MYCASE_DOCUMENTS_FOLDER", "/abs"),
    ("CASESTATUS_API_URL", "http://example.com"),
    ("CASESTATUS_API_URL", "http://10.0.0.5"),
    ("MYCASE_API_URL", "ftp://example.com/v1"),
    ("MYCASE_API_URL", "https://example.com:99999/v1"),
    ("MYCASE_AUTH_URL", "not a url"),
    ("MYCASE_REDIRECT_URI", "http://[::1:8765/callback"),
]


@pytest.mark.parametrize("name,value", BAD_VALUES)
def test_a_malformed_setting_is_a_config_error_naming_it(name, value):
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={name: value})
    assert caught.value.exit_code == 2
    assert name in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/", "http://localhost:9", "http://[::1]:9", "https://example.com/"])
def test_plain_http_is_allowed_for_loopback_only(url):
    assert load_settings(environ={"CASESTATUS_API_URL": url}).casestatus_api_url == url.rstrip("/")


def test_require_names_the_first_missing_variable_and_blank_counts_as_missing():
    settings = load_settings(environ={"MYCASE_CLIENT_ID": "id", "MYCASE_CLIENT_SECRET": "   "})
    settings.require("MYCASE_CLIENT_ID")
    with pytest.raises(ConfigError, match="^MYCASE_CLIENT_SECRET is not set") as caught:
        settings.require("MYCASE_CLIENT_ID", "MYCASE_CLIENT_SECRET", "CASESTATUS_API_KEY")
    assert caught.value.exit_code == 2


def test_secrets_are_registered_for_redaction_and_kept_out_of_repr():
    secret, key = "cs-secret-4f9a1c77e0", "ak-key-b5d2e8a1c3"
    settings = load_settings(environ={"MYCASE_CLIENT_SECRET": secret, "CASESTATUS_API_KEY": key})
    assert isinstance(settings, Settings)
    assert secret not in repr(settings) and key not in repr(settings)
    assert redact(f"secret={secret} key {key}") == "secret=*** key ***"


# --- through the CLI ---------------------------------------------------------------------------
def cli_for(tmp_path: Path, **env: str) -> Cli:
    base = dict(OFFLINE, MYCASE_SYNC_DB=str(tmp_path / "state" / "state.db"))
    base.update(env)
    return Cli(env=base, cwd=tmp_path)


def assert_one_line_error(result, *words: str) -> None:
    assert result.code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    for word in words:
        assert word in lines[0]


@pytest.mark.parametrize("name,value", [("MYCASE_RATE_LIMIT", "abc"), ("CASESTATUS_API_URL", "http://example.com")])
def test_cli_refuses_a_malformed_setting_with_exit_2_and_one_line(tmp_path, name, value):
    result = cli_for(tmp_path, **{name: value}).invoke("import-matters")
    assert_one_line_error(result, name)
    assert not (tmp_path / "state").exists()  # refused before touching the state store


def test_cli_missing_credentials_give_exit_2_naming_the_variable(tmp_path):
    result = cli_for(tmp_path).invoke("import-matters")
    assert_one_line_error(result, "is not set")
    assert any(name in result.stderr for name in ("MYCASE_CLIENT_ID", "MYCASE_CLIENT_SECRET", "CASESTATUS_API_KEY"))


def test_cli_real_environment_beats_dotenv(tmp_path):
    write_env(tmp_path / ".env", MYCASE_RATE_LIMIT="abc")
    assert cli_for(tmp_path, MYCASE_RATE_LIMIT="5").invoke("status").code == 0
    write_env(tmp_path / ".env", MYCASE_RATE_LIMIT="5")
    assert cli_for(tmp_path, MYCASE_RATE_LIMIT="abc").invoke("status").code == 2


def test_cli_reads_dotenv_from_the_current_directory(tmp_path):
    write_env(tmp_path / ".env", CASESTATUS_RATE_LIMIT="zero")
    assert_one_line_error(cli_for(tmp_path).invoke("status"), "CASESTATUS_RATE_LIMIT")


def test_cli_env_file_is_read_instead_of_the_local_dotenv(tmp_path):
    write_env(tmp_path / ".env", MYCASE_SYNC_WORKERS="many")
    good = write_env(tmp_path / "good.env", MYCASE_SYNC_WORKERS="2")
    bad = write_env(tmp_path / "bad.env", MYCASE_SYNC_TIMEOUT="-1")
    cli = cli_for(tmp_path)
    assert cli.invoke("--env-file", str(good), "status").code == 0
    assert_one_line_error(cli.invoke("--env-file", str(bad), "status"), "MYCASE_SYNC_TIMEOUT")
    assert_one_line_error(cli.invoke("--env-file", str(tmp_path / "missing.env"), "status"), "missing.env")
