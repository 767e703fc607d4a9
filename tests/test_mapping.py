"""The MyCase -> Case Status mapping and the write plan, record by record (no network)."""

from __future__ import annotations

import datetime as dt

import pytest

from mycase_sync.sync import mapping as m
from mycase_sync.sync.mapping import FAILED, SKIPPED, MappingProblem

STAFF = m.index_staff([
    {"id": 1, "email": "lead@firm.test", "first_name": "Lee", "last_name": "Lead", "type": "Attorney"},
    {"id": "2", "email": "second@firm.test", "first_name": "Sam", "last_name": "Second", "type": "attorney"},
    {"id": 3, "email": "para@firm.test", "first_name": "Pat", "last_name": "Para", "type": "Paralegal"},
    {"id": 4, "email": "office@firm.test", "first_name": "Olga", "last_name": "Office", "type": "Staff"},
    {"id": 5, "email": None, "first_name": "Nemo", "last_name": "Noemail", "type": "Attorney"},
    {"id": 6, "email": "Alpha@firm.test", "first_name": "Al", "last_name": "Alpha", "type": "ATTORNEY"},
])


def case(**over) -> dict:
    base = {
        "id": 20400123, "name": "Doe v. Acme", "case_number": "2024-00012", "description": "Rear-end collision.",
        "opened_date": "2024-03-05", "closed_date": None, "practice_area": "Personal Injury",
        "case_stage": "Discovery", "status": "open",
        "clients": [{"id": 9, "first_name": "Jane", "last_name": "Doe", "email": "jane@example.com",
                     "cell_phone_number": "(415) 555-2671"}],
        "staff": [{"id": 1, "lead_lawyer": True}, {"id": "2", "lead_lawyer": False}, {"id": 3, "lead_lawyer": False},
                  {"id": 4, "lead_lawyer": False}],
        "created_at": "2024-03-05T10:00:00Z", "updated_at": "2024-06-01T08:30:00.123-05:00",
    }
    base.update(over)
    return base


def problem(record, kind=FAILED) -> MappingProblem:
    with pytest.raises(MappingProblem) as caught:
        m.map_matter(record, STAFF)
    assert caught.value.kind == kind, caught.value.reason
    return caught.value


def test_every_field_of_a_plain_open_case():
    matter = m.map_matter(case(), STAFF)
    assert matter.mycase_id == "20400123"
    assert matter.fields == {
        "integration_id": "20400123", "readable_id": "2024-00012", "description": "Rear-end collision.",
        "case_date": "2024-03-05", "practice_area": "Personal Injury", "stage": "Discovery",
        "primary_attorney_email": "lead@firm.test", "attorney_emails": ["second@firm.test"],
        "paralegal_emails": ["para@firm.test"],
        "clients": [{"first_name": "Jane", "last_name": "Doe", "email": "jane@example.com", "cell_phone": "+14155552671"}],
        "status": "open", "closed_date": None,
    }
    assert matter.notes == []
    assert matter.updated_at == dt.datetime(2024, 6, 1, 13, 30, 0, 123000, tzinfo=dt.timezone.utc)
    assert matter.created_at == dt.datetime(2024, 3, 5, 10, tzinfo=dt.timezone.utc)


def test_case_name_is_the_case_id_when_there_is_no_number():
    assert m.map_matter(case(case_number=None), STAFF).readable_id == "Doe v. Acme"
    assert m.map_matter(case(case_number="  "), STAFF).readable_id == "Doe v. Acme"


def test_closed_case_carries_status_and_closed_date_and_open_case_never_a_closed_date():
    closed = m.map_matter(case(status="closed", closed_date="2024-09-30"), STAFF).fields
    assert (closed["status"], closed["closed_date"]) == ("closed", "2024-09-30")
    reopened = m.map_matter(case(status="open", closed_date="2024-09-30"), STAFF).fields
    assert (reopened["status"], reopened["closed_date"]) == ("open", None)


def test_ids_and_numbers_as_strings_are_accepted():
    matter = m.map_matter(case(id="20400123", staff=[{"id": "1", "lead_lawyer": "true"}]), STAFF)
    assert matter.mycase_id == "20400123"
    assert matter.fields["primary_attorney_email"] == "lead@firm.test"


@pytest.mark.parametrize("value", ["2024-03-05T00:00:00Z", "2024-03-05T23:59:59-05:00", "2024-03-05"])
def test_dates_are_parsed_leniently(value):
    assert m.map_matter(case(opened_date=value), STAFF).fields["case_date"] == "2024-03-05"


@pytest.mark.parametrize("text", ["2024-01-01T10:00:00Z", "2024-01-01T10:00:00.5Z", "2024-01-01T05:00:00-05:00",
                                  "2024-01-01T10:00:00+00:00", "2024-01-01T10:00:00.123456+00:00", "2024-01-01T10:00:00"])
def test_timestamps_are_parsed_leniently(text):
    parsed = m.parse_timestamp(text)
    assert parsed.astimezone(dt.timezone.utc).replace(microsecond=0) == dt.datetime(2024, 1, 1, 10, tzinfo=dt.timezone.utc)


