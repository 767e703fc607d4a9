"""The Case Status side of `doctor`: the key, paging, the integration_id filter, messages, files and their links.

Only reads: whether a repeated integration_id on create answers 409 cannot be seen without a
write, so that line is `not checked` unless the case list already shows two cases of one id.
"""

from __future__ import annotations

import time

from mycase_sync.casestatus import client as cs
from mycase_sync.casestatus.client import ListingError, PageWatch, link_expires, record_id
from mycase_sync.doctor import Probe, Stop, differs, missing_fields, not_checked, ok
from mycase_sync.errors import EXIT_CONFIG, ServiceError
from mycase_sync.ownership import ACCEPT_COMMAND, recorded_key_matches

FEWEST = 10  # the page size a server that ignores page[size] is likely to serve (API-NOTES)
SMALL = 2  # the page size of the page[number] check: two pages need few records
MESSAGE_PAGES = 3
LISTS = (cs.MESSAGES, cs.FILES, cs.CASES, cs.USERS)
MESSAGE_FIELDS = (cs.F_RECORD_ID, cs.MSG_TYPE, cs.MSG_CONTENT, cs.MSG_SENDER, cs.MSG_SENT_AT, cs.MSG_INTEGRATION_ID)
FILE_FIELDS = (cs.F_RECORD_ID, cs.FILE_URL, cs.FILE_SIZE, cs.FILE_NAME, cs.FILE_EXTENSION, cs.FILE_CASE_INTEGRATION_ID,
               cs.FILE_CASE_READABLE_ID, cs.FILE_CREATED_AT)


def casestatus_checks(probe: Probe, app, store) -> None:
    look = CaseStatusLooks(app.new_casestatus_client(), app.settings.casestatus_api_key, store)
    try:
        probe.check("casestatus.key", "The Case Status API key is accepted (and is this state store's)", look.key)
        probe.check("casestatus.page_size", "Case Status honours `page[size]`", look.page_size)
        probe.check("casestatus.page_number", "Case Status honours `page[number]`", look.page_number)
        probe.check("casestatus.integration_filter", "`GET /v1/api/cases?integration_id=` filters",
                    look.integration_filter)
        probe.check("casestatus.conflict", "A repeated `integration_id` on create answers 409 (no second case)",
                    look.conflict)
        probe.check("casestatus.messages", "Messages carry the fields the push reads, `type` incoming or outgoing",
                    look.messages)
        probe.check("casestatus.files", "Files carry the fields the push reads", look.files)
        probe.check("casestatus.download_link", "File download links need no key (and expire: fetched fresh)",
                    look.download_link)
    finally:
        look.client.close()


