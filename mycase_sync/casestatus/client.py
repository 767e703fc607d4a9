"""Every Case Status path, header and field name this project uses, in one place.

API-NOTES.md Part 2 is the contract; its write side is [assumed]. When Case Status
publishes the real paths, this is the only file to change.
"""

from __future__ import annotations

import logging
from typing import Any, BinaryIO
from urllib.parse import parse_qs, urlsplit

import requests

from mycase_sync.errors import ServiceError, SettingRefused
from mycase_sync.http import (BROKEN, DOWNLOAD_CEILING, UNDECLARED_DOWNLOAD_DEADLINE, ServiceSession,
                               check_followable_url, error_detail, json_body, parse_json, raise_for_status)
from mycase_sync.netaddr import is_loopback_url
from mycase_sync.pacing import pace_start
from mycase_sync.values import positive_id

log = logging.getLogger(__name__)

SERVICE = "Case Status"
AUTH_SCHEME = "ApiKey"
PAGE_SIZE = 100  # the largest page[size] the contract allows; a server may serve fewer (see PageWatch)
MAX_PAGES = 20_000  # pages one listing may read in a run, whatever the server answers

USERS = "/v1/api/users"
CASES = "/v1/api/cases"
CASE = "/v1/api/cases/{id}"
CASE_CLOSE = "/v1/api/cases/{id}/close"
CASE_REOPEN = "/v1/api/cases/{id}/reopen"
MESSAGES = "/v1/api/messages"
FILES = "/v1/api/files"
LISTS = (USERS, CASES, MESSAGES, FILES)  # every account has these: a 404 on one means a wrong base URL

# A message (GET /v1/api/messages) and a file (GET /v1/api/files), as the push jobs read them
MSG_TYPE = "type"
MSG_INCOMING = "incoming"  # from the client
MSG_OUTGOING = "outgoing"  # from the firm to the client
MSG_CONTENT = "content"
MSG_SENDER = "sender_name"
MSG_SENT_AT = "sent_at"
MSG_CREATED_AT = "created_at"
MSG_READABLE_ID = "readable_id"
MSG_INTEGRATION_ID = "integration_id"
FILE_URL = "url"  # a key-less download link that expires: fetch it fresh
FILE_SIZE = "size"
FILE_NAME = "file_name"
FILE_EXTENSION = "extension"
FILE_CASE_READABLE_ID = "case_readable_id"
FILE_CASE_INTEGRATION_ID = "case_integration_id"
FILE_CREATED_AT = "created_at"
FILE_UPDATED_AT = "updated_at"
FILE_URL_EXPIRES = ("expires", "Expires")  # a download link's expiry (Unix seconds) in its query, where it says

F_RECORD_ID = "id"  # every listed record's own id
P_PAGE = "page[number]"
P_SIZE = "page[size]"
P_INTEGRATION_ID = "integration_id"

# Case fields we write (POST creates with all, PATCH sends the changed ones)
F_ID = "id"
F_INTEGRATION_ID = "integration_id"
F_READABLE_ID = "readable_id"
F_DESCRIPTION = "description"
F_CASE_DATE = "case_date"
F_PRACTICE_AREA = "practice_area"
F_STAGE = "stage"  # every change sends the client a survey: write it only when it changed
F_PRIMARY_ATTORNEY = "primary_attorney_email"
F_ATTORNEYS = "attorney_emails"
F_PARALEGALS = "paralegal_emails"
F_CLIENTS = "clients"
F_STATUS = "status"  # changed through close/reopen, not PATCH
F_CLOSED_DATE = "closed_date"
CASE_FIELDS = (
    F_INTEGRATION_ID, F_READABLE_ID, F_DESCRIPTION, F_CASE_DATE, F_PRACTICE_AREA, F_STAGE,
    F_PRIMARY_ATTORNEY, F_ATTORNEYS, F_PARALEGALS, F_CLIENTS, F_STATUS, F_CLOSED_DATE,
)
STATUS_OPEN = "open"
STATUS_CLOSED = "closed"
# A client on a case
CLIENT_FIRST_NAME = "first_name"
CLIENT_LAST_NAME = "last_name"
CLIENT_EMAIL = "email"
CLIENT_CELL_PHONE = "cell_phone"  # E.164: clients log in with it
# Users
USER_EMAIL = "email"
ROLE_ATTORNEY = "attorney"
DOWNLOAD_CHUNK = 1024 * 1024