def test_unparseable_timestamp_is_none():
    assert m.parse_timestamp("yesterday") is None
    assert m.parse_timestamp(None) is None


def test_no_lead_flag_takes_the_first_attorney_and_says_so():
    matter = m.map_matter(case(staff=[{"id": 3}, {"id": 2}, {"id": 1}]), STAFF)
    assert matter.fields["primary_attorney_email"] == "second@firm.test"
    assert matter.fields["attorney_emails"] == ["lead@firm.test"]
    assert any("no lead attorney" in note and "Sam Second" in note for note in matter.notes)


def test_two_leads_take_the_first_and_keep_the_other_as_attorney():
    matter = m.map_matter(case(staff=[{"id": 2, "lead_lawyer": True}, {"id": 1, "lead_lawyer": True}]), STAFF)
    assert matter.fields["primary_attorney_email"] == "second@firm.test"
    assert matter.fields["attorney_emails"] == ["lead@firm.test"]
    assert any("2 lead attorneys" in note for note in matter.notes)


def test_attorney_and_paralegal_lists_are_sorted_and_unique():
    matter = m.map_matter(case(staff=[{"id": 1, "lead_lawyer": True}, {"id": 6}, {"id": 2}, {"id": 2}, {"id": 3}]), STAFF)
    assert matter.fields["attorney_emails"] == ["Alpha@firm.test", "second@firm.test"]


def test_no_attorney_at_all_is_skipped():
    assert "no attorney" in problem(case(staff=[{"id": 3}, {"id": 4}]), SKIPPED).reason
    assert "no attorney" in problem(case(staff=[]), SKIPPED).reason


def test_attorney_without_email_is_left_out_with_a_note_but_a_lead_without_email_fails():
    matter = m.map_matter(case(staff=[{"id": 1, "lead_lawyer": True}, {"id": 5}]), STAFF)
    assert matter.fields["attorney_emails"] == []
    assert any("Nemo Noemail" in n for n in matter.notes)
    assert "no email" in problem(case(staff=[{"id": 5, "lead_lawyer": True}])).reason


def test_unknown_staff_id_fails():  # a lead attorney unknown even by id fails; anyone else is left off, with a note
    assert "lead attorney staff id 999 is not in MyCase" in problem(case(staff=[{"id": 999, "lead_lawyer": True}])).reason
    matter = m.map_matter(case(staff=[{"id": 1, "lead_lawyer": True}, {"id": 999}]), STAFF)
    assert any("staff id 999 is not in MyCase" in n and "left off" in n for n in matter.notes)


@pytest.mark.parametrize("record, words", [
    (case(id=None), "case id"),
    (case(id="abc"), "case id"),
    (case(opened_date="2019-13-45"), "opened_date '2019-13-45' is not a date"),
    (case(status="closed", closed_date="soon"), "closed_date"),
    (case(status="archived"), "neither open nor closed"),
    (case(name=None, case_number=None), "no case number and no name"),
    (case(clients=[{"id": 9}]), "not expanded"),
    (case(clients=[{"id": 9, "first_name": "Jane", "last_name": ""}]), "no last name"),
    (case(staff=[{"id": "x1", "lead_lawyer": True}]), "not a number"),
    (case(practice_area=["a"]), "practice_area is not text"),
])
def test_broken_records_fail_with_their_reason(record, words):
    assert words in problem(record).reason


def test_missing_name_or_practice_area_is_imported_with_a_note():
    matter = m.map_matter(case(name=None, practice_area=None), STAFF)
    assert matter.readable_id == "2024-00012"
    assert matter.fields["practice_area"] is None
    assert "the case has no name in MyCase" in matter.notes
    assert "no practice area in MyCase" in matter.notes


def test_blank_texts_become_null_since_case_status_refuses_empty_strings():
    fields = m.map_matter(case(description="", case_stage="  ", practice_area={"id": 3, "name": "Probate"}), STAFF).fields
    assert fields["description"] is None and fields["stage"] is None and fields["practice_area"] == "Probate"


@pytest.mark.parametrize("raw, region, expected", [
    ("(212) 234-5678", "US", "+12122345678"),
    ("212.234.5678", "US", "+12122345678"),
    ("+1 212 234 5678", "US", "+12122345678"),
    ("1 (212) 234-5678", "US", "+12122345678"),
    ("2122345678", "US", "+12122345678"),
    ("07400 123456", "GB", "+447400123456"),
])
def test_mobile_numbers_become_e164(raw, region, expected):
    assert m.mobile_e164(raw, region) == (expected, None)


@pytest.mark.parametrize("raw", ["n/a", "123", "000-000-0000", "none", None, "", "020 7946 0018"])
def test_unusable_mobile_numbers_are_reported(raw):
    number, problem_text = m.mobile_e164(raw, "GB" if raw == "020 7946 0018" else "US")
    assert number is None and problem_text


