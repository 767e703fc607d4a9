"""The end state the reliability tests demand, worked out from the sandbox's own records.

Whatever happened on the way (kills, fault storms, short tokens, skewed clocks), these say
whether every message is once a note and every file once a document with the right bytes, on the
right MyCase matter, and whether the client broke the contract anywhere.
"""

from __future__ import annotations

import collections
import datetime as dt
import re
from pathlib import Path

from conftest import Cli, sandbox_secrets
from import_oracle import UTC, expected_outcomes, held, ten_years_before
from mycase_sync.store import open_store


def connect(sandbox, db_path) -> None:
    """A token in the store, as after `mycase-sync auth`."""
    from mycase_sync.mycase.tokens import save_token_set

    store = open_store(db_path)
    try:
        save_token_set(store, sandbox.mycase.issue_tokens())
    finally:
        store.close()


def make_cli(sandbox, home: Path, db_path: Path, **env: str) -> Cli:
    """The real CLI pointed at a sandbox started outside the fixtures (as conftest's `cli` does)."""
    full = dict(sandbox.env(), MYCASE_SYNC_DB=str(db_path), MYCASE_SYNC_TIMEOUT="5")
    full.update(env)
    return Cli(env=full, cwd=home, secret_sources=[lambda: sandbox_secrets(sandbox)])


def active_cases(sandbox) -> list[int]:
    """MyCase case ids the seeded firm has Case Status messages or files for."""
    ids = {m["integration_id"] for m in sandbox.firm.messages} | {f["integration_id"] for f in sandbox.firm.files}
    return sorted(int(i) for i in ids)


def seed_imported(sandbox, db_path, case_ids) -> set[str]:
    """Create the Case Status cases (revealing their activity) and record them as import-matters does."""
    email = next(iter(sandbox.casestatus.users.values()))["email"]
    done = {}
    for case_id in case_ids:
        case = sandbox.casestatus.case_by_integration_id(str(case_id)) or sandbox.casestatus.create_case(
            integration_id=str(case_id), readable_id=f"R-{case_id}", primary_attorney_email=email)
        done[str(case_id)] = case["id"]
    store = open_store(db_path)
    try:
        with store.transaction() as db:
            for mycase_id, casestatus_id in done.items():
                db["matters"].insert({"mycase_id": mycase_id, "casestatus_id": casestatus_id, "state": "synced"},
                                     replace=True)
    finally:
        store.close()
    return set(done)


def _by_marker(records, word: str, text_key: str) -> dict[int, list[dict]]:
    found: dict[int, list[dict]] = {}
    for record in records:
        for item_id in re.findall(rf"\[casestatus:{word}:(\d+)\]", record.get(text_key) or ""):
            found.setdefault(int(item_id), []).append(record)
    return found


def _once(items, pushed: dict[int, list[dict]], total: int, case_of, mapped: set[str], check) -> None:
    expected = 0
    for item in items:
        iid = case_of(item)["integration_id"]
        if iid not in mapped:
            assert item["id"] not in pushed, f"item {item['id']} of an unimported case was pushed"
            continue
        expected += 1
        records = pushed.get(item["id"], [])
        assert len(records) == 1, f"item {item['id']} arrived {len(records)} times"
        assert str(records[0]["case_id"]) == iid, f"item {item['id']} went to matter {records[0]['case_id']}"
        check(item, records[0])
    assert total == expected, f"{total} records in MyCase for {expected} items"


def _assert_once(sandbox, mapped: set[str], items: str, records: str, word: str, text_key: str, check) -> None:
    cs, mc = sandbox.casestatus, sandbox.mycase
    with cs.lock, mc.lock:  # a consistent snapshot of both services
        listed = [dict(i) for i in getattr(cs, items).values()]
        pushed = [dict(r) for r in getattr(mc, records).values()]
        cases = {cid: dict(c) for cid, c in cs.cases.items()}
    _once(listed, _by_marker(pushed, word, text_key), len(pushed), lambda i: cases[i["case_id"]], mapped, check)


def assert_messages_once(sandbox, mapped: set[str]) -> None:
    """Every Case Status message on an imported case is exactly one note on its matter, nothing else."""

    def check(message, note):
        assert note["note"].startswith(message["content"].strip() or "(no text)")
        assert note["date"] == message["sent_at"]

    _assert_once(sandbox, mapped, "messages", "notes", "message", "note", check)


def assert_documents_once(sandbox, mapped: set[str]) -> None:
    """Every Case Status file on an imported case is exactly one document on its matter, with its bytes."""

    def check(record, doc):
        assert doc["bytes_sha256"] == sandbox.casestatus.file_sha256(record["id"]), f"file {record['id']}: wrong bytes"
        assert doc["size"] == record["size"]

    _assert_once(sandbox, mapped, "files", "documents", "file", "description", check)


def expected_matters(sandbox) -> dict[str, dict]:
    """MyCase id -> the Case Status fields, for every matter a backfill must create (import_oracle's rules)."""
    expected = expected_outcomes(sandbox, ten_years_before(dt.datetime.now(UTC)))
    return {mid: fields for mid, (outcome, fields) in expected.items() if outcome == "created"}


def assert_matters_once(sandbox, db_path, wanted: dict[str, dict]) -> None:
    """Each matter once in Case Status with every field right, its stage written once; the store agrees."""
    cs = sandbox.casestatus
    with cs.lock:
        cases = [dict(c) for c in cs.cases.values()]
        stages = list(cs.stage_changes)
    per_matter = collections.Counter(c["integration_id"] for c in cases)
    assert [mid for mid, n in per_matter.items() if n > 1] == []
    assert set(per_matter) == set(wanted)
    for case in cases:
        assert held(case) == wanted[case["integration_id"]], case["integration_id"]
    stage_writes = collections.Counter(s["integration_id"] for s in stages)
    assert [mid for mid, n in stage_writes.items() if n > 1] == []  # each stage write sends a survey
    store = open_store(db_path)
    try:
        rows = {r["mycase_id"]: r for r in store.db.query("select * from matters")}
    finally:
        store.close()
    assert [mid for mid, r in rows.items() if r["state"] == "pending"] == []
    ids = {c["integration_id"]: c["id"] for c in cases}
    assert {mid: rows[mid]["casestatus_id"] for mid in wanted} == ids
    assert all(rows[mid]["state"] == "synced" for mid in wanted)


def ledger_states(db_path, kind: str) -> dict[int, str]:
    store = open_store(db_path)
    try:
        return {row[0]: row[1] for row in store.db.execute(
            "select item_id, state from ledger where kind = ?", [kind]).fetchall()}
    finally:
        store.close()


def no_contract_breach(sandbox) -> None:
    """No sandbox bug and no client mistake (a body cut off by a kill never reaches a route, as on a real server)."""
    for service in (sandbox.mycase, sandbox.casestatus):
        assert service.crashes == []
        assert service.violations == []


def assert_job_end_state(sandbox, db_path, job: str, mapped: set[str]) -> None:
    """What a job must have left once it finished: its records once each, its ledger all sent."""
    if job == "import-matters":
        assert_matters_once(sandbox, db_path, expected_matters(sandbox))
    elif job == "push-messages":
        assert_messages_once(sandbox, mapped)
        assert set(ledger_states(db_path, "message").values()) == {"sent"}
    else:
        assert_documents_once(sandbox, mapped)
        assert set(ledger_states(db_path, "document").values()) == {"sent"}
        assert not (Path(db_path).parent / "push-documents.tmp").exists()
    no_contract_breach(sandbox)
