"""`auth --redirect-url`: what a person pastes (or fails to) gets one clear line and a documented exit code.

In-process (no sandbox needed): each case stops before any request, at the paste or at the state check.
"""

from __future__ import annotations

import pytest

from conftest import Cli
from mycase_sync.mycase.auth import begin_pending
from mycase_sync.store import open_store

REDIRECT = "http://127.0.0.1:8765/callback"


@pytest.fixture
def cli(db_path, tmp_path) -> Cli:
    return Cli(env={"MYCASE_CLIENT_ID": "client-1", "MYCASE_CLIENT_SECRET": "secret-shhh-1234",
                    "MYCASE_SYNC_DB": str(db_path)}, cwd=tmp_path)


def error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("mycase-sync: "), result.stderr
    return lines[-1]


@pytest.mark.parametrize("pasted", ["not a url", "hello", "ftp://example.com/x?code=1",
                                    "http://127.0.0.1:8765/callback"])
def test_something_that_is_no_landing_url_is_said_to_be_no_url(cli, pasted):
    result = cli.invoke("auth", "--redirect-url", pasted)
    assert result.code == 2
    assert "is not a URL the browser landed on" in error_line(result)
    assert "state does not match" not in result.stderr


def test_no_input_at_the_prompt_is_one_line_and_exit_2(cli):
    result = cli.invoke("auth", "--redirect-url", input="")
    assert result.code == 2
    assert error_line(result).startswith("mycase-sync: no URL given: paste the address the browser landed on")
    assert "Aborted" not in result.stderr
    assert result.stdout.startswith("https://auth.mycase.com/")  # the URL to open was printed first


def test_a_landing_url_without_a_code_is_said_so_unmangled_by_redaction(cli, db_path):
    store = open_store(db_path)
    state = begin_pending(store)
    store.close()
    result = cli.invoke("auth", "--redirect-url", f"{REDIRECT}?state={state}")
    assert result.code == 3
    assert error_line(result) == ("mycase-sync: the redirect carries no authorization code:"
                                  " run `mycase-sync auth` again")


def test_a_query_alone_is_still_taken(cli):
    """Pasting just the query (or path?query) stays allowed: the state check is what refuses this one."""
    result = cli.invoke("auth", "--redirect-url", "/callback?code=abc&state=made-up")
    assert result.code == 3 and "state does not match" in error_line(result)
