"""MyCase case -> Case Status case fields, and what to write to bring a case in step: pure, no I/O.

Why pure: every rule of the contract (API-NOTES.md) lives here and is tested without a network:
who the lead attorney is, how a phone number becomes E.164, which malformed record fails and
which is imported with a note, and above all which writes a change needs (a stage is written
only when it changed: each stage write sends the client a survey).

A record that cannot be mapped faithfully raises MappingProblem: "failed" when the record is
broken (retried by id next run), "skipped" when it is valid but cannot go to Case Status (no
attorney at all, a lead attorney without a Case Status user).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import phonenumbers

from mycase_sync.casestatus import client as cs
from mycase_sync.mycase import client as mc
from mycase_sync.store.states import MatterState
from mycase_sync.text import clean
from mycase_sync.values import parse_timestamp, positive_id

FAILED = MatterState.FAILED  # the kinds of MappingProblem are the states the matter is recorded in
SKIPPED = MatterState.SKIPPED
BACKFILL_YEARS = 10
NIGHTLY_WINDOW = dt.timedelta(days=30)
# The window is reckoned by this machine's clock, `updated_at` by MyCase's: a day of overlap keeps
# a matter changed just after the last run in the next window even when the two clocks disagree
# by hours (re-reading a day of matters costs no writes: unchanged ones are skipped by hash).
OVERLAP = dt.timedelta(days=1)
_DAY = re.compile(r"^\s*(\d{4})-(\d{2})-(\d{2})")
_TRUE = (True, 1, "true", "True", "TRUE", "1")


class MappingProblem(Exception):
    """Why a case cannot be written. `waiting_for`: the Case Status user email it waits for."""

    def __init__(self, kind: str, reason: str, waiting_for: str | None = None):
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.waiting_for = waiting_for


@dataclass(frozen=True)
class StaffMember:
    id: int
    email: str | None
    first_name: str
    last_name: str
    kind: str  # the MyCase staff type, lower case: attorney | paralegal | staff | ...

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip() or f"staff {self.id}"


@dataclass
class MappedMatter:
    mycase_id: str
    fields: dict  # every Case Status field, in the form we write it
    lead: StaffMember
    notes: list[str] = field(default_factory=list)  # imported anyway, but the firm should know
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None

    @property
    def readable_id(self) -> str:
        return self.fields[cs.F_READABLE_ID]


# --- lenient parsing ------------------------------------------------------------------------
def case_id_of(case: Any) -> str | None:
    """The MyCase case id as the string we key on (integration_id), or None if it has none."""
    number = positive_id(case.get(mc.CASE_ID)) if isinstance(case, dict) else None
    return str(number) if number is not None else None


def cases_of_client(client: Any) -> list[str]:
    """The MyCase case ids a client (from GET /clients) is on, as we key on them; what cannot be read is left out."""
    cases = client.get(mc.CLIENT_CASES) if isinstance(client, dict) else None
    if not isinstance(cases, list):
        return []
    return [mid for mid in (case_id_of({mc.CASE_ID: c.get(mc.CLIENT_CASE_ID)}) for c in cases if isinstance(c, dict))
            if mid is not None]


def parse_day(value: Any, what: str) -> str | None:
    """A date (YYYY-MM-DD, or a date-time whose date part is taken) as YYYY-MM-DD; None when empty.

    Raises MappingProblem for anything else: a wrong date must not reach a client's portal.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    match = _DAY.match(value) if isinstance(value, str) else None
    if match:
        try:
            return dt.date(int(match[1]), int(match[2]), int(match[3])).isoformat()
        except ValueError:
            pass
    raise MappingProblem(FAILED, f"{what} {value!r} is not a date")


def _text(value: Any, what: str) -> str | None:
    """A name or text field: None for null or blank (Case Status refuses empty strings)."""
    if value is None:
        return None
    if isinstance(value, dict) and "name" in value:  # tolerate {id, name} where a name is documented
        value = value["name"]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise MappingProblem(FAILED, f"{what} is not text ({type(value).__name__})")
    value = clean(value, lines=True)  # half an emoji, NUL, escape sequences: never stored or sent
    return value if value.strip() else None


