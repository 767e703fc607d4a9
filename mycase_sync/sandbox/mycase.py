"""The MyCase emulator: the OAuth auth host, the /v1 Open API and an S3 stand-in, on one port.

It follows API-NOTES Part 1 strictly so that client code which passes here has only the real
service's surprises left: opaque page tokens and absolute Link headers, no order in lists,
quirky timestamps and numbers as strings, single-use rotating refresh tokens, and a pre-signed
S3 PUT that refuses anything but a plain octet-stream body of known length. Whatever the client
does outside the contract is refused the way the real service would and logged in `violations`.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import random
import secrets
import uuid
from collections import OrderedDict
from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any, Callable
from urllib.parse import urlencode

from .core import Clock, HttpError, Request, Response, Service, route

ROOT_FOLDER = "Case Documents"  # what the UI calls a case's root document folder
KEEP_BYTES_LIMIT = 64 * 1024 * 1024  # larger uploads keep only their sha256 and size
S3_BUCKET = "mycase-sandbox-documents"
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 25
_SNAPSHOTS_KEPT = 32
_EST = timezone(timedelta(hours=-5))
CLIENT_FIELDS = frozenset({
    "id", "first_name", "last_name", "middle_name", "email", "cell_phone_number", "work_phone_number",
    "home_phone_number", "fax_phone_number", "contact_group", "birthdate", "created_at", "updated_at",
})
CUSTOM_FIELD_FIELDS = frozenset({"id", "field_type"})
CLIENT_FILTERS = frozenset({"filter[email]", "filter[first_name]", "filter[last_name]", "filter[cell_phone_number]",
                            "filter[work_phone_number]", "filter[home_phone_number]"})
CLIENT_RECORD_FIELDS = ("email", "first_name", "middle_name", "last_name", "cell_phone_number", "work_phone_number",
                        "home_phone_number", "fax_phone_number", "birthdate")
_PAGING = frozenset({"page_size", "page_token"})
# Fields MyCase's OpenAPI reference types without null: an empty one is left out of the answer, not
# sent as null (API-NOTES records no live null for them). case_number, sol_date, closed_date,
# practice_area and case_stage are documented as nullable and stay null. A deliberately malformed
# record (a null name) still breaks the reference: the client must survive it.
OMITTED_WHEN_EMPTY = frozenset({
    "description", "office", "email", "cell_phone_number", "work_phone_number", "home_phone_number",
    "fax_phone_number", "middle_name", "birthdate", "address", "assigned_date",
})


def _without_empty(record: dict) -> dict:
    return {k: v for k, v in record.items() if v is not None or k not in OMITTED_WHEN_EMPTY}


def parse_iso(value: str) -> datetime | None:
    """Lenient ISO 8601 (date or date-time, Z or offset, fractions); naive means UTC. None if invalid."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def render_ts(value: Any, salt: int) -> Any:
    """A timestamp the way the live API varies it: Z or offset, with or without fractions."""
    if not isinstance(value, datetime):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    utc = value.astimezone(timezone.utc)
    variant = salt % 5
    if variant == 0:
        return utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    if variant == 1:
        return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if variant == 2:
        return utc.isoformat(timespec="seconds")
    if variant == 3:
        return value.astimezone(_EST).isoformat(timespec="seconds")
    return value.astimezone(_EST).isoformat(timespec="microseconds")


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _aware(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return datetime.min.replace(tzinfo=timezone.utc)


def _oauth_error(status: int, error: str, description: str) -> HttpError:
    return HttpError(status, {"error": error, "error_description": description})


def _s3_error(status: int, code: str, message: str) -> HttpError:
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{message}</Message></Error>").encode()
    return HttpError(status, body, {"Content-Type": "application/xml"})


def _html(status: int, text: str) -> Response:
    return Response(status, f"<!DOCTYPE html><html><body><p>{text}</p></body></html>".encode(),
                    {"Content-Type": "text/html; charset=utf-8"})


def minimal_firm(now: datetime) -> SimpleNamespace:
    """A firm with one attorney (the authorising user) and no cases, for tests that add their own."""
    me = {"id": 1, "email": "lead@example.test", "first_name": "Lee", "middle_initial": "", "last_name": "Lawyer",
          "type": "Attorney", "title": "Partner", "active": True, "created_at": now, "updated_at": now}
    stage = {"id": 1, "name": "Intake", "created_at": now, "updated_at": now}
    area = {"id": 1, "name": "Personal Injury", "created_at": now, "updated_at": now}
    return SimpleNamespace(firm={"name": "Sandbox Law", "url": "https://sandbox-law.mycase.com"}, staff=[me],
                           clients={}, case_stages=[stage], practice_areas=[area], cases=[], me_staff_id=1)


def api(method: str, pattern: str, params: frozenset = frozenset()):
    """A /v1 route: Bearer auth first, then unknown query parameters are refused."""

    def wrap(fn):
        @functools.wraps(fn)
        def handler(self: "MyCaseService", req: Request, *groups):
            self._authenticate(req)
            self._check_params(req, params)
            return fn(self, req, *groups)

        return route(method, "/v1" + pattern)(handler)

    return wrap


class MyCaseService(Service):
    """MyCase: OAuth at the root, the API under /v1, pre-signed S3 URLs under /s3/."""

    name = "mycase"

    def __init__(self, clock: Clock, firm: Any = None, *, seed: int = 1, client_id: str = "sandbox-client",
                 client_secret: str = "sandbox-secret", redirect_uri: str = "http://127.0.0.1:8765/callback",
                 access_token_lifetime: int = 86400, refresh_token_lifetime: int = 14 * 86400,
                 s3_host: str = "localhost"):
        super().__init__(clock)
        firm = firm if firm is not None else minimal_firm(clock.now())
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uri = redirect_uri
        # knobs
        self.access_token_lifetime = access_token_lifetime
        self.refresh_token_lifetime = refresh_token_lifetime
        self.code_lifetime = 600
        self.consent = "approve"        # "approve" | "deny" (access_denied) | "forbidden" (no permission page)
        self.put_url_ttl = 900          # seconds a pre-signed PUT URL stays valid
        self.data_url_ttl = 60          # seconds the /data download URL stays valid
        self.item_count_every = 4       # every Nth list page lacks Item-Count, as seen live; None: always sent
        # the alternatives of API-NOTES Part 3 (all off: the contract as written)
        self.cases_open_only = False    # /cases without filter[status] lists open cases only
        self.staff_active_only = False  # /staff without filter[status] lists active staff only
        self.bare_next_links = False    # a next-page link carries page_token alone
        self.client_edits_keep_case_dates = False  # editing a client leaves its cases' updated_at alone
        self.serve_at_most: int | None = None  # a test knob: pages of at most this many, so small firms span pages
        # A different host name than the API, so a client following a redirect drops its Bearer
        # token the way it would for the real S3 host.
        self.s3_host = s3_host
        # counters
        self.token_calls = 0            # every POST /tokens
        self.refresh_calls = 0          # those with grant_type=refresh_token
        # data
        self.firm: dict = dict(firm.firm)
        self.firm_uuid = str(uuid.UUID(int=random.Random(seed).getrandbits(128)))
        self.me_staff_id: int = firm.me_staff_id
        self.staff: dict[int, dict] = {int(s["id"]): s for s in firm.staff}
        self.clients: dict[int, dict] = dict(firm.clients)
        self.case_stages: dict[int, dict] = {int(s["id"]): s for s in firm.case_stages}
        self.practice_areas: dict[int, dict] = {int(a["id"]): a for a in firm.practice_areas}
        self.cases: dict[int, dict] = {int(c["id"]): c for c in firm.cases}
        self.deleted_cases: set[int] = set()
        self.documents: dict[int, dict] = {}
        self.folders: dict[int, dict] = {}
        self.notes: dict[int, dict] = {}
        self._next_id = {"case": max(self.cases, default=0) + 1, "document": 1, "version": 1, "folder": 1,
                         "note": 1}
        self._codes: dict[str, dict] = {}
        self._access: dict[str, dict] = {}
        self._refresh: dict[str, dict] = {}
        self._s3_objects: dict[str, tuple[int, int]] = {}  # key -> (document id, version number)
        self._s3_secret = secrets.token_bytes(32)
        self._order_rng = random.Random(seed)
        self._snapshots: OrderedDict[str, dict] = OrderedDict()
        self._pages_served = 0

    # -- test API -----------------------------------------------------------------------------------
    def issue_tokens(self) -> dict:
        """A token set as a code exchange answers it, without the browser round trip."""
        with self.lock:
            return self._issue(first=True)

    def revoke_all(self) -> None:
        with self.lock:
            for rec in (*self._access.values(), *self._refresh.values()):
                rec["revoked"] = True

    def update_case(self, case_id: int, **fields) -> dict:
        with self.lock:
            case = self.cases[case_id]
            case.update(fields)
            if "updated_at" not in fields:
                case["updated_at"] = self.clock.now()
            return case

    def update_client(self, client_id: int, **fields) -> dict:
        """A client edited in MyCase: its updated_at moves, and so do its cases' unless
        client_edits_keep_case_dates (the alternative of API-NOTES Part 3)."""
        with self.lock:
            client = self.clients[client_id]
            client.update(fields)
            now = self.clock.now()
            client.setdefault("created_at", now)
            if "updated_at" not in fields:
                client["updated_at"] = now
            if not self.client_edits_keep_case_dates:
                for case in self.cases.values():
                    if client_id in (case.get("clients") or []):
                        case["updated_at"] = client["updated_at"]
            return client

    def add_case(self, **fields) -> dict:
        with self.lock:
            case_id = self._take_id("case")
            now = self.clock.now()
            case = {"id": case_id, "name": f"Matter {case_id}", "case_number": None, "description": "",
                    "opened_date": now.date().isoformat(), "closed_date": None, "sol_date": None,
                    "practice_area": None, "case_stage": None, "status": "open", "clients": [], "staff": [],
                    "billing_type": "hourly", "office": None, "outstanding_balance": 0,
                    "created_at": now, "updated_at": now}
            case.update(fields)
            self.cases[case_id] = case
            return case

    def delete_case(self, case_id: int) -> None:
        with self.lock:
            self.cases.pop(case_id, None)
            self.deleted_cases.add(case_id)

    def notes_for(self, case_id: int) -> list[dict]:
        with self.lock:
            return sorted((n for n in self.notes.values() if n["case_id"] == case_id), key=lambda n: n["id"])

    def documents_for(self, case_id: int) -> list[dict]:
        with self.lock:
            return sorted((d for d in self.documents.values() if d["case_id"] == case_id), key=lambda d: d["id"])

    def document_bytes(self, doc_id: int) -> bytes | None:
        """The latest version's bytes (None if not uploaded, or over the 64 MB the sandbox keeps)."""
        with self.lock:
            return self.documents[doc_id]["versions"][-1]["data"]

    # -- service overrides --------------------------------------------------------------------------
    def is_rate_limited_path(self, path: str) -> bool:
        return path.startswith("/v1/")

    def rate_limited_response(self) -> Response:
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}
        return Response(429, {"message": "Too Many Requests"}, headers)

    # -- helpers ------------------------------------------------------------------------------------
    def _take_id(self, kind: str) -> int:
        value = self._next_id[kind]
        self._next_id[kind] = value + 1
        return value

    def _refuse(self, status: int, message: str, source: dict | None = None) -> HttpError:
        """Record a client contract violation and build the documented error answer."""
        self.violation(message)
        return HttpError(status, self.error_body(message, source))

    def _check_params(self, req: Request, allowed: frozenset) -> None:
        for name in req.query:
            if name not in allowed:
                raise self._refuse(400, f"{req.method} {req.path}: unknown parameter {name!r}",
                                   {"parameter": name})

    def _authenticate(self, req: Request) -> int:
        header = req.headers.get("Authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HttpError(401, self.error_body("Missing or malformed bearer token"))
        with self.lock:
            rec = self._access.get(token.strip())
            if rec is None or rec["revoked"]:
                raise HttpError(401, self.error_body("Invalid or revoked access token"))
            if rec["expires"] <= self.clock.timestamp():
                raise HttpError(401, self.error_body("Access token expired"))
            return rec["staff_id"]

    def _json_object(self, req: Request, required: set[str], optional: set[str]) -> dict:
        if req.content_type != "application/json":
            raise self._refuse(400, f"{req.method} {req.path}: Content-Type must be application/json, "
                                    f"got {req.content_type or 'none'!r}", {"pointer": "/"})
        body = req.json()
        if not isinstance(body, dict):
            raise self._refuse(422, f"{req.method} {req.path}: body must be a JSON object", {"pointer": "/"})
        for key in body:
            if key not in required and key not in optional:
                raise self._refuse(422, f"{req.method} {req.path}: unknown field {key!r}", {"pointer": f"/{key}"})
        for key in sorted(required):
            if key not in body:
                raise self._refuse(422, f"{req.method} {req.path}: missing field {key!r}", {"pointer": f"/{key}"})
        for key, value in body.items():
            if not isinstance(value, str):
                raise self._refuse(422, f"{req.method} {req.path}: field {key!r} must be a string",
                                   {"pointer": f"/{key}"})
        return body

    def _lookup(self, table: dict[int, dict], record_id: str, what: str) -> dict:
        """The record, or 404 (deleted and unknown ids alike)."""
        record = table.get(int(record_id))
        if record is None:
            raise HttpError(404, self.error_body(f"{what} not found"))
        return record

    def _case_or_404(self, case_id: str) -> dict:
        return self._lookup(self.cases, case_id, "Case")

    # -- OAuth --------------------------------------------------------------------------------------
    @route("GET", "/login_sessions/new")
    def authorize(self, req: Request) -> Response:
        for name in req.query:
            if name not in {"client_id", "redirect_uri", "response_type", "state"}:
                self.violation(f"authorize: unexpected parameter {name!r}")
        if req.param("client_id") != self.client_id:
            self.violation("authorize: unknown client_id")
            return _html(400, "Unknown client.")
        redirect_uri = req.param("redirect_uri")
        if redirect_uri != self.redirect_uri:
            self.violation(f"authorize: redirect_uri {redirect_uri!r} is not the registered one")
            return _html(400, "The redirect URI does not match the one registered for this application.")
        state = req.param("state")
        if req.param("response_type") != "code":
            self.violation("authorize: response_type must be 'code'")
            return self._redirect_back({"error": "unsupported_response_type"}, state)
        if self.consent == "forbidden":
            return _html(403, "Forbidden: you need the firm preferences permission to authorize apps.")
        if self.consent == "deny":
            return self._redirect_back({"error": "access_denied"}, state)
        raw = bytearray(secrets.token_bytes(24))
        code = base64.b64encode(bytes(raw)).decode()
        code = code[:8] + "+" + code[9:]  # live codes carry '+': the client must decode %2B properly
        with self.lock:
            self._codes[code] = {"expires": self.clock.timestamp() + self.code_lifetime, "used": False,
                                 "redirect_uri": redirect_uri}
        return self._redirect_back({"code": code}, state)

    def _redirect_back(self, params: dict, state: str | None) -> Response:
        if state is not None:
            params["state"] = state
        sep = "&" if "?" in self.redirect_uri else "?"
        return Response(302, b"", {"Location": self.redirect_uri + sep + urlencode(params)})

    @route("POST", "/tokens")
    def tokens(self, req: Request) -> Response:
        with self.lock:
            self.token_calls += 1
        if req.query:
            self.violation("tokens: parameters in the query string")
            raise _oauth_error(400, "invalid_request", "Parameters belong in the body")
        try:
            if req.content_type == "application/json":
                body = req.json()
            elif req.content_type == "application/x-www-form-urlencoded":
                body = req.form()
            else:
                self.violation(f"tokens: Content-Type {req.content_type or 'none'!r}")
                raise _oauth_error(400, "invalid_request", "Unsupported Content-Type")
        except HttpError as exc:
            if isinstance(exc.body, dict) and "error" in exc.body:
                raise
            raise _oauth_error(400, "invalid_request", "Malformed body")
        if not isinstance(body, dict):
            self.violation("tokens: body is not an object")
            raise _oauth_error(400, "invalid_request", "Malformed body")
        grant = body.get("grant_type")
        expected = {"authorization_code": {"client_id", "client_secret", "grant_type", "code", "redirect_uri"},
                    "refresh_token": {"client_id", "client_secret", "grant_type", "refresh_token"}}.get(grant)
        if grant == "refresh_token":
            with self.lock:
                self.refresh_calls += 1
        if expected is None:
            self.violation(f"tokens: grant_type {grant!r}")
            raise _oauth_error(400, "invalid_request", "Unsupported grant_type")
        wrong = sorted(set(body) ^ expected)
        if wrong or not all(isinstance(body[k], str) for k in expected):
            self.violation(f"tokens: missing, unknown or non-string fields {wrong}")
            raise _oauth_error(400, "invalid_request", f"Bad fields: {', '.join(wrong) or 'types'}")
        if body["client_id"] != self.client_id or not hmac.compare_digest(body["client_secret"], self.client_secret):
            self.violation("tokens: wrong client credentials")
            raise _oauth_error(401, "invalid_client", "Unknown client or wrong secret")
        now = self.clock.timestamp()
        with self.lock:
            if grant == "authorization_code":
                rec = self._codes.get(body["code"])
                if rec is None or rec["used"] or rec["expires"] <= now:
                    raise _oauth_error(401, "invalid_grant", "Authorization code is invalid, used or expired")
                rec["used"] = True
                if body["redirect_uri"] != rec["redirect_uri"]:
                    self.violation("tokens: redirect_uri differs from the authorize request")
                    raise _oauth_error(400, "invalid_grant", "redirect_uri does not match")
                return Response(200, self._issue(first=True))
            rec = self._refresh.get(body["refresh_token"])
            if rec is None or rec["revoked"]:
                raise _oauth_error(401, "invalid_grant", "Unknown or revoked refresh token")
            if rec["used"]:
                raise _oauth_error(401, "invalid_grant", "refresh token already used")
            if rec["expires"] <= now:
                raise _oauth_error(401, "invalid_grant", "refresh token expired")
            rec["used"] = True
            return Response(200, self._issue(first=False))

    def _issue(self, first: bool) -> dict:
        now = self.clock.timestamp()
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self._access[access] = {"expires": now + self.access_token_lifetime, "revoked": False,
                                "staff_id": self.me_staff_id}
        self._refresh[refresh] = {"expires": now + self.refresh_token_lifetime, "revoked": False, "used": False}
        answer = {"access_token": access, "token_type": "Bearer", "scope": "firm", "refresh_token": refresh,
                  "expires_in": self.access_token_lifetime}
        if first:
            answer["firm_uuid"] = self.firm_uuid
        return answer

    # -- paging -------------------------------------------------------------------------------------
    def _page_size(self, req: Request) -> int:
        raw = req.param("page_size")
        if raw is None:
            return DEFAULT_PAGE_SIZE
        size = _as_int(raw) if raw.isdigit() else None
        if size is None or not 1 <= size <= MAX_PAGE_SIZE:
            raise self._refuse(400, f"page_size must be an integer from 1 to {MAX_PAGE_SIZE}, got {raw!r}",
                               {"parameter": "page_size"})
        return size

    def _updated_after(self, req: Request) -> datetime | None:
        raw = req.param("filter[updated_after]")
        if raw is None:
            return None
        parsed = parse_iso(raw)
        if parsed is None:
            raise self._refuse(400, f"filter[updated_after] is not an ISO 8601 date/time: {raw!r}",
                               {"parameter": "filter[updated_after]"})
        return parsed

    def _enum_param(self, req: Request, name: str, values: set[str]) -> str | None:
        raw = req.param(name)
        if raw is not None and raw not in values:
            raise self._refuse(400, f"{name} must be one of {sorted(values)}, got {raw!r}", {"parameter": name})
        return raw

    def _list(self, req: Request, candidates: Callable[[], list], fetch: Callable[[Any], dict | None],
              render: Callable[[dict], dict]) -> Response:
        """One page of a listing. The first page freezes a shuffled order; page_token walks it.

        Call with the filters already validated; `candidates` runs under the lock on the first page only.
        """
        size = self._page_size(req)
        if self.serve_at_most:
            size = min(size, self.serve_at_most)
        filters = sorted((k, tuple(v)) for k, v in req.query.items() if k not in _PAGING)
        token = req.param("page_token")
        with self.lock:
            if token is None:
                ids = candidates()
                self._order_rng.shuffle(ids)
                key = secrets.token_hex(6)
                snap = {"ids": ids, "path": req.path, "filters": filters}
                self._snapshots[key] = snap
                while len(self._snapshots) > _SNAPSHOTS_KEPT:
                    self._snapshots.popitem(last=False)
                offset = 0
            else:
                key, offset = self._decode_token(token)
                snap = self._snapshots.get(key)
                # With bare next links the token stands for the first page's filters; field[...]
                # options are the request's own (a client that does not send them again gets none).
                kept = self.bare_next_links and snap is not None and all(k.startswith("field[") for k, _ in filters)
                if snap is None or snap["path"] != req.path or (snap["filters"] != filters and not kept):
                    raise self._refuse(400, "page_token is invalid, expired or does not match the query",
                                       {"parameter": "page_token"})
            page = []
            for item_id in snap["ids"][offset:offset + size]:
                record = fetch(item_id)
                if record is not None:
                    page.append(render(record))
            self._pages_served += 1
            pages_served = self._pages_served
        headers = {}
        if offset + size < len(snap["ids"]):
            params = [(k, v) for k, vs in req.query.items() if k != "page_token" for v in vs]
            if self.bare_next_links:
                params = []
            params.append(("page_token", self._encode_token(key, offset + size)))
            headers["Link"] = f'<{req.base_url}{req.path}?{urlencode(params)}>; rel="next"'
        if not self.item_count_every or pages_served % self.item_count_every:
            headers["Item-Count"] = str(len(snap["ids"]))
        return Response(200, page, headers)

    @staticmethod
    def _encode_token(key: str, offset: int) -> str:
        # standard base64, so the token carries '+', '/' or '=' that must survive URL encoding
        return base64.b64encode(json.dumps({"s": key, "o": offset}).encode() + b"\xfb").decode()

    def _decode_token(self, token: str) -> tuple[str, int]:
        try:
            raw = base64.b64decode(token, validate=True)
            data = json.loads(raw[:-1])
            return str(data["s"]), int(data["o"])
        except (ValueError, KeyError, TypeError):
            raise self._refuse(400, "page_token is malformed", {"parameter": "page_token"})

    # -- rendering ----------------------------------------------------------------------------------
    def _render_case(self, case: dict, client_fields: list[str] | None) -> dict:
        n = _as_int(case.get("id")) or 0
        balance = case.get("outstanding_balance")
        if balance is not None and n % 4 == 1:
            balance = f"{float(balance):.2f}"  # seen live: numbers as strings
        staff = []
        for entry in case.get("staff") or []:
            rate = entry.get("case_rate")
            staff.append({"id": str(entry["id"]) if n % 3 == 0 else entry["id"],
                          "lead_lawyer": bool(entry.get("lead_lawyer")),
                          "originating_lawyer": bool(entry.get("originating_lawyer")),
                          "case_rate": None if rate is None else str(rate)})
        clients = []
        for client_id in case.get("clients") or []:
            if client_fields is None:
                clients.append({"id": client_id})
                continue
            client = self.clients.get(client_id) or {}
            out = {"id": client_id}
            for name in client_fields:
                if name != "id":
                    out[name] = render_ts(client.get(name), n + 7) if name.endswith("_at") else client.get(name)
            clients.append(_without_empty(out))
        return self._served("case", case.get("id"), _without_empty({
            "id": case.get("id"), "name": case.get("name"), "case_number": case.get("case_number"),
            "description": case.get("description"), "opened_date": case.get("opened_date"),
            "closed_date": case.get("closed_date"), "sol_date": case.get("sol_date"),
            "practice_area": case.get("practice_area"), "case_stage": case.get("case_stage"),
            "status": case.get("status"), "outstanding_balance": balance,
            "billing_contact": case.get("billing_contact"), "billing_type": case.get("billing_type", ""),
            "clients": clients, "companies": [{"id": c} for c in case.get("companies") or []],
            "staff": staff, "custom_field_values": case.get("custom_field_values") or [],
            "office": case.get("office"),
            "created_at": render_ts(case.get("created_at"), n), "updated_at": render_ts(case.get("updated_at"), n + 1),
        }))

    def _render_client(self, c: dict, on: dict[int, list[int]]) -> dict:
        """A client (person) as GET /clients renders it: `cases` lists every case it is on (`on`)."""
        n = _as_int(c.get("id")) or 0
        cases = [{"id": case_id} for case_id in on.get(c["id"], [])]
        out = {name: c.get(name) for name in CLIENT_RECORD_FIELDS}
        out.update(id=c["id"], archived=bool(c.get("archived", False)), cases=cases,
                   custom_field_values=c.get("custom_field_values") or [],
                   created_at=render_ts(c.get("created_at"), n + 5), updated_at=render_ts(c.get("updated_at"), n + 6))
        return _without_empty(out)

    def _render_staff(self, s: dict) -> dict:
        n = _as_int(s.get("id")) or 0
        rate = s.get("default_hourly_rate")
        return _without_empty({
            "id": s["id"], "email": s.get("email"), "first_name": s.get("first_name"),
            "middle_initial": s.get("middle_initial"), "last_name": s.get("last_name"),
            "address": s.get("address"), "cell_phone_number": s.get("cell_phone_number"),
            "work_phone_number": s.get("work_phone_number"), "home_phone_number": s.get("home_phone_number"),
            "type": s.get("type"), "title": s.get("title"), "active": s.get("active", True),
            "default_hourly_rate": str(rate) if rate is not None and n % 2 else rate,
            "created_at": render_ts(s.get("created_at"), n + 2), "updated_at": render_ts(s.get("updated_at"), n + 3),
        })

    @staticmethod
    def _render_named(r: dict) -> dict:
        n = _as_int(r.get("id")) or 0
        return {"id": r["id"], "name": r.get("name"), "created_at": render_ts(r.get("created_at"), n),
                "updated_at": render_ts(r.get("updated_at"), n + 4)}

    def _render_document(self, d: dict) -> dict:
        return _without_empty({
            "id": d["id"], "name": d["name"], "filename": d["filename"], "path": d["path"],
            "description": d["description"], "assigned_date": d["assigned_date"], "case": {"id": d["case_id"]},
            "created_at": render_ts(d["created_at"], d["id"]), "updated_at": render_ts(d["updated_at"], d["id"] + 1),
            "self_url": f"/v1/documents/{d['id']}", "folder": {"id": d["folder_id"]}})

    @staticmethod
    def _render_version(d: dict, v: dict) -> dict:
        return {"id": v["id"], "version": v["version"], "document": {"id": d["id"]},
                "self_url": f"/v1/documents/{d['id']}/versions/{v['version']}",
                "created_at": render_ts(v["created_at"], v["id"]), "updated_at": render_ts(v["updated_at"], v["id"] + 2)}

    @staticmethod
    def _render_note(note: dict) -> dict:
        return {"id": note["id"], "subject": note["subject"], "note": note["note"], "archived": False,
                "date": note["date"], "client": None, "company": None, "case": {"id": note["case_id"]},
                "created_by": {"id": note["created_by"]}, "updated_by": {"id": note["created_by"]},
                "created_at": render_ts(note["created_at"], note["id"]),
                "updated_at": render_ts(note["updated_at"], note["id"] + 3)}

    # -- /v1: firm, staff, stages, areas ------------------------------------------------------------
    @api("GET", "/me")
    def get_me(self, req: Request) -> dict:
        staff_id = self._authenticate(req)
        with self.lock:
            return self._render_staff(self.staff[staff_id])

    @api("GET", "/firm")
    def get_firm(self, req: Request) -> dict:
        return {"name": self.firm.get("name"), "url": self.firm.get("url")}

    @api("GET", "/staff", _PAGING | {"filter[updated_after]", "filter[status]"})
    def list_staff(self, req: Request) -> Response:
        after = self._updated_after(req)
        status = self._enum_param(req, "filter[status]", {"active", "inactive"})
        if status is None and self.staff_active_only:
            status = "active"

        def candidates():
            return [sid for sid, s in self.staff.items()
                    if (after is None or _aware(s.get("updated_at")) >= after)
                    and (status is None or bool(s.get("active", True)) == (status == "active"))]

        return self._list(req, candidates, self.staff.get, self._render_staff)

    @api("GET", r"/staff/(\d+)")
    def get_staff(self, req: Request, staff_id: str) -> dict:
        with self.lock:
            return self._render_staff(self._lookup(self.staff, staff_id, "Staff"))

    def _named_list(self, req: Request, table: dict[int, dict]) -> Response:
        after = self._updated_after(req)
        return self._list(req, lambda: [i for i, r in table.items()
                                        if after is None or _aware(r.get("updated_at")) >= after],
                          table.get, self._render_named)

    @api("GET", "/case_stages", _PAGING | {"filter[updated_after]"})
    def list_case_stages(self, req: Request) -> Response:
        return self._named_list(req, self.case_stages)

    @api("GET", "/practice_areas", _PAGING | {"filter[updated_after]"})
    def list_practice_areas(self, req: Request) -> Response:
        return self._named_list(req, self.practice_areas)

    # -- /v1: cases ---------------------------------------------------------------------------------
    def _field_list(self, req: Request, name: str, allowed: frozenset) -> list[str] | None:
        raw = req.param(name)
        if raw is None:
            return None
        fields = [f.strip() for f in raw.split(",") if f.strip()]
        unknown = [f for f in fields if f not in allowed]
        if unknown or not fields:
            raise self._refuse(400, f"{name}: unknown fields {unknown}", {"parameter": name})
        return fields

    @api("GET", "/cases", _PAGING | {"filter[updated_after]", "filter[status]", "field[client]",
                                     "field[custom_field]"})
    def list_cases(self, req: Request) -> Response:
        after = self._updated_after(req)
        status = self._enum_param(req, "filter[status]", {"open", "closed"})
        if status is None and self.cases_open_only:
            status = "open"
        client_fields = self._field_list(req, "field[client]", CLIENT_FIELDS)
        self._field_list(req, "field[custom_field]", CUSTOM_FIELD_FIELDS)

        def candidates():
            if after is None and status is None:
                return list(self.cases)
            return [cid for cid, c in self.cases.items()
                    if (after is None or _aware(c.get("updated_at")) >= after
                        or _aware(c.get("created_at")) >= after)
                    and (status is None or c.get("status") == status)]

        return self._list(req, candidates, self.cases.get, lambda c: self._render_case(c, client_fields))

    @api("GET", r"/cases/(\d+)", frozenset({"field[client]", "field[custom_field]"}))
    def get_case(self, req: Request, case_id: str) -> dict:
        client_fields = self._field_list(req, "field[client]", CLIENT_FIELDS)
        self._field_list(req, "field[custom_field]", CUSTOM_FIELD_FIELDS)
        with self.lock:
            return self._render_case(self._case_or_404(case_id), client_fields)

    # -- /v1: clients -------------------------------------------------------------------------------
    @api("GET", "/clients", _PAGING | {"filter[updated_after]"} | CLIENT_FILTERS)
    def list_clients(self, req: Request) -> Response:
        after = self._updated_after(req)
        wanted = {name[len("filter["):-1]: req.param(name) for name in CLIENT_FILTERS if req.param(name) is not None}

        def candidates():
            return [cid for cid, c in self.clients.items()
                    if (after is None or _aware(c.get("updated_at")) >= after or _aware(c.get("created_at")) >= after)
                    and all(c.get(field) == value for field, value in wanted.items())]

        with self.lock:
            on = self._cases_by_client()
        return self._list(req, candidates, self.clients.get, lambda c: self._render_client(c, on))

    @api("GET", r"/clients/(\d+)")
    def get_client(self, req: Request, client_id: str) -> dict:
        with self.lock:
            return self._render_client(self._lookup(self.clients, client_id, "Client"), self._cases_by_client())

    def _cases_by_client(self) -> dict[int, list[int]]:
        on: dict[int, list[int]] = {}
        for case in self.cases.values():
            for client_id in case.get("clients") or []:
                on.setdefault(client_id, []).append(_as_int(case.get("id")))
        return on

    # -- /v1: documents -----------------------------------------------------------------------------
    def _folder(self, case_id: int, names: list[str]) -> dict:
        """The folder at `names` below the case's root folder, creating missing ones."""
        parent = None
        path = ROOT_FOLDER
        for name in [ROOT_FOLDER, *names]:
            if parent is not None:
                path = f"{path}/{name}"
            found = next((f for f in self.folders.values()
                          if f["case_id"] == case_id and f["parent_id"] == (parent and parent["id"])
                          and f["name"] == name), None)
            if found is None:
                found = {"id": self._take_id("folder"), "case_id": case_id, "name": name,
                         "parent_id": parent and parent["id"], "path": path}
                self.folders[found["id"]] = found
            parent = found
        return parent

    def _new_version(self, doc: dict, req: Request) -> dict:
        now = self.clock.now()
        number = len(doc["versions"]) + 1
        key = f"{doc['case_id']}/{doc['id']}/v{number}-{secrets.token_hex(8)}"
        version = {"id": self._take_id("version"), "version": number, "created_at": now, "updated_at": now,
                   "key": key, "put_headers": {"x-amz-acl": "private", "x-amz-server-side-encryption": "AES256"},
                   "uploaded": False, "sha256": None, "size": None, "data": None}
        doc["versions"].append(version)
        doc["bytes_sha256"], doc["size"] = None, None
        self._s3_objects[key] = (doc["id"], number)
        return version

    def _upload_fields(self, req: Request, version: dict) -> dict:
        return {"put_url": self._presign(req, "PUT", version["key"], self.put_url_ttl),
                "put_headers": dict(version["put_headers"])}

    @api("POST", r"/cases/(\d+)/documents")
    def create_document(self, req: Request, case_id: str) -> Response:
        body = self._json_object(req, {"path", "filename"}, {"description", "assigned_date"})
        parts = body["path"].split("/")
        if not all(p.strip() for p in parts):
            raise self._refuse(422, f"document path {body['path']!r} has an empty segment", {"pointer": "/path"})
        if not body["filename"].strip():
            raise self._refuse(422, "document filename is empty", {"pointer": "/filename"})
        assigned = body.get("assigned_date")
        if assigned is not None:
            try:
                date.fromisoformat(assigned)
            except ValueError:
                raise self._refuse(422, f"assigned_date {assigned!r} is not an ISO date", {"pointer": "/assigned_date"})
        with self.lock:
            case = self._case_or_404(case_id)
            folder = self._folder(int(case_id), parts[:-1])
            now = self.clock.now()
            doc = {"id": self._take_id("document"), "case_id": _as_int(case["id"]), "name": parts[-1],
                   "filename": body["filename"], "path": body["path"], "folder_id": folder["id"],
                   "folder_path": folder["path"], "description": body.get("description", ""),
                   "assigned_date": assigned, "created_at": now, "updated_at": now, "versions": [],
                   "bytes_sha256": None, "size": None}
            self.documents[doc["id"]] = doc
            version = self._new_version(doc, req)
            return Response(201, {**self._render_document(doc), **self._upload_fields(req, version)})

    @api("GET", r"/cases/(\d+)/documents", _PAGING)
    def list_case_documents(self, req: Request, case_id: str) -> Response:
        with self.lock:
            self._case_or_404(case_id)
        cid = int(case_id)
        return self._list(req, lambda: [d["id"] for d in self.documents.values() if d["case_id"] == cid],
                          self.documents.get, self._render_document)

    def _document_or_404(self, doc_id: str) -> dict:
        return self._lookup(self.documents, doc_id, "Document")

    @api("GET", r"/documents/(\d+)")
    def get_document(self, req: Request, doc_id: str) -> dict:
        with self.lock:
            return self._render_document(self._document_or_404(doc_id))

    @api("POST", r"/documents/(\d+)/versions")
    def create_version(self, req: Request, doc_id: str) -> Response:
        if req.body.strip():  # the reference documents no body; an empty object is tolerated
            self._json_object(req, set(), set())
        with self.lock:
            doc = self._document_or_404(doc_id)
            version = self._new_version(doc, req)
            doc["updated_at"] = version["created_at"]
            return Response(201, {**self._render_version(doc, version), **self._upload_fields(req, version)})

    @api("GET", r"/documents/(\d+)/versions", _PAGING)
    def list_versions(self, req: Request, doc_id: str) -> Response:
        with self.lock:
            doc = self._document_or_404(doc_id)
        by_number = {v["version"]: v for v in doc["versions"]}
        return self._list(req, lambda: list(by_number), by_number.get, lambda v: self._render_version(doc, v))

    def _data_redirect(self, req: Request, version: dict, ttl: int) -> Response:
        if not version["uploaded"]:
            raise HttpError(404, self.error_body("Document has no data"))
        return Response(302, b"", {"Location": self._presign(req, "GET", version["key"], ttl)})

    @api("GET", r"/documents/(\d+)/data")
    def get_document_data(self, req: Request, doc_id: str) -> Response:
        with self.lock:
            doc = self._document_or_404(doc_id)
            return self._data_redirect(req, doc["versions"][-1], self.data_url_ttl)

    @api("GET", r"/documents/(\d+)/versions/(\d+)/data")
    def get_version_data(self, req: Request, doc_id: str, number: str) -> Response:
        with self.lock:
            doc = self._document_or_404(doc_id)
            if not 1 <= int(number) <= len(doc["versions"]):
                raise HttpError(404, self.error_body("Version not found"))
            return self._data_redirect(req, doc["versions"][int(number) - 1], 3600)

    # -- /v1: notes ---------------------------------------------------------------------------------
    @api("POST", r"/cases/(\d+)/notes")
    def create_note(self, req: Request, case_id: str) -> Response:
        body = self._json_object(req, {"subject", "note", "date"}, set())
        for key in ("subject", "note"):
            if not body[key].strip():
                raise self._refuse(422, f"note {key} is blank", {"pointer": f"/{key}"})
        if parse_iso(body["date"]) is None:
            raise self._refuse(422, f"note date {body['date']!r} is not ISO 8601", {"pointer": "/date"})
        if "T" not in body["date"]:
            self.violation(f"note date {body['date']!r} is a bare date; the contract says date-time")
        staff_id = self._authenticate(req)
        with self.lock:
            case = self._case_or_404(case_id)
            now = self.clock.now()
            note = {"id": self._take_id("note"), "case_id": _as_int(case["id"]), "subject": body["subject"],
                    "note": body["note"], "date": body["date"], "created_by": staff_id, "created_at": now,
                    "updated_at": now}
            self.notes[note["id"]] = note
            return Response(200, self._render_note(note))  # 200, not 201, as documented

    @api("GET", r"/cases/(\d+)/notes", _PAGING)
    def list_case_notes(self, req: Request, case_id: str) -> Response:
        with self.lock:
            self._case_or_404(case_id)
        cid = int(case_id)
        return self._list(req, lambda: [n["id"] for n in self.notes.values() if n["case_id"] == cid],
                          self.notes.get, self._render_note)

    @api("GET", r"/notes/(\d+)")
    def get_note(self, req: Request, note_id: str) -> dict:
        with self.lock:
            return self._render_note(self._lookup(self.notes, note_id, "Note"))

    # -- S3 stand-in --------------------------------------------------------------------------------
    def _signature(self, method: str, key: str, amz_date: str, expires: str) -> str:
        message = f"{method}\n{key}\n{amz_date}\n{expires}".encode()
        return hmac.new(self._s3_secret, message, hashlib.sha256).hexdigest()

    def _presign(self, req: Request, method: str, key: str, ttl: int) -> str:
        amz_date = self.clock.now().strftime("%Y%m%dT%H%M%SZ")
        query = {"X-Amz-Algorithm": "AWS4-HMAC-SHA256", "X-Amz-Date": amz_date, "X-Amz-Expires": str(ttl),
                 "X-Amz-SignedHeaders": "host", "X-Amz-Signature": self._signature(method, key, amz_date, str(ttl))}
        base = req.base_url.replace("127.0.0.1", self.s3_host)
        return f"{base}/s3/{S3_BUCKET}/{key}?{urlencode(query)}"

    def _s3_check(self, req: Request, bucket: str, key: str) -> tuple[dict, dict]:
        """Verify the pre-signed query (403 when forged or expired); return (document, version)."""
        amz_date, ttl = req.param("X-Amz-Date") or "", req.param("X-Amz-Expires") or ""
        signature = req.param("X-Amz-Signature") or ""
        if bucket != S3_BUCKET or not hmac.compare_digest(signature, self._signature(req.method, key, amz_date, ttl)):
            raise _s3_error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match.")
        signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        if self.clock.now() > signed_at + timedelta(seconds=int(ttl)):
            raise _s3_error(403, "AccessDenied", "Request has expired")
        if req.headers.get("Authorization"):
            self.violation(f"S3 {req.method}: Authorization header sent to a pre-signed URL")
            raise _s3_error(400, "InvalidArgument", "Only one auth mechanism allowed")
        with self.lock:
            doc_id, number = self._s3_objects[key]
            doc = self.documents[doc_id]
            return doc, doc["versions"][number - 1]

    @route("PUT", r"/s3/([^/]+)/(.+)")
    def s3_put(self, req: Request, bucket: str, key: str) -> Response:
        doc, version = self._s3_check(req, bucket, key)
        if req.chunked:
            self.violation("S3 PUT: chunked transfer encoding")
            raise _s3_error(501, "NotImplemented", "A header you provided implies functionality that is not "
                                                   "implemented: Transfer-Encoding")
        if req.content_length is None:
            self.violation("S3 PUT: no Content-Length")
            raise _s3_error(411, "MissingContentLength", "You must provide the Content-Length HTTP header.")
        if req.content_type != "application/octet-stream":
            self.violation(f"S3 PUT: Content-Type {req.content_type or 'none'!r}, not application/octet-stream")
            raise _s3_error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match.")
        for name, value in version["put_headers"].items():
            if req.headers.get(name) != value:
                self.violation(f"S3 PUT: header {name} missing or altered")
                raise _s3_error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match.")
        sha, md5, size = hashlib.sha256(), hashlib.md5(), 0
        kept: bytearray | None = bytearray()
        while True:  # stream: a 1 GB upload never sits in memory whole; a short one raises ClientGone
            chunk = req.stream.read(1 << 20)
            if not chunk:
                break
            sha.update(chunk)
            md5.update(chunk)
            size += len(chunk)
            if kept is not None:
                kept += chunk
                if len(kept) > KEEP_BYTES_LIMIT:
                    kept = None
        with self.lock:
            version.update(uploaded=True, sha256=sha.hexdigest(), size=size,
                           data=bytes(kept) if kept is not None else None, updated_at=self.clock.now())
            if version is doc["versions"][-1]:
                doc["bytes_sha256"], doc["size"] = version["sha256"], size
        return Response(200, b"", {"ETag": f'"{md5.hexdigest()}"'})

    @route("GET", r"/s3/([^/]+)/(.+)")
    def s3_get(self, req: Request, bucket: str, key: str) -> Response:
        _, version = self._s3_check(req, bucket, key)
        if not version["uploaded"]:
            raise _s3_error(404, "NoSuchKey", "The specified key does not exist.")
        if version["data"] is None:
            raise _s3_error(501, "NotImplemented", "The sandbox keeps only the sha256 of uploads over 64 MB.")
        return Response(200, version["data"], {"Content-Type": "application/octet-stream",
                                               "ETag": f'"{hashlib.md5(version["data"]).hexdigest()}"'})
