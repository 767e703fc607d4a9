"""MyCase OAuth: connect once by browser, then keep one rotating token chain alive under cron.

Three cron jobs share one token set whose refresh token is single-use: two processes refreshing
with the same refresh token lose the whole chain. So every refresh happens under a kernel lock
beside the state store: take the lock, re-read the stored token, refresh only if nobody else
already did, store the new set before using it. Only a definitive refusal from /tokens marks the
connection as needing a person (`needs_reauth`, exit 3); anything else is temporary (exit 75)
and discards nothing.

What requests-oauthlib/oauthlib do here: build the authorization URL (OAuth2Session), parse the
URL the browser lands on (state, error, code: WebApplicationClient), and check a token answer
(an `error` field, a missing access token). What we do ourselves: the pending-state store (the
flow may finish in another process), and the POST to /tokens, through http.ServiceSession rather
than fetch_token/refresh_token: MyCase wants JSON bodies, the POST needs our rate limit, timeouts
and "repeat only if never sent" rule, and we split refusals (invalid_grant, 401/403: a person must
act) from temporary failures (no answer, 429, 5xx: try again later), which fetch_token folds into
one parse error. oauthlib refuses plain http; we let it through for loopback hosts only (the
sandbox, the redirect listener), see _oauthlib_transport.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import threading
from typing import Any, Callable, Iterator
from urllib.parse import parse_qsl, urlsplit

import requests
from oauthlib.oauth2 import (
    AccessDeniedError,
    InsecureTransportError,
    MismatchingStateError,
    MissingCodeError,
    OAuth2Error,
    WebApplicationClient,
)

from mycase_sync.errors import (
    REAUTH_MESSAGE,
    AuthorizationError,
    OutcomeUnknown,
    ServiceError,
    SyncError,
    TemporaryError,
)
from mycase_sync.http import ServiceSession, error_detail
from mycase_sync.locks import blocking_lock
from mycase_sync.redact import register_secret
from mycase_sync.store import Store, iso, parse_iso, utcnow

log = logging.getLogger(__name__)

NOT_CONNECTED_MESSAGE = "MyCase is not connected: run `mycase-sync auth`"
TOKENS_PATH = "/tokens"
AUTHORIZE_PATH = "/login_sessions/new"
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
        answer = response.json()
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
        body = response.json()
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


def _user_fields(user: dict | None, firm: dict | None) -> dict:
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
           **_user_fields(user, firm)}
    with blocking_lock(store.path, REFRESH_LOCK):
        store.tokens.replace(row)


def save_identity(store: Store, user: dict | None, firm: dict | None) -> None:
    """Record who authorised, for which firm (from /me and /firm), next to the tokens."""
    fields = _user_fields(user, firm)
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
        """Raise AuthorizationError (exit 3) now if no usable token is stored: call before any work."""
        with self._lock:
            self._row = self._load()

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
PENDING_LIFETIME = dt.timedelta(minutes=15)
CLOSE_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>mycase-sync</title></head>
<body style="font-family: sans-serif; margin: 3em"><h1>{title}</h1><p>{text}</p>
<p>You can close this window and return to the terminal.</p></body></html>"""


class AuthFlowError(SyncError):
    """The browser round trip did not give us a usable code; any earlier token is untouched."""

    exit_code = 3


_TRANSPORT_LOCK = threading.Lock()


@contextlib.contextmanager
def _oauthlib_transport(*urls: str) -> Iterator[None]:
    """Let oauthlib handle plain-http URLs only while every URL involved is on a loopback host.

    oauthlib refuses any http:// URL (InsecureTransportError), and its only switch is the
    process-wide OAUTHLIB_INSECURE_TRANSPORT. Plain http is legitimate only on this machine: the
    sandbox and the redirect listener (config.check_url refuses it for any other host). So the
    switch is on only inside this block, only for loopback URLs, and off (even if the environment
    set it) for any other host, so that oauthlib still refuses plain http there. The lock keeps
    two threads (the listener's and ours) from seeing each other's setting.
    """
    from mycase_sync.config import is_loopback

    loopback = all(is_loopback(urlsplit(url).hostname) for url in urls)
    with _TRANSPORT_LOCK:
        before = os.environ.pop("OAUTHLIB_INSECURE_TRANSPORT", None)
        if loopback:
            os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
        try:
            yield
        finally:
            os.environ.pop("OAUTHLIB_INSECURE_TRANSPORT", None)
            if before is not None:
                os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = before


def authorize_url(settings, state: str) -> str:
    """MyCase's sign-in page for this client, built by requests-oauthlib (MyCase takes no scope)."""
    from requests_oauthlib import OAuth2Session

    endpoint = settings.mycase_auth_url + AUTHORIZE_PATH
    with _oauthlib_transport(endpoint), \
            OAuth2Session(settings.mycase_client_id, redirect_uri=settings.mycase_redirect_uri, state=state) as oauth:
        url, _ = oauth.authorization_url(endpoint)
    return url


