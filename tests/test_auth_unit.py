"""TokenManager and the token endpoint, against requests-mock: refresh once, never loop, never race.

Time is injected (a settable `now`), so expiry is decided without waiting. The state store is a
real file, read back through a second connection where durability matters.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sqlite3
import threading
from urllib.parse import parse_qs, urlsplit

import oauthlib.oauth2.rfc6749.parameters as oauthlib_parameters
import pytest
import requests
import requests_mock as rm
from oauthlib.oauth2 import InsecureTransportError, MismatchingStateError

from mycase_sync.config import load_settings
from mycase_sync.errors import REAUTH_MESSAGE, AuthorizationError, ServiceError, TemporaryError
from mycase_sync.mycase.auth import AuthFlowError, authorize_url, begin_pending, code_from_redirect, landing_url, take_pending
from mycase_sync.mycase.tokens import NOT_CONNECTED_MESSAGE, TokenManager, delete_tokens, post_tokens, save_token_set
from mycase_sync.mycase.client import MyCaseClient
from mycase_sync.redact import redact
from mycase_sync.store import open_store

AUTH = "https://auth.example.com"
API = "https://api.example.com/v1"
T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.timezone.utc)


class Now:
    def __init__(self, moment: dt.datetime = T0):
        self.moment = moment

    def __call__(self) -> dt.datetime:
        return self.moment


@pytest.fixture
def settings(db_path):
    return load_settings(environ={
        "MYCASE_AUTH_URL": AUTH, "MYCASE_API_URL": API, "MYCASE_CLIENT_ID": "client-1",
        "MYCASE_CLIENT_SECRET": "secret-shhh-1234", "MYCASE_SYNC_DB": str(db_path), "MYCASE_RATE_LIMIT": "1000",
        "HOME": str(db_path.parent),
    })


@pytest.fixture
def store(db_path):
    opened = open_store(db_path)
    yield opened
    opened.close()


def tokens(n: int, expires_in: int = 3600, **extra) -> dict:
    return {"access_token": f"access-{n}-xyz", "refresh_token": f"refresh-{n}-xyz", "token_type": "Bearer",
            "expires_in": expires_in, **extra}


def stored(db_path) -> dict:
    """The token row as the next process would read it."""
    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    try:
        row = conn.execute("select * from tokens").fetchone()
        return dict(row) if row else {}
    finally:
        conn.close()


def manager(settings, store, now=None) -> TokenManager:
    manager = TokenManager(settings, store, now=now or Now())
    manager.session.sleep = lambda seconds: None
    return manager


def refresh_bodies(mock) -> list[dict]:
    return [json.loads(r.text) for r in mock.request_history if r.path == "/tokens"]


# --- 401 -> refresh -> retry once ------------------------------------------------------------------
def test_a_401_refreshes_once_and_retries_once_with_the_new_token(settings, store, db_path):
    save_token_set(store, tokens(1, firm_uuid="f-1"), now=T0)
    client = MyCaseClient(settings, manager(settings, store))
    with rm.Mocker() as mock:
        me = mock.get(f"{API}/me", [{"status_code": 401, "json": {"error": "expired"}},
                                    {"status_code": 200, "json": {"id": 7, "email": "a@b.example"}}])
        mock.post(f"{AUTH}/tokens", json=tokens(2))
        assert client.me() == {"id": 7, "email": "a@b.example"}
    assert [r.headers["Authorization"] for r in me.request_history] == ["Bearer access-1-xyz", "Bearer access-2-xyz"]
    assert refresh_bodies(mock) == [{"client_id": "client-1", "client_secret": "secret-shhh-1234",
                                     "grant_type": "refresh_token", "refresh_token": "refresh-1-xyz"}]
    assert mock.request_history[1].headers["Content-Type"] == "application/json"
    row = stored(db_path)
    assert (row["access_token"], row["refresh_token"]) == ("access-2-xyz", "refresh-2-xyz")
    assert row["firm_uuid"] == "f-1" and row["last_refresh_at"] == T0.isoformat()
    assert row["expires_at"] == (T0 + dt.timedelta(seconds=3600)).isoformat()


def test_a_second_401_after_the_refresh_is_an_error_not_a_loop(settings, store):
    save_token_set(store, tokens(1), now=T0)
    client = MyCaseClient(settings, manager(settings, store))
    with rm.Mocker() as mock:
        me = mock.get(f"{API}/me", status_code=401, json={"error": "nope"})
        refresh = mock.post(f"{AUTH}/tokens", json=tokens(2))
        with pytest.raises(AuthorizationError) as caught:
            client.me()
    assert me.call_count == 2 and refresh.call_count == 1
    assert str(caught.value) == REAUTH_MESSAGE


def test_a_401_with_a_token_another_process_already_replaced_adopts_it_without_refreshing(settings, store):
    save_token_set(store, tokens(1), now=T0)
    tm = manager(settings, store)
    assert tm.access_token() == "access-1-xyz"
    save_token_set(open_store(store.path), tokens(5), now=T0)  # another process refreshed meanwhile
    with rm.Mocker() as mock:
        refresh = mock.post(f"{AUTH}/tokens", json=tokens(9))
        tm.refresh_after_401("access-1-xyz")
    assert refresh.call_count == 0
    assert tm.access_token() == "access-5-xyz"


# --- refresh before expiry -------------------------------------------------------------------------
def test_the_token_is_refreshed_a_few_minutes_before_it_expires_not_earlier(settings, store, db_path):
    save_token_set(store, tokens(1, expires_in=86400), now=T0)
    now = Now(T0 + dt.timedelta(seconds=86400 - 301))
    tm = manager(settings, store, now)
    with rm.Mocker() as mock:
        refresh = mock.post(f"{AUTH}/tokens", json=tokens(2, expires_in=86400))
        assert tm.access_token() == "access-1-xyz"
        now.moment += dt.timedelta(seconds=2)
        assert tm.access_token() == "access-2-xyz"
        assert tm.access_token() == "access-2-xyz"
    assert refresh.call_count == 1
    assert stored(db_path)["refresh_token"] == "refresh-2-xyz"


def test_a_short_lived_token_is_not_refreshed_on_every_request(settings, store):
    save_token_set(store, tokens(1, expires_in=2), now=T0)
    now = Now(T0 + dt.timedelta(seconds=1))
    tm = manager(settings, store, now)
    with rm.Mocker() as mock:
        refresh = mock.post(f"{AUTH}/tokens", json=tokens(2, expires_in=2))
        assert tm.access_token() == "access-1-xyz"
        now.moment = T0 + dt.timedelta(seconds=2)
        assert tm.access_token() == "access-2-xyz"
    assert refresh.call_count == 1


def test_threads_that_find_the_token_expired_together_refresh_it_once(settings, store):
    save_token_set(store, tokens(1, expires_in=60), now=T0)
    tm = manager(settings, store, Now(T0 + dt.timedelta(hours=1)))
    start = threading.Barrier(8)
    seen: list[str] = []

    def worker():
        start.wait()
        seen.append(tm.access_token())

    with rm.Mocker() as mock:
        refresh = mock.post(f"{AUTH}/tokens", json=tokens(2))
        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert refresh.call_count == 1
    assert seen == ["access-2-xyz"] * 8


def test_two_managers_on_one_store_refresh_once_the_second_adopts(settings, store, db_path):
    """Two processes' worth of managers: the second re-reads the store under the lock."""
    save_token_set(store, tokens(1, expires_in=60), now=T0)
    later = Now(T0 + dt.timedelta(hours=1))
    first, second = manager(settings, store, later), manager(settings, open_store(db_path), later)
    assert first._load()["access_token"] == second._load()["access_token"] == "access-1-xyz"
    with rm.Mocker() as mock:
        refresh = mock.post(f"{AUTH}/tokens", json=tokens(2))
        assert first.access_token() == "access-2-xyz"
        assert second.access_token() == "access-2-xyz"
    assert refresh.call_count == 1


