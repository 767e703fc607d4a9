"""What the sandbox firm should become, worked out independently of the code under test.

Matters (import-matters): every field as the issue and API-NOTES specify it, from the sandbox's
canonical records (not from what MyCase rendered). Pushes: every Case Status message on an imported
case is exactly one note on its matter, every file exactly one document with its bytes. Whatever
happened on the way (kills, fault storms, short tokens, skewed clocks), these say whether the end
state is exact and whether the client broke the contract anywhere.
"""

from __future__ import annotations

import collections
import datetime as dt
import re
from pathlib import Path

import phonenumbers

from mycase_sync.store import open_store
from mycase_sync.sync.filenames import safe_filename


# --- matters: what import-matters makes of each MyCase case ---------------------------------------
UTC = dt.timezone.utc


def ten_years_before(moment: dt.datetime) -> dt.datetime:
    try:
        return moment.replace(year=moment.year - 10)
    except ValueError:
        return moment.replace(year=moment.year - 10, day=28)


def e164(raw) -> str | None:
    try:
        number = phonenumbers.parse(raw or "", "US")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def blank(value):
    return None if value is None or (isinstance(value, str) and not value.strip()) else value


def expected_outcomes(sandbox, cutoff: dt.datetime) -> dict[str, tuple[str, object]]:
    """MyCase id -> ("created", fields) | ("skipped", reason words) | ("failed", reason words), for the window."""
    mycase = sandbox.mycase
    staff = {int(s["id"]): s for s in mycase.staff.values()}
    users = {u["email"].lower() for u in sandbox.casestatus.users.values()}
    out: dict[str, tuple[str, object]] = {}
    for cid, case in mycase.cases.items():
        if max(case["created_at"], case["updated_at"]) < cutoff:
            continue
        key = str(cid)
        entries = case.get("staff") or []
        unknown = [e["id"] for e in entries if int(e["id"]) not in staff and e.get("lead_lawyer")]
        if unknown:  # a lead attorney unknown to MyCase fails the matter; other unknown staff are left off
            out[key] = ("failed", f"lead attorney staff id {unknown[0]} is not in MyCase")
            continue
        entries = [e for e in entries if int(e["id"]) in staff]
        opened = case.get("opened_date")
        if opened and not _is_date(opened):
            out[key] = ("failed", f"opened_date {opened!r} is not a date")
            continue
        readable = blank(case.get("case_number")) or blank(case.get("name"))
        if readable is None:
            out[key] = ("failed", "no case number and no name")
            continue
        people = [staff[int(e["id"])] for e in entries]
        leads = [staff[int(e["id"])] for e in entries if e.get("lead_lawyer")]
        attorneys = [p for p in people if p["type"] == "Attorney"]
        lead = leads[0] if leads else attorneys[0] if attorneys else None
        if lead is None:
            out[key] = ("skipped", "no attorney on the case")
            continue
        if lead["email"].lower() not in users:
            out[key] = ("skipped", "is not a Case Status user")
            continue
        clients = []
        for client_id in case.get("clients") or []:
            client = mycase.clients[client_id]
            email = client.get("email")
            clients.append({"first_name": client["first_name"], "last_name": client["last_name"],
                            "email": email if email and "@" in email else None,
                            "cell_phone": e164(client.get("cell_phone_number"))})
        closed = case["status"] == "closed"
        out[key] = ("created", {
            "integration_id": key,
            "readable_id": readable,
            "description": blank(case.get("description")),
            "case_date": opened or None,
            "practice_area": blank(case.get("practice_area")),
            "stage": blank(case.get("case_stage")),
            "primary_attorney_email": lead["email"],
            "attorney_emails": sorted({p["email"] for p in attorneys if p is not lead}, key=str.lower),
            "paralegal_emails": sorted({p["email"] for p in people if p["type"] == "Paralegal"}, key=str.lower),
            "clients": clients,
            "status": "closed" if closed else "open",
            "closed_date": case.get("closed_date") if closed else None,
        })
    return out


def _is_date(text: str) -> bool:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return False
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


FIELDS = ("integration_id", "readable_id", "description", "case_date", "practice_area", "stage",
          "primary_attorney_email", "attorney_emails", "paralegal_emails", "clients", "status", "closed_date")


def held(case: dict) -> dict:
    """A Case Status case's fields, email lists sorted, for comparison with the oracle."""
    fields = {name: case.get(name) for name in FIELDS}
    for name in ("attorney_emails", "paralegal_emails"):
        fields[name] = sorted(fields[name] or [], key=str.lower)
    return fields


# --- matters ---------------------------------------------------------------------------------------
def expected_matters(sandbox) -> dict[str, dict]:
    """MyCase id -> the Case Status fields, for every matter a backfill must create (the rules above)."""
    expected = expected_outcomes(sandbox, ten_years_before(dt.datetime.now(UTC)))
    return {mid: fields for mid, (outcome, fields) in expected.items() if outcome == "created"}


