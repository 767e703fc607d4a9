"""The seeded firm must hold the shapes and traps the sync is tested against, the same for a seed."""

import re
from collections import Counter
from datetime import datetime, timedelta, timezone

import phonenumbers
import pytest

from mycase_sync.sandbox import data
from mycase_sync.sandbox.data import PRACTICE_AREAS, STAGES, UNUSABLE_PHONES, generate_firm

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)
TEN_YEARS = timedelta(days=3653)


@pytest.fixture(scope="module")
def firm():
    return generate_firm(7, 300, NOW)


@pytest.fixture(scope="module")
def big():
    return generate_firm(11, 3000, NOW)


def test_same_seed_same_firm_other_seed_other_firm(firm):
    assert generate_firm(7, 300, NOW) == firm
    assert generate_firm(7, 300, NOW.replace(tzinfo=None)) == firm   # a naive `now` is UTC
    assert generate_firm(8, 300, NOW).cases != firm.cases


def test_cases_use_mycase_field_names(firm):
    keys = {"id", "name", "case_number", "description", "opened_date", "closed_date", "sol_date", "practice_area",
            "case_stage", "status", "clients", "companies", "staff", "custom_field_values", "office",
            "billing_type", "billing_contact", "outstanding_balance", "created_at", "updated_at"}
    assert all(set(c) == keys for c in firm.cases)
    assert all(set(e) == {"id", "lead_lawyer", "originating_lawyer", "case_rate"} for c in firm.cases for e in c["staff"])
    assert [p["name"] for p in firm.practice_areas] == PRACTICE_AREAS
    assert [s["name"] for s in firm.case_stages] == STAGES
    assert set(firm.firm) == {"name", "url"} and firm.firm["url"].startswith("https://")


def test_cases_spread_over_eleven_years(big):
    created = [c["created_at"] for c in big.cases]
    assert min(created) >= NOW - timedelta(days=11 * 366) and max(created) <= NOW
    assert all(c["created_at"] <= c["updated_at"] <= NOW for c in big.cases)
    assert all(c["created_at"].tzinfo is not None for c in big.cases)
    years = Counter(c["created_at"].year for c in big.cases)
    assert len(years) >= 11
    old = [c for c in big.cases if c["created_at"] < NOW - TEN_YEARS]
    untouched = [c for c in old if c["updated_at"] < NOW - TEN_YEARS]
    assert len(old) > 0.05 * len(big.cases)
    assert 0.1 * len(old) < len(untouched) < len(old)     # some old ones were touched later
    recent = sum(c["updated_at"] >= NOW - timedelta(days=30) for c in big.cases)
    assert 0.01 <= recent / len(big.cases) <= 0.035


def test_open_and_closed(big):
    status = Counter(c["status"] for c in big.cases)
    assert set(status) == {"open", "closed"} and 0.05 < status["open"] / len(big.cases) < 0.3
    for c in big.cases:
        if c["status"] == "closed":
            assert re.fullmatch(r"\d{4}-\d\d-\d\d", c["closed_date"])
        else:
            assert c["closed_date"] is None


def test_names_numbers_and_descriptions(big):
    good = [c for c in big.cases if c["id"] not in big.malformed]
    names = [c["name"] for c in good]
    assert len(set(names)) == len(names) and all(names)
    numbers = [c["case_number"] for c in good]
    assert all(n is None or re.fullmatch(r"\d{4}-\d{5}", n) for n in numbers)
    assert 0.02 < numbers.count(None) / len(numbers) < 0.2
    assert len(set(n for n in numbers if n)) == len([n for n in numbers if n])
    assert any(c["description"] is None for c in good) and any(c["description"] for c in good)
    assert {c["practice_area"] for c in good} == set(PRACTICE_AREAS)
    assert {c["case_stage"] for c in good} <= set(STAGES) | {None}


def test_malformed_records_are_there_and_listed(firm):
    assert len(firm.malformed) >= 3
    by_id = {int(c["id"]): c for c in firm.cases}
    reasons = " | ".join(firm.malformed.values())
    for word in ("name", "unknown staff id", "practice_area", data.MALFORMED_OPENED_DATE, "id is a string"):
        assert word in reasons
    staff_ids = {s["id"] for s in firm.staff}
    for case_id, reason in firm.malformed.items():
        case = by_id[case_id]
        if reason == "name is null":
            assert case["name"] is None
        elif reason.startswith("staff entry"):
            assert any(e["id"] not in staff_ids for e in case["staff"])
        elif reason == "practice_area is null":
            assert case["practice_area"] is None
        elif reason.startswith("opened_date"):
            assert case["opened_date"] == data.MALFORMED_OPENED_DATE
        else:
            assert case["id"] == str(case_id)
    # Nothing outside the list is broken in those ways.
    for case in firm.cases:
        if int(case["id"]) not in firm.malformed:
            assert isinstance(case["id"], int) and case["name"] and case["practice_area"]
            assert all(e["id"] in staff_ids for e in case["staff"])
            assert case["opened_date"] is None or datetime.strptime(case["opened_date"], "%Y-%m-%d")


def test_malformed_share_is_about_one_in_500():
    firm = generate_firm(3, 5000, NOW, activity=False)
    assert len(firm.malformed) == 10
    assert firm.messages == [] and firm.files == []


