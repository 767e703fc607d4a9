"""The import's summary line says what a sysadmin needs, in words that read: counts a dry run would
make, the users --create-staff would create, the matters the 10-year window left out, and the report
only when one was asked for. In-process against the sandbox (the job function, not a subprocess)."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from conftest import seed_tokens
from mycase_sync.app import App, run_job
from mycase_sync.config import load_settings
from mycase_sync.sync.matters import ACTIONS, OUTSIDE_WINDOW, import_matters
from oracle import UTC, expected_outcomes, ten_years_before


@pytest.fixture
def app(sandbox, db_path):
    seed_tokens(sandbox, db_path)
    settings = load_settings(environ={**sandbox.env(), "MYCASE_SYNC_DB": str(db_path), "MYCASE_RATE_LIMIT": "1000",
                                      "CASESTATUS_RATE_LIMIT": "1000", "MYCASE_SYNC_WORKERS": "8",
                                      "HOME": str(db_path.parent)})
    made = App(settings)
    yield made
    made.close()


def summary(caplog) -> str:
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("import-matters: ")]
    caplog.clear()
    return line


def older_than_the_window(sandbox) -> int:
    cutoff = ten_years_before(dt.datetime.now(UTC))
    return sum(1 for case in sandbox.mycase.cases.values() if max(case["created_at"], case["updated_at"]) < cutoff)


def test_dry_run_counts_read_as_sentences_and_name_the_users_it_would_create(app, sandbox, caplog):
    caplog.set_level(logging.INFO, logger="mycase_sync")
    expected = expected_outcomes(sandbox, ten_years_before(dt.datetime.now(UTC)))
    counts = import_matters(app, "dry-run", dry_run=True, create_staff=True)
    line = summary(caplog)
    assert "would have" not in line
    assert f"dry run, nothing written: would create {counts['created']}, update 0, close 0, reopen 0;" in line
    users = {u["email"].lower() for u in sandbox.casestatus.users.values()}
    missing = {(f"{s['first_name']} {s['last_name']}", s["email"]) for case in sandbox.mycase.cases.values()
               if str(case["id"]) in expected
               for entry in case.get("staff") or [] if entry.get("lead_lawyer")
               for s in [sandbox.mycase.staff.get(entry["id"]) or sandbox.mycase.staff.get(int(entry["id"]))]
               if s and s["email"].lower() not in users}
    assert missing, "the sample firm has lead attorneys without a Case Status user"
    assert f"would create {len(missing)} Case Status user{'s' if len(missing) > 1 else ''} for lead attorneys: " in line
    for name, email in missing:
        assert f"{name} <{email}>" in line


def test_the_report_is_mentioned_only_when_asked_for_and_the_window_says_what_it_left_out(app, sandbox, caplog,
                                                                                          tmp_path):
    caplog.set_level(logging.INFO, logger="mycase_sync")
    old = older_than_the_window(sandbox)
    assert old > 0, "the sample firm has matters older than 10 years"
    assert run_job(app, "import-matters", lambda run_id: import_matters(app, run_id)) == 1  # some matters fail
    line = summary(caplog)
    assert "with notes (-v shows them)" in line and "--report" not in line and "see " not in line
    assert f"; {old} older matters left out)" in line
    assert app.store.last_run("import-matters")["counts"][OUTSIDE_WINDOW] == old
    counted = mycase_count_requests(sandbox)
    assert 4 <= counted <= 8, "both lists counted, in and out of the window (once more when Item-Count is missing)"

    report = tmp_path / "nightly.csv"
    import_matters(app, "nightly", report=str(report))  # a nightly run: the window is 30 days, nothing counted
    line = summary(caplog)
    assert f"with notes (see {report})" in line and "left out" not in line
    assert mycase_count_requests(sandbox) == counted, "nothing counted outside a 10-year run"


def mycase_count_requests(sandbox) -> int:
    with sandbox.mycase.lock:
        return sum(1 for e in sandbox.mycase.journal if e["path"] == "/v1/cases" and e["query"].get("page_size") == ["1"])


class Watched:
    """A progress display someone watches (as on a terminal): records the totals and the outcomes."""

    visible = True
    shown: list["Watched"] = []

    def __init__(self, description, total=None, outcomes=()):
        self.totals = [total]
        self.outcomes: list[str] = []
        Watched.shown.append(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def advance(self, amount=1, outcome=None):
        self.outcomes += [outcome] * amount

    def total(self, total):
        self.totals.append(total)


def test_a_watched_backfill_gets_its_total_from_mycase_and_ends_on_it(app, sandbox):
    Watched.shown.clear()
    app.progress = Watched
    counts = import_matters(app, "dry-run", dry_run=True)
    (bar,) = Watched.shown
    in_window = len(expected_outcomes(sandbox, ten_years_before(dt.datetime.now(UTC))))
    assert bar.totals[1] == in_window  # MyCase's Item-Count, asked once the listing is known (no retries yet)
    assert bar.totals[-1] == len(bar.outcomes) == in_window
    assert {o: bar.outcomes.count(o) for o in set(bar.outcomes)} == {k: v for k, v in counts.items() if v and k in ACTIONS}