class CaseStatusLooks:
    def __init__(self, client, api_key: str, store):
        self.client = client
        self.api_key = api_key
        self.store = store
        self.sample: list = []  # a page of files, for the download link

    def key(self) -> None:
        try:
            users = self.client.list_page(cs.USERS, 1)
        except ServiceError as exc:
            if exc.status in (401, 403):
                raise Stop(f"Case Status refused the API key: {exc}", EXIT_CONFIG,
                           "every job stops with exit 2: check CASESTATUS_API_KEY") from None
            raise
        if self.store is not None and recorded_key_matches(self.store, self.api_key) is False:
            raise Stop(f"state store {self.store.path} belongs to the Case Status account of another API key",
                       EXIT_CONFIG, f"every job refuses to start (exit 2): check --env-file and MYCASE_SYNC_DB, or "
                                    f"after rotating the key run `{ACCEPT_COMMAND}`")
        raise ok(f"accepted; {len(users)} user(s) on the first page")

    def page_size(self) -> None:
        """page[size]=100 on each list: more than 10 on a page says it is honoured; a short page
        followed by a page of other records says it is not."""
        short = []
        for path in LISTS:
            first = self.client.list_page(path, 1)
            if len(first) > FEWEST:
                raise ok(f"{path}: {cs.P_SIZE}={cs.PAGE_SIZE} answered {len(first)} records")
            if first:
                short.append((path, first))
        for path, first in short:
            if _ids(self.client.list_page(path, 2)) - _ids(first):
                raise differs(f"{path}: {len(first)} a page although {cs.P_SIZE}={cs.PAGE_SIZE} was asked",
                              "a list ends only on an empty page or one with nothing new: more requests, nothing "
                              "missed")
        raise not_checked(f"no list holds more than {FEWEST} records")

    def page_number(self) -> None:
        for path in LISTS:
            first = self.client.list_page(path, 1, SMALL)
            second = self.client.list_page(path, 2, SMALL) if first else []
            if _ids(second) - _ids(first):
                raise ok(f"{path}: page 2 holds other records than page 1")
            if second and _ids(second) == _ids(first):
                raise differs(f"{path}: page 2 repeats page 1",
                              "a page repeating the one before ends the list; when that page is full the job stops "
                              "with one line (exit 1): what lies beyond cannot be read")
        raise not_checked(f"no list spans two pages of {SMALL}")

    def integration_filter(self) -> None:
        """A case with an integration_id, looked up by it: the answer must hold that case alone."""
        cases = self.client.list_page(cs.CASES, 1)
        known = next((c for c in cases if isinstance(c, dict) and c.get(cs.F_INTEGRATION_ID)), None)
        if known is None:
            raise not_checked("no Case Status case has an integration_id yet")
        if len(cases) < 2:
            raise not_checked("a single case: an ignored filter would look the same")
        wanted = str(known[cs.F_INTEGRATION_ID]).strip()
        try:
            found = self.client.find_case(wanted)
        except cs.FilterIgnored as exc:
            raise differs(str(exc), "a case is adopted only when its integration_id is the one asked; the run reads "
                                    "the whole case list once instead (100 cases a request)") from None
        if found is None or record_id(found) != record_id(known):
            raise differs(f"{cs.P_INTEGRATION_ID}={wanted} did not find case {known.get(cs.F_ID)}",
                          "a lookup that finds nothing would let a matter be created a second time: report it")
        raise ok(f"{cs.P_INTEGRATION_ID}={wanted} answered its case alone")

    def conflict(self) -> None:
        seen: dict[str, int | None] = {}
        try:
            for iid, case in self.client.iter_cases():
                if iid in seen:
                    raise differs(f"cases {seen[iid]} and {record_id(case)} share integration_id {iid}: a repeated "
                                  "create made a second case",
                                  "a create is sent once and looked up before any repeat; those matters fail until "
                                  "one of the two cases is removed")
                seen[iid] = record_id(case)
        except ListingError as exc:
            raise not_checked(f"needs a write to see; the case list cannot be read to its end ({exc.detail})") from None
        raise not_checked(f"needs a write to see; no two of the {len(seen)} cases share an integration_id, and a "
                          "create is sent once and looked up before any repeat")

    def messages(self) -> None:
        records = _pages(self.client.list_messages, cs.MESSAGES)
        if not records:
            raise not_checked("no message to look at")
        missing = missing_fields(records, MESSAGE_FIELDS)
        kinds = sorted({str(r.get(cs.MSG_TYPE)) for r in records if isinstance(r, dict)})
        unknown = [k for k in kinds if k not in (cs.MSG_INCOMING, cs.MSG_OUTGOING)]
        if missing:
            raise differs(f"no message carries {', '.join(missing)}",
                          "messages without them are pushed with less (no sender, no date) or wait for their case")
        if unknown:
            known = ", ".join(k for k in kinds if k not in unknown) or "none known"
            raise differs(f"message types {', '.join(unknown)} besides {known}",
                          "such a message is still pushed, its note subject without the direction")
        raise ok(f"{len(records)} message(s), types {', '.join(kinds)}")

    def files(self) -> None:
        self.sample = _pages(self.client.list_files, cs.FILES, pages=1)
        if not self.sample:
            raise not_checked("no file to look at")
        missing = missing_fields(self.sample, FILE_FIELDS)
        if missing:
            raise differs(f"no file carries {', '.join(missing)}",
                          "files without a link or a case cannot be pushed (reported, retried, parked after 10 runs)")
        raise ok(f"{len(self.sample)} file(s) carry every field read")

    def download_link(self) -> None:
        url = next((r.get(cs.FILE_URL) for r in self.sample if isinstance(r, dict)
                    and isinstance(r.get(cs.FILE_URL), str)), None)
        if url is None:
            raise not_checked("no file with a link")
        status = self.client.probe_download(url)
        if status != 200:
            raise differs(f"the link of a file just listed answered HTTP {status} without the key",
                          "the push fetches each link fresh and without the key: every file would fail (reported, "
                          "retried, parked after 10 runs); report it")
        expires = link_expires(url)
        lives = f"it says it expires in {expires - int(time.time())} s" if expires else "it states no expiry"
        raise ok(f"a file's bytes came without the key; {lives}")


def _ids(records) -> set[int]:
    return {i for r in records if (i := record_id(r)) is not None}


def _pages(read, path: str, pages: int = MESSAGE_PAGES) -> list:
    """The records of the first `pages` pages of a list, read until PageWatch says it ended."""
    watch, records = PageWatch(path, max_pages=pages), []
    try:
        for number in range(1, pages + 1):
            page = read(number)
            if not watch.goes_on(number, page):
                break
            records += page
    except ListingError:  # page[number] ignored: the page_number line says so
        pass
    return records
