"""What the firm chose to give up (`mycase-sync ignore`): matters, and push items of one kind.

An ignored row keeps its data; its state becomes IGNORED (so no job's query picks it up), and the
state it had is kept beside the reason and the time, so that --undo puts it back where it stood.
"""

from __future__ import annotations

from typing import Any

from mycase_sync.values import iso, utcnow

IGNORED = "ignored"  # the same word in MatterState and ItemState
_CHUNK = 500  # ids per `in (...)`: under SQLite's variable limit


class IgnoreList:
    """The ignorable rows of one table: `matters` (by mycase_id) or `ledger` (by item_id, one kind)."""

    def __init__(self, store, table: str, key: str, kind: str | None = None):
        self.store = store
        self.table = table
        self.key = key
        self.scope, self.scope_params = ("kind = ? and ", [kind]) if kind else ("", [])

    def _where(self, ids: list) -> tuple[str, list]:
        marks = ",".join("?" for _ in ids)
        return f"{self.scope}{self.key} in ({marks})", [*self.scope_params, *ids]

    def states(self, ids: list) -> dict[Any, str]:
        """The state of each of these rows that exists (an id not in the store is absent)."""
        found: dict[Any, str] = {}
        for start in range(0, len(ids), _CHUNK):
            where, params = self._where(ids[start:start + _CHUNK])
            found.update(self.store.db.execute(f"select {self.key}, state from {self.table} where {where}",
                                               params).fetchall())
        return found

    def ignore(self, ids: list, reason: str | None) -> list:
        """Ignore these rows (those not ignored yet); returns the ids it changed."""
        changed = []
        now = iso(utcnow())
        with self.store.transaction() as db:
            for row_id in ids:
                where, params = self._where([row_id])
                if db.execute(f"update {self.table} set ignored_from = state, state = ?, ignored_reason = ?,"
                              f" ignored_at = ?, updated_at = ? where {where} and state != ?",
                              [IGNORED, reason, now, now, *params, IGNORED]).rowcount:
                    changed.append(row_id)
        return changed

    def undo(self, ids: list, fallback: str) -> dict[Any, str]:
        """Put ignored rows back in the state they had (`fallback` if unknown); id -> that state."""
        restored: dict[Any, str] = {}
        with self.store.transaction() as db:
            for row_id in ids:
                where, params = self._where([row_id])
                row = db.execute(f"select ignored_from from {self.table} where {where} and state = ?",
                                 [*params, IGNORED]).fetchone()
                if row is None:
                    continue
                state = row[0] if row[0] and row[0] != IGNORED else fallback
                db.execute(f"update {self.table} set state = ?, ignored_from = null, ignored_reason = null,"
                           f" ignored_at = null, updated_at = ? where {where}", [state, iso(utcnow()), *params])
                restored[row_id] = state
        return restored

    def ids(self) -> set:
        return {row[0] for row in self.store.db.execute(
            f"select {self.key} from {self.table} where {self.scope}state = ?", [*self.scope_params, IGNORED])}

    def latest(self, columns: tuple[str, ...], limit: int) -> list[dict]:
        """For `status`: the most recently ignored rows, with `columns`, the reason and the time."""
        names = [*columns, "ignored_reason", "ignored_at"]
        rows = self.store.db.execute(
            f"select {', '.join(names)} from {self.table} where {self.scope}state = ?"
            f" order by ignored_at desc, {self.key} limit ?", [*self.scope_params, IGNORED, limit]).fetchall()
        return [dict(zip([*columns, "reason", "ignored_at"], row)) for row in rows]
