"""push-messages and push-documents end to end: the real CLI against the sandbox over HTTP.

Each test checks the promise of the issue: every item on an imported case arrives in MyCase
exactly once, whatever faults, crashes and reruns happen on the way.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys

import pytest

from conftest import CliResult, KillAtWrite, active_cases, create_casestatus_cases, mapped_cases, seed_imported
from mycase_sync.sandbox.server import SandboxConfig
from mycase_sync.store import open_store
from oracle import (
    assert_documents_once, assert_messages_once, documents_by_marker, ledger_states, no_contract_breach,
    notes_by_marker,
)

MESSAGES_LIST = r"/v1/api/messages"
FILES_LIST = r"/v1/api/files"
NOTES = r"/v1/cases/\d+/notes"
DOCUMENTS = r"/v1/cases/\d+/documents"


@pytest.fixture
def sandbox_config():
    return SandboxConfig(matters=60, seed=7, mycase_rate_limit=None)  # the pace is not the point here


def import_cases(cli, db_path, case_ids) -> set[str]:
    """`mycase-sync import-matters --case ...`; returns the MyCase ids now mapped to a Case Status
    case (a case whose lead attorney has no Case Status user is skipped, as in real life).

    The whole-flow tests and the dry run import for real; the others set the scene with
    conftest.seed_imported (what an import leaves in both places), the push being their subject."""
    args = [arg for case_id in case_ids for arg in ("--case", str(case_id))]
    result = cli.run("import-matters", *args)
    assert result.code in (0, 1), result.output
    return mapped_cases(db_path)


def assert_ledger_follows_cases(db_path, kind, mapped):
    """Sent when its case is imported, waiting (never dropped) when it is not."""
    store = open_store(db_path)
    try:
        rows = list(store.db.query("select integration_id, state from ledger where kind = ?", [kind]))
    finally:
        store.close()
    assert rows
    for row in rows:
        assert row["state"] == ("sent" if row["integration_id"] in mapped else "waiting"), row


# --- the whole flow ----------------------------------------------------------------------------
def test_messages_arrive_once_waiting_ones_after_their_case_and_an_idle_run_costs_one_list(connected, sandbox, db_path):
    cases = active_cases(sandbox)
    first, later = cases[::2], cases[1::2]
    mapped = import_cases(connected, db_path, first)
    create_casestatus_cases(sandbox, later)  # in Case Status, not imported by this tool
    result = connected.run("push-messages")
    assert result.code == 0 and result.output == ""  # cron: silent on success
    assert_messages_once(sandbox, mapped)
    waiting = [s for s in ledger_states(db_path, "message").values() if s == "waiting"]
    assert waiting, "some messages must be on cases not imported yet"

    status = json.loads(connected.invoke("status", "--json").stdout)  # status reads the store alone: in-process
    assert status["jobs"]["push-messages"]["items"]["waiting_for_case"] == len(waiting)

    sandbox.mycase.reset_journal()
    sandbox.casestatus.reset_journal()
    assert connected.run("push-messages").code == 0
    assert sandbox.casestatus.count("GET", MESSAGES_LIST) == 2  # the cursor's page and the empty one that ends it
    assert sandbox.mycase.journal == []  # no MyCase request, not even a token refresh

    newly = import_cases(connected, db_path, later) - mapped
    assert newly, "some of the waiting cases must import"
    assert connected.run("push-messages").code == 0
    assert_messages_once(sandbox, mapped | newly)
    assert_ledger_follows_cases(db_path, "message", mapped | newly)
    no_contract_breach(sandbox)


def test_documents_arrive_once_byte_identical_with_safe_names_and_a_rerun_sends_nothing(connected, sandbox, db_path):
    cases = active_cases(sandbox)
    first, later = cases[::2], cases[1::2]
    mapped = import_cases(connected, db_path, first)
    create_casestatus_cases(sandbox, later)
    result = connected.run("push-documents")
    assert result.code == 0 and result.output == ""
    assert_documents_once(sandbox, mapped)
    mapped = import_cases(connected, db_path, later)
    assert connected.run("push-documents").code == 0
    assert_documents_once(sandbox, mapped)
    assert_ledger_follows_cases(db_path, "document", mapped)
    names = {d["name"] for d in sandbox.mycase.documents.values()}
    assert {"passwd.txt", "document.pdf", "Déclaration_Müller_日本.pdf"} <= names
    assert not (db_path.parent / "push-documents.tmp").exists()

    sandbox.mycase.reset_journal()
    sandbox.casestatus.reset_journal()
    assert connected.run("push-documents").code == 0
    assert sandbox.casestatus.count("GET", FILES_LIST) <= 2 and sandbox.mycase.journal == []
    no_contract_breach(sandbox)


# --- request budgets ---------------------------------------------------------------------------
# Soak: a thousand items through the real CLI. In the default run test_push_poller checks the same
# budget (a thousand pushed, three new: two pages read) on the poller itself.
@pytest.mark.parametrize("job, kind", [
    pytest.param("push-messages", "message", marks=pytest.mark.soak),
    pytest.param("push-documents", "file", marks=pytest.mark.soak),
])
def test_with_a_thousand_pushed_and_three_new_a_run_reads_at_most_three_pages(connected, sandbox, db_path, job, kind):
    sandbox.mycase.rate_limit = None
    cases = sorted(seed_imported(sandbox, db_path, active_cases(sandbox)))[:20]
    cs = sandbox.casestatus
    existing = len(cs.messages if kind == "message" else cs.files)

    def add(n):
        for i in range(n):
            case = str(cases[i % len(cases)])
            if kind == "message":
                cs.add_message(case, "incoming", f"message {i}", "Jane Doe")
            else:
                cs.add_file(case, f"scan_{i}.pdf", data=b"%PDF " + str(i).encode())

    add(1000 - existing)
    fast = {"MYCASE_RATE_LIMIT": "1000", "MYCASE_SYNC_WORKERS": "8"}
    assert connected.run(job, extra_env=fast).code == 0
    pushed = len(sandbox.mycase.notes if kind == "message" else sandbox.mycase.documents)
    assert pushed == 1000
    add(3)
    cs.reset_journal()
    sandbox.mycase.reset_journal()
    assert connected.run(job, extra_env=fast).code == 0
    lists = cs.count("GET", MESSAGES_LIST if kind == "message" else FILES_LIST)
    assert lists <= 3, lists  # measured: 2 (the full page 10, then page 11 with the new ones)
    assert len(sandbox.mycase.notes if kind == "message" else sandbox.mycase.documents) == 1003
    # before a first send its matter's list is read for the marker: one read per matter with new items
    assert sandbox.mycase.count("GET") == 3
    no_contract_breach(sandbox)


def test_a_newest_first_list_is_read_from_page_one_and_stops_at_what_was_seen(connected, sandbox, db_path):
    sandbox.casestatus.newest_first = True
    sandbox.mycase.rate_limit = None
    fast = {"MYCASE_RATE_LIMIT": "1000"}
    cases = active_cases(sandbox)
    cases = sorted(seed_imported(sandbox, db_path, cases))
    for i in range(150):
        sandbox.casestatus.add_message(str(cases[i % len(cases)]), "incoming", f"m{i}", "Jane Doe")
    assert connected.run("push-messages", extra_env=fast).code == 0
    assert_messages_once(sandbox, set(cases))
    sandbox.casestatus.add_message(str(cases[0]), "outgoing", "new one", "Lana Joseph")
    sandbox.casestatus.reset_journal()
    assert connected.run("push-messages", extra_env=fast).code == 0
    assert sandbox.casestatus.count("GET", MESSAGES_LIST) == 1
    assert_messages_once(sandbox, set(cases))


# --- faults and crashes ------------------------------------------------------------------------
# Each fault and each job by default; every pairing under soak.
# "503_late": the note or document was made, and a gateway answered 503 for it (it must not be made twice).
FAULTS_ON_WRITES = [(fault, job, path) for fault in ("500", "timeout", "drop", "502_late", "503_late")
                    for job, path in (("push-messages", NOTES), ("push-documents", DOCUMENTS))]
BY_DEFAULT = {("500", "push-messages"), ("timeout", "push-documents"), ("drop", "push-messages"),
              ("503_late", "push-messages")}


@pytest.mark.parametrize("fault, job, path", [
    pytest.param(fault, job, path, id=f"{job}-{path}-{fault}",
                 marks=() if (fault, job) in BY_DEFAULT else pytest.mark.soak) for fault, job, path in FAULTS_ON_WRITES])
def test_a_fault_on_a_write_ends_after_a_rerun_with_exactly_one_record_per_item(connected, sandbox, db_path, fault, job, path):
    mapped = seed_imported(sandbox, db_path, active_cases(sandbox))
    sandbox.mycase.timeout_hold = 3
    sandbox.mycase.faults.add("POST", path, fault, nth=2)
    env = {"MYCASE_SYNC_TIMEOUT": "1"}
    first = connected.run(job, extra_env=env)
    assert first.code == 1, first.output
    assert len(first.output.strip().splitlines()) == 1 and "retried next run (1 of 10)" in first.output
    assert sandbox.mycase.faults.fired
    second = connected.run(job, extra_env=env)
    assert second.code == 0 and second.output == ""
    (assert_messages_once if job == "push-messages" else assert_documents_once)(sandbox, mapped)
    no_contract_breach(sandbox)


@pytest.mark.parametrize("job, write", [
    ("push-messages", ("POST", NOTES)),
    ("push-documents", ("POST", DOCUMENTS)),  # created, answer never read: found by its marker
    ("push-documents", ("PUT", r"/s3/.*")),   # created and recorded; crash during the bytes
])
def test_a_crash_after_a_write_lands_loses_nothing_and_duplicates_nothing(connected, sandbox, db_path, job, write):
    mapped = seed_imported(sandbox, db_path, active_cases(sandbox))
    KillAtWrite(sandbox, 1, method=write[0], path=write[1], services=["mycase"]).run(
        connected, job, extra_env={"MYCASE_SYNC_WORKERS": "1"}, timeout=60)
    result = connected.run(job)
    assert result.code == 0, result.output
    if job == "push-messages":
        assert_messages_once(sandbox, mapped)
    else:
        assert_documents_once(sandbox, mapped)
        versions = sorted(len(d["versions"]) for d in sandbox.mycase.documents.values())
        if write[0] == "POST":  # created, bytes never sent: completed by a version
            assert versions[-1] == 2
        else:  # the bytes had landed: MyCase's copy is checked and kept, no second upload
            assert versions[-1] == 1
    assert not (db_path.parent / "push-documents.tmp").exists()
    no_contract_breach(sandbox)


# --- options -----------------------------------------------------------------------------------
def test_dry_run_lists_what_would_be_pushed_and_changes_nothing(connected, sandbox, db_path):
    cases = active_cases(sandbox)
    import_cases(connected, db_path, cases[::2])
    create_casestatus_cases(sandbox, cases[1::2])
    for job, noun in (("push-messages", "message"), ("push-documents", "file")):
        result = connected.run(job, "--dry-run")
        assert result.code == 0
        assert re.search(rf"^would push {noun} \d+ ", result.stdout, re.M)
        assert re.search(rf"^waiting: {noun} \d+ .* is not imported yet$", result.stdout, re.M)
        assert "nothing changed" in result.stdout
        assert ledger_states(db_path, noun.replace("file", "document")) == {}
    assert sandbox.mycase.count(writes_only=True) == 0 and sandbox.mycase.notes == {}
    store = open_store(db_path)
    try:
        assert store.get_cursor("push-messages") is None and store.get_cursor("push-documents") is None
        assert store.last_run("push-messages") is None  # a dry run is no completed push for `status`
    finally:
        store.close()


def test_a_cutover_holds_back_the_older_history_and_all_never_sends_it(connected, sandbox, db_path):
    case = min(seed_imported(sandbox, db_path, active_cases(sandbox)[:5]))
    cs = sandbox.casestatus
    sandbox.clock.offset -= 90 * 86400
    very_old = cs.add_message(case, "incoming", "ninety days ago", "Jane Doe")
    sandbox.clock.offset += 45 * 86400
    old = cs.add_message(case, "incoming", "forty-five days ago", "Jane Doe")
    sandbox.clock.offset += 45 * 86400
    recent_ids = {m["id"] for m in cs.messages.values()} - {very_old["id"], old["id"]}

    sixty_days_ago = (sandbox.clock.now() - dt.timedelta(days=60)).date().isoformat()
    assert connected.run("push-messages", "--since", sixty_days_ago).code == 0
    assert set(notes_by_marker(sandbox)) == recent_ids | {old["id"]}
    assert connected.run("push-messages", "--all").code == 0  # the whole history again: the cut-over holds
    assert set(notes_by_marker(sandbox)) == recent_ids | {old["id"]}
    assert ledger_states(db_path, "message")[very_old["id"]] == "before_cutover"
    assert all(len(v) == 1 for v in notes_by_marker(sandbox).values())
    for args in (("--since", "yesterday"), ("--all", "--since", "2020-01-01")):
        bad = connected.invoke("push-messages", *args)  # a usage error: no real process needed
        assert bad.code == 2 and "Traceback" not in bad.output and "Error: " in bad.stderr


def test_an_item_failing_ten_runs_is_parked_shown_by_status_and_retried_on_request(connected, sandbox, db_path):
    mapped = seed_imported(sandbox, db_path, active_cases(sandbox)[:5])
    case = min(mapped)
    sandbox.casestatus.add_message(case, "incoming", "will fail", "Jane Doe")
    sandbox.mycase.rate_limit = None
    before = {m["id"] for m in sandbox.casestatus.messages.values()}
    target = max(before)
    # every note for this case fails (the other messages of the case wait behind it: sent order)
    sandbox.mycase.faults.add("POST", rf"/v1/cases/{case}/notes", "500", nth=1, times=100)
    for run in range(10):
        result = connected.run("push-messages")
        assert result.code == 1
    assert "parked after 10 failed runs" in result.output and "--retry-failed" in result.output
    status = json.loads(connected.invoke("status", "--json").stdout)  # status reads the store alone: in-process
    assert status["jobs"]["push-messages"]["items"]["failed"] >= 1
    assert connected.invoke("status", "--check").code == 1
    sandbox.mycase.faults.clear()
    assert connected.run("push-messages").code == 0  # parked items stay parked...
    parked = [i for i, s in ledger_states(db_path, "message").items() if s == "failed"]
    assert parked
    assert connected.run("push-messages", "--retry-failed").code == 0  # ...until asked
    assert set(ledger_states(db_path, "message").values()) == {"sent"}
    assert_messages_once(sandbox, mapped)
    assert target in notes_by_marker(sandbox)


@pytest.mark.parametrize("service, method, path", [
    ("casestatus", "GET", MESSAGES_LIST),  # the list of new messages cannot be read
    ("mycase", "POST", NOTES),             # MyCase refuses every note with 429 (rate limited)
])
def test_a_service_down_for_the_whole_run_is_exit_75_and_counts_against_no_item(connected, sandbox, db_path,
                                                                                service, method, path):
    """Still 503/429 after the retries: the service is down, not the message. Nothing is parked or
    counted as a failed attempt, and the next run delivers everything once."""
    mapped = seed_imported(sandbox, db_path, active_cases(sandbox))
    if service == "casestatus":
        connected.run("push-messages")  # a first run claims the history; then one new message
        sandbox.casestatus.add_message(min(mapped), "incoming", "sent while Case Status was down", "Jane Doe")
    getattr(sandbox, service).faults.add(method, path, "503" if method == "GET" else "429", nth=1, times=1000)
    result = connected.run("push-messages")
    assert result.code == 75, result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert ("HTTP 503" if method == "GET" else "HTTP 429") in result.stderr
    assert "Traceback" not in result.output
    store = open_store(db_path)
    try:
        unsent = [row[0] for row in store.db.execute(
            "select attempts from ledger where kind = 'message' and state not in ('sent', 'waiting')")]
        outcome = store.db.execute("select outcome from runs where job = 'push-messages' order by id desc").fetchone()[0]
    finally:
        store.close()
    assert outcome == "temporary"
    if service == "mycase":
        assert unsent and set(unsent) == {0}  # every message still to send, none charged an attempt
    getattr(sandbox, service).faults.clear()
    assert connected.run("push-messages").code == 0
    assert set(ledger_states(db_path, "message").values()) <= {"sent", "waiting"}
    assert_messages_once(sandbox, mapped)


# Forks the command, waits for it and writes its own peak RSS (KB) to the file named first.
_PEAK_RSS_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status) & 0xFF)
"""


