"""Case Status as API-NOTES Part 3 says it may really be, the real CLI against the sandbox: a fixed
10 a page, page[number] ignored, the integration_id filter ignored. Each reaches the end state of
the default sandbox (tests/oracle.py), writes to no wrong case, and never loops."""

from __future__ import annotations

import datetime as dt

import pytest

from mycase_sync.casestatus.client import ListingError, PageWatch
from mycase_sync.sandbox.server import SandboxConfig
from conftest import mapped_cases as mapped
from oracle import assert_job_end_state, assert_matters_once, expected_matters

SWITCHES = ("default", "casestatus_fixed_page_size", "casestatus_ignores_page_number",
            "casestatus_ignores_integration_filter")
LIST_PATHS = r"/v1/api/(cases|users|messages|files)"


def alternative(name: str) -> SandboxConfig:
    """The sandbox of these tests, playing one alternative (`name`, a SandboxConfig switch) or none ("default")."""
    config = SandboxConfig(matters=40, seed=11, mycase_rate_limit=None)
    if name != "default":
        setattr(config, name, True)
    return config


@pytest.fixture(params=SWITCHES)
def sandbox_config(request):
    return alternative(request.param)


def nightly_changes(sandbox) -> str:
    """What a day in MyCase brings: a new matter (a lookup by integration_id), an edited one. Returns the new id."""
    created = expected_matters(sandbox)
    lead = next(f["primary_attorney_email"] for f in created.values())
    lead_id = next(s["id"] for s in sandbox.mycase.staff.values() if s["email"] == lead)
    client_id = next(iter(sandbox.mycase.clients))
    new = sandbox.mycase.add_case(name="New v. Matter", case_number="2099-00001", case_stage="Intake",
                                  clients=[client_id], staff=[{"id": lead_id, "lead_lawyer": True}])
    sandbox.mycase.update_case(int(next(iter(created))), description="Offer expected next week.")
    return str(new["id"])


def test_backfill_nightly_and_both_pushes_reach_the_default_end_state(connected, sandbox, db_path):
    result = connected.run("import-matters")
    assert result.code in (0, 1), result.output  # as against the default: the firm's malformed records fail
    assert "Traceback" not in result.output
    assert_matters_once(sandbox, db_path, expected_matters(sandbox))

    new_id = nightly_changes(sandbox)
    sandbox.casestatus.reset_journal()
    result = connected.run("import-matters")
    assert result.code in (0, 1), result.output
    assert_matters_once(sandbox, db_path, expected_matters(sandbox))  # every case holds its own matter's fields
    assert sandbox.casestatus.case_by_integration_id(new_id) is not None
    # the one new matter: one create, no PATCH of anyone else's case
    assert sandbox.casestatus.count("POST", r"/v1/api/cases") == 1
    assert sandbox.casestatus.count("PATCH", r"/v1/api/cases/\d+") == 1
    assert sandbox.casestatus.count("GET", LIST_PATHS) < 30  # no loop

    cases = mapped(db_path)
    for job in ("push-messages", "push-documents"):
        sandbox.casestatus.reset_journal()
        result = connected.run(job)
        assert result.code == 0, result.output
        assert_job_end_state(sandbox, db_path, job, cases)
        assert sandbox.casestatus.count("GET", LIST_PATHS) < 20  # no loop
        result = connected.run(job)  # and an idle run after it
        assert result.code == 0, result.output
        assert_job_end_state(sandbox, db_path, job, cases)


def test_a_lookup_by_integration_id_adopts_only_its_own_case(connected, sandbox, db_path, request):
    """A store that knows nothing, one matter by id: the lookup (not the backfill's scan) finds its case."""
    assert connected.run("import-matters").code in (0, 1)
    wanted = expected_matters(sandbox)
    one = sorted(wanted, key=int)[len(wanted) // 2]
    other_db = db_path.parent / "other.db"
    from conftest import sandbox_cli, seed_tokens

    other = sandbox_cli(sandbox, db_path.parent.parent, other_db, MYCASE_RATE_LIMIT="1000",
                        CASESTATUS_RATE_LIMIT="500", MYCASE_SYNC_WORKERS="8")
    seed_tokens(sandbox, other_db)
    sandbox.mycase.update_case(int(one), description="Changed since.")
    sandbox.casestatus.reset_journal()
    result = other.run("import-matters", "--case", one)
    assert result.code == 0, result.output
    assert sandbox.casestatus.count("POST", r"/v1/api/cases") == 0  # adopted, not created again
    patched = [e["path"] for e in sandbox.casestatus.journal if e["method"] == "PATCH"]
    assert patched == [f"/v1/api/cases/{sandbox.casestatus.case_by_integration_id(one)['id']}"]
    assert_matters_once(sandbox, db_path, expected_matters(sandbox))


# --- where a listing ends (no HTTP) ----------------------------------------------------------------
def page(ids):
    return [{"id": i} for i in ids]


def test_a_short_page_does_not_end_a_listing_an_empty_one_does():
    watch = PageWatch("/v1/api/messages", size=100)
    assert watch.goes_on(1, page(range(1, 11)))  # 10 of the 100 asked: not the end
    assert watch.goes_on(2, page(range(11, 21)))
    assert not watch.goes_on(3, [])


def test_a_page_with_nothing_new_ends_it_and_a_repeated_full_page_is_an_error():
    watch = PageWatch("/v1/api/messages", size=100)
    assert watch.goes_on(1, page(range(1, 31)))
    assert not watch.goes_on(2, page(range(1, 31)))  # a short page repeated: it was the whole list
    watch = PageWatch("/v1/api/messages", size=10)
    assert watch.goes_on(1, page(range(1, 11)))
    with pytest.raises(ListingError, match=r"page 2 repeats the page before it .*first 10 records"):
        watch.goes_on(2, page(range(1, 11)))
    watch = PageWatch("/v1/api/messages", size=10)
    assert watch.goes_on(1, page(range(1, 11)))
    assert watch.goes_on(2, page(range(5, 15)))  # shifted by a deletion: something new
    assert not watch.goes_on(3, page(range(1, 11)))  # all seen


def test_a_listing_that_never_ends_stops_at_the_cap():
    watch = PageWatch("/v1/api/messages", size=10, max_pages=5)
    for n in range(1, 6):
        assert watch.goes_on(n, page(range(n * 10, n * 10 + 10)))
    with pytest.raises(ListingError, match="stopped after 5 pages"):
        watch.goes_on(6, page(range(60, 70)))


@pytest.mark.parametrize("sandbox_config", ["casestatus_ignores_page_number"], indirect=True)
def test_a_full_page_repeated_stops_the_push_with_one_clear_line(connected, sandbox, db_path):
    """More messages than one page holds, page[number] ignored: what page 1 holds is pushed, then one line, exit 1."""
    assert connected.run("import-matters").code in (0, 1)
    case = next(iter(mapped(db_path)))
    for n in range(120):
        sandbox.casestatus.add_message(case, "incoming", f"message {n}", "A. Client",
                                       dt.datetime.now(dt.timezone.utc))
    result = connected.run("push-messages")
    assert result.code == 1
    assert "repeats the page before it" in result.stderr and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert sandbox.casestatus.count("GET", r"/v1/api/messages") <= 3


def test_sandbox_serve_has_one_flag_per_alternative():
    from mycase_sync.sandbox.cli import serve
    from mycase_sync.sandbox.server import ALTERNATIVES

    flags = {p.name: p.opts for p in serve.params}
    for name in ALTERNATIVES:
        assert flags[name] == [f"--{name.replace('_', '-')}"]
        assert hasattr(SandboxConfig(), name)