# --- refusals and temporary failures ---------------------------------------------------------------
def test_invalid_grant_on_the_current_token_marks_needs_reauth_and_later_runs_call_nothing(settings, store, db_path):
    save_token_set(store, tokens(1, expires_in=60), now=T0)
    tm = manager(settings, store, Now(T0 + dt.timedelta(hours=1)))
    with rm.Mocker() as mock:
        mock.post(f"{AUTH}/tokens", status_code=401, json={"error": "invalid_grant", "error_description": "refresh token already used"})
        with pytest.raises(AuthorizationError) as caught:
            tm.access_token()
        assert str(caught.value) == REAUTH_MESSAGE
        row = stored(db_path)
        assert row["needs_reauth"] == 1 and "invalid_grant" in row["reauth_reason"]
        assert row["refresh_token"] == "refresh-1-xyz"  # kept, for the record; never used again
        fresh = manager(settings, open_store(db_path))
        with pytest.raises(AuthorizationError, match="expired or revoked"):
            fresh.access_token()
        assert mock.call_count == 1


@pytest.mark.parametrize("answer", [
    {"status_code": 403, "json": {"error": "forbidden"}},
    {"status_code": 401, "text": "<html>Unauthorized</html>"},
    {"status_code": 400, "json": {"error": "invalid_grant"}},
])
def test_every_definitive_refusal_needs_reauth(settings, store, db_path, answer):
    save_token_set(store, tokens(1, expires_in=60), now=T0)
    tm = manager(settings, store, Now(T0 + dt.timedelta(hours=1)))
    with rm.Mocker() as mock:
        mock.post(f"{AUTH}/tokens", **answer)
        with pytest.raises(AuthorizationError):
            tm.access_token()
    assert stored(db_path)["needs_reauth"] == 1