def test_client_without_usable_mobile_is_kept_with_a_note():
    record = case(clients=[{"id": 9, "first_name": "Jane", "last_name": "Doe", "email": "not-an-email",
                            "cell_phone_number": "n/a"}])
    matter = m.map_matter(record, STAFF)
    assert matter.fields["clients"] == [{"first_name": "Jane", "last_name": "Doe", "email": None, "cell_phone": None}]
    assert any("Jane Doe" in n and "cannot log in" in n for n in matter.notes)


@pytest.mark.parametrize("raw, note", [
    ("000-000-0000", "client Jane Doe: mobile number '000-000-0000' is not a valid number; they cannot log in to Case Status"),
    ("n/a", "client Jane Doe: mobile number 'n/a' is not a phone number; they cannot log in to Case Status"),
    (None, "client Jane Doe: no mobile number; they cannot log in to Case Status"),
])
def test_the_note_on_an_unusable_mobile_reads_as_a_sentence(raw, note):
    record = case(clients=[{"id": 9, "first_name": "Jane", "last_name": "Doe", "email": None, "cell_phone_number": raw}])
    assert note in m.map_matter(record, STAFF).notes


def test_phone_region_is_configurable():
    record = case(clients=[{"id": 9, "first_name": "A", "last_name": "B", "email": None, "cell_phone_number": "07400 123456"}])
    assert m.map_matter(record, STAFF, "GB").fields["clients"][0]["cell_phone"] == "+447400123456"


def test_lead_must_be_a_case_status_user():
    matter = m.map_matter(case(), STAFF)
    m.check_lead_is_user(matter, {"lead@firm.test"})
    with pytest.raises(MappingProblem) as caught:
        m.check_lead_is_user(matter, {"other@firm.test"})
    assert caught.value.kind == SKIPPED and caught.value.waiting_for == "lead@firm.test"
    m.check_lead_is_user(m.map_matter(case(staff=[{"id": 6, "lead_lawyer": True}]), STAFF), {"alpha@firm.test"})


# --- the write plan -------------------------------------------------------------------------
def wanted(**over) -> dict:
    fields = m.map_matter(case(), STAFF).fields
    fields.update(over)
    return fields


def test_unchanged_needs_no_write_and_hashes_match():
    plan = m.plan_writes(wanted(), wanted())
    assert plan.empty
    assert m.fields_hash(wanted()) == m.fields_hash(dict(reversed(list(wanted().items()))))


def test_only_changed_fields_are_patched_and_an_unchanged_stage_never():
    plan = m.plan_writes(wanted(description="New", stage="Discovery"), wanted())
    assert plan.patch == {"description": "New"} and not plan.close and not plan.reopen
    assert m.plan_writes(wanted(stage="Trial"), wanted()).patch == {"stage": "Trial"}


def test_close_and_reopen_go_through_their_own_writes():
    close = m.plan_writes(wanted(status="closed", closed_date="2024-09-30", stage="Closed"), wanted())
    assert close.close and close.closed_date == "2024-09-30" and close.patch == {"stage": "Closed"}
    assert close.changed_fields() == ["closed_date", "stage", "status"]
    reopen = m.plan_writes(wanted(), wanted(status="closed", closed_date="2024-09-30"))
    assert reopen.reopen and reopen.patch == {}
    moved = m.plan_writes(wanted(status="closed", closed_date="2024-10-01"), wanted(status="closed", closed_date="2024-09-30"))
    assert moved.patch == {"closed_date": "2024-10-01"} and not moved.close


def test_apply_step_tracks_what_case_status_holds():
    held = wanted(status="closed", closed_date="2024-09-30")
    plan = m.plan_writes(wanted(stage="Trial"), held)
    after = m.apply_step(m.apply_step(held, "reopen", plan), "patch", plan)
    assert m.plan_writes(wanted(stage="Trial"), after).empty


def test_held_from_a_case_status_case_compares_equal_to_the_mapping():
    fields = wanted(attorney_emails=["a@x.test", "B@x.test"])
    record = {"id": 70001, **fields, "attorney_emails": ["B@x.test", "a@x.test"], "created_at": "x", "updated_at": "y"}
    assert m.plan_writes(fields, m.held_from_case(record)).empty


# --- the window -----------------------------------------------------------------------------
NOW = dt.datetime(2025, 6, 15, 21, 15, tzinfo=dt.timezone.utc)


def test_first_run_and_full_take_ten_years():
    assert m.normal_lower_bound(NOW, None) == dt.datetime(2015, 6, 15, 21, 15, tzinfo=dt.timezone.utc)
    assert m.normal_lower_bound(NOW, NOW - dt.timedelta(days=1), full=True).year == 2015
    leap = dt.datetime(2024, 2, 29, tzinfo=dt.timezone.utc)
    assert m.normal_lower_bound(leap, None) == dt.datetime(2014, 2, 28, tzinfo=dt.timezone.utc)


def test_later_runs_take_30_days_or_since_the_last_success_minus_a_day():
    assert m.normal_lower_bound(NOW, NOW - dt.timedelta(days=1)) == NOW - dt.timedelta(days=30)
    after_outage = NOW - dt.timedelta(days=40)
    assert m.normal_lower_bound(NOW, after_outage) == after_outage - dt.timedelta(days=1)
