"""The `pacing` table: the pace each service was found to allow, kept for the next run.

Written once at the end of a run, and only when the pace moved (never per request: cron starts an
idle push every 5 minutes); the live pace, shared by the jobs while they run, is in the file
beside the store (mycase_sync/pacing.py).
"""

from __future__ import annotations

from mycase_sync.values import iso, utcnow

CHANGE = 0.1  # a pace that moved less than this share since it was stored is not written again


class PaceTable:
    def __init__(self, store):
        self.store = store

    def read(self) -> dict[str, dict]:
        """service -> {"rate", "refused", "updated_at"}, for every service with a stored pace."""
        return {row.pop("service"): row for row in self.store.db.query("select * from pacing order by service")}

    def get(self, service: str) -> dict | None:
        return self.read().get(service)

    def keep(self, service: str, rate: float, refused: float) -> bool:
        """Store the pace of `service` if it moved since it was stored; True when written."""
        old = self.get(service)
        if old is not None and _close(old["rate"], rate) and _close(old["refused"] or 0.0, refused):
            return False
        with self.store.transaction() as db:
            db["pacing"].upsert({"service": service, "rate": round(rate, 3), "refused": round(refused, 3) or None,
                                 "updated_at": iso(utcnow())}, pk="service")
        return True

    def forget(self) -> None:
        """No pace known: the next run starts low and finds it again."""
        with self.store.transaction() as db:
            db.execute("delete from pacing")


def _close(old: float, new: float) -> bool:
    return abs(new - old) <= CHANGE * max(old, new)
