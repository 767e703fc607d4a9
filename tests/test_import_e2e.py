"""import-matters end to end: the real CLI against the sandbox over HTTP.

The first import of a seeded firm creates exactly the matters of the 10-year window with every
field as specified; a second run writes nothing; changes in MyCase produce exactly their writes
(and never a stage write that did not change); the window follows rule 1; the options behave.
"""

from __future__ import annotations

import csv
import datetime as dt
import json

import pytest

from mycase_sync.sandbox.server import SandboxConfig
from mycase_sync.store import open_store
from oracle import UTC, expected_outcomes, held, ten_years_before

JOB = "import-matters"


@pytest.fixture
def sandbox_config():
    # 150 matters: every kind of malformed record and awkward staffing the generator makes.
    return SandboxConfig(matters=150, seed=11, mycase_rate_limit=None)  # the pace is not the point here


def now() -> dt.datetime:
    return dt.datetime.now(UTC)


def cs_writes(sandbox) -> list[tuple[str, str, object]]:
    with sandbox.casestatus.lock:
        return [(e["method"], e["path"], e.get("body")) for e in sandbox.casestatus.journal if e["write"]]


def case_list_filters(sandbox) -> list[str]:
    """The filter[updated_after] of every GET /v1/cases list call of open cases, in order (closed ones
    are listed the same way, with filter[status]=closed)."""
    with sandbox.mycase.lock:
        return [e["query"].get("filter[updated_after]", [None])[0] for e in sandbox.mycase.journal
                if e["method"] == "GET" and e["path"] == "/v1/cases" and e["query"].get("filter[status]") != ["closed"]]