class ListingError(ServiceError):
    """A list that cannot be read to its end: the server repeats a full page, or it never ends."""

    def __init__(self, service: str, method: str, path: str, status: int | None, detail: str):
        super().__init__(service, method, path, status, detail)
        self.message = f"{service} {method} {path}: {detail}"


class FilterIgnored(ServiceError):
    """GET /v1/api/cases?integration_id= answered with other cases: the filter is not applied."""


class PageWatch:
    """When a listing ends, whatever the server does with page[size] and page[number].

    It ends on an empty page or on a page with nothing new (every id on it already seen in this
    listing), never on a page shorter than asked: a server may serve a fixed 10 a page. A page that
    repeats the previous one is the last: when it is shorter than asked, it held the whole list;
    when it is full, the server ignores page[number] and the rest cannot be read (ListingError).
    At most MAX_PAGES pages (ListingError). Memory: the ids of one listing (a set of ints).
    """

    def __init__(self, path: str, size: int = PAGE_SIZE, max_pages: int = MAX_PAGES):
        self.path = path
        self.size = size
        self.max_pages = max_pages
        self.pages = 0
        self.seen: set[int] = set()
        self.previous: tuple | None = None

    def goes_on(self, page: int, records: list) -> bool:
        """True when `records` (page `page`) hold something new and the next page should be read."""
        self.pages += 1
        if self.pages > self.max_pages:
            raise ListingError(SERVICE, "GET", self.path, None,
                               f"stopped after {self.max_pages} pages ({len(self.seen)} records): the list does not end")
        if not records:
            return False
        ids = tuple(record_id(r) for r in records)
        if ids == self.previous:
            if len(records) >= self.size:
                raise ListingError(SERVICE, "GET", self.path, None,
                                   f"page {page} repeats the page before it (page[number] ignored?): only the first "
                                   f"{len(self.seen)} records can be listed")
            return False
        self.previous = ids
        new = {i for i in ids if i is not None} - self.seen
        self.seen |= new
        return bool(new)


def record_id(record: Any) -> int | None:
    """A listed record's Case Status id, or None for a record too malformed to track."""
    return positive_id(record.get(F_RECORD_ID)) if isinstance(record, dict) else None


