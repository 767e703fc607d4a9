"""Secrets from the environment never reach a log line, an error message or a traceback,
in particular when a request fails with the secret in the exception or the error page.
"""

from __future__ import annotations

import logging
import sys

import pytest
import requests
import requests_mock as rm

from conftest import Cli, reset_logging
from mycase_sync import output
from mycase_sync.config import load_settings
from mycase_sync.errors import OutcomeUnknown, ServiceError, TemporaryError
from mycase_sync.http import ServiceSession, json_body
from mycase_sync.redact import RedactingFilter, redact, register_secret

CLIENT_SECRET = "mcs-7d1f0e9a3b5c2468"
API_KEY = "csk-live-4e8a2c6b0d1f3579"
API = "https://app.casestatus.example/api/v1/messages"


@pytest.fixture
def logged(tmp_path, monkeypatch, capsys):
    """start(): load settings holding both secrets and set up logging as `-vv --log-file`.

    Call it in the test body (pytest swaps stderr between phases); it returns a function
    giving everything written since: stderr plus the log file.
    """
    monkeypatch.setattr(output, "is_terminal", lambda: False)
    path = tmp_path / "sync.log"

    def start():
        load_settings(environ={"MYCASE_CLIENT_SECRET": CLIENT_SECRET, "CASESTATUS_API_KEY": API_KEY})
        output.setup_logging(verbose=2, log_file=str(path))
        return lambda: capsys.readouterr().err + path.read_text()

    yield start
    reset_logging()


def assert_clean(text: str) -> None:
    assert CLIENT_SECRET not in text and API_KEY not in text
    assert API_KEY[:10] not in text  # not even a prefix of it


def fail_and_log(session: ServiceSession, method: str, **kwargs) -> Exception:
    """Make a request fail, then log it the ways a job might: the message, and with the traceback."""
    log = logging.getLogger("mycase_sync.sync.messages")
    try:
        json_body("Case Status", session.request(method, API + f"?api_key={API_KEY}", **kwargs), list)
    except Exception as exc:  # noqa: BLE001 - what a job's catch-all would do
        log.error("message push failed: %s", exc)
        log.exception("with the traceback")
        return exc
    raise AssertionError("the request did not fail")


# --- redact ----------------------------------------------------------------------------------
def test_registered_secrets_are_masked_longest_first():
    register_secret("overlap-1234")
    register_secret("overlap-1234-and-more")
    assert redact("a overlap-1234-and-more b overlap-1234 c") == "a *** b *** c"


def test_values_too_short_to_be_secrets_are_not_registered():
    register_secret("abc")
    register_secret(None)
    assert redact("abc abcd") == "abc abcd"


@pytest.mark.parametrize("text,masked", [
    ("Authorization: Bearer eyJhbGciOi.payload.sig", "Authorization: Bearer ***"),
    ("Authorization: ApiKey k-123_abc", "Authorization: ApiKey ***"),
    ("/tokens?grant_type=refresh_token&refresh_token=rt-999&client_secret=cs-1", "/tokens?grant_type=refresh_token&refresh_token=***&client_secret=***"),
    ('{"access_token": "at-1", "token_type": "bearer"}', '{"access_token": "***", "token_type": "bearer"}'),
    ("callback?code=abc%2B123&state=s", "callback?code=***&state=s"),
    ("https://s3.example/k?X-Amz-Signature=deadbeef&X-Amz-Date=1", "https://s3.example/k?X-Amz-Signature=***&X-Amz-Date=1"),
])
def test_credential_shaped_values_are_masked_even_when_never_registered(text, masked):
    assert redact(text) == masked


@pytest.mark.parametrize("text", [
    "the redirect carries no authorization code: run `mycase-sync auth` again",
    "postcode=12345 barcode: 99",
    "the signature: checked",
])
def test_prose_that_uses_a_credential_word_is_left_alone(text):
    assert redact(text) == text


@pytest.mark.parametrize("text,masked", [
    ("client_secret: cs-1 api_key : k-2", "client_secret: *** api_key : ***"),
    ("{'code': 'abc'}", "{'code': '***'}"),
    ("auth_code=abc&x=1", "auth_code=***&x=1"),
])
def test_credential_fields_are_masked_in_every_form_they_take(text, masked):
    assert redact(text) == masked


def test_redacting_filter_masks_arguments_and_exception_text():
    register_secret(API_KEY)
    record = logging.LogRecord("mycase_sync", logging.ERROR, __file__, 1, "failed with %s", (API_KEY,), None)
    try:
        raise RuntimeError(f"key {API_KEY}")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    assert RedactingFilter().filter(record)
    text = logging.Formatter().format(record)
    assert "failed with ***" in text and "RuntimeError: key ***" in text
    assert_clean(text)


