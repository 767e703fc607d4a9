"""The MyCase side of `doctor`: authorization, paging, filters, defaults and the fields the mapping reads.

Each look costs a few list pages (page sizes kept small where the answer only needs a sample).
"""

from __future__ import annotations

import datetime as dt

from mycase_sync.doctor import Probe, Stop, differs, missing_fields, not_checked, ok
from mycase_sync.errors import EXIT_AUTH, AuthorizationError
from mycase_sync.mycase import client as mc
from mycase_sync.mycase.client import dropped_params
from mycase_sync.values import parse_timestamp, positive_id, utcnow

SAMPLE = 100  # records read as a sample of a list
MAX_PAGES = 5  # pages followed where a look needs more than one
EDITED_CLIENTS = 5  # clients whose cases are compared with their last edit
CLOCK_SLACK = dt.timedelta(seconds=5)
CASE_FIELDS = (mc.CASE_ID, mc.CASE_NAME, mc.CASE_NUMBER, mc.CASE_DESCRIPTION, mc.CASE_OPENED_DATE,
               mc.CASE_CLOSED_DATE, mc.CASE_PRACTICE_AREA, mc.CASE_STAGE, mc.CASE_STATUS, mc.CASE_CLIENTS,
               mc.CASE_STAFF, mc.CASE_CREATED_AT, mc.CASE_UPDATED_AT)
CLIENT_FIELDS = (mc.CLIENT_ID, mc.CLIENT_FIRST_NAME, mc.CLIENT_LAST_NAME, mc.CLIENT_EMAIL, mc.CLIENT_CELL_PHONE)
STAFF_FIELDS = (mc.STAFF_ID, mc.STAFF_EMAIL, mc.STAFF_FIRST_NAME, mc.STAFF_LAST_NAME, mc.STAFF_TYPE)
STAFF_TYPES = (mc.STAFF_TYPE_ATTORNEY, mc.STAFF_TYPE_PARALEGAL, mc.STAFF_TYPE_OTHER)
REPORT_IT = "nothing the tool can make up for: report it to MyCase (and to us)"


def mycase_checks(probe: Probe, app) -> None:
    """The MyCase lines, in order; `app` None when there is no state store (nothing connected)."""
    look = MyCaseLooks(app.mycase if app is not None else None)
    probe.check("mycase.authorization", "MyCase authorization works (user and firm)", look.authorization)
    probe.check("mycase.paging", 'MyCase lists are paged by `Link: rel="next"`', look.paging)
    probe.check("mycase.next_link_params", "MyCase next-page links keep every query parameter", look.next_link_params)
    probe.check("mycase.updated_after", "MyCase `filter[updated_after]` filters (inclusive)", look.updated_after)
    probe.check("mycase.status_default", "MyCase `GET /v1/cases` without `filter[status]` lists closed cases too",
                look.status_default)
    probe.check("mycase.staff_default", "MyCase `GET /v1/staff` without `filter[status]` lists inactive staff too",
                look.staff_default)
    probe.check("mycase.staff_fields", "MyCase staff records carry the fields the mapping reads, with known types",
                look.staff_fields)
    probe.check("mycase.case_fields", "A MyCase case carries the fields the mapping reads (clients expanded)",
                look.case_fields)
    probe.check("mycase.clients", "MyCase `GET /v1/clients?filter[updated_after]` lists each client's cases",
                look.clients)
    probe.check("mycase.client_edits", "Editing a MyCase client changes its cases' `updated_at`", look.client_edits)