class CaseStatusClient:
    def __init__(self, settings):
        self.base = settings.casestatus_api_url
        self.session = ServiceSession(SERVICE, settings.casestatus_rate_limit, settings.timeout, settings.backoff_base,
                                      start=pace_start(settings.casestatus_rate_limit, settings.casestatus_rate_given),
                                      shared_with=settings.db_path)
        self.session.headers["Authorization"] = f"{AUTH_SCHEME} {settings.casestatus_api_key}"
        # File downloads: a link that needs no key; never send it ours.
        self.downloads = ServiceSession("Case Status files", 1000.0, settings.timeout, settings.backoff_base)
        self.allow_loopback = is_loopback_url(self.base)
        self.reached = False  # Case Status has accepted one of our requests: the key and URL are right
        self.on_key_refused = None  # called (once) when the key is refused at first contact

    def close(self) -> None:
        self.session.close()
        self.downloads.close()

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        response = self.session.request(method, self.base + path, **kwargs)
        if not self.reached:
            self._first_contact(method, path, response)
        return response

    def _first_contact(self, method: str, path: str, response: requests.Response) -> None:
        """A key or URL refused on the first request is a setting to fix (exit 2), not a record's failure."""
        status = response.status_code
        if status < 400:
            self.reached = True
            return
        where = f"{SERVICE} {method} {path}: HTTP {status}"
        if status in (401, 403):
            detail = error_detail(response)
            response.close()
            if self.on_key_refused is not None:
                self.on_key_refused()
            raise SettingRefused("CASESTATUS_API_KEY", f"CASESTATUS_API_KEY was refused by Case Status ({where}"
                                 f"{': ' + detail if detail else ''}): check the key Case Status gave your firm")
        if status == 404 and path in LISTS:
            response.close()
            raise SettingRefused("CASESTATUS_API_URL", f"CASESTATUS_API_URL={self.base} has no Case Status API behind"
                                 f" it ({where}, a path every account has): check the address (without /v1)")

    # --- lists ----------------------------------------------------------------------------
    def list_page(self, path: str, page: int, size: int = PAGE_SIZE, params: dict | None = None) -> list[dict]:
        query = dict(params or {})
        query[P_PAGE] = page
        query[P_SIZE] = size
        return json_body(SERVICE, self.request("GET", path, params=query), list)

    def iter_pages(self, path: str):
        """Every page of a list, read until PageWatch says it ended."""
        watch = PageWatch(path)
        page = 1
        while True:
            items = self.list_page(path, page)
            if not watch.goes_on(page, items):
                return
            yield items
            page += 1

    def iter_all(self, path: str):
        for items in self.iter_pages(path):
            yield from items

    def iter_cases(self):
        """Every case Case Status holds, as (integration_id, case) for those that have one."""
        for case in self.iter_all(CASES):
            iid = _integration_text(case.get(F_INTEGRATION_ID)) if isinstance(case, dict) else None
            if iid:
                yield iid, case

    def list_messages(self, page: int, size: int = PAGE_SIZE) -> list[dict]:
        return self.list_page(MESSAGES, page, size)

    def list_files(self, page: int, size: int = PAGE_SIZE) -> list[dict]:
        return self.list_page(FILES, page, size)

    # --- users ----------------------------------------------------------------------------
    def list_users(self) -> list[dict]:
        return list(self.iter_all(USERS))

    def create_user(self, email: str, first_name: str, last_name: str, role: str) -> dict | None:
        """Create a user; None when the email already exists (409), which is what we wanted anyway."""
        body = {"email": email, "first_name": first_name, "last_name": last_name, "role": role}
        response = self.request("POST", USERS, json=body, retry_unsafe=True)
        if response.status_code == 409:
            response.close()
            return None
        return json_body(SERVICE, response, dict)

    # --- cases ----------------------------------------------------------------------------
    def find_case(self, integration_id: str) -> dict | None:
        """The case created for this MyCase id, as Case Status holds it now, or None.

        Never a case with another integration_id: an answer holding one means the filter is
        ignored (FilterIgnored; the caller then scans the whole list, iter_cases)."""
        wanted = str(integration_id).strip()
        found = self.list_page(CASES, 1, params={P_INTEGRATION_ID: wanted})
        same = [c for c in found if isinstance(c, dict) and _integration_text(c.get(F_INTEGRATION_ID)) == wanted]
        if len(same) != len(found):
            raise FilterIgnored(SERVICE, "GET", CASES, None,
                                f"integration_id={wanted} answered {len(found) - len(same)} case(s) of another "
                                "integration_id: the filter is ignored")
        if len(same) > 1:
            raise ServiceError(SERVICE, "GET", CASES, None,
                               f"{len(same)} cases have integration_id {wanted}: which one is this matter's is unknown")
        return same[0] if same else None

    def create_case(self, fields: dict) -> tuple[int, bool]:
        """(case id, created). A 409 means it exists already: adopt that id.

        Sent once: a 409 for a repeated integration_id is not promised, so after a lost answer
        (OutcomeUnknown) the caller looks the case up before it sends the create again."""
        response = self.request("POST", CASES, json=fields)
        if response.status_code == 409:
            body = _json_or_none(response)
            existing = positive_id(body.get("id") if isinstance(body, dict) else None)
            if existing is None:
                raise_for_status(SERVICE, response)
            return existing, False
        created = positive_id(json_body(SERVICE, response, dict).get("id"))
        if created is None:  # it may exist now: the next attempt's 409 names it
            raise ServiceError(SERVICE, "POST", CASES, response.status_code, "the answer has no usable case id")
        return created, True

    def update_case(self, case_id: int, fields: dict) -> dict:
        """PATCH the given fields. Repeated after a lost answer only without a stage: a stage written
        twice sends the client a second survey, so then the caller reads the case before writing again."""
        response = self.request("PATCH", CASE.format(id=case_id), json=fields, retry_unsafe=F_STAGE not in fields)
        return json_body(SERVICE, response, dict)

    def close_case(self, case_id: int, closed_date: str | None) -> dict:
        body = {"closed_date": closed_date}
        return json_body(SERVICE, self.request("POST", CASE_CLOSE.format(id=case_id), json=body, retry_unsafe=True), dict)

    def reopen_case(self, case_id: int) -> dict:
        return json_body(SERVICE, self.request("POST", CASE_REOPEN.format(id=case_id), json={}, retry_unsafe=True), dict)

    # --- file bytes -----------------------------------------------------------------------
    def probe_download(self, url: str) -> int:
        """The HTTP status a file's download link answers without our key; its bytes are not read."""
        check_followable_url(url, self.allow_loopback)
        response = self.downloads.request("GET", url, stream=True, deadline=self.downloads.deadline_for(0))
        watchdog = getattr(response, "watchdog", None)
        if watchdog is not None:
            watchdog.cancel()
        response.close()
        return response.status_code

    def download(self, url: str, dest: BinaryIO, size: int | None = None) -> int:
        """Stream a file's bytes into `dest` (never whole in memory); returns the byte count.

        Never more than `size` bytes, the file record's declared size (DOWNLOAD_CEILING when it
        declares none): a link that sends more is cut off there, one error for that file. The whole
        download has one deadline (the session's for `size` bytes; UNDECLARED_DOWNLOAD_DEADLINE
        without a size), whatever each read takes: a link that trickles is stopped at it."""
        check_followable_url(url, self.allow_loopback)
        declared = size is not None and size >= 0
        cap = size if declared else DOWNLOAD_CEILING
        deadline = self.downloads.deadline_for(cap) if declared else UNDECLARED_DOWNLOAD_DEADLINE
        path = urlsplit(url).path
        response = self.downloads.request("GET", url, stream=True, deadline=deadline)
        watchdog = getattr(response, "watchdog", None)

        def too_slow() -> ServiceError:
            return ServiceError("Case Status files", "GET", path, None,
                                f"download too slow: {total} bytes in {watchdog.elapsed():.1f} s, stopped at its "
                                f"deadline ({watchdog.seconds:.0f} s for {cap} bytes)")

        total = 0
        try:
            raise_for_status(SERVICE, response)
            try:
                for chunk in response.iter_content(DOWNLOAD_CHUNK):
                    if total + len(chunk) > cap:
                        dest.write(chunk[:cap - total])
                        total = cap
                        what = "the file record declares" if declared else "any file may have"
                        raise ServiceError("Case Status files", "GET", path, None,
                                           f"the link sends more than the {cap} bytes {what}: stopped at {cap} bytes")
                    dest.write(chunk)
                    total += len(chunk)
            except BROKEN:  # cut off mid-file (or at the deadline): one clear error for this file
                if watchdog is not None and watchdog.expired:
                    raise too_slow() from None
                raise ServiceError("Case Status files", "GET", path, None,
                                   f"download broken off after {total} bytes") from None
            if watchdog is not None and watchdog.expired and total != size:  # cut, though it may look whole
                raise too_slow()
            return total
        finally:
            if watchdog is not None:
                watchdog.cancel()
            response.close()


def link_expires(url: str) -> int | None:
    """When a download link says it expires (Unix seconds), or None when it does not say."""
    query = parse_qs(urlsplit(url).query)
    for name in FILE_URL_EXPIRES:
        value = (query.get(name) or [""])[0]
        if value.isascii() and value.isdigit():
            return int(value)
    return None


def _integration_text(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    return text or None


def _json_or_none(response: requests.Response):
    """The JSON body, or None when it is not usable JSON (nested too deeply included)."""
    try:
        return parse_json(response)
    except ValueError:
        return None


__all__ = ["CaseStatusClient", "ServiceError", "CASE_FIELDS"]