def test_staff_and_casestatus_users(firm, big):
    types = Counter(s["type"] for s in firm.staff)
    assert 8 <= len(firm.staff) <= 15 and set(types) == {"Attorney", "Paralegal", "Staff"}
    assert 20 <= len(big.staff) <= 50
    me = next(s for s in firm.staff if s["id"] == firm.me_staff_id)
    assert me["type"] == "Attorney" and me["active"]
    cs = {u["email"]: u for u in firm.casestatus_users}
    assert me["email"] in cs and cs[me["email"]]["role"] == "attorney"
    staff_emails = {s["email"]: s for s in firm.staff}
    assert set(cs) <= set(staff_emails)
    for email, user in cs.items():
        if user["role"] in ("attorney", "paralegal"):
            assert staff_emails[email]["type"].lower() == user["role"]
    active_att = [s for s in firm.staff if s["type"] == "Attorney" and s["active"]]
    missing = [s for s in active_att if s["email"] not in cs]
    assert 1 <= len(missing) <= 2
    assert any(not s["active"] for s in firm.staff)


def test_lead_attorney_edge_cases(firm):
    kinds = {s["id"]: s["type"] for s in firm.staff}
    recent = {c["id"] for c in firm.cases if c["updated_at"] >= NOW - timedelta(days=365)}
    found = Counter()
    for c in firm.cases:
        if c["id"] in firm.malformed:
            continue
        leads = [e for e in c["staff"] if e["lead_lawyer"]]
        attorneys = [e for e in c["staff"] if kinds.get(e["id"]) == "Attorney"]
        kind = ("no_attorney" if not attorneys else "no_lead" if not leads else "two_leads" if len(leads) > 1
                else "one_lead")
        found[kind] += 1
        if kind != "one_lead":
            assert c["id"] in firm.edge_cases[kind]
    assert found["one_lead"] > 0.9 * len(firm.cases)
    for kind in ("no_lead", "two_leads", "no_attorney"):
        assert found[kind] >= 2 and set(firm.edge_cases[kind]) <= recent
    assert any(not c["staff"] for c in firm.cases)
    assert any(len([e for e in c["staff"] if kinds.get(e["id"]) == "Paralegal"]) for c in firm.cases)
    assert any(len([e for e in c["staff"] if kinds.get(e["id"]) == "Staff"]) for c in firm.cases)
    cs = {u["email"] for u in firm.casestatus_users}
    emails = {s["id"]: s["email"] for s in firm.staff}
    without = [c for c in firm.cases if c["id"] in recent and c["id"] in firm.edge_cases["lead_not_casestatus_user"]]
    assert without
    for c in without:
        assert any(e["lead_lawyer"] and emails[e["id"]] not in cs for e in c["staff"])


def test_clients_and_phone_formats(big):
    clients = big.clients
    assert all(1 <= len(c["clients"]) <= 3 and all(i in clients for i in c["clients"]) for c in big.cases)
    phones = [c["cell_phone_number"] for c in clients.values()]
    usable = [p for p in phones if p is not None and p not in UNUSABLE_PHONES]
    assert 0.9 < len(usable) / len(phones) < 0.99
    assert None in phones and set(UNUSABLE_PHONES) & set(phones)
    for p in usable:
        assert phonenumbers.is_valid_number(phonenumbers.parse(p, "US")), p
        assert "555" not in re.sub(r"\D", "", p)[-7:-4]
    shapes = {re.sub(r"\d", "9", p) for p in usable}
    assert {"(999) 999-9999", "999.999.9999", "+9 999 999 9999", "9999999999"} <= shapes
    assert all(c["first_name"] and c["last_name"] for c in clients.values())
    assert sum(c["email"] is None for c in clients.values()) > 0
    assert big.edge_cases["no_usable_phone"]


def test_activity_on_recent_cases(firm):
    by_id = {str(c["id"]): c for c in firm.cases}
    window = NOW - timedelta(days=30)
    assert 100 <= len(firm.messages) <= 200 and 25 <= len(firm.files) <= 60
    assert {m["type"] for m in firm.messages} == {"incoming", "outgoing"}
    clients = firm.clients
    staff_names = {f"{s['first_name']} {s['last_name']}" for s in firm.staff}
    for m in firm.messages:
        case = by_id[m["integration_id"]]
        assert int(case["id"]) not in firm.malformed
        assert window <= m["sent_at"] <= NOW and m["content"]
        if m["type"] == "incoming":
            assert m["sender_name"] in {f"{clients[i]['first_name']} {clients[i]['last_name']}" for i in case["clients"]}
        else:
            assert m["sender_name"] in staff_names
    for f in firm.files:
        assert window <= f["created_at"] <= NOW and f["integration_id"] in by_id
        assert isinstance(f["data"], bytes) and f["content_type"]
    assert [m["sent_at"] for m in firm.messages] == sorted(m["sent_at"] for m in firm.messages)
    names = Counter(f["file_name"] for f in firm.files)
    for special in (data.TRAVERSAL_FILE_NAME, data.NON_ASCII_FILE_NAME, data.BLANK_FILE_NAME):
        assert names[special] == 1
    big_file = next(f for f in firm.files if f["file_name"] == data.BIG_FILE_NAME)
    assert len(big_file["data"]) >= 5 * 1024 * 1024 and big_file["data"].startswith(b"%PDF")
    dupes = [f["integration_id"] for f in firm.files if f["file_name"] == data.DUPLICATE_FILE_NAME]
    assert len(dupes) == 2 and dupes[0] == dupes[1]


@pytest.mark.soak  # the benchmark's firm size; the generator's rules are checked at smaller sizes above
def test_hundred_thousand_matters():
    firm = generate_firm(1, 100_000, NOW)
    assert len(firm.cases) == 100_000 and len({str(c["id"]) for c in firm.cases}) == 100_000
    assert 20 <= len(firm.staff) <= 50
    assert 150 <= len(firm.malformed) <= 250
    assert len(firm.messages) <= data.MESSAGES_CAP and len(firm.files) <= data.FILES_CAP + 6
