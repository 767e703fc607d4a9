"""What import-matters should make of the sandbox firm, worked out independently of the code under test.

The tests compare Case Status after a real CLI run against this: every field as the issue and
API-NOTES specify it, from the sandbox's canonical records (not from what MyCase rendered).
"""

from __future__ import annotations

import datetime as dt
import re

import phonenumbers

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
        unknown = [e["id"] for e in entries if int(e["id"]) not in staff]
        if unknown:
            out[key] = ("failed", f"staff id {unknown[0]} is not in the MyCase staff list")
            continue
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