class MyCaseLooks:
    def __init__(self, client):
        self.client = client
        self.params = {mc.P_PAGE_SIZE: 2, mc.P_STATUS: mc.STATUS_OPEN, mc.P_CLIENT_FIELDS: mc.CLIENT_FIELDS}
        self.next_url: str | None = None
        self.sample: list = []
        self.edited: list[dict] = []

    def authorization(self) -> None:
        try:
            me, firm = self.client.me(), self.client.firm()
        except AuthorizationError as exc:
            raise Stop(str(exc), EXIT_AUTH, "every job stops with exit 3 until `mycase-sync auth` is run") from None
        name = " ".join(str(me.get(k) or "") for k in (mc.STAFF_FIRST_NAME, mc.STAFF_LAST_NAME)).strip() or "?"
        raise ok(f"connected as {name} <{me.get(mc.STAFF_EMAIL) or '?'}>, firm {firm.get(mc.FIRM_NAME) or '?'}")

    def paging(self) -> None:
        """Two open cases a page, then the next link once: page 2 holds other cases."""
        first, self.next_url = self.client.list_page(mc.CASES, self.params)
        if self.next_url is None:
            if len(first) < self.params[mc.P_PAGE_SIZE]:
                raise not_checked(f"{len(first)} open case(s): too few to span two pages")
            more, _ = self.client.list_page(mc.CASES, {**self.params, mc.P_PAGE_SIZE: 3})
            if len(more) > len(first):
                raise differs(f"a full page of {len(first)} came without a next link, though more cases exist",
                              f"the tool follows the links only: it would miss cases; {REPORT_IT}")
            raise not_checked(f"{len(first)} open cases: too few to span two pages")
        second, _ = self.client.follow(self.next_url, self.params)
        new = _ids(second) - _ids(first)
        if not new:
            raise differs("the next link led to the same cases again",
                          f"the tool would read the list until its page cap and miss the rest; {REPORT_IT}")
        raise ok(f"the next link of page 1 led to {len(new)} other case(s)")

    def next_link_params(self) -> None:
        if self.next_url is None:
            raise not_checked("no next link was seen")
        dropped = dropped_params(self.next_url, self.params)
        if dropped:
            raise differs(f"the next link does not carry {', '.join(dropped)}",
                          "the tool sends its own parameters again with every next link")
        raise ok(f"the next link carries {', '.join(self.params)}")

    def updated_after(self) -> None:
        """The last update on a sample, as the filter: nothing older comes back, and that case does."""
        sample, _ = self.client.list_page(mc.CASES, {mc.P_PAGE_SIZE: SAMPLE, mc.P_STATUS: mc.STATUS_OPEN})
        stamped = [(t, c) for c in sample if (t := _last_touched(c)) is not None]
        if not stamped:
            raise not_checked("no open case with readable timestamps")
        newest, case = max(stamped, key=lambda tc: tc[0])
        bound = newest.replace(microsecond=0)
        answer, _ = self.client.list_page(mc.CASES, {mc.P_PAGE_SIZE: SAMPLE, mc.P_STATUS: mc.STATUS_OPEN,
                                                     mc.P_UPDATED_AFTER: _param(bound)})
        older = [c for c in answer if (_last_touched(c) or bound) < bound]
        if older:
            raise differs(f"{mc.P_UPDATED_AFTER}={_param(bound)} answered {len(older)} case(s) updated before it",
                          "the tool skips what lies outside its window (reported as skipped), but every run reads "
                          "every matter: slow on a large firm")
        if case.get(mc.CASE_ID) not in [c.get(mc.CASE_ID) for c in answer if isinstance(c, dict)]:
            raise differs(f"{mc.P_UPDATED_AFTER}={_param(bound)} left out case {case.get(mc.CASE_ID)}, updated then",
                          "the window overlaps the previous run by a day at least, so a boundary case comes back "
                          "the next night; an edit that never shows up is missed: report it")
        raise ok(f"{mc.P_UPDATED_AFTER}={_param(bound)}: {len(answer)} case(s), none older, the boundary one included")

    def status_default(self) -> None:
        closed, _ = self.client.list_page(mc.CASES, {mc.P_PAGE_SIZE: SAMPLE, mc.P_STATUS: mc.STATUS_CLOSED})
        stamped = [(t, c) for c in closed if (t := _last_touched(c)) is not None]
        if not stamped:
            raise not_checked("no closed case to look for")
        newest, case = max(stamped, key=lambda tc: tc[0])
        params = {mc.P_PAGE_SIZE: mc.PAGE_SIZE, mc.P_UPDATED_AFTER: _param(newest.replace(microsecond=0))}
        found = _find(self.client, mc.CASES, params, positive_id(case.get(mc.CASE_ID)))
        if found is False:
            raise differs(f"closed case {case.get(mc.CASE_ID)} is not listed without {mc.P_STATUS}",
                          f"the tool asks for open and for closed cases, each with {mc.P_STATUS}")
        if found is None:
            raise not_checked(f"closed case {case.get(mc.CASE_ID)} is not in the first {MAX_PAGES} pages")
        raise ok(f"closed case {case.get(mc.CASE_ID)} is listed without {mc.P_STATUS}")

    def staff_default(self) -> None:
        inactive = [p for page in self.client.iter_pages(mc.STAFF, {mc.P_PAGE_SIZE: mc.PAGE_SIZE,
                                                                     mc.P_STATUS: mc.STAFF_INACTIVE}) for p in page]
        wanted = _ids(inactive)
        if not wanted:
            raise not_checked("no inactive staff to look for")
        listed = _ids(p for page in self.client.iter_pages(mc.STAFF, {mc.P_PAGE_SIZE: mc.PAGE_SIZE}) for p in page)
        missing = wanted - listed
        if missing:
            raise differs(f"{len(missing)} of {len(wanted)} inactive staff are not listed without {mc.P_STATUS}",
                          "the tool asks for active and for inactive staff, then by id for any still unknown")
        raise ok(f"all {len(wanted)} inactive staff are listed without {mc.P_STATUS}")

    def staff_fields(self) -> None:
        staff = self.client.list_staff()
        if not staff:
            raise not_checked("no staff listed")
        missing = missing_fields(staff, STAFF_FIELDS)
        kinds = sorted({str(p.get(mc.STAFF_TYPE) or "").strip() for p in staff if isinstance(p, dict)} - {""})
        unknown = [k for k in kinds if k.lower() not in STAFF_TYPES]
        if missing:
            raise differs(f"no staff record carries {', '.join(missing)}",
                          "matters whose lead attorney lacks an email or type fail (reported, retried nightly)")
        if unknown:
            raise differs(f"staff types {', '.join(unknown)} besides {', '.join(k for k in kinds if k not in unknown)}",
                          "staff of an unknown type are neither attorneys nor paralegals in Case Status; a lead "
                          "attorney of that type is still the primary attorney")
        raise ok(f"{len(staff)} staff; types {', '.join(kinds) or 'none'}")

    def case_fields(self) -> None:
        page, _ = self.client.list_page(mc.CASES, {**self.params, mc.P_PAGE_SIZE: SAMPLE})
        self.sample = [c for c in page if isinstance(c, dict)]
        if not self.sample:
            raise not_checked("no open case to look at")
        missing = missing_fields(self.sample, CASE_FIELDS)
        clients = [c for case in self.sample if isinstance(case.get(mc.CASE_CLIENTS), list)
                   for c in case[mc.CASE_CLIENTS]]
        staff = [s for case in self.sample if isinstance(case.get(mc.CASE_STAFF), list) for s in case[mc.CASE_STAFF]]
        missing += [f"client {f}" for f in missing_fields(clients, CLIENT_FIELDS)] if clients else []
        missing += [f"staff {f}" for f in missing_fields(staff, (mc.STAFF_ID, mc.STAFF_LEAD))] if staff else []
        if missing:
            raise differs(f"no sampled case carries {', '.join(missing)}",
                          "the mapping reads them: those matters fail or go without them (reported per matter)")
        raise ok(f"{len(self.sample)} case(s), {len(clients)} client(s) and {len(staff)} staff entries carry every "
                 "field read")

    def clients(self) -> None:
        for days in (30, 365):
            since = _param((utcnow() - dt.timedelta(days=days)).replace(microsecond=0))
            page, _ = self.client.list_page(mc.CLIENTS, {mc.P_PAGE_SIZE: mc.PAGE_SIZE, mc.P_UPDATED_AFTER: since})
            if page:
                break
        else:
            raise not_checked("no client created or edited in the last year")
        bare = [c for c in page if not isinstance(c, dict) or not isinstance(c.get(mc.CLIENT_CASES), list)]
        if bare:
            raise differs(f"{len(bare)} of {len(page)} clients edited since {since} do not list their cases",
                          "the nightly import cannot find the cases of an edited client: the edit reaches Case "
                          "Status when the case itself changes, or with --full")
        self.edited = sorted((c for c in page if _stamp(c.get(mc.CLIENT_UPDATED_AT)) and c[mc.CLIENT_CASES]),
                             key=lambda c: _stamp(c.get(mc.CLIENT_UPDATED_AT)), reverse=True)[:EDITED_CLIENTS]
        raise ok(f"{len(page)} client(s) edited since {since}, each listing its cases")

    def client_edits(self) -> None:
        """The clients edited last, against their cases: an edit after every case's last update left them alone."""
        if not self.edited:
            raise not_checked("no recently edited client with cases to compare")
        for client in self.edited:
            edited = _stamp(client.get(mc.CLIENT_UPDATED_AT))
            ids = [positive_id(ref.get(mc.CLIENT_CASE_ID)) for ref in client[mc.CLIENT_CASES] if isinstance(ref, dict)]
            touched = [_stamp(case.get(mc.CASE_UPDATED_AT)) for case_id in ids[:3]
                       if case_id is not None and (case := self.client.get_case(case_id))]
            touched = [t for t in touched if t is not None]
            if touched and edited > max(touched) + CLOCK_SLACK:
                raise differs(f"client {client.get(mc.CLIENT_ID)} was edited at {_param(edited)}, after the last "
                              f"update of its cases ({_param(max(touched))})",
                              "the nightly import reads the clients edited in its window and re-reads their cases by "
                              "id when the listing did not bring them")
        raise ok(f"the cases of the {len(self.edited)} client(s) edited last were updated with them")


def _ids(records) -> set[int]:
    return {i for r in records if isinstance(r, dict) and (i := positive_id(r.get(mc.CASE_ID))) is not None}


def _stamp(value) -> dt.datetime | None:
    return parse_timestamp(value)


def _last_touched(case) -> dt.datetime | None:
    if not isinstance(case, dict):
        return None
    times = [t for t in (_stamp(case.get(mc.CASE_CREATED_AT)), _stamp(case.get(mc.CASE_UPDATED_AT))) if t]
    return max(times) if times else None


def _param(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _find(client, path: str, params: dict, wanted) -> bool | None:
    """Whether the record `wanted` is in the list (None: not within MAX_PAGES)."""
    page, url = client.list_page(path, params)
    for n in range(MAX_PAGES):
        if wanted in _ids(page):
            return True
        if url is None:
            return False
        if n + 1 < MAX_PAGES:
            page, url = client.follow(url, params)
    return None
