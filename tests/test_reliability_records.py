"""Arbitrary records (hypothesis): every mapping function returns a usable result or a typed,
explained rejection, nothing else.

MyCase cases, staff and clients, and Case Status messages, files and cases, are fed as any JSON a
service could send: fields missing, null, of the wrong type, NaN, huge, nested, unicode. A mapped
matter must be one Case Status accepts (checked by the sandbox's own validator); a rejection
must be a MappingProblem saying why; the push side must always produce a note or a document
name MyCase accepts.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from mycase_sync.sandbox.casestatus import CaseStatusService
from mycase_sync.sandbox.core import Clock, HttpError
from mycase_sync.sync import mapping as m
from mycase_sync.sync.documents import description, display_name, document_path, expected_size
from mycase_sync.sync.filenames import MAX_BYTES
from mycase_sync.sync.mapping import FAILED, SKIPPED, MappedMatter, MappingProblem
from mycase_sync.sync.messages import note_date, note_subject, note_text
from mycase_sync.sync.markers import markers_in
from mycase_sync.sync.poller import record_id
from mycase_sync.sync.push import integration_text
from mycase_sync.values import parse_timestamp as parse_moment
from mycase_sync.values import positive_id

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DEFAULT_EXAMPLES = 100


def examples(*strategies):
    """@given(*strategies) with DEFAULT_EXAMPLES examples in the default run; beside it, for the soak
    run, the same test with SETTINGS' 300 examples, as `<name>_300_examples` (marked soak)."""

    def decorate(test):
        twin = pytest.mark.soak(SETTINGS(given(*strategies)(test)))
        twin.__name__ = f"{test.__name__}_{SETTINGS.max_examples}_examples"
        vars(sys.modules[test.__module__])[twin.__name__] = twin
        return settings(SETTINGS, max_examples=DEFAULT_EXAMPLES)(given(*strategies)(test))

    return decorate


# --- any JSON a service could send ----------------------------------------------------------------
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
    st.sampled_from(["", " ", "0", "-1", "2019-13-45", "2024-02-29", "2024-03-05T10:00:00Z", "NaN", "null",
                     "(415) 555-2671", "+14155552671", "555", "a@b", "lead@firm.test", "open", "closed", "OPEN",
                     "true", "\u0000", "../../etc/passwd", "x" * 300]),
)
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                             st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                           max_leaves=12)


def maybe(plausible):
    """Mostly a plausible value (so the deep paths are reached), sometimes anything at all."""
    return st.one_of(plausible, plausible, json_values)


STAFF_IDS = [1, 2, 3, 4, 5]
staff_record = st.fixed_dictionaries({}, optional={
    "id": maybe(st.sampled_from(STAFF_IDS + [str(i) for i in STAFF_IDS])),
    "email": maybe(st.sampled_from(["lead@firm.test", "second@firm.test", "para@firm.test", None, "", "nope"])),
    "first_name": maybe(st.text(max_size=12)),
    "last_name": maybe(st.text(max_size=12)),
    "type": maybe(st.sampled_from(["Attorney", "attorney", "Paralegal", "Staff", "Of Counsel", None])),
    "active": json_values,
})
staff_lists = st.lists(st.one_of(staff_record, staff_record, json_values), max_size=6)

