"""The MyCase staff one import run maps matters with: both staff lists, then by id.

Neither /staff list need hold everyone on an old case (API-NOTES Part 3: `filter[status]` defaults
are not documented, and departed staff stay on their cases), so an id the lists lack is asked for
by id, once a run. An id MyCase answers 404 for is deleted staff: it is remembered in the store
and not asked for again for STAFF_RECHECK, which spares a nightly run one round trip per departed
attorney or paralegal (on the thread that reads the listing). A refusal (403) is asked again each run.
"""

from __future__ import annotations

import datetime as dt

from mycase_sync.errors import ServiceError
from mycase_sync.sync.mapping import index_staff, staff_ids
from mycase_sync.values import iso, parse_iso, positive_id, utcnow

GONE_KEY = "import-matters:staff-gone"  # in the store's cursors: {staff id: when MyCase answered 404}
STAFF_RECHECK = dt.timedelta(days=7)


class StaffDirectory:
    """`staff`: id -> staff, as mapping.index_staff makes it; `not_found`: ids asked for and not there."""

    def __init__(self, mycase, store):
        self.mycase = mycase
        self.store = store
        self.staff: dict = {}
        self.not_found: set[int] = set()
        self.gone: dict[str, str] = {}  # of those, the ones MyCase has not (404): id -> when asked

    def load(self) -> None:
        """Both staff lists, and the ids a recent run found MyCase no longer has."""
        self.staff = index_staff(self.mycase.list_staff())
        recent = utcnow() - STAFF_RECHECK
        for key, asked in (self.store.get_cursor(GONE_KEY) or {}).items():
            staff_id, when = positive_id(key), parse_iso(asked) if isinstance(asked, str) else None
            if staff_id is not None and when is not None and when > recent and staff_id not in self.staff:
                self.gone[str(staff_id)] = asked
                self.not_found.add(staff_id)

    def find(self, case: dict) -> None:
        """Staff on this case that neither staff list holds: asked for by id, once a run each."""
        for staff_id in staff_ids(case):
            if staff_id in self.staff or staff_id in self.not_found:
                continue
            try:
                record = self.mycase.get_staff(staff_id)
            except ServiceError as exc:
                if exc.status is None or exc.status >= 500 or exc.status == 429:
                    raise
                record = False  # refused (403...): as good as not there, for this run
            found = index_staff([record] if record else [])
            if staff_id in found:
                self.staff[staff_id] = found[staff_id]
            else:
                self.not_found.add(staff_id)
                if record is None:
                    self.gone[str(staff_id)] = iso(utcnow())

    def keep(self) -> None:
        """Remember the ids MyCase has not for the next runs; the store is written only when they changed."""
        if self.gone != (self.store.get_cursor(GONE_KEY) or {}):
            self.store.set_cursor(GONE_KEY, dict(sorted(self.gone.items())))