def parse_filter(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def by_integration_id(sandbox) -> dict[str, dict]:
    with sandbox.casestatus.lock:
        cases = list(sandbox.casestatus.cases.values())
    found: dict[str, dict] = {}
    for case in cases:
        assert case["integration_id"] not in found, f"duplicate case for {case['integration_id']}"
        found[case["integration_id"]] = case
    return found


def store_rows(db_path) -> dict[str, dict]:
    store = open_store(db_path)
    try:
        return {r["mycase_id"]: r for r in store.db.query("select * from matters")}
    finally:
        store.close()


def cursor(db_path):
    store = open_store(db_path)
    try:
        return store.get_cursor(JOB)
    finally:
        store.close()


def read_report(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def repair(sandbox, case: dict) -> None:
    """Fix a malformed record in place, as the firm would, without moving its updated_at."""
    case["staff"] = [e for e in case["staff"] if int(e["id"]) in sandbox.mycase.staff]
    if case.get("opened_date") and case["opened_date"].startswith("2019-13"):
        case["opened_date"] = "2019-01-15"
    if not case.get("name") and not case.get("case_number"):
        case["name"] = "Named later"


def first_import(connected, sandbox, tmp_path):
    cutoff = ten_years_before(now())
    expected = expected_outcomes(sandbox, cutoff)
    result = connected.run(JOB, "--report", str(tmp_path / "first.csv"))
    return expected, result


# --- the first import and the second -------------------------------------------------------
def test_first_import_creates_exactly_the_window_with_every_field_then_a_second_run_writes_nothing(connected, sandbox, tmp_path, db_path):
    cutoff = ten_years_before(now())
    with sandbox.mycase.lock:
        edges = [max(c["created_at"], c["updated_at"]) for c in sandbox.mycase.cases.values()]
    assert not [e for e in edges if abs((e - cutoff).total_seconds()) < 120], "a matter sits on the window's edge"
    assert any(e < cutoff for e in edges), "the firm should have matters older than the window"
    expected = expected_outcomes(sandbox, cutoff)
    created = {k: v[1] for k, v in expected.items() if v[0] == "created"}
    assert {v[0] for v in expected.values()} == {"created", "skipped", "failed"}

    result = connected.run(JOB, "--report", str(tmp_path / "first.csv"))
    assert result.code == 1, result.output  # the malformed records fail, the rest syncs
    assert "Traceback" not in result.output

    in_cs = by_integration_id(sandbox)
    assert set(in_cs) == set(created), "exactly the importable matters of the 10-year window"
    for key, fields in created.items():
        assert held(in_cs[key]) == fields, f"matter {key}"
    # one stage write per case, at its creation, and nothing the contract refuses
    assert len(sandbox.casestatus.stage_changes) == sum(1 for f in created.values() if f["stage"] is not None)
    assert sandbox.casestatus.violations == [] and sandbox.mycase.violations == []
    # the MyCase list was read whole, 1000 at a time, with the 10-year filter and clients expanded
    with sandbox.mycase.lock:
        lists = [e["query"] for e in sandbox.mycase.journal if e["path"] == "/v1/cases"]
        staff_calls = sum(1 for e in sandbox.mycase.journal if e["path"] == "/v1/staff")
    assert lists[0]["page_size"] == ["1000"] and "field[client]" in lists[0]
    assert abs(parse_filter(lists[0]["filter[updated_after]"][0]) - cutoff) < dt.timedelta(minutes=1)
    assert staff_calls == 2  # staff fetched once per run (active, then inactive), not once per case

    report = {row["mycase_id"]: row for row in read_report(tmp_path / "first.csv")}
    assert set(report) == set(expected)
    for key, (kind, detail) in expected.items():
        assert report[key]["action"] == kind, (key, report[key])
        if kind != "created":
            assert detail in report[key]["reason"], (key, report[key])
    # the malformed records of the sandbox: reported, not fatal
    for raw_id, why in sandbox.firm.malformed.items():
        row = report.get(str(int(raw_id)))
        if row is None:
            continue  # outside the window
        if "is a string" in why:
            assert row["action"] == "created" and in_cs[str(int(raw_id))]["integration_id"] == str(int(raw_id))
        elif "name is null" in why or "practice_area is null" in why:
            assert row["action"] in ("created", "failed") and row["reason"], row
        else:
            assert row["action"] == "failed" and row["reason"], row
    # notes the firm must see: no lead flag, a client without a usable mobile number
    no_lead = [str(i) for i in sandbox.firm.edge_cases["no_lead"] if report.get(str(i), {}).get("action") == "created"]
    assert no_lead and all("no lead attorney flagged" in report[i]["reason"] for i in no_lead)
    phoneless = [k for k, f in created.items() if any(c["cell_phone"] is None for c in f["clients"])]
    assert phoneless and all("cannot log in" in report[k]["reason"] for k in phoneless)
    # failures are stored for retry; the summary names the counts
    rows = store_rows(db_path)
    assert {k for k, r in rows.items() if r["state"] == "failed"} == {k for k, v in expected.items() if v[0] == "failed"}
    assert {k for k, r in rows.items() if r["state"] == "synced"} == set(created)
    assert f"{len(created)} created" in result.stderr

    sandbox.casestatus.reset_journal()
    second = connected.run(JOB)
    assert second.code == 1, second.output  # the same malformed records, retried by id, fail again
    assert cs_writes(sandbox) == []
    assert by_integration_id(sandbox).keys() == in_cs.keys()


def test_quiet_under_cron_when_nothing_is_wrong(connected, sandbox, tmp_path):
    """Fix the firm's broken records (without touching updated_at): the next run prints nothing and exits 0."""
    connected.run(JOB)
    with sandbox.mycase.lock:
        for case in sandbox.mycase.cases.values():
            repair(sandbox, case)
    result = connected.run(JOB)
    assert result.code == 0, result.output
    assert "created" not in result.stdout
    third = connected.run(JOB)
    assert (third.code, third.stdout, third.stderr) == (0, "", "")


# --- changes ---------------------------------------------------------------------------------
def test_changes_produce_exactly_their_writes_and_no_other_stage_write(connected, sandbox, tmp_path, db_path):
    expected, result = first_import(connected, sandbox, tmp_path)
    created = {k: v[1] for k, v in expected.items() if v[0] == "created"}
    open_ = [k for k, f in created.items() if f["status"] == "open" and f["stage"] not in (None, "Trial")]
    closed = [k for k, f in created.items() if f["status"] == "closed"]
    stage_a, stage_b, to_close, described = open_[:4]
    to_reopen = closed[0]
    cs_ids = {k: c["id"] for k, c in by_integration_id(sandbox).items()}
    update = sandbox.mycase.update_case
    update(int(stage_a), case_stage="Trial")
    update(int(stage_b), case_stage="Trial", description="Trial date set.")
    update(int(to_close), status="closed", closed_date=(now().date() - dt.timedelta(days=1)).isoformat())
    update(int(to_reopen), status="open", closed_date=None)
    update(int(described), description="Adjuster called; offer expected next week.")
    lead = next(f["primary_attorney_email"] for f in created.values())
    lead_id = next(s["id"] for s in sandbox.mycase.staff.values() if s["email"] == lead)
    client_id = next(iter(sandbox.mycase.clients))
    new_open = sandbox.mycase.add_case(name="New v. Matter", case_number="2099-00001", case_stage="Intake",
                                       practice_area="Employment", clients=[client_id],
                                       staff=[{"id": lead_id, "lead_lawyer": True}])
    new_closed = sandbox.mycase.add_case(name="Closed Quickly", case_number="2099-00002", status="closed",
                                         closed_date=now().date().isoformat(), case_stage="Closed",
                                         clients=[client_id], staff=[{"id": lead_id, "lead_lawyer": True}])
    stages_before = len(sandbox.casestatus.stage_changes)
    sandbox.casestatus.reset_journal()

    result = connected.run(JOB, "--report", str(tmp_path / "changes.csv"))
    assert result.code == 1, result.output  # the malformed ones still fail

    writes = sorted(cs_writes(sandbox), key=lambda w: (w[0], w[1]))
    path = "/v1/api/cases/{}".format
    expected_writes = sorted([
        ("PATCH", path(cs_ids[stage_a]), {"stage": "Trial"}),
        ("PATCH", path(cs_ids[stage_b]), {"stage": "Trial", "description": "Trial date set."}),
        ("POST", path(cs_ids[to_close]) + "/close", {"closed_date": (now().date() - dt.timedelta(days=1)).isoformat()}),
        ("POST", path(cs_ids[to_reopen]) + "/reopen", {}),
        ("PATCH", path(cs_ids[described]), {"description": "Adjuster called; offer expected next week."}),
        ("POST", "/v1/api/cases", "new open"),
        ("POST", "/v1/api/cases", "new closed"),
    ], key=lambda w: (w[0], w[1]))
    assert [(m, p) for m, p, _ in writes] == [(m, p) for m, p, _ in expected_writes]
    bodies = {(m, p): b for m, p, b in writes if p != "/v1/api/cases"}
    for method, where, body in expected_writes:
        if where != "/v1/api/cases":
            assert bodies[(method, where)] == body
    posted = {b["integration_id"]: b for m, p, b in writes if p == "/v1/api/cases"}
    assert posted[str(new_open["id"])]["status"] == "open" and posted[str(new_open["id"])]["stage"] == "Intake"
    assert posted[str(new_closed["id"])]["status"] == "closed"  # created closed in one request
    assert posted[str(new_closed["id"])]["closed_date"] == now().date().isoformat()

    changes = sandbox.casestatus.stage_changes[stages_before:]
    assert sorted((c["integration_id"], c["new"]) for c in changes) == sorted([
        (stage_a, "Trial"), (stage_b, "Trial"), (str(new_open["id"]), "Intake"), (str(new_closed["id"]), "Closed")])
    assert sandbox.casestatus.violations == []
    report = {r["mycase_id"]: r for r in read_report(tmp_path / "changes.csv")}
    assert report[stage_a]["action"] == "updated" and report[stage_a]["changed_fields"] == "stage"
    assert report[stage_b]["changed_fields"] == "description;stage"
    assert report[to_close]["action"] == "closed" and report[to_reopen]["action"] == "reopened"
    assert report[str(new_closed["id"])]["action"] == "created"
    in_cs = by_integration_id(sandbox)
    assert in_cs[to_reopen]["status"] == "open" and in_cs[to_reopen]["closed_date"] is None
    assert in_cs[to_close]["status"] == "closed"

    sandbox.casestatus.reset_journal()
    assert connected.run(JOB).code == 1
    assert cs_writes(sandbox) == []


# --- the window ------------------------------------------------------------------------------
def test_window_follows_rule_1_including_after_a_40_day_outage_and_a_failed_run(connected, sandbox, tmp_path, db_path):
    before_first = now()
    assert connected.run(JOB).code == 1  # partial: the failed ones are queued by id, so the bound moves
    saved = cursor(db_path)
    assert before_first - dt.timedelta(seconds=1) <= dt.datetime.fromisoformat(saved["last_success_start"]) <= now()

    sandbox.mycase.reset_journal()
    before = now()
    connected.run(JOB)
    after = now()
    (sent,) = case_list_filters(sandbox)
    moment = parse_filter(sent)
    assert before - dt.timedelta(days=30, seconds=1) <= moment <= after - dt.timedelta(days=30)

    # a 40-day outage: the last successful import started 40 days ago
    outage_start = (now() - dt.timedelta(days=40)).replace(microsecond=0)
    store = open_store(db_path)
    try:
        store.set_cursor(JOB, {"last_success_start": outage_start.isoformat()})
    finally:
        store.close()
    sandbox.mycase.reset_journal()
    connected.run(JOB)
    assert case_list_filters(sandbox) == [(outage_start - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")]

    # a failed run (MyCase unreachable mid-list) does not move the bound
    store = open_store(db_path)
    try:
        store.set_cursor(JOB, {"last_success_start": outage_start.isoformat()})
    finally:
        store.close()
    sandbox.mycase.faults.add("GET", r"^/v1/cases$", "503", times=50)
    failed = connected.run(JOB)
    assert failed.code == 75, failed.output
    assert "Traceback" not in failed.output
    assert cursor(db_path)["last_success_start"] == outage_start.isoformat()
    sandbox.mycase.faults.clear()
    sandbox.mycase.reset_journal()
    connected.run(JOB)
    assert case_list_filters(sandbox) == [(outage_start - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")]


def test_failed_matters_are_retried_by_id_outside_the_window(connected, sandbox, db_path):
    connected.run(JOB)
    failed = sorted(k for k, r in store_rows(db_path).items() if r["state"] == "failed")
    old = [k for k in failed if sandbox.mycase.cases[int(k)]["updated_at"] < now() - dt.timedelta(days=31)]
    assert old, "the sandbox should have a malformed matter last touched long ago"
    sandbox.mycase.reset_journal()
    connected.run(JOB)
    with sandbox.mycase.lock:
        fetched = {e["path"].rsplit("/", 1)[1] for e in sandbox.mycase.journal if e["path"].startswith("/v1/cases/")}
    assert set(old) <= fetched
    # fixed in MyCase without a new updated_at: the retry by id imports them
    with sandbox.mycase.lock:
        for target in old:
            repair(sandbox, sandbox.mycase.cases[int(target)])
    outcomes = expected_outcomes(sandbox, dt.datetime.min.replace(tzinfo=UTC))
    assert any(outcomes[t][0] == "created" for t in old)
    connected.run(JOB)
    rows = store_rows(db_path)
    for target in old:
        kind, fields = outcomes[target]
        assert rows[target]["state"] == {"created": "synced", "skipped": "skipped"}[kind]
        if kind == "created":
            assert held(sandbox.casestatus.case_by_integration_id(target)) == fields


# --- skipped matters -------------------------------------------------------------------------
def test_lead_without_a_case_status_user_is_skipped_then_imported_once_the_user_exists(connected, sandbox, db_path):
    first = connected.run(JOB)
    rows = store_rows(db_path)
    waiting = {k: r["waiting_for"] for k, r in rows.items() if r["state"] == "skipped" and r["waiting_for"]}
    assert waiting
    assert "not a Case Status user" in first.stderr  # warned the first time: cron mails it once
    again = connected.run(JOB)
    assert "not a Case Status user" not in again.stderr  # said once; the report and `status` keep saying it
    email = sorted(set(waiting.values()))[0]
    member = next(s for s in sandbox.mycase.staff.values() if s["email"] == email)
    with sandbox.casestatus.lock:
        sandbox.casestatus._add_user({"email": email, "first_name": member["first_name"],
                                      "last_name": member["last_name"], "role": "attorney"})
    connected.run(JOB)
    for key, who in waiting.items():
        if who == email:
            assert sandbox.casestatus.case_by_integration_id(key) is not None, key
            assert store_rows(db_path)[key]["state"] == "synced"


def test_create_staff_creates_each_missing_lead_once(connected, sandbox, db_path):
    users_before = len(sandbox.casestatus.users)
    result = connected.run(JOB, "--create-staff")
    rows = store_rows(db_path)
    assert not [r for r in rows.values() if r["waiting_for"]]
    with sandbox.casestatus.lock:
        new_users = list(sandbox.casestatus.users.values())[users_before:]
        user_posts = sum(1 for e in sandbox.casestatus.journal if e["method"] == "POST" and e["path"] == "/v1/api/users")
    assert new_users and len({u["email"] for u in new_users}) == len(new_users) == user_posts
    assert all(u["role"] == "attorney" for u in new_users)
    assert "Case Status users created" in result.stderr


def test_no_attorney_is_skipped_and_imported_once_fixed_in_mycase(connected, sandbox, db_path, tmp_path):
    connected.run(JOB, "--report", str(tmp_path / "r.csv"))
    report = {r["mycase_id"]: r for r in read_report(tmp_path / "r.csv")}
    target = next(str(i) for i in sandbox.firm.edge_cases["no_attorney"] if str(i) in report)
    assert report[target]["action"] == "skipped" and "no attorney" in report[target]["reason"]
    user = next(iter(sandbox.casestatus.users.values()))
    attorney = next(s for s in sandbox.mycase.staff.values() if s["email"] == user["email"] and s["type"] == "Attorney")
    sandbox.mycase.update_case(int(target), staff=[{"id": attorney["id"], "lead_lawyer": True}])
    connected.run(JOB)
    assert sandbox.casestatus.case_by_integration_id(target)["primary_attorney_email"] == attorney["email"]


# --- options ---------------------------------------------------------------------------------
def test_case_imports_just_those_matters(connected, sandbox, tmp_path):
    expected = expected_outcomes(sandbox, ten_years_before(now()))
    keys = [k for k, v in expected.items() if v[0] == "created"][:2]
    result = connected.run(JOB, "--case", keys[0], "--case", keys[1], "--report", str(tmp_path / "one.json"))
    assert result.code == 0, result.output
    assert set(by_integration_id(sandbox)) == set(keys)
    with sandbox.mycase.lock:
        paths = [e["path"] for e in sandbox.mycase.journal if e["path"].startswith("/v1/cases")]
    assert sorted(paths) == sorted(f"/v1/cases/{k}" for k in keys)  # no list call
    rows = json.loads((tmp_path / "one.json").read_text())
    assert sorted((r["mycase_id"], r["action"]) for r in rows) == sorted((k, "created") for k in keys)
    assert all(r["case_id"] == expected[r["mycase_id"]][1]["readable_id"] for r in rows)
    assert cursor(connected.env["MYCASE_SYNC_DB"]) is None  # --case never moves the window

    missing = connected.run(JOB, "--case", "1")
    assert missing.code == 1 and "not found in MyCase" in missing.stderr
    for bad in (["--case", "abc"], ["--case", "1", "--since", "2024-01-01"], ["--full", "--case", "1"]):
        refused = connected.run(JOB, *bad)
        assert refused.code == 2 and "Traceback" not in refused.output, refused.output


def test_since_sets_the_bound_by_hand(connected, sandbox, db_path):
    result = connected.run(JOB, "--since", "2024-02-03")
    assert case_list_filters(sandbox) == ["2024-02-03T00:00:00Z"]
    assert result.code in (0, 1)
    assert cursor(db_path) is None  # it did not reach back as far as the first run's 10 years
    sandbox.mycase.reset_journal()
    connected.run(JOB)
    assert abs(parse_filter(case_list_filters(sandbox)[0]) - ten_years_before(now())) < dt.timedelta(minutes=1)


def test_dry_run_reads_everything_and_writes_nothing_anywhere(connected, sandbox, tmp_path, db_path):
    expected = expected_outcomes(sandbox, ten_years_before(now()))
    result = connected.run(JOB, "--dry-run", "--report", str(tmp_path / "dry.json"))
    assert result.code == 1, result.output
    assert cs_writes(sandbox) == []
    assert store_rows(db_path) == {} and cursor(db_path) is None
    store = open_store(db_path)
    try:
        assert list(store.db.query("select * from runs")) == []  # a dry run is not an import in `status`
    finally:
        store.close()
    rows = {r["mycase_id"]: r for r in json.loads((tmp_path / "dry.json").read_text())}
    assert {k for k, r in rows.items() if r["action"] == "would create"} == {k for k, v in expected.items() if v[0] == "created"}

    assert connected.run(JOB).code == 1
    target = next(k for k, v in expected.items() if v[0] == "created" and v[1]["status"] == "open")
    sandbox.mycase.update_case(int(target), description="Changed for the dry run.", case_stage="Mediation")
    sandbox.casestatus.reset_journal()
    stages = len(sandbox.casestatus.stage_changes)
    dry = connected.run(JOB, "--dry-run", "--report", str(tmp_path / "dry.csv"))
    assert dry.code == 1 and cs_writes(sandbox) == [] and len(sandbox.casestatus.stage_changes) == stages
    row = next(r for r in read_report(tmp_path / "dry.csv") if r["mycase_id"] == target)
    expected_fields = "description" if expected[target][1]["stage"] == "Mediation" else "description;stage"
    assert (row["action"], row["changed_fields"]) == ("would update", expected_fields)
    assert "dry run, nothing written" in dry.stderr
    assert store_rows(db_path)[target]["state"] == "synced"  # untouched by the dry run
    connected.run(JOB)
    assert sandbox.casestatus.case_by_integration_id(target)["description"] == "Changed for the dry run."


def test_report_must_be_csv_or_json_in_an_existing_directory(connected, tmp_path):
    for name in ("report.txt", str(tmp_path / "missing" / "r.csv")):
        result = connected.run(JOB, "--report", name)
        assert result.code == 2 and "--report" in result.output and "Traceback" not in result.output


def test_not_connected_is_exit_3_before_any_request(cli, sandbox):
    result = cli.run(JOB)
    assert result.code == 3, result.output
    assert sandbox.casestatus.journal == []