def mobile_e164(raw: Any, region: str) -> tuple[str | None, str | None]:
    """(the number in E.164, None) or (None, why it is not usable): clients log in with it."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None, "no mobile number"
    try:
        number = phonenumbers.parse(str(raw), region)
    except phonenumbers.NumberParseException:
        return None, f"mobile number {raw!r} is not a phone number"
    if not phonenumbers.is_valid_number(number):
        return None, f"mobile number {raw!r} is not a valid number"
    if phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.FIXED_LINE:
        return None, f"number {raw!r} is a landline"
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), None


# --- staff ----------------------------------------------------------------------------------
def _name_part(value: Any) -> str:
    """A staff name as text; anything else (null, a number, a list) counts as absent."""
    return clean(value).strip() if isinstance(value, str) else ""


def index_staff(records: Iterable[dict]) -> dict[int, StaffMember]:
    """/staff as id -> member (active and inactive: departed attorneys still lead old matters)."""
    index: dict[int, StaffMember] = {}
    for record in records:
        if not isinstance(record, dict):
            continue
        staff_id = positive_id(record.get(mc.STAFF_ID))
        if staff_id is None:
            continue
        email = record.get(mc.STAFF_EMAIL)
        index[staff_id] = StaffMember(
            id=staff_id,
            email=email.strip() if isinstance(email, str) and "@" in email else None,
            first_name=_name_part(record.get(mc.STAFF_FIRST_NAME)),
            last_name=_name_part(record.get(mc.STAFF_LAST_NAME)),
            kind=str(record.get(mc.STAFF_TYPE) or "").strip().lower(),
        )
    return index


def staff_ids(case: Any) -> list[int]:
    """The staff ids a case lists (those that are numbers): what index_staff must know to map it."""
    entries = case.get(mc.CASE_STAFF) if isinstance(case, dict) else None
    if not isinstance(entries, list):
        return []
    ids = (positive_id(e.get(mc.STAFF_ID) if isinstance(e, dict) else e) for e in entries)
    return [i for i in ids if i is not None]


def _people(case: dict, staff: Mapping[int, StaffMember], notes: list[str]) -> tuple[StaffMember, list[str], list[str]]:
    """(lead attorney, other attorneys' emails, paralegals' emails), or MappingProblem."""
    entries = case.get(mc.CASE_STAFF) or []
    if not isinstance(entries, list):
        raise MappingProblem(FAILED, "staff is not a list")
    members: list[tuple[StaffMember, bool]] = []
    for entry in entries:
        raw_id = entry.get(mc.STAFF_ID) if isinstance(entry, dict) else entry
        staff_id = positive_id(raw_id)
        if staff_id is None:
            raise MappingProblem(FAILED, f"staff entry with id {raw_id!r} is not a number")
        member = staff.get(staff_id)
        is_lead = isinstance(entry, dict) and entry.get(mc.STAFF_LEAD) in _TRUE
        if member is None:
            if is_lead:
                raise MappingProblem(FAILED, f"lead attorney staff id {staff_id} is not in MyCase (not listed, "
                                             "not found by id)")
            notes.append(f"staff id {staff_id} is not in MyCase (not listed, not found by id); left off this matter")
            continue
        if all(m.id != staff_id for m, _ in members):
            members.append((member, is_lead))
    leads = [m for m, lead in members if lead]
    attorneys = [m for m, _ in members if m.kind == mc.STAFF_TYPE_ATTORNEY]
    if leads:
        primary = leads[0]
        if len(leads) > 1:
            notes.append(f"{len(leads)} lead attorneys in MyCase; {primary.name} is the primary attorney")
    elif attorneys:
        primary = attorneys[0]
        notes.append(f"no lead attorney flagged in MyCase; {primary.name} (the first attorney) is the primary attorney")
    else:
        raise MappingProblem(SKIPPED, "no attorney on the case in MyCase")
    if primary.email is None:
        raise MappingProblem(FAILED, f"lead attorney {primary.name} (staff {primary.id}) has no email in MyCase")

    def emails(kind: str) -> list[str]:
        found: dict[str, str] = {}
        for member in (m for m, _ in members if m.kind == kind and m is not primary):
            if member.email is None:
                notes.append(f"{kind} {member.name} (staff {member.id}) has no email in MyCase; left out")
            elif member.email.lower() != primary.email.lower():
                found.setdefault(member.email.lower(), member.email)
        return [found[k] for k in sorted(found)]

    return primary, emails(mc.STAFF_TYPE_ATTORNEY), emails(mc.STAFF_TYPE_PARALEGAL)


# --- clients --------------------------------------------------------------------------------
def _clients(case: dict, region: str, notes: list[str]) -> list[dict]:
    raw = case.get(mc.CASE_CLIENTS) or []
    if not isinstance(raw, list):
        raise MappingProblem(FAILED, "clients is not a list")
    clients = []
    for item in raw:
        if not isinstance(item, dict) or mc.CLIENT_FIRST_NAME not in item:
            raise MappingProblem(FAILED, "clients came without their details (field[client] not expanded)")
        first = _text(item.get(mc.CLIENT_FIRST_NAME), "client first name")
        last = _text(item.get(mc.CLIENT_LAST_NAME), "client last name")
        if first is None or last is None:
            raise MappingProblem(FAILED, f"client {item.get(mc.CLIENT_ID)} has no {'first' if first is None else 'last'} name")
        first, last = first.strip(), last.strip()
        email = item.get(mc.CLIENT_EMAIL)
        email = email.strip() if isinstance(email, str) and "@" in email else None
        phone, problem = mobile_e164(item.get(mc.CLIENT_CELL_PHONE), region)
        if problem:
            notes.append(f"client {first} {last}: {problem}; they cannot log in to Case Status")
        clients.append({cs.CLIENT_FIRST_NAME: first, cs.CLIENT_LAST_NAME: last,
                        cs.CLIENT_EMAIL: email, cs.CLIENT_CELL_PHONE: phone})
    if not clients:
        notes.append("no clients on the case: nobody can follow it in Case Status")
    return clients


# --- the case -------------------------------------------------------------------------------
def map_matter(case: dict, staff: Mapping[int, StaffMember], region: str = "US") -> MappedMatter:
    """Every Case Status field for one MyCase case (clients expanded), or MappingProblem."""
    mycase_id = case_id_of(case)
    if mycase_id is None:
        raise MappingProblem(FAILED, f"case id {case.get(mc.CASE_ID)!r} is not a number")
    notes: list[str] = []
    status = str(case.get(mc.CASE_STATUS) or "").strip().lower()
    if status not in (mc.STATUS_OPEN, mc.STATUS_CLOSED):
        raise MappingProblem(FAILED, f"status {case.get(mc.CASE_STATUS)!r} is neither open nor closed")
    number = _text(case.get(mc.CASE_NUMBER), "case_number")
    name = _text(case.get(mc.CASE_NAME), "name")
    if name is None:
        notes.append("the case has no name in MyCase")
    readable = (number or name or "").strip()
    if not readable:
        raise MappingProblem(FAILED, "no case number and no name: nothing to show as the Case ID")
    practice_area = _text(case.get(mc.CASE_PRACTICE_AREA), "practice_area")
    if practice_area is None:
        notes.append("no practice area in MyCase")
    lead, attorneys, paralegals = _people(case, staff, notes)
    fields = {
        cs.F_INTEGRATION_ID: mycase_id,
        cs.F_READABLE_ID: readable,
        cs.F_DESCRIPTION: _text(case.get(mc.CASE_DESCRIPTION), "description"),
        cs.F_CASE_DATE: parse_day(case.get(mc.CASE_OPENED_DATE), "opened_date"),
        cs.F_PRACTICE_AREA: practice_area,
        cs.F_STAGE: _text(case.get(mc.CASE_STAGE), "case_stage"),
        cs.F_PRIMARY_ATTORNEY: lead.email,
        cs.F_ATTORNEYS: attorneys,
        cs.F_PARALEGALS: paralegals,
        cs.F_CLIENTS: _clients(case, region, notes),
        cs.F_STATUS: cs.STATUS_CLOSED if status == mc.STATUS_CLOSED else cs.STATUS_OPEN,
        cs.F_CLOSED_DATE: parse_day(case.get(mc.CASE_CLOSED_DATE), "closed_date") if status == mc.STATUS_CLOSED else None,
    }
    return MappedMatter(mycase_id, fields, lead, notes,
                        parse_timestamp(case.get(mc.CASE_CREATED_AT)), parse_timestamp(case.get(mc.CASE_UPDATED_AT)))


def check_lead_is_user(matter: MappedMatter, user_emails: set[str]) -> None:
    """Case Status refuses a case whose primary attorney is not one of its users: skip it, saying whom it waits for."""
    email = matter.lead.email or ""
    if email.lower() not in user_emails:
        raise MappingProblem(
            SKIPPED, f"lead attorney {matter.lead.name} <{email}> is not a Case Status user"
                     " (create the user, or run with --create-staff)", waiting_for=email)


# --- what Case Status holds, and what to write ----------------------------------------------
def canonical(fields: dict) -> str:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fields_hash(fields: dict) -> str:
    return hashlib.sha256(canonical(fields).encode()).hexdigest()


def held_from_case(case: dict) -> dict:
    """The fields a Case Status case holds, in the form map_matter produces (email lists sorted)."""
    held = {name: case.get(name) for name in cs.CASE_FIELDS}
    for name in (cs.F_ATTORNEYS, cs.F_PARALEGALS):
        values = held[name] if isinstance(held[name], list) else []
        held[name] = sorted(values, key=lambda e: str(e).lower())
    if not isinstance(held[cs.F_CLIENTS], list):
        held[cs.F_CLIENTS] = []
    held[cs.F_CLIENTS] = [{k: c.get(k) for k in (cs.CLIENT_FIRST_NAME, cs.CLIENT_LAST_NAME, cs.CLIENT_EMAIL,
                                                  cs.CLIENT_CELL_PHONE)} if isinstance(c, dict) else c
                          for c in held[cs.F_CLIENTS]]
    held[cs.F_STATUS] = held[cs.F_STATUS] or cs.STATUS_OPEN
    return held


@dataclass
class Plan:
    """The writes that bring `held` to `wanted`, in the order they are sent."""

    reopen: bool = False
    patch: dict = field(default_factory=dict)
    close: bool = False
    closed_date: str | None = None

    @property
    def empty(self) -> bool:
        return not (self.reopen or self.patch or self.close)

    def changed_fields(self) -> list[str]:
        names = set(self.patch)
        if self.reopen or self.close:
            names.update((cs.F_STATUS, cs.F_CLOSED_DATE))
        return sorted(names)


def plan_writes(wanted: dict, held: dict) -> Plan:
    """Only what differs; the stage only when it differs; status through close/reopen."""
    plan = Plan()
    for name in cs.CASE_FIELDS:
        if name in (cs.F_STATUS, cs.F_CLOSED_DATE, cs.F_INTEGRATION_ID):
            continue
        if canonical({"v": wanted.get(name)}) != canonical({"v": held.get(name)}):
            plan.patch[name] = wanted.get(name)
    want_closed = wanted.get(cs.F_STATUS) == cs.STATUS_CLOSED
    held_closed = held.get(cs.F_STATUS) == cs.STATUS_CLOSED
    if want_closed and not held_closed:
        plan.close, plan.closed_date = True, wanted.get(cs.F_CLOSED_DATE)
    elif held_closed and not want_closed:
        plan.reopen = True  # reopening clears the closed date
    elif wanted.get(cs.F_CLOSED_DATE) != held.get(cs.F_CLOSED_DATE):
        plan.patch[cs.F_CLOSED_DATE] = wanted.get(cs.F_CLOSED_DATE)
    return plan


def apply_step(held: dict, step: str, plan: Plan) -> dict:
    """`held` after one step of `plan` succeeded: what Case Status now holds."""
    after = dict(held)
    if step == "reopen":
        after[cs.F_STATUS], after[cs.F_CLOSED_DATE] = cs.STATUS_OPEN, None
    elif step == "patch":
        after.update(plan.patch)
    elif step == "close":
        after[cs.F_STATUS], after[cs.F_CLOSED_DATE] = cs.STATUS_CLOSED, plan.closed_date
    return after


# --- which matters a run takes --------------------------------------------------------------
def years_before(moment: dt.datetime, years: int) -> dt.datetime:
    try:
        return moment.replace(year=moment.year - years)
    except ValueError:  # 29 February
        return moment.replace(year=moment.year - years, day=28)


def normal_lower_bound(start: dt.datetime, last_success_start: dt.datetime | None, full: bool = False) -> dt.datetime:
    """First run and --full: 10 years back. Later: the earlier of 30 days back and the last success's start − 1 day."""
    if full or last_success_start is None:
        return years_before(start, BACKFILL_YEARS)
    return min(start - NIGHTLY_WINDOW, last_success_start - OVERLAP)