def test_invalid_grant_after_another_process_rotated_the_token_adopts_the_stored_one(settings, store, db_path):
    save_token_set(store, tokens(1, expires_in=60), now=T0)
    tm = manager(settings, store, Now(T0 + dt.timedelta(hours=1)))

    def rotated_elsewhere(request, context):
        # Another process (one not taking our lock: an older version, or `auth` itself) stored a new set.
        other = open_store(db_path)
        other.db.execute("update tokens set access_token = 'access-7-xyz', refresh_token = 'refresh-7-xyz'")
        other.db.conn.commit()
        other.close()
        context.status_code = 401
        return {"error": "invalid_grant", "error_description": "refresh token already used"}

    with rm.Mocker() as mock:
        mock.post(f"{AUTH}/tokens", json=rotated_elsewhere)
        assert tm.access_token() == "access-7-xyz"
    assert stored(db_path)["needs_reauth"] == 0


@pytest.mark.parametrize("answer", [
    {"status_code": 500, "text": "oops"},
    {"status_code": 503, "json": {"message": "Service Unavailable"}},
    {"exc": requests.exceptions.ConnectionError("Connection refused")},
    {"exc": requests.exceptions.ReadTimeout("read timed out")},
])
def test_a_temporary_failure_of_the_token_endpoint_discards_nothing(settings, store, db_path, answer):
    save_token_set(store, tokens(1, expires_in=60), now=T0)
    before = stored(db_path)
    tm = manager(settings, store, Now(T0 + dt.timedelta(hours=1)))
    with rm.Mocker() as mock:
        mock.post(f"{AUTH}/tokens", **answer)
        with pytest.raises(TemporaryError) as caught:
            tm.access_token()
    assert caught.value.exit_code == 75
    assert stored(db_path) == before


def test_an_odd_refusal_is_an_error_but_not_a_lost_connection(settings, store, db_path):
    save_token_set(store, tokens(1, expires_in=60), now=T0)
    tm = manager(settings, store, Now(T0 + dt.timedelta(hours=1)))
    with rm.Mocker() as mock:
        mock.post(f"{AUTH}/tokens", status_code=400, json={"error": "invalid_request", "error_description": "bad field"})
        with pytest.raises(ServiceError, match="bad field"):
            tm.access_token()
    assert stored(db_path)["needs_reauth"] == 0


def test_an_answer_without_tokens_is_refused_and_stores_nothing(settings, store, db_path):
    save_token_set(store, tokens(1, expires_in=60), now=T0)
    before = stored(db_path)
    tm = manager(settings, store, Now(T0 + dt.timedelta(hours=1)))
    with rm.Mocker() as mock:
        mock.post(f"{AUTH}/tokens", json={"token_type": "Bearer"})
        with pytest.raises(ServiceError, match="no access token"):
            tm.access_token()
    assert stored(db_path) == before