def assert_matters_once(sandbox, db_path, wanted: dict[str, dict]) -> None:
    """Each matter once in Case Status with every field right, its stage written once (each stage write
    sends the client a survey; the sandbox logs a repeat as a violation); the store agrees, unless
    db_path is None (after a run whose last writes had no answer: those matters stay pending, to be
    read back by the next run)."""
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
    assert [mid for mid, n in stage_writes.items() if n > 1] == []
    assert cs.violations == []
    if db_path is None:
        return
    store = open_store(db_path)
    try:
        rows = {r["mycase_id"]: r for r in store.db.query("select * from matters")}
    finally:
        store.close()
    assert [mid for mid, r in rows.items() if r["state"] == "pending"] == []
    ids = {c["integration_id"]: c["id"] for c in cases}
    assert {mid: rows[mid]["casestatus_id"] for mid in wanted} == ids
    assert all(rows[mid]["state"] == "synced" for mid in wanted)


# --- pushed items ----------------------------------------------------------------------------------
def by_marker(records, word: str, text_key: str) -> dict[int, list[dict]]:
    """Case Status item id -> the MyCase records carrying its marker."""
    found: dict[int, list[dict]] = {}
    for record in records:
        for item_id in re.findall(rf"\[casestatus:{word}:(\d+)\]", record.get(text_key) or ""):
            found.setdefault(int(item_id), []).append(record)
    return found


def notes_by_marker(sandbox) -> dict[int, list[dict]]:
    with sandbox.mycase.lock:
        return by_marker([dict(n) for n in sandbox.mycase.notes.values()], "message", "note")


def documents_by_marker(sandbox) -> dict[int, list[dict]]:
    with sandbox.mycase.lock:
        return by_marker([dict(d) for d in sandbox.mycase.documents.values()], "file", "description")


def _once(items, pushed: dict[int, list[dict]], total: int, case_of, mapped: set[str], check) -> None:
    """Every item on a mapped case has exactly one MyCase record, on its case; the rest none; nothing else."""
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
    assert sum(len(v) for v in pushed.values()) == total, "a MyCase record carries no marker, or several"
    assert total == expected, f"{total} records in MyCase for {expected} items"


def _assert_once(sandbox, mapped: set[str], items: str, records: str, word: str, text_key: str, check) -> None:
    cs, mc = sandbox.casestatus, sandbox.mycase
    with cs.lock, mc.lock:  # a consistent snapshot of both services
        listed = [dict(i) for i in getattr(cs, items).values()]
        pushed = [dict(r) for r in getattr(mc, records).values()]
        cases = {cid: dict(c) for cid, c in cs.cases.items()}
    _once(listed, by_marker(pushed, word, text_key), len(pushed), lambda i: cases[i["case_id"]], mapped, check)


def assert_messages_once(sandbox, mapped: set[str]) -> None:
    """Every Case Status message on an imported case is exactly one note on its matter, nothing else:
    its text, who sent it in which direction, when."""

    def check(message, note):
        assert note["note"].startswith(message["content"].strip() or "(no text)")
        assert note["note"].startswith(message["content"])
        direction = "from" if message["type"] == "incoming" else "to client, from"
        assert note["subject"].startswith(f"Case Status message {direction} {message['sender_name']}")
        assert note["date"] == message["sent_at"]

    _assert_once(sandbox, mapped, "messages", "notes", "message", "note", check)


def assert_documents_once(sandbox, mapped: set[str]) -> None:
    """Every Case Status file on an imported case is exactly one document on its matter, in the
    matter's root folder, with a safe name and its bytes."""

    def check(record, doc):
        assert doc["folder_path"] == "Case Documents"
        assert doc["name"] == doc["filename"] == safe_filename(record["file_name"], record["extension"])
        assert doc["bytes_sha256"] == sandbox.casestatus.file_sha256(record["id"]), f"file {record['id']}: wrong bytes"
        assert doc["size"] == record["size"]

    _assert_once(sandbox, mapped, "files", "documents", "file", "description", check)


def ledger_states(db_path, kind: str) -> dict[int, str]:
    """Item id -> its state in the push ledger of `kind` ("message" or "document")."""
    store = open_store(db_path)
    try:
        return {row[0]: row[1] for row in store.db.execute(
            "select item_id, state from ledger where kind = ?", [kind]).fetchall()}
    finally:
        store.close()


def no_contract_breach(sandbox) -> None:
    """No sandbox bug and no client mistake (a body cut off by a kill never reaches a route, as on a real server)."""
    for service in (sandbox.mycase, sandbox.casestatus):
        assert service.crashes == [], service.crashes
        assert service.violations == [], service.violations


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
