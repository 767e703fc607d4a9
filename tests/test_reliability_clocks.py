"""Clocks: MyCase and Case Status 2 hours behind or ahead of the machine running the tool.

The import's incremental window is computed from the local clock, while MyCase stamps
`updated_at` with its own. Whatever the skew, a matter changed after the last run must come back
in the next window: right after a backfill, after a nightly gap, and after a long gap (the last
successful import more than 30 days ago, when the window starts from that run rather than from
30 days back). The pushes' first-run window (30 days) must not lose the newest items either.
"""

from __future__ import annotations

import datetime as dt

import pytest

from mycase_sync.sandbox.server import SandboxConfig
from mycase_sync.store import iso, open_store
from conftest import active_cases, seed_imported
from oracle import assert_matters_once, assert_messages_once, expected_matters, no_contract_breach

SKEWS = {"mycase-2h-behind": -2, "mycase-2h-ahead": 2}
UTC = dt.timezone.utc


@pytest.fixture(params=list(SKEWS.values()), ids=list(SKEWS))
def skew(request) -> dt.timedelta:
    return dt.timedelta(hours=request.param)


@pytest.fixture
def sandbox_config(skew):
    return SandboxConfig(matters=60, seed=7, now=dt.datetime.now(UTC) + skew, mycase_rate_limit=None)


def cs_case(sandbox, mycase_id) -> dict:
    case = sandbox.casestatus.case_by_integration_id(str(mycase_id))
    assert case is not None, f"matter {mycase_id} is not in Case Status"
    return case


def set_last_import(db_path, moment: dt.datetime) -> None:
    """As if the last successful import had started at `moment` (local clock)."""
    store = open_store(db_path)
    try:
        store.set_cursor("import-matters", {"last_success_start": iso(moment)})
    finally:
        store.close()


def test_the_sandbox_clock_is_really_skewed(sandbox, skew):
    off = sandbox.clock.now() - dt.datetime.now(UTC)
    assert abs(off - skew) < dt.timedelta(seconds=5)


GAPS = {"right-after": dt.timedelta(0), "next-night": dt.timedelta(days=1), "forty-days-later": dt.timedelta(days=40)}
# Every skew and every gap by default (3 runs); every pairing under soak.
BY_DEFAULT = {("mycase-2h-behind", "right-after"), ("mycase-2h-ahead", "next-night"),
              ("mycase-2h-behind", "forty-days-later")}


@pytest.mark.parametrize("skew, gap", [
    pytest.param(hours, gap, id=f"{skew}-{name}", marks=() if (skew, name) in BY_DEFAULT else pytest.mark.soak)
    for skew, hours in SKEWS.items() for name, gap in GAPS.items()], indirect=["skew"])
def test_no_matter_changed_after_the_last_import_is_missed(connected, sandbox, db_path, skew, gap):
    assert connected.run("import-matters").code in (0, 1)
    wanted = expected_matters(sandbox)
    assert_matters_once(sandbox, db_path, wanted)

    # The last import started `gap` ago (local clock); matters were changed in MyCase from the
    # moment it had read them on, stamped by MyCase's own clock.
    local_start = dt.datetime.now(UTC) - gap
    set_last_import(db_path, local_start)
    changed = sorted(wanted)[:6]
    for n, mycase_id in enumerate(changed):
        stamped = local_start + dt.timedelta(minutes=1 + 10 * n) + skew
        sandbox.mycase.update_case(int(mycase_id), description=f"changed {n} after the last import",
                                   updated_at=stamped)
    new_case = sandbox.mycase.add_case(name="Matter opened after the last import",
                                       clients=[], staff=sandbox.mycase.cases[int(changed[0])]["staff"],
                                       created_at=local_start + dt.timedelta(minutes=2) + skew,
                                       updated_at=local_start + dt.timedelta(minutes=2) + skew)

    result = connected.run("import-matters")
    assert result.code in (0, 1), result.output
    for n, mycase_id in enumerate(changed):
        assert cs_case(sandbox, mycase_id)["description"] == f"changed {n} after the last import", (
            f"matter {mycase_id}, changed {1 + 10 * n} minutes after the last import began, was missed")
    assert cs_case(sandbox, new_case["id"])["readable_id"] == "Matter opened after the last import"
    assert_matters_once(sandbox, db_path, expected_matters(sandbox))
    no_contract_breach(sandbox)


def test_the_first_push_takes_the_newest_items_whatever_the_skew(connected, sandbox, db_path):
    mapped = seed_imported(sandbox, db_path, active_cases(sandbox))
    case = sorted(mapped)[0]
    newest = sandbox.casestatus.add_message(case, "incoming", "sent a moment ago (by Case Status's clock)", "Jane Doe")
    assert connected.run("push-messages", "--all").code == 0
    assert_messages_once(sandbox, mapped)
    later = sandbox.casestatus.add_message(case, "outgoing", "and one more", "Lana Joseph")
    assert connected.run("push-messages").code == 0
    assert_messages_once(sandbox, mapped)
    assert {newest["id"], later["id"]} <= {m["id"] for m in sandbox.casestatus.messages.values()}
    no_contract_breach(sandbox)
