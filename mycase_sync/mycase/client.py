"""Every MyCase path, parameter and field name this project uses, in one place.

API-NOTES.md Part 1 is the contract. If the real service disagrees, fix it here: one line.
"""

from __future__ import annotations

import hashlib
import logging
import os
from typing import Any, Iterator
from urllib.parse import parse_qs, urlsplit

import requests

from mycase_sync.errors import AuthorizationError, RefusedURL, ServiceError, SettingRefused, SyncError
from mycase_sync.http import ServiceSession, check_followable_url, json_body, raise_for_status
from mycase_sync.netaddr import is_loopback_url
from mycase_sync.pacing import pace_start

log = logging.getLogger(__name__)

SERVICE = "MyCase"
PAGE_SIZE = 1000  # the documented maximum
# MyCase's gateway answers 504 ("Endpoint request timed out") when the API did not answer in time.
# A request that slow is likely to be as slow again, and each try can hold a worker for the whole
# timeout: two retries, not the HTTP layer's usual five.
GATEWAY_TIMEOUT_RETRIES = 2
CLIENT_FIELDS = "id,first_name,last_name,email,cell_phone_number"

# Paths (relative to MYCASE_API_URL, which ends in /v1)
ME = "/me"
FIRM = "/firm"
CASES = "/cases"
CASE = "/cases/{id}"
STAFF = "/staff"
STAFF_MEMBER = "/staff/{id}"
CASE_DOCUMENTS = "/cases/{id}/documents"
DOCUMENT_VERSIONS = "/documents/{id}/versions"
DOCUMENT_DATA = "/documents/{id}/data"  # 302 to a download URL valid for a minute
CASE_NOTES = "/cases/{id}/notes"
CLIENTS = "/clients"
KNOWN = (ME, FIRM, CASES, STAFF)  # every firm has these: a 404 on one means a wrong MYCASE_API_URL

# What the push jobs read back: a note's text, a document's description (both carry our marker),
# and the upload fields of a created document or version
NOTE_TEXT = "note"
DOCUMENT_DESCRIPTION = "description"
UPLOAD_URL = "put_url"
UPLOAD_HEADERS = "put_headers"

# Headers
H_ITEM_COUNT = "Item-Count"  # a list's total, sometimes missing [seen]: shown to people, never used to stop

# Query parameters
P_PAGE_SIZE = "page_size"
P_UPDATED_AFTER = "filter[updated_after]"
P_STATUS = "filter[status]"
P_CLIENT_FIELDS = "field[client]"

# Case fields (a case as GET /cases renders it)
CASE_ID = "id"
CASE_NAME = "name"
CASE_NUMBER = "case_number"
CASE_DESCRIPTION = "description"
CASE_OPENED_DATE = "opened_date"
CASE_CLOSED_DATE = "closed_date"
CASE_PRACTICE_AREA = "practice_area"  # a name, not an id
CASE_STAGE = "case_stage"  # a name, not an id
CASE_STATUS = "status"
CASE_CLIENTS = "clients"
CASE_STAFF = "staff"
CASE_CREATED_AT = "created_at"
CASE_UPDATED_AT = "updated_at"
STATUS_OPEN = "open"
STATUS_CLOSED = "closed"
STAFF_ACTIVE = "active"
STAFF_INACTIVE = "inactive"
# A staff entry on a case, and a staff record from /staff
STAFF_ID = "id"
STAFF_LEAD = "lead_lawyer"
STAFF_EMAIL = "email"
STAFF_FIRST_NAME = "first_name"
STAFF_LAST_NAME = "last_name"
STAFF_TYPE = "type"  # Attorney | Paralegal | Staff (compared case-insensitively)
STAFF_TYPE_ATTORNEY = "attorney"
STAFF_TYPE_PARALEGAL = "paralegal"
STAFF_TYPE_OTHER = "staff"
FIRM_NAME = "name"  # GET /firm
# An expanded client (the fields asked for in CLIENT_FIELDS)
CLIENT_ID = "id"
CLIENT_FIRST_NAME = "first_name"
CLIENT_LAST_NAME = "last_name"
CLIENT_EMAIL = "email"
CLIENT_CELL_PHONE = "cell_phone_number"
# A client (person) from GET /clients: the cases it is on, each as {id}
CLIENT_CASES = "cases"
CLIENT_CASE_ID = "id"
CLIENT_UPDATED_AT = "updated_at"


