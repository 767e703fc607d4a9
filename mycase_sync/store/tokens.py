"""The stored MyCase connection (one row of `tokens`) and the authorization requests in flight.

The token values are secrets: they are read here and handed to the auth module, never logged.
Who is connected (user, firm, expiries) is readable without them, for `status`.
"""

from __future__ import annotations

from typing import Any

TOKEN_ROW_ID = 1


class TokenTable:
    def __init__(self, store):
        self.store = store

    def read(self) -> dict | None:
        """The stored token set as a dict of columns, or None when nothing is connected."""
        row = next(iter(self.store.db.query("select * from tokens where id = ?", [TOKEN_ROW_ID])), None)
        return row if row and row.get("access_token") else None

    def replace(self, row: dict[str, Any]) -> None:
        """A new connection replaces any earlier one."""
        with self.store.transaction() as db:
            db.execute("delete from tokens")
            db["tokens"].insert({**row, "id": TOKEN_ROW_ID})

    def update(self, fields: dict[str, Any]) -> None:
        with self.store.transaction() as db:
            db["tokens"].update(TOKEN_ROW_ID, fields)

    def mark_needs_reauth(self, reason: str) -> None:
        with self.store.transaction() as db:
            db.execute("update tokens set needs_reauth = 1, reauth_reason = ? where id = ?", [reason[:300], TOKEN_ROW_ID])

    def delete(self) -> bool:
        """Forget the connection, overwriting the freed pages; True if there was one."""
        self.store.db.execute("PRAGMA secure_delete = ON")
        with self.store.transaction() as db:
            had = db.execute("select count(*) from tokens").fetchone()[0] > 0
            db.execute("delete from tokens")
        return had

    # --- authorization requests whose URL was printed -----------------------------------------
    def add_pending_state(self, state: str, created_at: str, expires_at: str) -> None:
        """Remember an OAuth state (and forget expired ones): a pasted redirect must carry one of these."""
        with self.store.transaction() as db:
            db.execute("delete from oauth_pending where expires_at <= ?", [created_at])
            db["oauth_pending"].insert({"state": state, "created_at": created_at, "expires_at": expires_at})

    def take_pending_state(self, state: str, now: str) -> bool:
        """Consume a state once: True if it was issued and has not expired."""
        with self.store.transaction() as db:
            return db.execute("delete from oauth_pending where state = ? and expires_at > ?", [state, now]).rowcount == 1

    def clear_pending_states(self) -> None:
        with self.store.transaction() as db:
            db.execute("delete from oauth_pending")
