"""Logging for cron: one UTC-stamped line per event with the run id in --log-file, secrets masked,
nothing on stderr on success when stderr is not a terminal."""

from __future__ import annotations

import logging
import re

import pytest

from mycase_sync import output
from mycase_sync.errors import ConfigError
from mycase_sync.output import set_run_id, setup_logging
from mycase_sync.redact import register_secret

LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) (\S+) (DEBUG|INFO|WARNING|ERROR|CRITICAL) (.*)$")


@pytest.fixture
def log(monkeypatch):
    """A job's logger, with logging torn down (file closed, run id cleared) after the test."""
    monkeypatch.setattr(output, "is_terminal", lambda: False)
    set_run_id("-")  # a run in an earlier test of this process may have set one
    yield logging.getLogger("mycase_sync.sync.messages")
    root = logging.getLogger(output.LOGGER)
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.propagate, root.level = True, logging.NOTSET  # as before: other tests' caplog still works
    set_run_id("-")


def lines(path) -> list[re.Match]:
    found = [LINE.match(line) for line in path.read_text().splitlines()]
    assert all(found), path.read_text()
    return found


def test_one_line_per_event_with_utc_time_and_run_id(tmp_path, log):
    path = tmp_path / "sync.log"
    setup_logging(log_file=str(path))
    log.info("before any run")
    set_run_id("3f9c0a1b2c4d")
    log.info("pushed message %s", 41)
    log.warning("message %s parked as failed:\nHTTP 422\n\nbody too long", 42)
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("internal error")
    found = lines(path)
    assert [(m.group(2), m.group(3)) for m in found] == [
        ("-", "INFO"), ("3f9c0a1b2c4d", "INFO"), ("3f9c0a1b2c4d", "WARNING"), ("3f9c0a1b2c4d", "ERROR")]
    assert found[1].group(4) == "pushed message 41"
    assert found[2].group(4) == "message 42 parked as failed: | HTTP 422 | body too long"
    assert found[3].group(4).startswith("internal error | Traceback") and "ValueError: boom" in found[3].group(4)


def test_the_log_file_is_appended_to_not_replaced(tmp_path, log):
    path = tmp_path / "sync.log"
    path.write_text("2025-01-01T00:00:00Z old INFO earlier run\n")
    setup_logging(log_file=str(path))
    log.info("new event")
    setup_logging(log_file=str(path))  # a second process (or run) opening the same file
    log.info("another")
    assert [m.group(4) for m in lines(path)] == ["earlier run", "new event", "another"]


def test_debug_lines_only_with_verbose(tmp_path, log):
    path = tmp_path / "sync.log"
    setup_logging(log_file=str(path))
    log.debug("request detail")
    log.info("event")
    setup_logging(verbose=1, log_file=str(path))
    log.debug("request detail, verbose")
    assert [m.group(4) for m in lines(path)] == ["event", "request detail, verbose"]


def test_secrets_never_reach_the_log_file_or_stderr(tmp_path, log, capsys):
    register_secret("client-secret-5b7e9f")
    path = tmp_path / "sync.log"
    setup_logging(log_file=str(path))
    log.warning("token call with %s failed; Authorization: Bearer at-abc.def", "client-secret-5b7e9f")
    text = path.read_text()
    assert "client-secret-5b7e9f" not in text and "at-abc.def" not in text
    assert "*** failed" in text and "Bearer ***" in text
    err = capsys.readouterr().err
    assert "client-secret-5b7e9f" not in err and "at-abc.def" not in err and "*** failed" in err


def test_not_a_terminal_info_stays_off_stderr_warnings_do_not(log, capsys):
    setup_logging()
    log.info("pushed 3 messages")
    assert capsys.readouterr().err == ""
    log.warning("message 7 parked as failed")
    assert capsys.readouterr().err == "message 7 parked as failed\n"


def test_on_a_terminal_info_is_shown_unless_quiet_and_quiet_never_hides_a_failure(log, capsys, monkeypatch):
    monkeypatch.setattr(output, "is_terminal", lambda: True)
    setup_logging()
    log.info("pushed 3 messages")
    assert capsys.readouterr().err == "pushed 3 messages\n"
    setup_logging(quiet=True)
    log.info("pushed 3 messages")
    log.warning("message 7 failed")
    assert capsys.readouterr().err == "message 7 failed\n"  # what cron would mail, -q or not


