"""MyCase tokens: keep one rotating token chain alive under cron (auth.py connects it once).

Three cron jobs share one token set whose refresh token is single-use: two processes refreshing
with the same refresh token lose the whole chain. So every refresh happens under a kernel lock
beside the state store: take the lock, re-read the stored token, refresh only if nobody else
already did, store the new set before using it. Only a definitive refusal from /tokens marks the
connection as needing a person (`needs_reauth`, exit 3); anything else is temporary (exit 75)
and discards nothing.

We POST to /tokens ourselves, through http.ServiceSession rather than requests-oauthlib's
fetch_token/refresh_token: MyCase wants JSON bodies, the POST needs our rate limit, timeouts and
"repeat only if never sent" rule, and we split refusals (invalid_grant, 401/403: a person must
act) from temporary failures (no answer, 429, 5xx: try again later), which fetch_token folds into
one parse error; oauthlib only checks the answer.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from typing import Any, Callable

import requests
from oauthlib.oauth2 import OAuth2Error, WebApplicationClient

from mycase_sync.errors import (
    REAUTH_MESSAGE,
    AuthorizationError,
    OutcomeUnknown,
    ServiceError,
    SettingRefused,
    SyncError,
    TemporaryError,
)
from mycase_sync.http import ServiceSession, error_detail, parse_json
from mycase_sync.locks import blocking_lock
from mycase_sync.redact import register_secret
from mycase_sync.signals import uncut
from mycase_sync.store import Store, iso, parse_iso, utcnow

log = logging.getLogger(__name__)

NOT_CONNECTED_MESSAGE = "MyCase is not connected: run `mycase-sync auth`"
TOKENS_PATH = "/tokens"
REFRESH_TOKEN_LIFETIME = dt.timedelta(days=14)  # documented; /tokens does not say
DEFAULT_ACCESS_LIFETIME = 86400  # documented; used when an answer lacks expires_in
REFRESH_MARGIN = dt.timedelta(minutes=5)  # refresh this long before the access token expires
REFRESH_LOCK = "token-refresh"


# --- the token endpoint ------------------------------------------------------------------------
class TokenRefused(SyncError):
    """/tokens refused the grant for good (invalid_grant, or 401/403): retrying cannot help."""

    exit_code = 3

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def token_session(settings) -> ServiceSession:
    """A session for /tokens: our timeouts and rate limit; a POST is repeated only if never sent."""
    # Not the shared API rate file: /tokens is on the auth host, called once a day, and a refresh
    # must not queue behind other jobs' API requests (its expiry is counted from before the send).
    return ServiceSession("MyCase", settings.mycase_rate_limit, settings.timeout, settings.backoff_base)


def post_tokens(session: requests.Session, settings, grant: dict[str, str]) -> dict[str, Any]:
    """POST a grant (JSON) to MYCASE_AUTH_URL/tokens; the answer, or TokenRefused / TemporaryError.

    Client credentials are added here. The answer's tokens are registered as secrets before
    anything else can print them.
    """
    body = {"client_id": settings.mycase_client_id, "client_secret": settings.mycase_client_secret, **grant}
    url = settings.mycase_auth_url + TOKENS_PATH
    try:
        response = session.request("POST", url, json=body)
    except OutcomeUnknown as exc:  # sent, no answer: a refresh may have rotated the token server-side
        raise TemporaryError(f"MyCase token endpoint did not answer ({exc.detail}); nothing stored was changed") from None
    except ServiceError as exc:
        raise TemporaryError(f"MyCase token endpoint unreachable: {exc.detail}") from None
    with response:
        status = response.status_code
        if status == 429 or status >= 500:
            raise TemporaryError(f"MyCase token endpoint answered HTTP {status}; try again later")
        if status == 404:  # the one path the auth host has: nothing there means a wrong MYCASE_AUTH_URL
            raise SettingRefused("MYCASE_AUTH_URL", f"MYCASE_AUTH_URL={settings.mycase_auth_url} has no MyCase token"
                                 f" endpoint (POST {TOKENS_PATH}: HTTP 404): check the address (as"
                                 " https://auth.mycase.com); nothing stored was changed")
        if status >= 400:
            error = _oauth_error(response)
            detail = error_detail(response)
            if status in (401, 403) or error == "invalid_grant":
                raise TokenRefused(f"{error or f'HTTP {status}'}: {detail}" if detail and detail != error else (error or f"HTTP {status}"))
            raise ServiceError("MyCase", "POST", TOKENS_PATH, status, detail)
        answer = _token_answer(response)
    if answer is None:
        raise ServiceError("MyCase", "POST", TOKENS_PATH, status, "the answer carries no access token")
    if not isinstance(answer.get("refresh_token"), str) or not answer["refresh_token"]:
        raise ServiceError("MyCase", "POST", TOKENS_PATH, status, "the answer carries no refresh token")
    return answer


def _token_answer(response: requests.Response) -> dict | None:
    """A 2xx answer from /tokens if oauthlib accepts it as a token answer (no `error` field, an
    access token) and the access token is a non-empty string; else None.

    oauthlib sees the answer without expires_in and scope: it raises on values there it cannot
    read, and a refresh's answer must not be thrown away over them (the old refresh token is
    already spent). We read the lifetime ourselves, leniently (_expires_in), and ignore scope.
    """
    try:
        answer = parse_json(response)
    except ValueError:
        return None
    if not isinstance(answer, dict) or not isinstance(answer.get("access_token"), str):
        return None
    for key in ("access_token", "refresh_token"):
        if isinstance(answer.get(key), str):
            register_secret(answer[key])
    checked = {k: v for k, v in answer.items() if k not in ("expires_in", "scope")}
    try:
        WebApplicationClient(None).parse_request_body_response(json.dumps(checked))
    except OAuth2Error:
        return None
    return answer if answer["access_token"] else None


def _oauth_error(response: requests.Response) -> str | None:
    try:
        body = parse_json(response)
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, str) else None


# --- the stored token set ----------------------------------------------------------------------
def read_token_row(store: Store) -> dict | None:
    """The stored token set (tokens registered as secrets), or None."""
    row = store.tokens.read()
    if row is None:
        return None
    register_secret(row["access_token"])
    register_secret(row.get("refresh_token"))
    return row


def _expires_in(answer: dict) -> float:
    try:
        seconds = float(answer.get("expires_in", DEFAULT_ACCESS_LIFETIME))
    except (TypeError, ValueError):
        seconds = DEFAULT_ACCESS_LIFETIME
    return seconds if seconds > 0 else DEFAULT_ACCESS_LIFETIME


def _token_fields(answer: dict, now: dt.datetime) -> dict:
    return {
        "access_token": answer["access_token"],
        "refresh_token": answer["refresh_token"],
        "token_type": answer.get("token_type") or "Bearer",
        "expires_at": iso(now + dt.timedelta(seconds=_expires_in(answer))),
        "refresh_expires_at": iso(now + REFRESH_TOKEN_LIFETIME),
        "needs_reauth": 0,
        "reauth_reason": None,
    }


def user_fields(user: dict | None, firm: dict | None) -> dict:
    fields: dict[str, Any] = {}
    if user is not None:
        name = " ".join(str(user.get(k) or "").strip() for k in ("first_name", "last_name")).strip()
        fields["user_name"] = name or None
        fields["user_email"] = user.get("email") or None
    if firm is not None:
        fields["firm_name"] = firm.get("name") or None
    return fields


def save_token_set(store: Store, token_response: dict, user: dict | None = None, firm: dict | None = None,
                   now: dt.datetime | None = None) -> None:
    """Store a new connection (a code exchange's answer), replacing any earlier one.

    Taken under the refresh lock, so a job refreshing the old chain cannot overwrite it.
    """
    register_secret(token_response.get("access_token"))
    register_secret(token_response.get("refresh_token"))
    now = now or utcnow()
    row = {**_token_fields(token_response, now), "obtained_at": iso(now), "last_refresh_at": None,
           "firm_uuid": token_response.get("firm_uuid"), "user_name": None, "user_email": None, "firm_name": None,
           **user_fields(user, firm)}
    with blocking_lock(store.path, REFRESH_LOCK):
        store.tokens.replace(row)


def save_identity(store: Store, user: dict | None, firm: dict | None) -> None:
    """Record who authorised, for which firm (from /me and /firm), next to the tokens."""
    fields = user_fields(user, firm)
    if fields:
        store.tokens.update(fields)


def _save_refreshed(store: Store, answer: dict, now: dt.datetime) -> None:
    store.tokens.update({**_token_fields(answer, now), "last_refresh_at": iso(now)})


def _mark_needs_reauth(store: Store, reason: str) -> None:
    store.tokens.mark_needs_reauth(reason)


def delete_tokens(store: Store) -> bool:
    """Forget the connection (overwriting the freed pages); True if there was one."""
    with blocking_lock(store.path, REFRESH_LOCK):
        return store.tokens.delete()


def known_expired(row: dict, now: dt.datetime) -> bool:
    """Neither token can work any more, by the expiries the store recorded: a refresh would be refused."""
    refresh_expires, access_expires = parse_iso(row.get("refresh_expires_at")), parse_iso(row.get("expires_at"))
    return bool(refresh_expires and refresh_expires <= now and access_expires and access_expires <= now)


# --- the token every request carries -----------------------------------------------------------
class TokenManager:
    """Hands out a valid access token; refreshes it once, under the cross-process lock, when needed.

    Thread-safe: MyCaseClient's workers share one manager.
    """

    def __init__(self, settings, store: Store, session: requests.Session | None = None,
                 now: Callable[[], dt.datetime] = utcnow):
        self.settings = settings
        self.store = store
        self._session = session
        self._now = now
        self._lock = threading.Lock()
        self._row: dict | None = None
        self.refreshes = 0  # refreshes this process made (for tests and logs)

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            self._session = token_session(self.settings)
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()

    def ensure_connected(self) -> None:
        """Raise AuthorizationError (exit 3) now if no usable token is stored: call before any work.

        No request: missing, marked for re-authorization, or expired as the store knows it (the
        refresh token's two weeks are over and the access token too)."""
        with self._lock:
            row = self._load()
            if known_expired(row, self._now()):
                raise AuthorizationError(REAUTH_MESSAGE)
            self._row = row

    def access_token(self) -> str:
        with self._lock:
            if self._row is None:
                self._row = self._load()
            if self._expiring(self._row):
                self._row = self._refresh(self._row["access_token"], forced=False)
            return self._row["access_token"]

    def refresh_after_401(self, used_token: str | None) -> None:
        """MyCase refused `used_token`: adopt a newer stored token, or refresh once."""
        with self._lock:
            self._row = self._refresh(used_token, forced=True)

    # --- internals ---------------------------------------------------------------------------
    def _load(self) -> dict:
        row = read_token_row(self.store)
        if row is None:
            raise AuthorizationError(NOT_CONNECTED_MESSAGE)
        if row.get("needs_reauth"):
            raise AuthorizationError(REAUTH_MESSAGE)
        return row

    def _expiring(self, row: dict) -> bool:
        """True within the margin before expiry: a few minutes, or a quarter of a short lifetime."""
        expires = parse_iso(row.get("expires_at"))
        if expires is None:
            return True
        issued = parse_iso(row.get("last_refresh_at") or row.get("obtained_at"))
        margin = REFRESH_MARGIN
        if issued is not None and issued < expires:
            margin = min(margin, (expires - issued) / 4)
        return self._now() >= expires - margin

    def _refresh(self, seen_token: str | None, forced: bool) -> dict:
        with blocking_lock(self.store.path, REFRESH_LOCK):
            row = self._load()
            if row["access_token"] != seen_token and not self._expiring(row):
                log.debug("MyCase token already refreshed by another run; using it")
                return row
            if not forced and not self._expiring(row):
                return row
            now = self._now()
            # MyCase refresh tokens are single-use: from the request to the saving of its answer no
            # signal may stop us, or the new token is lost and every later run needs `auth`.
            with uncut():
                try:
                    answer = post_tokens(self.session, self.settings,
                                         {"grant_type": "refresh_token", "refresh_token": row["refresh_token"]})
                except TokenRefused as exc:
                    current = read_token_row(self.store)
                    if current and not current.get("needs_reauth") and current["refresh_token"] != row["refresh_token"]:
                        log.info("MyCase refused a refresh token that was replaced meanwhile; using the stored one")
                        return current
                    _mark_needs_reauth(self.store, exc.reason)
                    log.info("MyCase refused the refresh token (%s)", exc.reason)
                    raise AuthorizationError(REAUTH_MESSAGE) from None
                _save_refreshed(self.store, answer, now)
            self.refreshes += 1
            log.info("MyCase access token refreshed")
            return self._load()


# --- `mycase-sync auth`: the authorization-code flow -------------------------------------------