# --- failing requests ------------------------------------------------------------------------
def test_connection_error_carrying_the_key_in_its_message(logged):
    written = logged()
    session = ServiceSession("Case Status", rate=1000, timeout=5)
    session.sleep = lambda seconds: None
    with rm.Mocker() as mock:
        mock.get(rm.ANY, exc=requests.exceptions.ConnectionError(
            f"HTTPSConnectionPool(host='app.casestatus.example'): Max retries exceeded with url: /api/v1/messages?api_key={API_KEY}"))
        error = fail_and_log(session, "GET")
        mock.post(rm.ANY, exc=requests.exceptions.ReadTimeout(f"Read timed out: POST {API}?api_key={API_KEY}"))
        write_error = fail_and_log(session, "POST", headers={"Authorization": f"ApiKey {API_KEY}"})
    assert isinstance(error, TemporaryError) and isinstance(write_error, OutcomeUnknown)
    for exc in (error, write_error):
        assert_clean(str(exc) + repr(exc))
    text = written()
    assert "message push failed: Case Status unreachable (GET /api/v1/messages)" in text
    assert_clean(text)


def test_a_raw_requests_exception_logged_with_its_traceback(logged):
    """Code that logs a requests exception itself (URL with the key in it) is masked by the handlers."""
    written = logged()
    log = logging.getLogger("mycase_sync.sync.documents")
    with rm.Mocker() as mock:
        mock.get(rm.ANY, exc=requests.exceptions.ConnectionError(f"Max retries exceeded with url: /files?api_key={API_KEY}"))
        try:
            requests.get(f"{API}?key={API_KEY}", headers={"Authorization": f"ApiKey {API_KEY}"})
        except requests.exceptions.ConnectionError as exc:
            log.warning("download of %s failed: %s", f"{API}?key={API_KEY}", exc)
            log.exception("download failed")
    text = written()
    assert "requests.exceptions.ConnectionError: Max retries exceeded" in text
    assert text.count("download of") == 2
    assert_clean(text)


def test_html_error_page_echoing_the_authorization_header(logged):
    written = logged()
    session = ServiceSession("Case Status", rate=1000, timeout=5)
    page = (f"<html><head><title>500</title></head><body><h1>Internal Server Error</h1>"
            f"<pre>GET /api/v1/messages\nAuthorization: ApiKey {API_KEY}\nX-Client-Secret: {CLIENT_SECRET}</pre></body></html>")
    with rm.Mocker() as mock:
        mock.post(rm.ANY, status_code=500, text=page, headers={"Content-Type": "text/html"})
        error = fail_and_log(session, "POST", json={})
    assert isinstance(error, ServiceError)
    assert str(error) == "Case Status POST /api/v1/messages: HTTP 500: unexpected text/html page"
    text = written()
    assert text.count("message push failed: Case Status POST /api/v1/messages: HTTP 500") == 2  # stderr and file
    assert_clean(text)


def test_json_and_plain_text_errors_echoing_secrets(logged):
    written = logged()
    session = ServiceSession("Case Status", rate=1000, timeout=5)
    with rm.Mocker() as mock:
        mock.get(rm.ANY, [
            {"status_code": 401, "json": {"errors": [{"field": "api_key", "message": f"key {API_KEY} is revoked"}]}},
            {"status_code": 400, "text": f"bad request from client secret {CLIENT_SECRET} " + "x" * 300,
             "headers": {"Content-Type": "text/plain"}},
        ])
        first = fail_and_log(session, "GET")
        second = fail_and_log(session, "GET")
    assert str(first).startswith("Case Status GET /api/v1/messages: HTTP 401: api_key: ")
    assert str(first).endswith("*** is revoked")
    assert "bad request from client secret ***" in str(second)
    text = written()
    assert text.count("is revoked") == 4  # error and exception lines, on stderr and in the file
    assert_clean(text)


# --- through the real CLI ----------------------------------------------------------------------
def test_cli_config_error_quoting_a_value_with_the_secret_in_it(tmp_path):
    cli = Cli(env={
        "MYCASE_SYNC_DB": str(tmp_path / "state.db"),
        "MYCASE_CLIENT_SECRET": CLIENT_SECRET,
        "MYCASE_AUTH_URL": f"ftp://auth.example.com/{CLIENT_SECRET}/",
    }, cwd=tmp_path)
    result = cli.run("status")
    assert result.code == 2
    assert "MYCASE_AUTH_URL must be an http(s) URL" in result.stderr
    assert_clean(result.output)