def test_an_unwritable_log_file_is_a_config_error(tmp_path, log):
    with pytest.raises(ConfigError, match=r"^cannot open the log file .*/missing/sync.log: No such file or directory$"):
        setup_logging(log_file=str(tmp_path / "missing" / "sync.log"))


# --- through the CLI: a bad log file in this process, the jobs as real runs ------------------------
@pytest.fixture
def plain_cli(db_path, tmp_path):
    from conftest import Cli

    return Cli(env={"MYCASE_SYNC_DB": str(db_path)}, cwd=tmp_path)


@pytest.mark.parametrize("how", ["option", "environment"])
def test_cli_bad_log_file_is_one_line_and_exit_2(plain_cli, tmp_path, how):
    target = str(tmp_path / "no-such-dir" / "sync.log")
    if how == "option":
        result = plain_cli.invoke("--log-file", target, "status")
    else:
        result = plain_cli.invoke("status", extra_env={"MYCASE_SYNC_LOG": target})
    assert result.code == 2
    assert result.stderr == f"mycase-sync: cannot open the log file {target}: No such file or directory\n"
    assert result.stdout == ""


def test_jobs_log_to_the_file_with_their_run_id_and_say_nothing_on_success(connected, sandbox, db_path, tmp_path):
    """The real CLI, as cron runs it (stderr not a terminal): the log file gets every run's lines."""
    from mycase_sync.store import open_store

    log_file = tmp_path / "sync.log"
    imported = connected.run("--log-file", str(log_file), "import-matters")
    assert imported.code in (0, 1), imported.output  # 1: the sandbox firm has matters that cannot import
    messages = connected.run("push-messages", extra_env={"MYCASE_SYNC_LOG": str(log_file)})
    documents = connected.run("--log-file", str(log_file), "push-documents")
    for result in (messages, documents):
        assert (result.code, result.stdout, result.stderr) == (0, "", ""), result.output

    store = open_store(db_path)
    try:
        runs = {job: run_id for job, run_id in store.db.execute("select job, run_id from runs order by id").fetchall()}
        tokens = store.db.execute("select access_token, refresh_token from tokens").fetchone()
    finally:
        store.close()
    assert set(runs) == {"import-matters", "push-messages", "push-documents"}
    found = lines(log_file)
    by_run: dict[str, list[str]] = {}
    for match in found:
        by_run.setdefault(match.group(2), []).append(match.group(4))
    assert set(by_run) <= set(runs.values()) | {"-"}
    for job, run_id in runs.items():
        assert by_run.get(run_id), f"no log line for the {job} run {run_id}"
    assert any(re.match(r"push-messages: \d+ sent", text) for text in by_run[runs["push-messages"]])
    assert any(re.match(r"push-documents: \d+ sent", text) for text in by_run[runs["push-documents"]])
    for job, run_id in runs.items():  # and one summary line per finished run: outcome, duration, counts
        summaries = [t for t in by_run[run_id] if re.match(rf"{job} (success|partial) in \d+\.\d s(: |$)", t)]
        assert len(summaries) == 1, by_run[run_id]
    assert re.search(r"push-messages success in \d+\.\d s: .*\bsent=\d+", "\n".join(by_run[runs["push-messages"]]))
    text = log_file.read_text()
    for secret in (sandbox.config.client_secret, sandbox.config.api_key, *tokens):
        assert secret not in text


def test_a_run_that_stops_or_fails_is_logged_at_the_level_of_its_outcome(connected, db_path, tmp_path):
    """`grep -E 'WARNING|ERROR' sync.log` finds every run cron would mail: a run stopped by a
    configuration error is an ERROR line, one with failed records a WARNING, a clean one INFO."""
    log_file = tmp_path / "sync.log"
    imported = connected.run("--log-file", str(log_file), "import-matters")
    assert imported.code == 1, imported.output  # the sandbox firm has a matter that cannot import
    clean = connected.run("--log-file", str(log_file), "push-messages")
    stopped = connected.run("--log-file", str(log_file), "push-messages",
                            extra_env={"CASESTATUS_API_KEY": "another-firms-key-0123456789"})
    assert (clean.code, stopped.code) == (0, 2), stopped.output
    summaries = [(m.group(3), m.group(4).split(" in ")[0]) for m in lines(log_file)
                 if re.match(r"(import-matters|push-messages) \w+ in \d", m.group(4))]
    assert summaries == [("WARNING", "import-matters partial"), ("INFO", "push-messages success"),
                         ("ERROR", "push-messages config")]