def test_nothing_stored_means_not_connected(settings, store):
    with rm.Mocker() as mock:
        with pytest.raises(AuthorizationError) as caught:
            manager(settings, store).access_token()
        assert mock.call_count == 0
    assert str(caught.value) == NOT_CONNECTED_MESSAGE and caught.value.exit_code == 3
    save_token_set(store, tokens(1), now=T0)
    assert delete_tokens(store) is True
    assert delete_tokens(store) is False
    with pytest.raises(AuthorizationError, match="not connected"):
        manager(settings, store).ensure_connected()


def test_tokens_never_appear_in_errors_or_logs(settings, store, caplog):
    caplog.set_level(logging.DEBUG)
    save_token_set(store, tokens(1, expires_in=60), now=T0)
    tm = manager(settings, store, Now(T0 + dt.timedelta(hours=1)))
    with rm.Mocker() as mock:
        mock.post(f"{AUTH}/tokens", status_code=401,
                  json={"error": "invalid_grant", "error_description": "refresh token refresh-1-xyz already used"})
        with pytest.raises(AuthorizationError) as caught:
            tm.access_token()
    reason = stored(tm.store.path)["reauth_reason"]
    for text in (str(caught.value), caplog.text, redact(reason)):
        assert "refresh-1-xyz" not in text and "access-1-xyz" not in text
    assert "refresh-1-xyz" not in redact("Bearer access-1-xyz refresh-1-xyz")


def test_the_code_exchange_posts_json_with_exactly_the_documented_fields(settings):
    with rm.Mocker() as mock:
        mock.post(f"{AUTH}/tokens", json=tokens(3, firm_uuid="f-9"))
        session = requests.Session()
        answer = post_tokens(session, settings, {"grant_type": "authorization_code", "code": "a+b/c=",
                                                 "redirect_uri": settings.mycase_redirect_uri})
    assert answer["firm_uuid"] == "f-9"
    sent = mock.request_history[0]
    assert sent.headers["Content-Type"] == "application/json" and sent.query == ""
    assert json.loads(sent.text) == {"client_id": "client-1", "client_secret": "secret-shhh-1234",
                                     "grant_type": "authorization_code", "code": "a+b/c=",
                                     "redirect_uri": "http://127.0.0.1:8765/callback"}


def test_a_token_answer_with_an_error_field_is_not_taken_for_tokens(settings):
    with rm.Mocker() as mock:
        mock.post(f"{AUTH}/tokens", json={**tokens(3), "error": "server_error"})
        with pytest.raises(ServiceError, match="no access token"):
            post_tokens(requests.Session(), settings, {"grant_type": "refresh_token", "refresh_token": "r"})


def test_a_refreshed_set_with_an_unreadable_lifetime_is_kept_with_the_documented_one(settings, store, db_path):
    """oauthlib raises on such an expires_in; the old refresh token is spent, so the new set must be kept."""
    save_token_set(store, tokens(1, expires_in=60), now=T0)
    later = T0 + dt.timedelta(hours=1)
    tm = manager(settings, store, Now(later))
    with rm.Mocker() as mock:
        mock.post(f"{AUTH}/tokens", json={**tokens(2), "expires_in": "a day", "scope": 7})
        assert tm.access_token() == "access-2-xyz"
    assert stored(db_path)["expires_at"] == (later + dt.timedelta(seconds=86400)).isoformat()


# --- the authorization URL and the redirect --------------------------------------------------------
REDIRECT = "http://127.0.0.1:8765/callback"


@pytest.fixture
def transport_seen(monkeypatch):
    """OAUTHLIB_INSECURE_TRANSPORT as oauthlib saw it at each of its https checks."""
    seen: list[str | None] = []
    check = oauthlib_parameters.is_secure_transport

    def spy(uri):
        seen.append(os.environ.get("OAUTHLIB_INSECURE_TRANSPORT"))
        return check(uri)

    monkeypatch.setattr(oauthlib_parameters, "is_secure_transport", spy)
    return seen


def test_the_authorization_url_comes_from_requests_oauthlib_with_exactly_four_parameters(settings, transport_seen,
                                                                                         monkeypatch):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # set outside: still off for a non-loopback host
    url = authorize_url(settings, "st+a/te=")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{AUTH}/login_sessions/new"
    assert parse_qs(parts.query) == {"client_id": ["client-1"], "redirect_uri": [REDIRECT],
                                     "response_type": ["code"], "state": ["st+a/te="]}
    assert transport_seen == [None]  # oauthlib checked the https URL, with insecure transport off
    assert os.environ["OAUTHLIB_INSECURE_TRANSPORT"] == "1"  # and the environment is given back


