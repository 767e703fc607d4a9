"""The schema of the state store, as numbered migrations (sqlite-utils' Migrations).

A migration, once released, never changes: a new column or table is a new migration, so that
every store, however old, reaches the same schema.
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("mycase_sync")


@migrations(name="0001_initial")
def _initial(db: Database) -> None:
    db["tokens"].create(
        {
            "id": int,
            "access_token": str,
            "refresh_token": str,
            "token_type": str,
            "expires_at": str,  # ISO 8601 UTC
            "refresh_expires_at": str,
            "obtained_at": str,
            "last_refresh_at": str,
            "firm_uuid": str,
            "user_name": str,
            "user_email": str,
            "firm_name": str,
            "needs_reauth": int,
            "reauth_reason": str,
        },
        pk="id",
    )
    db["cursors"].create({"job": str, "value": str, "updated_at": str}, pk="job")
    db["matters"].create(
        {
            "mycase_id": str,  # the key: MyCase case id as a string
            "casestatus_id": int,
            "readable_id": str,
            "fields_hash": str,  # hash of the last fields Case Status is known to hold
            "fields": str,  # JSON of those fields
            "state": str,  # synced | pending (write outcome unknown) | failed | skipped
            "attempts": int,
            "last_error": str,
            "updated_at": str,
        },
        pk="mycase_id",
    )
    db["matters"].create_index(["casestatus_id"])
    db["matters"].create_index(["state"])
    db["ledger"].create(
        {
            "kind": str,  # document | message
            "item_id": int,  # Case Status id of the file or message
            "integration_id": str,  # MyCase case id the item belongs to
            "state": str,  # pending | claimed | sent | waiting | failed
            "attempts": int,
            "last_error": str,
            "remote_id": str,  # MyCase note or document id once confirmed
            "sha256": str,
            "size": int,
            "item": str,  # JSON of the Case Status record, so a retry needs no re-listing
            "created_at": str,
            "updated_at": str,
        },
        pk=("kind", "item_id"),
    )
    db["ledger"].create_index(["kind", "state"])
    db["runs"].create(
        {
            "id": int,
            "run_id": str,
            "job": str,
            "started_at": str,
            "finished_at": str,
            "outcome": str,  # running | success | partial | failed | temporary | auth
            "counts": str,  # JSON
            "error": str,
        },
        pk="id",
    )
    db["runs"].create_index(["job", "started_at"])


@migrations(name="0002_oauth_pending")
def _oauth_pending(db: Database) -> None:
    """Authorization requests whose URL was printed: a pasted redirect is accepted only with one of these states."""
    db["oauth_pending"].create({"state": str, "created_at": str, "expires_at": str}, pk="state")


@migrations(name="0003_matters_waiting_for")
def _matters_waiting_for(db: Database) -> None:
    """A matter skipped because its lead attorney has no Case Status user waits for that email:
    the import retries it by id once the user exists, though nothing changed in MyCase."""
    db["matters"].add_column("waiting_for", str)


@migrations(name="0004_identity")
def _identity(db: Database) -> None:
    """Whose store this is: the MyCase firm and a keyed fingerprint of the Case Status API key
    (never the key), so that a store is never applied to another firm's records."""
    db["identity"].create(
        {
            "id": int,
            "mycase_firm_uuid": str,
            "mycase_firm_name": str,
            "casestatus_key_fingerprint": str,  # HMAC-SHA256 of the key under `salt`
            "salt": str,
            "recorded_at": str,
        },
        pk="id",
    )


@migrations(name="0005_pacing")
def _pacing(db: Database) -> None:
    """The pace each service was found to allow (requests/s), and the rate its last 429 refused."""
    db["pacing"].create({"service": str, "rate": float, "refused": float, "updated_at": str}, pk="service")


@migrations(name="0006_ignored")
def _ignored(db: Database) -> None:
    """Matters and push items the firm chose to give up (`mycase-sync ignore`): why, since when, and
    the state to put back on --undo."""
    for table in ("matters", "ledger"):
        db[table].add_column("ignored_reason", str)
        db[table].add_column("ignored_at", str)
        db[table].add_column("ignored_from", str)


@migrations(name="0007_run_kind")
def _run_kind(db: Database) -> None:
    """A run by hand (--case, --since) is told apart from a scheduled one: only the latter says whether
    cron's runs work. Runs recorded before this have no kind and count as scheduled."""
    db["runs"].add_column("kind", str)
