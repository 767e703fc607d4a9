"""The `matters` table: MyCase case id -> Case Status case, the fields Case Status holds, and
where each matter stands (see MatterState). Also the run's index of Case Status cases read
during a backfill, kept in a TEMP table so memory stays flat and the store file is untouched.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable

from mycase_sync.store.ignored import IgnoreList
from mycase_sync.store.states import MatterState
from mycase_sync.values import iso, utcnow

# The matters this tool imported (a Case Status case exists for them): the push jobs send only these.
IMPORTED = "select mycase_id from matters where casestatus_id is not null"


@dataclass
class MatterRow:
    """A matter as the store knows it."""

    mycase_id: str
    casestatus_id: int | None
    fields: dict | None  # what Case Status is known to hold
    fields_hash: str | None
    state: str | None
    attempts: int
    last_error: str | None

    @property
    def trusted(self) -> bool:
        """The stored fields are what Case Status holds (no write of unknown outcome since)."""
        return self.casestatus_id is not None and self.fields is not None and self.state != MatterState.PENDING


class MatterTable:
    def __init__(self, store):
        self.store = store
        self.ignoring = IgnoreList(store, "matters", "mycase_id")  # matters the firm gave up

    def get(self, mycase_id: str) -> MatterRow | None:
        found = self.store.db.execute(
            "select casestatus_id, fields, fields_hash, state, attempts, last_error from matters where mycase_id = ?",
            [mycase_id]).fetchone()
        if found is None:
            return None
        cs_id, fields, digest, state, attempts, error = found
        return MatterRow(mycase_id, cs_id, json.loads(fields) if fields else None, digest, state, attempts or 0, error)

    def mark_pending(self, mycase_id: str, readable_id: str | None) -> None:
        """Committed before a matter's writes are sent: a crash from here on makes the next run read first."""
        with self.store.transaction() as db:
            db.execute("insert into matters (mycase_id, readable_id, state, attempts, updated_at) values (?, ?, ?, 0, ?)"
                       " on conflict (mycase_id) do update set state = excluded.state, updated_at = excluded.updated_at",
                       [mycase_id, readable_id, MatterState.PENDING, iso(utcnow())])

    def record(self, mycase_id: str, readable_id: str | None, state: str, *, error: str | None = None,
               charge: bool = False, waiting_for: str | None = None, casestatus_id: int | None = None,
               held: dict | None = None, held_hash: str | None = None) -> None:
        """Where a matter now stands: the one place a matter's outcome is written.

        SYNCED clears the error and the attempt count; any other state keeps the count, plus one
        when `charge` (the matter's own fault; an outage is never charged). The Case Status id and
        the held fields are written only when known, so an outcome never forgets them.
        """
        row: dict[str, Any] = {"mycase_id": mycase_id, "readable_id": readable_id, "state": state,
                               "waiting_for": waiting_for, "updated_at": iso(utcnow())}
        if casestatus_id is not None:
            row["casestatus_id"] = casestatus_id
        if held is not None:
            row["fields"] = json.dumps(held, sort_keys=True, ensure_ascii=False)
            row["fields_hash"] = held_hash
        with self.store.transaction() as db:
            if state == MatterState.SYNCED:
                row.update(attempts=0, last_error=None)
            else:
                previous = db.execute("select attempts from matters where mycase_id = ?", [mycase_id]).fetchone()
                tries = (previous[0] or 0) if previous else 0
                row.update(attempts=tries + (1 if charge else 0), last_error=error)
            db["matters"].upsert(row, pk="mycase_id")

    def to_retry(self) -> list[tuple[str, str, str | None]]:
        """(mycase_id, state, waiting_for) of the matters a run retries by id: failed, pending, and
        skipped ones waiting for a Case Status user."""
        return self.store.db.execute(
            "select mycase_id, state, waiting_for from matters where state in (?, ?)"
            " or (state = ? and waiting_for is not null)",
            [MatterState.FAILED, MatterState.PENDING, MatterState.SKIPPED]).fetchall()

    def sample_imported(self, limit: int = 3) -> list[tuple[str, int]]:
        """A few (MyCase id, Case Status id) pairs in step: proof of which Case Status account this is."""
        return self.store.db.execute(
            "select mycase_id, casestatus_id from matters where casestatus_id is not null and state = ?"
            " order by mycase_id limit ?", [MatterState.SYNCED, limit]).fetchall()

    # --- for `status` ---------------------------------------------------------------------------
    def count_by_state(self) -> dict[str, int]:
        return dict(self.store.db.execute("select state, count(*) from matters group by state").fetchall())

    def latest_in_state(self, state: str, limit: int) -> list[dict]:
        return [
            {"mycase_id": mid, "readable_id": readable, "attempts": attempts, "last_error": err}
            for mid, readable, attempts, err in self.store.db.execute(
                "select mycase_id, readable_id, attempts, last_error from matters where state = ?"
                " order by updated_at desc, mycase_id limit ?", [state, limit]).fetchall()
        ]

    def reasons(self, state: str, limit: int) -> list[tuple[str | None, int]]:
        """Why matters are in `state`, most common reason first, with how many each."""
        return self.store.db.execute(
            "select last_error, count(*) as n from matters where state = ? group by last_error"
            " order by n desc, last_error limit ?", [state, limit]).fetchall()


class CaseIndex:
    """Case Status cases by integration_id, read once at the start of a backfill (this connection only)."""

    def __init__(self, store):
        self.store = store
        with store.transaction() as db:
            db.execute("create temp table if not exists casestatus_cases (integration_id text primary key, case_json text)")
            db.execute("delete from casestatus_cases")

    def add(self, cases: Iterable[tuple[str, dict]]) -> None:
        rows = [(integration_id, json.dumps(case)) for integration_id, case in cases]
        if rows:
            with self.store.transaction() as db:
                db.conn.executemany("insert or replace into casestatus_cases values (?, ?)", rows)

    def get(self, integration_id: str) -> dict | None:
        found = self.store.db.execute("select case_json from casestatus_cases where integration_id = ?",
                                      [integration_id]).fetchone()
        return json.loads(found[0]) if found else None