def test_a_loopback_http_auth_url_is_allowed_only_while_oauthlib_builds_it(db_path, transport_seen, monkeypatch):
    monkeypatch.delenv("OAUTHLIB_INSECURE_TRANSPORT", raising=False)
    local = load_settings(environ={"MYCASE_AUTH_URL": "http://127.0.0.1:9000", "MYCASE_API_URL": API,
                                   "MYCASE_CLIENT_ID": "client-1", "MYCASE_SYNC_DB": str(db_path),
                                   "HOME": str(db_path.parent)})
    assert authorize_url(local, "s1").startswith("http://127.0.0.1:9000/login_sessions/new?")
    assert transport_seen == ["1"]
    assert "OAUTHLIB_INSECURE_TRANSPORT" not in os.environ


def test_a_plain_http_redirect_off_this_machine_is_refused_by_oauthlib(transport_seen, monkeypatch):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    with pytest.raises(AuthFlowError, match="plain http on a host other than this machine") as caught:
        code_from_redirect("http://example.com/callback?code=c&state=good", lambda s: s == "good")
    assert isinstance(caught.value.__context__, InsecureTransportError)
    assert transport_seen == [None]
    assert code_from_redirect("https://example.com/callback?code=c&state=good", lambda s: s == "good") == "c"
    assert code_from_redirect(f"{REDIRECT}?code=c&state=good", lambda s: s == "good") == "c"
    assert transport_seen == [None, None, "1"]


def test_a_code_with_plus_signs_is_decoded_properly():
    assert code_from_redirect(f"{REDIRECT}?code=ab%2Bcd%2F%3D&state=s1", lambda s: s == "s1") == "ab+cd/="
    assert landing_url("?code=x&state=y", REDIRECT) == f"{REDIRECT}?code=x&state=y"
    assert landing_url("  code=x&state=y\n", REDIRECT) == f"{REDIRECT}?code=x&state=y"
    assert landing_url("/callback?code=x&state=y", REDIRECT) == f"{REDIRECT}?code=x&state=y"
    assert landing_url(f" {REDIRECT}?code=x&state=y ", "https://other.example/cb") == f"{REDIRECT}?code=x&state=y"


def test_state_is_checked_before_anything_else():
    def parse(query: str) -> str:
        return code_from_redirect(f"{REDIRECT}?{query}", lambda s: s == "good")

    with pytest.raises(AuthFlowError, match="state does not match") as caught:
        parse("error=access_denied&state=forged")
    assert isinstance(caught.value.__context__, MismatchingStateError)  # oauthlib's check, our message
    with pytest.raises(AuthFlowError, match="state does not match"):
        parse("code=c")
    with pytest.raises(AuthFlowError, match="state does not match"):
        parse("code=c&state=")
    with pytest.raises(AuthFlowError, match=r"access was denied in the browser \(access_denied\)"):
        parse("error=access_denied&state=good")
    with pytest.raises(AuthFlowError, match=r"^MyCase refused the authorization \(server error\): nothing changed$"):
        parse("error=server+error%0A&state=good")
    with pytest.raises(AuthFlowError, match="no authorization code"):
        parse("state=good&code=")
    assert parse("code=c%2B1&state=good") == "c+1"


def test_the_state_a_redirect_claims_is_asked_about_once():
    asked: list[str | None] = []

    def state_ok(state):
        asked.append(state)
        return False

    with pytest.raises(AuthFlowError, match="state does not match"):
        code_from_redirect(f"{REDIRECT}?code=c&state=a%2Bb", state_ok)
    assert asked == ["a+b"]


def test_a_pending_state_is_good_once_and_for_fifteen_minutes(store):
    state = begin_pending(store, now=T0)
    assert not take_pending(store, "other", now=T0)
    assert not take_pending(store, None, now=T0)
    assert take_pending(store, state, now=T0 + dt.timedelta(minutes=14))
    assert not take_pending(store, state, now=T0 + dt.timedelta(minutes=14))
    late = begin_pending(store, now=T0)
    assert not take_pending(store, late, now=T0 + dt.timedelta(minutes=15, seconds=1))
    assert begin_pending(store, now=T0) != begin_pending(store, now=T0)