client_record = st.fixed_dictionaries({}, optional={
    "id": maybe(st.integers(1, 99)),
    "first_name": maybe(st.text(max_size=12)),
    "last_name": maybe(st.text(max_size=12)),
    "email": maybe(st.sampled_from(["jane@example.com", None, "", "not-an-email"])),
    "cell_phone_number": maybe(st.sampled_from(["(415) 555-2671", "+44 7700 900123", "555-0100", "", None,
                                                "+1 212 555 0100", "12345678901234567890"])),
})
staff_entry = st.fixed_dictionaries({}, optional={
    "id": maybe(st.sampled_from(STAFF_IDS + [str(i) for i in STAFF_IDS] + [99])),
    "lead_lawyer": maybe(st.booleans()),
    "originating_lawyer": json_values,
    "case_rate": json_values,
})
dates = st.one_of(st.dates().map(dt.date.isoformat), st.sampled_from(["2019-13-45", "", "2024-03-05T10:00:00Z", "05/03/2024"]))
case_record = st.fixed_dictionaries({}, optional={
    "id": maybe(st.one_of(st.integers(1, 10**9), st.integers(1, 10**9).map(str))),
    "name": maybe(st.text(max_size=30)),
    "case_number": maybe(st.one_of(st.none(), st.text(max_size=12))),
    "description": maybe(st.text(max_size=40)),
    "opened_date": maybe(st.one_of(st.none(), dates)),
    "closed_date": maybe(st.one_of(st.none(), dates)),
    "practice_area": maybe(st.one_of(st.none(), st.text(max_size=20), st.fixed_dictionaries({"id": st.integers(), "name": st.text(max_size=10)}))),
    "case_stage": maybe(st.one_of(st.none(), st.text(max_size=20))),
    "status": maybe(st.sampled_from(["open", "closed", "Open", "archived", None])),
    "clients": maybe(st.lists(st.one_of(client_record, client_record, json_values), max_size=3)),
    "staff": maybe(st.lists(st.one_of(staff_entry, staff_entry, json_values), max_size=4)),
    "created_at": maybe(st.sampled_from(["2024-03-05T10:00:00Z", "2024-06-01T08:30:00.123-05:00", "yesterday", ""])),
    "updated_at": maybe(st.sampled_from(["2024-03-05T10:00:00Z", "2024-06-01T08:30:00+00:00", "2024-13-01T00:00:00Z"])),
    "custom_field_values": json_values,
    "outstanding_balance": json_values,
})

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_VALIDATOR = CaseStatusService(Clock(), api_key="k" * 16)


def assert_case_status_accepts(fields: dict) -> None:
    """The sandbox's strict Case Status validator takes the fields as a create body."""
    body = json.loads(json.dumps(fields, allow_nan=False))  # what goes over the wire, NaN refused
    try:
        _VALIDATOR._case_fields(body, creating=True)
    except HttpError as exc:
        raise AssertionError(f"Case Status would refuse {fields}: {exc.body}") from None


def assert_explained(problem: MappingProblem) -> None:
    assert problem.kind in (FAILED, SKIPPED)
    assert isinstance(problem.reason, str) and problem.reason.strip() and "\n" not in problem.reason
    assert problem.waiting_for is None or "@" in problem.waiting_for


# --- MyCase -> Case Status ------------------------------------------------------------------------
@examples(staff_lists)
def test_any_staff_list_indexes_or_leaves_records_out_never_raises(records):
    index = m.index_staff(records)
    for staff_id, member in index.items():
        assert isinstance(staff_id, int)
        assert member.email is None or "@" in member.email
        assert isinstance(member.first_name, str) and isinstance(member.last_name, str) and isinstance(member.kind, str)
        assert isinstance(member.name, str) and member.name


@examples(case_record, staff_lists, st.sampled_from(["US", "GB", "CA"]))
def test_any_case_maps_to_fields_case_status_accepts_or_to_an_explained_rejection(case, staff, region):
    index = m.index_staff(staff)
    try:
        matter = m.map_matter(case, index, region)
    except MappingProblem as problem:
        assert_explained(problem)
        return
    assert isinstance(matter, MappedMatter)
    fields = matter.fields
    assert fields["integration_id"] == str(int(str(case["id"]).strip())) == matter.mycase_id
    assert isinstance(matter.readable_id, str) and matter.readable_id.strip()
    assert_case_status_accepts(fields)
    for client in fields["clients"]:
        assert client["cell_phone"] is None or E164.match(client["cell_phone"])
    assert fields["status"] in ("open", "closed")
    assert fields["closed_date"] is None or fields["status"] == "closed"
    assert all(isinstance(note, str) and note for note in matter.notes)
    # mapping is a function of the record: the same record maps the same way, hash included
    again = m.map_matter(case, index, region)
    assert m.fields_hash(again.fields) == m.fields_hash(fields)


@examples(st.dictionaries(st.sampled_from(list(m.cs.CASE_FIELDS) + ["id", "created_at", "junk"]), json_values, max_size=14),
       case_record, staff_lists)