class BearerAuth(requests.auth.AuthBase):
    """Adds the current access token; remembers which token each request carried."""

    def __init__(self, tokens):
        self.tokens = tokens

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self.tokens.access_token()
        request.headers["Authorization"] = f"Bearer {token}"
        request._sent_token = token  # type: ignore[attr-defined]
        return request


class MyCaseClient:
    """Reads and writes MyCase through one authorised, rate-limited session.

    `tokens` is a TokenManager: access_token() gives a fresh token (refreshing under a
    cross-process lock when it is about to expire), refresh_after_401(token) renews once.
    """

    def __init__(self, settings, tokens):
        self.base = settings.mycase_api_url
        self.tokens = tokens
        self.session = ServiceSession(SERVICE, settings.mycase_rate_limit, settings.timeout, settings.backoff_base,
                                      start=pace_start(settings.mycase_rate_limit, settings.mycase_rate_given),
                                      shared_with=settings.db_path, gateway_timeout_retries=GATEWAY_TIMEOUT_RETRIES)
        self.session.auth = BearerAuth(tokens)
        # Uploads go to S3: another host, no Bearer token, no MyCase rate limit.
        self.uploads = ServiceSession("S3", 1000.0, settings.timeout, settings.backoff_base)
        self.allow_loopback = is_loopback_url(self.base)
        self.reached = False  # MyCase has answered one of our API requests: MYCASE_API_URL is right

    def close(self) -> None:
        self.session.close()
        self.uploads.close()

    # --- the one request path: 401 -> refresh once -> retry once ---------------------------
    def request(self, method: str, path_or_url: str, **kwargs: Any) -> requests.Response:
        url = path_or_url if path_or_url.startswith(("http://", "https://")) else self.base + path_or_url
        response = self.session.request(method, url, **kwargs)
        if response.status_code == 401:
            sent = getattr(response.request, "_sent_token", None)
            response.close()
            self.tokens.refresh_after_401(sent)
            response = self.session.request(method, url, **kwargs)
            if response.status_code == 401:
                response.close()
                raise AuthorizationError()
        if not self.reached and url.startswith(self.base):
            self._first_contact(method, url[len(self.base):], response)
        return response

    def _first_contact(self, method: str, path: str, response: requests.Response) -> None:
        """A 404 before MyCase ever answered us: a record that is gone, or a MYCASE_API_URL with no API
        behind it (a path every firm has, or GET /firm when the first path was a record's, answers 404 too)."""
        if response.status_code < 400:
            self.reached = True
            return
        if response.status_code != 404:
            return
        known = path.split("?")[0] in KNOWN
        if not known:
            probe = self.session.request("GET", self.base + FIRM)
            probe.close()
            if probe.status_code < 400:
                self.reached = True
                return
            if probe.status_code != 404:
                return
            method, path = "GET", FIRM
        response.close()
        raise SettingRefused("MYCASE_API_URL", f"MYCASE_API_URL={self.base} has no MyCase API behind it ({SERVICE}"
                             f" {method} {path}: HTTP 404, a path every firm has): check the address (it ends in"
                             " /v1, as https://external-integrations.mycase.com/v1)")

    def get_json(self, path: str, params: dict | None = None, expect=(dict, list)) -> Any:
        return json_body(SERVICE, self.request("GET", path, params=params), expect)

    # --- reads ----------------------------------------------------------------------------
    def me(self) -> dict:
        return self.get_json(ME, expect=dict)

    def firm(self) -> dict:
        return self.get_json(FIRM, expect=dict)

    def list_page(self, path_or_url: str, params: dict | None = None) -> tuple[list, str | None]:
        """One page of a list, and the URL of `Link: rel="next"` (None on the last page)."""
        response = self.request("GET", path_or_url, params=params)
        page = json_body(SERVICE, response, list)
        return page, response.links.get("next", {}).get("url")

    def follow(self, next_url: str, params: dict) -> tuple[list, str | None]:
        """The page a next link points at, with our own `params` that the link dropped sent again."""
        if not _same_origin(next_url, self.base):
            # Our Bearer token goes with every request of this session: never to another host.
            raise RefusedURL(urlsplit(next_url).path, "refusing a next-page link that leaves MyCase's API host")
        dropped = dropped_params(next_url, params)
        return self.list_page(next_url, {k: params[k] for k in dropped} or None)

    def iter_pages(self, path: str, params: dict) -> Iterator[list]:
        """Each page of a list, following `Link: rel="next"` as given (never Item-Count); our own
        query parameters that the link dropped (field[client], filters, page_size) are sent again."""
        page, url = self.list_page(path, params)
        yield page
        while url:
            page, url = self.follow(url, params)
            yield page

    def iter_case_pages(self, updated_after: str | None = None, status: str | None = None) -> Iterator[list]:
        """Pages of cases (clients expanded), updated at or after `updated_after` (ISO 8601).

        Without a status, open ones and then closed ones, each asked for by filter[status]: what
        the list holds without the filter is not documented (it may be open cases only)."""
        if status is None:
            for one in (STATUS_OPEN, STATUS_CLOSED):
                yield from self.iter_case_pages(updated_after, one)
            return
        params = {P_PAGE_SIZE: PAGE_SIZE, P_CLIENT_FIELDS: CLIENT_FIELDS}
        if updated_after:
            params[P_UPDATED_AFTER] = updated_after
        params[P_STATUS] = status
        yield from self.iter_pages(CASES, params)

    def iter_client_pages(self, updated_after: str) -> Iterator[list]:
        """Pages of clients (people) created or updated at or after `updated_after`; each lists its cases."""
        return self.iter_pages(CLIENTS, {P_PAGE_SIZE: PAGE_SIZE, P_UPDATED_AFTER: updated_after})

    def count_cases(self, updated_after: str | None = None) -> int | None:
        """How many open and closed cases (updated at or after `updated_after`) MyCase says it holds,
        from the Item-Count of a one-case page of each list; None when it does not say.

        For people only (a progress total, the matters left out of the window): never to decide
        when a list ends, and a count that cannot be had is no failure of the run."""
        total = 0
        for status in (STATUS_OPEN, STATUS_CLOSED):
            params = {P_PAGE_SIZE: 1, P_STATUS: status}
            if updated_after:
                params[P_UPDATED_AFTER] = updated_after
            count = None
            for _ in range(2):  # the header is missing from some answers, not from every one
                try:
                    response = self.request("GET", self.base + CASES, params=params)
                except SyncError:  # down, refused, no longer authorised: the run's own requests say so
                    return None
                text = response.headers.get(H_ITEM_COUNT, "").strip()
                status_code = response.status_code
                response.close()
                if status_code != 200:
                    return None
                if text.isascii() and text.isdigit() and len(text) <= 12:
                    count = int(text)
                    break
            if count is None:
                return None
            total += count
        return total

    def get_case(self, case_id: str | int) -> dict | None:
        """One case with clients expanded; None when MyCase no longer has it (404)."""
        response = self.request("GET", CASE.format(id=case_id), params={P_CLIENT_FIELDS: CLIENT_FIELDS})
        if response.status_code == 404:
            response.close()
            return None
        return json_body(SERVICE, response, dict)

    def list_staff(self) -> list[dict]:
        """Active and inactive staff, each asked for by filter[status] (departed staff stay on old
        cases; what the list holds without the filter is not documented)."""
        return [person for status in (STAFF_ACTIVE, STAFF_INACTIVE)
                for page in self.iter_pages(STAFF, {P_PAGE_SIZE: PAGE_SIZE, P_STATUS: status}) for person in page]

    def get_staff(self, staff_id: int) -> dict | None:
        """One staff member by id; None when MyCase has none (404)."""
        response = self.request("GET", STAFF_MEMBER.format(id=staff_id))
        if response.status_code == 404:
            response.close()
            return None
        return json_body(SERVICE, response, dict)

    def list_documents(self, case_id: str | int) -> list[dict]:
        return [d for page in self.iter_pages(CASE_DOCUMENTS.format(id=case_id), {P_PAGE_SIZE: PAGE_SIZE}) for d in page]

    def list_notes(self, case_id: str | int) -> list[dict]:
        return [n for page in self.iter_pages(CASE_NOTES.format(id=case_id), {P_PAGE_SIZE: PAGE_SIZE}) for n in page]

    # --- writes (never repeated blindly: the callers look for their marker first) -----------
    def create_note(self, case_id: str | int, subject: str, note: str, date: str) -> dict:
        body = {"subject": subject, "note": note, "date": date}
        return json_body(SERVICE, self.request("POST", CASE_NOTES.format(id=case_id), json=body), dict)

    def create_document(self, case_id: str | int, path: str, filename: str, description: str) -> dict:
        """Step 1 of 2: the document record; the answer carries put_url and put_headers."""
        body = {"path": path, "filename": filename, "description": description}
        return json_body(SERVICE, self.request("POST", CASE_DOCUMENTS.format(id=case_id), json=body), dict)

    def create_document_version(self, document_id: str | int) -> dict:
        """For a document whose bytes never arrived: a new version with a fresh put_url.

        The reference documents no request body for this call, so none is sent.
        """
        return json_body(SERVICE, self.request("POST", DOCUMENT_VERSIONS.format(id=document_id)), dict)

    def upload(self, put_url: str, put_headers: dict, file_path: str) -> None:
        """Step 2 of 2: PUT the bytes from a file of known size (S3 refuses chunked bodies).

        An empty file goes as an empty bytes body: requests sends an empty *file* chunked. Repeated
        after any failure: a PUT of the same bytes to the same URL lands once however often it is sent."""
        check_followable_url(put_url, self.allow_loopback)
        headers = {str(k): str(v) for k, v in (put_headers or {}).items()}
        headers["Content-Type"] = "application/octet-stream"
        size = os.path.getsize(file_path)
        headers["Content-Length"] = str(size)
        if size == 0:
            response = self.uploads.request("PUT", put_url, data=b"", headers=headers, retry_unsafe=True)
        else:
            with open(file_path, "rb") as body:
                response = self.uploads.request("PUT", put_url, data=body, headers=headers, retry_unsafe=True)
        raise_for_status("S3", response)

    def document_digest(self, document_id: str | int) -> tuple[str, int] | None:
        """(sha256, size) of the bytes MyCase holds for a document's latest version, streamed and
        never kept; None when it holds none (never uploaded, or the document is gone)."""
        path = DOCUMENT_DATA.format(id=document_id)
        response = self.request("GET", path, allow_redirects=False)
        if response.status_code == 404:
            response.close()
            return None
        location = response.headers.get("Location") if response.is_redirect else None
        if not location:
            raise_for_status(SERVICE, response)
            response.close()
            raise ServiceError(SERVICE, "GET", path, response.status_code, "no download link in the answer")
        response.close()
        check_followable_url(location, self.allow_loopback)
        download = self.uploads.request("GET", location, stream=True)
        try:
            raise_for_status("S3", download)
            digest, size = hashlib.sha256(), 0
            try:
                for chunk in download.iter_content(1 << 20):
                    digest.update(chunk)
                    size += len(chunk)
            except (requests.exceptions.RequestException, OSError):
                raise ServiceError("S3", "GET", urlsplit(location).path, None,
                                   f"download broken off after {size} bytes") from None
            return digest.hexdigest(), size
        finally:
            download.close()
        response.close()


def dropped_params(next_url: str, params: dict) -> list[str]:
    """Which of our query `params` a next-page link does not carry."""
    kept = parse_qs(urlsplit(next_url).query, keep_blank_values=True)
    return [name for name in params if name not in kept]


def _same_origin(url: str, base: str) -> bool:
    ours, theirs = urlsplit(base), urlsplit(url)
    return (theirs.scheme, theirs.hostname, theirs.port) == (ours.scheme, ours.hostname, ours.port)


__all__ = ["MyCaseClient", "ServiceError"]
