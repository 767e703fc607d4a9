"""The schema the migrations build from a blank database, checked column by column.

A migration that is edited after release, or a table a module starts using without a migration,
shows up here first (the way llm's test_migrate does it).
"""

from __future__ import annotations

import sqlite3

from sqlite_utils import Database

from mycase_sync.store import open_store
from mycase_sync.store.schema import migrations

EXPECTED = {
    "tokens": {"id": "INTEGER", "access_token": "TEXT", "refresh_token": "TEXT", "token_type": "TEXT",
               "expires_at": "TEXT", "refresh_expires_at": "TEXT", "obtained_at": "TEXT", "last_refresh_at": "TEXT",
               "firm_uuid": "TEXT", "user_name": "TEXT", "user_email": "TEXT", "firm_name": "TEXT",
               "needs_reauth": "INTEGER", "reauth_reason": "TEXT"},
    "cursors": {"job": "TEXT", "value": "TEXT", "updated_at": "TEXT"},
    "matters": {"mycase_id": "TEXT", "casestatus_id": "INTEGER", "readable_id": "TEXT", "fields_hash": "TEXT",
                "fields": "TEXT", "state": "TEXT", "attempts": "INTEGER", "last_error": "TEXT", "updated_at": "TEXT",
                "waiting_for": "TEXT", "ignored_reason": "TEXT", "ignored_at": "TEXT", "ignored_from": "TEXT"},
    "ledger": {"kind": "TEXT", "item_id": "INTEGER", "integration_id": "TEXT", "state": "TEXT", "attempts": "INTEGER",
               "last_error": "TEXT", "remote_id": "TEXT", "sha256": "TEXT", "size": "INTEGER", "item": "TEXT",
               "created_at": "TEXT", "updated_at": "TEXT", "ignored_reason": "TEXT", "ignored_at": "TEXT",
               "ignored_from": "TEXT"},
    "runs": {"id": "INTEGER", "run_id": "TEXT", "job": "TEXT", "started_at": "TEXT", "finished_at": "TEXT",
             "outcome": "TEXT", "counts": "TEXT", "error": "TEXT", "kind": "TEXT"},
    "oauth_pending": {"state": "TEXT", "created_at": "TEXT", "expires_at": "TEXT"},
    "identity": {"id": "INTEGER", "mycase_firm_uuid": "TEXT", "mycase_firm_name": "TEXT",
                 "casestatus_key_fingerprint": "TEXT", "salt": "TEXT", "recorded_at": "TEXT"},
    "pacing": {"service": "TEXT", "rate": "REAL", "refused": "REAL", "updated_at": "TEXT"},
}
PRIMARY_KEYS = {"tokens": ["id"], "cursors": ["job"], "matters": ["mycase_id"], "ledger": ["kind", "item_id"],
                "runs": ["id"], "oauth_pending": ["state"], "identity": ["id"], "pacing": ["service"]}
INDEXES = {"matters": [["casestatus_id"], ["state"]], "ledger": [["kind", "state"]], "runs": [["job", "started_at"]]}


def built_from_blank() -> Database:
    db = Database(sqlite3.connect(":memory:"))
    migrations.apply(db)
    return db


def test_the_migrations_build_exactly_the_schema_the_store_uses():
    db = built_from_blank()
    tables = {name for name in db.table_names() if not name.startswith("_sqlite_migrations")}
    assert tables == set(EXPECTED)
    for name, columns in EXPECTED.items():
        assert {c.name: c.type for c in db[name].columns} == columns, name
        assert db[name].pks == PRIMARY_KEYS[name], name
        made = [i.columns for i in db[name].indexes if not i.name.startswith("sqlite_autoindex")]  # primary keys
        assert sorted(made) == sorted(INDEXES.get(name, [])), name


def test_a_store_opened_on_a_new_file_has_the_same_schema(tmp_path):
    store = open_store(tmp_path / "state.db")
    try:
        blank = built_from_blank()
        for name in EXPECTED:
            assert store.db[name].schema == blank[name].schema
    finally:
        store.close()