def test_any_case_status_case_read_back_gives_a_plan_not_an_exception(held_case, case, staff):
    held = m.held_from_case(held_case)
    assert set(held) == set(m.cs.CASE_FIELDS)
    try:
        matter = m.map_matter(case, m.index_staff(staff))
    except MappingProblem:
        return
    plan = m.plan_writes(matter.fields, held)
    assert not (plan.reopen and plan.close)
    assert "stage" not in plan.patch or plan.patch["stage"] != held.get("stage")  # a survey only for a change
    after = held
    for step in ("reopen", "patch", "close"):
        if step == "patch" and plan.patch or step != "patch" and getattr(plan, step):
            after = m.apply_step(after, step, plan)
    assert m.plan_writes(matter.fields, after).empty  # the plan brings Case Status in step


@examples(json_values, st.sampled_from(["US", "GB", "DE"]))
def test_any_phone_value_is_e164_or_an_explained_none(raw, region):
    number, problem = m.mobile_e164(raw, region)
    assert (number is None) != (problem is None)
    assert number is None or E164.match(number)
    assert problem is None or (isinstance(problem, str) and problem)


@examples(json_values)
def test_any_value_parses_as_a_day_a_moment_or_an_id_or_is_refused(value):
    try:
        day = m.parse_day(value, "opened_date")
    except MappingProblem as problem:
        assert_explained(problem)
    else:
        assert day is None or dt.date.fromisoformat(day)
    moment = m.parse_timestamp(value)
    assert moment is None or moment.tzinfo is not None
    number = positive_id(value)
    assert number is None or isinstance(number, int)
    assert m.case_id_of({"id": value}) is None or m.case_id_of({"id": value}).isdigit()


# --- Case Status -> MyCase (the push jobs) ----------------------------------------------------------
message_record = st.fixed_dictionaries({}, optional={
    "id": maybe(st.integers(1, 10**6)), "type": maybe(st.sampled_from(["incoming", "outgoing", "system"])),
    "content": maybe(st.text(max_size=200)), "sent_at": maybe(st.sampled_from(["2025-03-01T12:00:00.000Z", "2025-03-01", ""])),
    "created_at": maybe(st.sampled_from(["2025-03-01T12:00:05.000Z", None])), "sender_name": maybe(st.text(max_size=30)),
    "readable_id": json_values, "integration_id": maybe(st.integers(1, 10**9).map(str)),
})
file_record = st.fixed_dictionaries({}, optional={
    "id": maybe(st.integers(1, 10**6)), "url": json_values, "size": maybe(st.integers(0, 10**10)),
    "file_name": maybe(st.one_of(st.text(max_size=300), st.sampled_from(["../../etc/passwd", "CON.txt", "a/b\\c.pdf", ""]))),
    "extension": maybe(st.sampled_from(["pdf", "", "tar.gz", None])), "content_type": json_values,
    "case_readable_id": json_values, "case_integration_id": maybe(st.integers(1, 10**9).map(str)),
    "created_at": json_values,
})


@examples(message_record, st.integers(1, 10**9))
def test_any_message_becomes_a_note_mycase_accepts(record, item_id):
    subject, text, date = note_subject(record), note_text(record, item_id), note_date(record)
    assert isinstance(subject, str) and subject.strip() and len(subject) <= 255
    assert isinstance(text, str) and text.strip()
    assert markers_in(text, "message") == [item_id] and text.rstrip().endswith(f"[casestatus:message:{item_id}]")
    assert "T" in date and parse_moment(date) is not None  # MyCase wants an ISO date-time
    record_id(record), integration_text(record.get("integration_id"))


@examples(file_record, st.integers(1, 10**9), st.sampled_from([None, "Case Status", "Shared/From clients"]))
def test_any_file_record_gets_a_safe_name_a_path_and_a_marked_description(record, item_id, folder):
    name = display_name(record)
    assert isinstance(name, str) and name.strip(" .") and "/" not in name and "\\" not in name
    assert len(name.encode("utf-8")) <= MAX_BYTES
    path = document_path(record, folder)
    assert all(part.strip() for part in path.split("/"))  # MyCase refuses an empty path segment
    text = description(record, item_id)
    assert markers_in(text, "file") == [item_id] and "\n" not in text
    size = expected_size(record)
    assert size is None or isinstance(size, int)
