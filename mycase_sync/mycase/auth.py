"""Connecting MyCase by OAuth 2.0 (authorization code): the browser, the redirect, the first tokens.

What requests-oauthlib/oauthlib do here: build the authorization URL (OAuth2Session), parse the
URL the browser lands on (state, error, code: WebApplicationClient), and check a token answer
(an `error` field, a missing access token). What we do ourselves: the pending-state store (the
flow may finish in another process), and the POST to /tokens, through http.ServiceSession rather
than fetch_token/refresh_token: MyCase wants JSON bodies, the POST needs our rate limit, timeouts
and "repeat only if never sent" rule, and we split refusals (invalid_grant, 401/403: a person must
act) from temporary failures (no answer, 429, 5xx: try again later), which fetch_token folds into
one parse error. oauthlib refuses plain http; we let it through for loopback hosts only (the
sandbox, the redirect listener), see _oauthlib_transport.

Once connected, tokens.py keeps the token chain alive; this module also reports the connection
(`auth status`) and removes it (`auth logout`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import threading
from typing import Any, Callable, Iterator
from urllib.parse import parse_qsl, urlsplit

from oauthlib.oauth2 import (
    AccessDeniedError,
    InsecureTransportError,
    MismatchingStateError,
    MissingCodeError,
    OAuth2Error,
    WebApplicationClient,
)

from mycase_sync.errors import (REAUTH_MESSAGE, AuthorizationError, OutcomeUnknown, ServiceError, SyncError,
                                TemporaryError)
from mycase_sync.mycase.tokens import (
    NOT_CONNECTED_MESSAGE, TokenRefused, delete_tokens, post_tokens, save_identity, save_token_set,
    token_session, user_fields,
)
from mycase_sync.ownership import check_mycase_firm
from mycase_sync.redact import register_secret
from mycase_sync.store import Store, iso, utcnow

AUTHORIZE_PATH = "/login_sessions/new"
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


REDIRECT_FIELDS = ("code", "state", "error")  # what a redirect from MyCase's sign-in page carries


def pasted_url(text: str, redirect_uri: str) -> str:
    """The landing URL from what a person pasted, or ConfigError (exit 2) for what is no URL at all:
    nothing pasted, text with spaces, or no query with any of a redirect's fields in it."""
    from mycase_sync.errors import ConfigError
    from mycase_sync.text import clean_line

    text = text.strip()
    if not text:
        raise ConfigError("no URL given: paste the address the browser landed on (it starts with"
                          f" {redirect_uri}), or give it as --redirect-url URL")
    url = landing_url(text, redirect_uri)
    parts = urlsplit(url)
    fields = {name for name, _ in parse_qsl(parts.query, keep_blank_values=True)}
    if any(c.isspace() for c in text) or parts.scheme not in ("http", "https") or not parts.netloc \
            or not fields & set(REDIRECT_FIELDS):
        shown = clean_line(text)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise ConfigError(f"{shown!r} is not a URL the browser landed on: paste the whole address from the"
                          f" browser's address bar (it starts with {redirect_uri})")
    return url


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
        code = code_from_redirect(pasted_url(redirect_url, redirect_uri), lambda state: take_pending(store, state))
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
            code = code_from_redirect(pasted_url(ask("URL the browser landed on"), redirect_uri),
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
    firm_uuid = answer.get("firm_uuid") if isinstance(answer.get("firm_uuid"), str) else None
    check_mycase_firm(store, firm_uuid, None)  # another firm's account: refused before anything is saved
    save_token_set(store, answer)
    client = app.mycase
    user, firm = client.me(), client.firm()
    save_identity(store, user, firm)
    who = user_fields(user, firm)
    check_mycase_firm(store, firm_uuid, who.get("firm_name"))  # records the firm the first time
    return who


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
    try:
        me = app.mycase.me()
    except OutcomeUnknown as exc:  # asked, no answer: MyCase is unreachable for now (exit 75)
        raise TemporaryError(f"{exc}; try again later") from None
    except ServiceError as exc:
        if isinstance(exc, TemporaryError):
            raise
        raise AuthorizationError(f"MyCase did not accept the stored connection ({exc}): run `mycase-sync auth`") from None
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
