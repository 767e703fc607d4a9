"""The Case Status side of the sandbox: a strict emulator of API-NOTES.md Part 2.

Strict means the client is held to the letter of the contract: an unknown query parameter, field or
auth scheme is refused (and logged in `violations`), so a client that passes here depends on nothing
the contract does not promise. Every stage write is kept in `stage_changes`, because on the real
service each one sends a survey to a real client.

Ids start at different bases per resource so that a client mixing up a Case Status id with a MyCase
id, or a case id with a user id, fails loudly instead of by coincidence.
"""
from __future__ import annotations

import copy
import hashlib
import hmac
import re
import secrets
from datetime import date, datetime, timezone
from typing import Any, Iterator
from urllib.parse import quote

from .core import Clock, HttpError, Request, Response, Service, route

ROLES = ("attorney", "paralegal", "case_manager", "admin")
CASE_STATUSES = ("open", "closed")
DEFAULT_PAGE_SIZE = 10
PAGE_NUMBER = "page[number]"
PAGE_SIZE = "page[size]"
PAGING = frozenset({PAGE_NUMBER, PAGE_SIZE})

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

USER_FIELDS = ("email", "first_name", "last_name", "role")
CASE_REQUIRED = ("integration_id", "readable_id", "primary_attorney_email")
# Create defaults; their keys are also every field a create or PATCH may carry.
CASE_DEFAULTS: dict[str, Any] = {
    "integration_id": None, "readable_id": None, "description": None, "case_date": None,
    "practice_area": None, "stage": None, "primary_attorney_email": None, "attorney_emails": [],
    "paralegal_emails": [], "clients": [], "status": "open", "closed_date": None,
}
CLIENT_FIELDS = ("first_name", "last_name", "email", "cell_phone")

FIRST_USER_ID = 301
FIRST_CASE_ID = 70001
FIRST_MESSAGE_ID = 5001
FIRST_FILE_ID = 9001

GENERATED_BLOCK = 1 << 20  # generated file data is addressed in blocks of this size
STORED_CHUNK = 256 * 1024