def begin_pending(store: Store, now: dt.datetime | None = None) -> str:
    """A fresh random state, remembered for 15 minutes so another process can finish the flow."""
    import secrets

    now = now or utcnow()
    state = secrets.token_urlsafe(24)
    store.tokens.add_pending_state(state, iso(now), iso(now + PENDING_LIFETIME))
    return state


def take_pending(store: Store, state: str | None, now: dt.datetime | None = None) -> bool:
    """Consume a pending state (once): True if it was issued by us and has not expired."""
    if not state:
        return False
    now = now or utcnow()
    return store.tokens.take_pending_state(state, iso(now))


def landing_url(text: str, redirect_uri: str) -> str:
    """The URL the browser landed on, from a pasted URL, or from just its query or path?query."""
    text = text.strip()
    if "://" in text:
        return text
    query = text.partition("?")[2] if "?" in text else text
    return urlsplit(redirect_uri)._replace(query=query).geturl()


_NO_STATE = object()  # equal to no state: oauthlib then raises MismatchingStateError


def code_from_redirect(url: str, state_ok: Callable[[str | None], bool]) -> str:
    """The code in the landing URL, parsed by oauthlib: state first (a forged redirect gets no
    further), then a refusal, then the code ('+' sent as %2B decodes to '+', as it must).

    oauthlib compares the state with one expected value. Which states are ours is the pending
    store's answer (the flow may have started in another process), so oauthlib is given the URL's
    own state when `state_ok` accepts it, and otherwise a value no state equals.
    """
    claimed = dict(parse_qsl(urlsplit(url).query)).get("state")
    expected = claimed if claimed and state_ok(claimed) else _NO_STATE
    try:
        with _oauthlib_transport(url):
            return WebApplicationClient(None).parse_request_uri_response(url, state=expected)["code"]
    except InsecureTransportError:
        raise AuthFlowError("the redirect URL uses plain http on a host other than this machine:"
                            " run `mycase-sync auth` again") from None
    except MismatchingStateError:
        raise AuthFlowError("the redirect's state does not match an authorization started here"
                            " (forged, reused, or older than 15 minutes): run `mycase-sync auth` again") from None
    except AccessDeniedError:
        raise AuthFlowError("access was denied in the browser (access_denied): nothing changed") from None
    except MissingCodeError:
        raise AuthFlowError("the redirect carries no authorization code: run `mycase-sync auth` again") from None
    except OAuth2Error as exc:
        error = " ".join(str(exc.error).split())[:80]
        raise AuthFlowError(f"MyCase refused the authorization ({error}): nothing changed") from None