def run_with_peak_rss(cli, *args: str, timeout: float) -> tuple[CliResult, int]:
    """One CLI run and its own peak RSS in KB.

    Not RUSAGE_CHILDREN: that is the largest descendant of the whole pytest session, and Linux charges
    a child at exec with the RSS of the process it was forked from (pytest, hundreds of MB after an
    in-process 100k-case sandbox). So a minimal interpreter (~8 MB) forks the CLI and reports wait4's figure.
    """
    report = cli.cwd / "peak-rss-kb"
    proc = subprocess.run([sys.executable, "-S", "-I", "-c", _PEAK_RSS_LAUNCHER, str(report),
                           sys.executable, "-m", "mycase_sync", *args],
                          env=cli.environment(), cwd=cli.cwd, capture_output=True, text=True, timeout=timeout)
    cli.scan(proc.stdout, "stdout", args)
    cli.scan(proc.stderr, "stderr", args)
    return CliResult(proc.returncode, proc.stdout, proc.stderr), int(report.read_text())


@pytest.mark.soak
def test_a_one_gigabyte_file_streams_through_with_flat_memory(connected, sandbox, db_path):
    case = min(import_cases(connected, db_path, active_cases(sandbox)[:5]))
    sandbox.mycase.rate_limit = None
    big = sandbox.casestatus.add_file(case, "deposition video.mp4", size=1 << 30)
    result, peak_kb = run_with_peak_rss(connected, "push-documents", timeout=300)
    assert result.code == 0, result.output
    (doc,) = documents_by_marker(sandbox)[big["id"]]
    assert doc["size"] == 1 << 30 and doc["bytes_sha256"] == sandbox.casestatus.file_sha256(big["id"])
    assert peak_kb < 200 * 1024, f"the CLI peaked at {peak_kb // 1024} MB for a 1 GB file"
    assert not (db_path.parent / "push-documents.tmp").exists()