def timestamp(dt: datetime) -> str:
    """How Case Status renders a moment: UTC, milliseconds, Z."""
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _parse_timestamp(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _moment(value: datetime | str | None, default: datetime) -> datetime:
    if value is None:
        return default
    if isinstance(value, str):
        value = _parse_timestamp(value)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def generated_bytes(seed: str, size: int, chunk: int = GENERATED_BLOCK) -> Iterator[bytes]:
    """Deterministic pseudo-random bytes, block by block, so a 1 GB file never sits in memory."""
    block = 0
    left = size
    while left > 0:
        data = hashlib.shake_128(f"{seed}:{block}".encode()).digest(min(GENERATED_BLOCK, left))
        for start in range(0, len(data), chunk):
            yield data[start:start + chunk]
        left -= len(data)
        block += 1


def _ascii_filename(name: str) -> str:
    cleaned = "".join(c if 32 <= ord(c) < 127 and c not in '"\\/' else "_" for c in name)
    return cleaned or "download"


class CaseStatusService(Service):
    """Case Status partner API (users, cases, messages, files) plus its key-less file download links."""

    name = "casestatus"

    def __init__(self, clock: Clock, api_key: str):
        super().__init__(clock)
        self.api_key = api_key
        self.retry_after = 1  # the contract promises Retry-After on every 429
        # knobs
        self.newest_first = False
        self.file_url_ttl = 300
        self.max_page_size = 100
        # the alternatives of API-NOTES Part 3 (all off: the contract as written)
        self.ignore_page_size = False  # serve DEFAULT_PAGE_SIZE a page whatever page[size] says
        self.ignore_page_number = False  # every page is page 1
        self.ignore_integration_filter = False  # GET /v1/api/cases?integration_id= lists all cases
        self.no_conflict = False  # a repeated integration_id on create makes a second case, no 409
        # state (guarded by self.lock); each dict's insertion order is its id order
        self.users: dict[int, dict] = {}
        self.cases: dict[int, dict] = {}
        self.messages: dict[int, dict] = {}
        self.files: dict[int, dict] = {}
        self.practice_areas: dict[str, int] = {}
        self.stage_changes: list[dict] = []
        self._orders: dict[str, list[int]] = {"users": [], "cases": [], "messages": [], "files": []}
        self._next = {"users": FIRST_USER_ID, "cases": FIRST_CASE_ID, "messages": FIRST_MESSAGE_ID,
                      "files": FIRST_FILE_ID}
        self._user_by_email: dict[str, int] = {}
        self._case_by_iid: dict[str, int] = {}
        self._held_messages: dict[str, list[dict]] = {}
        self._held_files: dict[str, list[dict]] = {}
        self._file_data: dict[int, dict] = {}  # file id -> {"data": bytes|None, "seed": str, "size": int}
        self._generated = 0
        self._sha_cache: dict[int, str] = {}
        self._url_secret = secrets.token_bytes(32)

    # -- service overrides --------------------------------------------------------------------------
    def error_body(self, message: str, source: dict | None = None) -> Any:
        source = source or {}
        field = source.get("field") or source.get("parameter") or source.get("pointer")
        return {"errors": [{"field": field, "message": message}]}

    def rate_limited_response(self) -> Response:
        return Response(429, self.error_body("Too Many Requests"), {"Retry-After": str(self.retry_after or 1)})

    def is_rate_limited_path(self, path: str) -> bool:
        return path.startswith("/v1/api/")  # file links are served by a file host, not the API

    # -- request plumbing ---------------------------------------------------------------------------
    def _error(self, status: int, field: str | None, message: str, headers: dict | None = None,
               violation: bool = True, **extra: Any) -> HttpError:
        """An error answer; a client mistake the contract rules out is also logged as a violation."""
        if violation:
            self.violation(f"casestatus: {status} {field}: {message}")
        body = {"errors": [{"field": field, "message": message}], **extra}
        return HttpError(status, body, headers)

    def _begin(self, req: Request, params: frozenset[str] = frozenset()) -> None:
        """Auth, then the query: every endpoint refuses parameters it does not know."""
        header = req.headers.get("Authorization")
        if not header:
            raise self._error(401, "Authorization", "Missing API key", {"WWW-Authenticate": "ApiKey"})
        scheme, _, key = header.partition(" ")
        if scheme != "ApiKey":
            raise self._error(401, "Authorization", f"Unsupported authorization scheme {scheme!r}; use ApiKey",
                              {"WWW-Authenticate": "ApiKey"})
        if not hmac.compare_digest(key.strip().encode(), self.api_key.encode()):
            raise self._error(401, "Authorization", "Invalid API key", {"WWW-Authenticate": "ApiKey"},
                              violation=False)
        unknown = sorted(set(req.query) - params)
        if unknown:
            raise self._error(400, unknown[0], f"Unknown query parameter {unknown[0]!r}")

    def _body(self, req: Request, optional: bool = False) -> dict:
        """The JSON object a write carries; `optional` lets an empty body stand for {}."""
        if optional and not req.body:
            return {}
        if req.content_type != "application/json":
            raise self._error(415, None, "Content-Type must be application/json")
        body = req.json()
        if not isinstance(body, dict):
            raise self._error(422, None, "Body must be a JSON object")
        return body

    def _page(self, req: Request) -> tuple[int, int]:
        try:
            number = int(req.param(PAGE_NUMBER, "1"))
        except ValueError:
            raise self._error(400, PAGE_NUMBER, "page[number] must be an integer")
        try:
            size = int(req.param(PAGE_SIZE, str(DEFAULT_PAGE_SIZE)))
        except ValueError:
            raise self._error(400, PAGE_SIZE, "page[size] must be an integer")
        if number < 1:
            raise self._error(400, PAGE_NUMBER, "page[number] starts at 1")
        if not 1 <= size <= self.max_page_size:
            raise self._error(400, PAGE_SIZE, f"page[size] must be between 1 and {self.max_page_size}")
        return (1 if self.ignore_page_number else number), (DEFAULT_PAGE_SIZE if self.ignore_page_size else size)

    def _page_of(self, req: Request, kind: str) -> list[int]:
        """The ids on the requested page, in id order (or reversed with `newest_first`)."""
        number, size = self._page(req)
        with self.lock:
            order = self._orders[kind]
            start = (number - 1) * size
            if self.newest_first:
                stop = max(len(order) - start, 0)
                return order[max(stop - size, 0):stop][::-1]
            return order[start:start + size]

    def _new_id(self, kind: str) -> int:
        new = self._next[kind]
        self._next[kind] += 1
        self._orders[kind].append(new)
        return new

    # -- validation ---------------------------------------------------------------------------------
    def _string(self, field: str, value: Any, nullable: bool = False) -> str | None:
        if value is None and nullable:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self._error(422, field, "must be a non-empty string" + (" or null" if nullable else ""))
        return value

    def _date(self, field: str, value: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, str) and ISO_DATE.match(value):
            try:
                date.fromisoformat(value)
                return value
            except ValueError:
                pass
        raise self._error(422, field, "must be a date YYYY-MM-DD or null")

    def _email_list(self, field: str, value: Any) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise self._error(422, field, "must be a list of email strings")
        return list(value)

    def _clients(self, value: Any) -> list[dict]:
        if not isinstance(value, list):
            raise self._error(422, "clients", "must be a list")
        clients = []
        for n, item in enumerate(value):
            where = f"clients[{n}]"
            if not isinstance(item, dict):
                raise self._error(422, where, "must be an object")
            unknown = sorted(set(item) - set(CLIENT_FIELDS))
            if unknown:
                raise self._error(422, f"{where}.{unknown[0]}", "unknown field")
            phone = item.get("cell_phone")
            if phone is not None and not (isinstance(phone, str) and E164.match(phone)):
                raise self._error(422, f"{where}.cell_phone", "must be null or an E.164 number like +15551234567")
            email = item.get("email")
            if email is not None and not (isinstance(email, str) and "@" in email):
                raise self._error(422, f"{where}.email", "must be null or an email address")
            clients.append({
                "first_name": self._string(f"{where}.first_name", item.get("first_name")),
                "last_name": self._string(f"{where}.last_name", item.get("last_name")),
                "email": email,
                "cell_phone": phone,
            })
        return clients

    def _case_fields(self, body: dict, creating: bool) -> dict:
        """Checks a create or PATCH body field by field; returns the values to store."""
        unknown = sorted(set(body) - set(CASE_DEFAULTS))
        if unknown:
            raise self._error(422, unknown[0], "unknown field")
        if creating:
            missing = [f for f in CASE_REQUIRED if f not in body]
            if missing:
                raise self._error(422, missing[0], "is required")
        out: dict[str, Any] = {}
        for field, value in body.items():
            if field in CASE_REQUIRED:
                out[field] = self._string(field, value)
            elif field in ("description", "practice_area", "stage"):
                out[field] = self._string(field, value, nullable=True)
            elif field in ("case_date", "closed_date"):
                out[field] = self._date(field, value)
            elif field in ("attorney_emails", "paralegal_emails"):
                out[field] = self._email_list(field, value)
            elif field == "clients":
                out[field] = self._clients(value)
            elif field == "status":
                if value not in CASE_STATUSES:
                    raise self._error(422, field, "must be one of " + ", ".join(CASE_STATUSES))
                out[field] = value
        return out

    def _check_attorney(self, email: str) -> None:
        if email.lower() not in self._user_by_email:
            # a real runtime condition (the attorney has no Case Status account), not a client bug
            raise self._error(422, "primary_attorney_email", "is not a user of this firm", violation=False)

    # -- state changes (callers hold self.lock) ------------------------------------------------------
    def _add_user(self, body: dict) -> dict:
        unknown = sorted(set(body) - set(USER_FIELDS))
        if unknown:
            raise self._error(422, unknown[0], "unknown field")
        for field in USER_FIELDS:
            if field not in body:
                raise self._error(422, field, "is required")
            self._string(field, body[field])
        if "@" not in body["email"]:
            raise self._error(422, "email", "must be an email address")
        if body["role"] not in ROLES:
            raise self._error(422, "role", "must be one of " + ", ".join(ROLES))
        key = body["email"].strip().lower()
        if key in self._user_by_email:
            raise self._error(409, "email", "A user with this email already exists", violation=False)
        user = {"id": self._new_id("users"), **{f: body[f] for f in USER_FIELDS}}
        self.users[user["id"]] = user
        self._user_by_email[key] = user["id"]
        return user

    def _add_case(self, body: dict) -> dict:
        fields = self._case_fields(body, creating=True)
        existing = self._case_by_iid.get(fields["integration_id"])
        if existing is not None and not self.no_conflict:
            raise self._error(409, "integration_id", "A case with this integration_id already exists",
                              violation=False, id=existing)
        self._check_attorney(fields["primary_attorney_email"])
        now = timestamp(self.clock.now())
        case = {"id": self._new_id("cases"), **copy.deepcopy(CASE_DEFAULTS), **fields,
                "created_at": now, "updated_at": now}
        self.cases[case["id"]] = case
        self._note_practice_area(case["practice_area"])
        if case["stage"] is not None:
            self._record_stage(case, None, case["stage"])
        if existing is None:  # a second case for an integration_id (no_conflict) is never the one found
            self._case_by_iid[case["integration_id"]] = case["id"]
        self._reveal(case)
        return case

    def _update_case(self, case: dict, fields: dict) -> None:
        """Applies checked fields; every refusal happens before anything changes."""
        old_iid = case["integration_id"]
        new_iid = fields.get("integration_id", old_iid)
        if new_iid != old_iid and new_iid in self._case_by_iid:
            raise self._error(409, "integration_id", "A case with this integration_id already exists",
                              violation=False, id=self._case_by_iid[new_iid])
        if "primary_attorney_email" in fields:
            self._check_attorney(fields["primary_attorney_email"])
        if "stage" in fields:
            if fields["stage"] == case["stage"]:
                self.violation(f"casestatus: case {case['id']}: stage {case['stage']!r} written again "
                               "(each stage write sends the client a survey)")
            self._record_stage(case, case["stage"], fields["stage"])
        case.update(copy.deepcopy(fields))
        case["updated_at"] = timestamp(self.clock.now())
        self._note_practice_area(case["practice_area"])
        if new_iid != old_iid:
            del self._case_by_iid[old_iid]
            self._case_by_iid[new_iid] = case["id"]
            self._reveal(case)

    def _note_practice_area(self, name: str | None) -> None:
        if name is not None and name not in self.practice_areas:
            self.practice_areas[name] = len(self.practice_areas) + 1

    def _record_stage(self, case: dict, old: str | None, new: str | None) -> None:
        self.stage_changes.append({"case_id": case["id"], "integration_id": case["integration_id"],
                                   "old": old, "new": new, "at": self.clock.now()})

    def _reveal(self, case: dict) -> None:
        """Held-back activity for this integration_id becomes visible, taking the next ids in order."""
        created = _parse_timestamp(case["created_at"])
        for message in sorted(self._held_messages.pop(case["integration_id"], []), key=lambda m: m["_sent"]):
            self._publish_message(message, case, created)
        for file in sorted(self._held_files.pop(case["integration_id"], []), key=lambda f: f["_created"]):
            self._publish_file(file, case, created)

    def _publish_message(self, pending: dict, case: dict, not_before: datetime) -> dict:
        message = {"id": self._new_id("messages"), "type": pending["type"], "content": pending["content"],
                   "sent_at": timestamp(pending["_sent"]),
                   "created_at": timestamp(max(pending["_sent"], not_before)),
                   "sender_name": pending["sender_name"], "case_id": case["id"]}
        pending["id"] = message["id"]
        self.messages[message["id"]] = message
        return message

    def _publish_file(self, pending: dict, case: dict, not_before: datetime) -> dict:
        name = pending["file_name"]
        stem_ext = name.rsplit("/", 1)[-1].rsplit(".", 1)
        created = timestamp(max(pending["_created"], not_before))
        record = {"id": self._new_id("files"), "size": pending["size"], "file_name": name,
                  "extension": stem_ext[1].lower() if len(stem_ext) == 2 and stem_ext[0] else "",
                  "content_type": pending["content_type"], "case_id": case["id"],
                  "created_at": created, "updated_at": created}
        pending["id"] = record["id"]
        self.files[record["id"]] = record
        self._file_data[record["id"]] = {"data": pending["_data"], "seed": pending["_seed"],
                                         "size": pending["size"]}
        return record

    # -- rendering ----------------------------------------------------------------------------------
    def _render_message(self, message: dict) -> dict:
        case = self.cases[message["case_id"]]
        out = {k: v for k, v in message.items() if k != "case_id"}
        out["readable_id"] = case["readable_id"]
        out["integration_id"] = case["integration_id"]
        return self._served("message", message["id"], out)

    def _render_file(self, record: dict, base_url: str | None) -> dict:
        case = self.cases[record["case_id"]]
        return self._served("file", record["id"], {
            "id": record["id"], "url": self.download_url(record["id"], base_url), "size": record["size"],
            "file_name": record["file_name"], "extension": record["extension"],
            "content_type": record["content_type"], "case_id": case["id"],
            "case_readable_id": case["readable_id"], "case_practice_area": case["practice_area"],
            "case_integration_id": case["integration_id"],
            "created_at": record["created_at"], "updated_at": record["updated_at"]})

    def download_url(self, file_id: int, base_url: str | None = None) -> str:
        """A fresh key-less link to a file, valid for `file_url_ttl` seconds from now."""
        expires = int(self.clock.timestamp()) + int(self.file_url_ttl)
        return f"{base_url or self.base_url or ''}/downloads/{file_id}?expires={expires}&signature=" \
               f"{self._signature(file_id, expires)}"

    def _signature(self, file_id: int, expires: int) -> str:
        return hmac.new(self._url_secret, f"{file_id}:{expires}".encode(), hashlib.sha256).hexdigest()

    # -- routes: users ------------------------------------------------------------------------------
    @route("GET", r"/v1/api/users")
    def list_users(self, req: Request) -> Response:
        self._begin(req, PAGING)
        with self.lock:
            return Response(200, [dict(self.users[i]) for i in self._page_of(req, "users")])

    @route("POST", r"/v1/api/users")
    def post_user(self, req: Request) -> Response:
        self._begin(req)
        body = self._body(req)
        with self.lock:
            return Response(201, dict(self._add_user(body)))

    # -- routes: cases ------------------------------------------------------------------------------
    @route("GET", r"/v1/api/cases")
    def list_cases(self, req: Request) -> Response:
        self._begin(req, PAGING | {"integration_id"})
        iid = req.param("integration_id")
        if iid is not None and not self.ignore_integration_filter:
            self._page(req)  # paging parameters are still checked
            with self.lock:
                case = self.case_by_integration_id(iid)
            return Response(200, [case] if case else [])
        with self.lock:
            return Response(200, [copy.deepcopy(self.cases[i]) for i in self._page_of(req, "cases")])

    @route("POST", r"/v1/api/cases")
    def post_case(self, req: Request) -> Response:
        self._begin(req)
        body = self._body(req)
        with self.lock:
            return Response(201, copy.deepcopy(self._add_case(body)))

    def _case(self, case_id: str) -> dict:
        case = self.cases.get(int(case_id))
        if case is None:
            raise self._error(404, "id", f"Case {case_id} not found", violation=False)
        return case

    @route("PATCH", r"/v1/api/cases/(\d+)")
    def patch_case(self, req: Request, case_id: str) -> Response:
        self._begin(req)
        body = self._body(req)
        with self.lock:
            case = self._case(case_id)
            self._update_case(case, self._case_fields(body, creating=False))
            return Response(200, copy.deepcopy(case))

    @route("POST", r"/v1/api/cases/(\d+)/close")
    def close_case(self, req: Request, case_id: str) -> Response:
        self._begin(req)
        body = self._body(req)
        unknown = sorted(set(body) - {"closed_date"})
        if unknown:
            raise self._error(422, unknown[0], "unknown field")
        if "closed_date" not in body:
            raise self._error(422, "closed_date", "is required")
        closed = self._date("closed_date", body["closed_date"])  # null, as at create, when no date is known
        with self.lock:
            case = self._case(case_id)
            self._update_case(case, {"status": "closed", "closed_date": closed})
            return Response(200, copy.deepcopy(case))

    @route("POST", r"/v1/api/cases/(\d+)/reopen")
    def reopen_case(self, req: Request, case_id: str) -> Response:
        self._begin(req)
        body = self._body(req, optional=True)
        if body:
            raise self._error(422, sorted(body)[0], "unknown field")
        with self.lock:
            case = self._case(case_id)
            self._update_case(case, {"status": "open", "closed_date": None})
            return Response(200, copy.deepcopy(case))

    # -- routes: activity ---------------------------------------------------------------------------
    @route("GET", r"/v1/api/messages")
    def list_messages(self, req: Request) -> Response:
        self._begin(req, PAGING)
        with self.lock:
            return Response(200, [self._render_message(self.messages[i]) for i in self._page_of(req, "messages")])

    @route("GET", r"/v1/api/files")
    def list_files(self, req: Request) -> Response:
        self._begin(req, PAGING)
        with self.lock:
            return Response(200, [self._render_file(self.files[i], req.base_url)
                                  for i in self._page_of(req, "files")])

    @route("GET", r"/downloads/(\d+)")
    def download(self, req: Request, file_id: str) -> Response:
        """The link from a file record: no API key (sending one leaks it to a file host), expires."""
        if req.headers.get("Authorization"):
            raise self._error(400, "Authorization", "A download link takes no Authorization header")
        expires, signature = req.param("expires", ""), req.param("signature", "")
        if not (expires.isascii() and expires.isdigit()) or not hmac.compare_digest(
                signature.encode(), self._signature(int(file_id), int(expires)).encode()):
            raise self._error(403, "signature", "Invalid download link")
        if self.clock.timestamp() > int(expires):
            raise self._error(403, "expires", "Download link expired; list the file again for a fresh one",
                              violation=False)
        with self.lock:
            record = self.files.get(int(file_id))
            stored = self._file_data.get(int(file_id))
        if record is None or stored is None:
            raise self._error(404, "id", f"File {file_id} not found", violation=False)
        name = record["file_name"]
        headers = {"Content-Type": record["content_type"], "Content-Length": str(stored["size"]),
                   "Content-Disposition": f"attachment; filename=\"{_ascii_filename(name)}\"; "
                                          f"filename*=UTF-8''{quote(name, safe='')}"}
        return Response(200, self._file_chunks(stored), headers)

    @staticmethod
    def _file_chunks(stored: dict) -> Iterator[bytes]:
        data = stored["data"]
        if data is None:
            return generated_bytes(stored["seed"], stored["size"])
        view = memoryview(data)
        return (bytes(view[i:i + STORED_CHUNK]) for i in range(0, len(data), STORED_CHUNK))

    # -- test API (thread-safe) ---------------------------------------------------------------------
    def load_seed(self, users: list[dict] = (), messages: list[dict] = (), files: list[dict] = ()) -> None:
        """Seeds a firm from data.py; activity for cases not created yet is held back until they are."""
        with self.lock:
            for user in users:
                self._add_user({f: user[f] for f in USER_FIELDS})
            for m in messages:
                self.add_message(m["integration_id"], m["type"], m["content"], m["sender_name"], m.get("sent_at"))
            for f in files:
                self.add_file(f["integration_id"], f["file_name"], data=f.get("data"), size=f.get("size"),
                              content_type=f.get("content_type") or "application/octet-stream",
                              created_at=f.get("created_at"))

    def add_message(self, integration_id: str, type: str, content: str, sender_name: str,
                    sent_at: datetime | str | None = None) -> dict:
        """A message as a client or the firm wrote it in Case Status; {"id": None, ...} while held back."""
        if type not in ("incoming", "outgoing"):
            raise ValueError(f"message type must be incoming or outgoing, not {type!r}")
        with self.lock:
            now = self.clock.now()
            pending = {"id": None, "integration_id": str(integration_id), "type": type, "content": content,
                       "sender_name": sender_name, "_sent": _moment(sent_at, now)}
            case = self.case_by_integration_id(pending["integration_id"])
            if case is None:
                self._held_messages.setdefault(pending["integration_id"], []).append(pending)
                return {k: v for k, v in pending.items() if not k.startswith("_")}
            return self._render_message(self._publish_message(pending, self.cases[case["id"]], now))

    def add_file(self, integration_id: str, file_name: str, data: bytes | None = None, size: int | None = None,
                 content_type: str = "application/octet-stream", created_at: datetime | str | None = None) -> dict:
        """A file uploaded in Case Status; with data None and a size, its bytes are generated on download."""
        if data is None and size is None:
            raise ValueError("give the file's data or its size")
        if data is not None and size is not None and size != len(data):
            raise ValueError(f"size {size} does not match the {len(data)} bytes given")
        with self.lock:
            now = self.clock.now()
            self._generated += 1
            pending = {"id": None, "integration_id": str(integration_id), "file_name": file_name,
                       "content_type": content_type, "size": len(data) if data is not None else int(size),
                       "_data": bytes(data) if data is not None else None,
                       "_seed": f"casestatus-file-{self._generated}", "_created": _moment(created_at, now)}
            case = self.case_by_integration_id(pending["integration_id"])
            if case is None:
                self._held_files.setdefault(pending["integration_id"], []).append(pending)
                return {k: v for k, v in pending.items() if not k.startswith("_")}
            return self._render_file(self._publish_file(pending, self.cases[case["id"]], now), self.base_url)

    def file_sha256(self, file_id: int) -> str:
        """The hex sha256 of a file's bytes (generated ones are hashed by streaming, once)."""
        with self.lock:
            stored = self._file_data[file_id]
            cached = self._sha_cache.get(file_id)
        if cached is None:
            digest = hashlib.sha256()
            for chunk in self._file_chunks(stored):
                digest.update(chunk)
            cached = digest.hexdigest()
            with self.lock:
                self._sha_cache[file_id] = cached
        return cached

    def create_case(self, **fields: Any) -> dict:
        """A case created by someone else (another integration, a person); raises HttpError when refused."""
        with self.lock:
            return copy.deepcopy(self._add_case(fields))

    def case_by_integration_id(self, integration_id: str) -> dict | None:
        with self.lock:
            case_id = self._case_by_iid.get(integration_id)
            return copy.deepcopy(self.cases[case_id]) if case_id is not None else None