class _Listener:
    """One-shot HTTP listener on the loopback host and port of MYCASE_REDIRECT_URI."""

    def __init__(self, redirect_uri: str, judge: Callable[[str], str]):
        import http.server
        import socket

        parts = urlsplit(redirect_uri)
        self.path = parts.path or "/"
        self.judge = judge
        self.done = threading.Event()
        self.result: str | None = None
        self.error: Exception | None = None
        listener = self

        class Handler(http.server.BaseHTTPRequestHandler):
            timeout = 10  # a browser's idle pre-connection must not hold a thread for ever

            def do_GET(self):  # noqa: N802 (http.server's naming)
                path = self.path.partition("?")[0]
                if path != listener.path or listener.done.is_set():
                    self._page(404, "Not found", "This is mycase-sync's one-time authorization listener.")
                    return
                try:
                    listener.result = listener.judge(landing_url(self.path, redirect_uri))
                    title, text = "MyCase authorization received", "mycase-sync is finishing the connection."
                except AuthFlowError as exc:
                    listener.error = exc
                    title, text = "Authorization failed", str(exc)
                self._page(200, title, text)
                listener.done.set()

            def _page(self, status: int, title: str, text: str) -> None:
                import html

                body = CLOSE_PAGE.format(title=html.escape(title), text=html.escape(text)).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # the query carries the code: never print it
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            address_family = socket.AF_INET6 if ":" in (parts.hostname or "") else socket.AF_INET

        from mycase_sync.errors import ConfigError

        try:
            self.server = Server((parts.hostname, parts.port or 80), Handler)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {parts.hostname}:{parts.port or 80} for the redirect ({exc.strerror or exc});"
                              " free the port, or finish with --redirect-url") from None
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def wait(self, timeout: float) -> str:
        try:
            if not self.done.wait(timeout):
                raise AuthFlowError(f"no redirect arrived within {timeout:g} seconds: run `mycase-sync auth` again"
                                    " (or finish with --redirect-url)")
        finally:
            self.server.shutdown()
            self.server.server_close()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def _can_open_browser() -> bool:
    """Only where a graphical browser can exist: on a bare SSH session webbrowser would start lynx here."""
    import os
    import sys

    return bool(os.environ.get("BROWSER") or sys.platform in ("darwin", "win32")
                or os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _open_browser(url: str) -> bool:
    import webbrowser

    try:
        return webbrowser.open(url)
    except webbrowser.Error:
        return False


def run_auth_flow(app, say: Callable[..., None], ask: Callable[[str], str], no_browser: bool = False,
                  redirect_url: str | None = None, timeout: float = 300) -> dict[str, Any]:
    """Connect MyCase: authorize in a browser, exchange the code, store the tokens. Returns who is
    connected (user_name, user_email, firm_name).

    redirect_url: finish from that pasted URL; "" prints the authorization URL and prompts for it.
    `say(text, err=False)` shows a line, `ask(prompt)` reads the pasted URL: the command line's.
    """
    from mycase_sync.config import is_loopback

    settings = app.settings
    settings.require("MYCASE_CLIENT_ID", "MYCASE_CLIENT_SECRET")
    store = app.store
    redirect_uri = settings.mycase_redirect_uri
    if redirect_url:
        code = code_from_redirect(landing_url(redirect_url, redirect_uri), lambda state: take_pending(store, state))
    else:
        listen = redirect_url is None and is_loopback(urlsplit(settings.mycase_redirect_uri).hostname)
        if redirect_url is None and not listen:
            say(f"MYCASE_REDIRECT_URI {settings.mycase_redirect_uri} is not a loopback address:"
                " open the URL, then paste the address the browser lands on.", err=True)
        state_box: dict[str, str] = {}

        def judge(url: str) -> str:
            return code_from_redirect(url, lambda got: got == state_box["state"] and take_pending(store, got))

        listener = _Listener(settings.mycase_redirect_uri, judge) if listen else None
        state_box["state"] = begin_pending(store)
        url = authorize_url(settings, state_box["state"])
        if listener is None:
            say(url)
            code = code_from_redirect(landing_url(ask("URL the browser landed on"), redirect_uri),
                                      lambda state: take_pending(store, state))
        else:
            if not no_browser and _can_open_browser() and _open_browser(url):
                say(f"Opened a browser at MyCase's sign-in page; waiting up to {timeout:g} s for it to come back"
                    f" (if no browser appeared, open this URL):\n{url}", err=True)
            else:
                target = urlsplit(settings.mycase_redirect_uri)
                port = target.port or 80
                say(url)
                say(f"Open the URL above in a browser; waiting up to {timeout:g} s for the redirect to"
                    f" {settings.mycase_redirect_uri} (from another machine: ssh -L {port}:{target.hostname}:{port} ...).",
                    err=True)
            code = listener.wait(timeout)
    register_secret(code)
    session = token_session(settings)
    try:
        try:
            answer = post_tokens(session, settings, {"grant_type": "authorization_code", "code": code,
                                                     "redirect_uri": settings.mycase_redirect_uri})
        except TokenRefused as exc:
            raise AuthFlowError(f"MyCase refused the authorization code ({exc.reason}): run `mycase-sync auth` again;"
                                " nothing changed") from None
    finally:
        session.close()
    save_token_set(store, answer)
    client = app.mycase
    user, firm = client.me(), client.firm()
    save_identity(store, user, firm)
    return _user_fields(user, firm)


# --- `mycase-sync auth status` and `auth logout` -----------------------------------------------
def connection_report(app, now: dt.datetime | None = None) -> dict[str, Any]:
    """The connection as `auth status --json` prints it: who, which firm, expiries, and a warning
    when the authorization has expired or soon will; never a token."""
    from pathlib import Path

    from mycase_sync.health import connection_problem, connection_summary

    now = now or utcnow()
    report = connection_summary(app.store if Path(app.settings.db_path).exists() else None)
    problem = connection_problem(report, now) if report["connected"] else None
    report["warnings"] = [problem] if problem else []
    return report


def verify_connection(app) -> dict[str, Any]:
    """The connection report after MyCase answered /me with it (refreshing the token if due)."""
    report = connection_report(app)
    if not report["connected"]:
        raise AuthorizationError(REAUTH_MESSAGE if report["needs_reauth"] else NOT_CONNECTED_MESSAGE)
    me = app.mycase.me()
    report["verified"] = True
    report["verified_as"] = me.get("email")
    report.update({k: v for k, v in connection_report(app).items() if k.endswith("_at")})  # a refresh moves them
    return report


def logout(app) -> bool:
    """Delete the stored tokens (and any pending authorization); True if there was a connection."""
    from pathlib import Path

    if not Path(app.settings.db_path).exists():
        return False
    store = app.store
    had = delete_tokens(store)
    store.tokens.clear_pending_states()
    return had
