"""The `identity` row: which MyCase firm and which Case Status account this store belongs to."""

from __future__ import annotations

import secrets
from typing import Any

from mycase_sync.values import iso, utcnow

IDENTITY_ROW_ID = 1


class IdentityTable:
    def __init__(self, store):
        self.store = store

    def recorded(self) -> dict[str, Any] | None:
        """The identity as recorded, None before any; never writes (for read-only checks)."""
        return next(iter(self.store.db.query("select * from identity where id = ?", [IDENTITY_ROW_ID])), None)

    def read(self) -> dict[str, Any]:
        """The recorded identity; a new row with a fresh salt the first time it is asked for."""
        row = self.recorded()
        if row is not None:
            return row
        with self.store.transaction() as db:
            db.execute("insert or ignore into identity (id, salt, recorded_at) values (?, ?, ?)",
                       [IDENTITY_ROW_ID, secrets.token_hex(16), iso(utcnow())])
        return next(iter(self.store.db.query("select * from identity where id = ?", [IDENTITY_ROW_ID])))

    def record(self, **fields: Any) -> None:
        self.read()
        with self.store.transaction() as db:
            db["identity"].update(IDENTITY_ROW_ID, {**fields, "recorded_at": iso(utcnow())})
