"""Exactly once from any starting point, the real CLI against the sandbox: a fresh or restored
state store, a move from the hosted integration (cut-over), text that imitates our markers, a
store pointed at another firm, and empty documents."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import stat

import pytest

from conftest import KillAtWrite, active_cases, mapped_cases, sandbox_cli, seed_tokens
from mycase_sync.sandbox.server import SandboxConfig
from mycase_sync.store import open_store
from mycase_sync.sync.markers import marker_at_end, restore
from mycase_sync.values import parse_timestamp
from oracle import assert_documents_once, assert_messages_once, ledger_states, no_contract_breach

NOTES = r"/v1/cases/\d+/notes"
DOCUMENTS = r"/v1/cases/\d+/documents"
JOBS = ("push-messages", "push-documents")


@pytest.fixture
def sandbox_config():
    return SandboxConfig(matters=40, seed=11, mycase_rate_limit=None)  # the pace is not the point here


def import_active(cli, sandbox, db_path) -> set[str]:
    args = [arg for case_id in active_cases(sandbox) for arg in ("--case", str(case_id))]
    assert cli.run("import-matters", *args).code in (0, 1)
    return mapped_cases(db_path)


def in_mycase(sandbox) -> tuple[int, int, int]:
    """(notes, documents, document versions) MyCase holds."""
    with sandbox.mycase.lock:
        return (len(sandbox.mycase.notes), len(sandbox.mycase.documents),
                sum(len(d["versions"]) for d in sandbox.mycase.documents.values()))


def push_all(cli, *args) -> None:
    for job in JOBS:
        result = cli.run(job, *args)
        assert result.code == 0, result.output


def status_items(cli, job) -> dict:
    return json.loads(cli.invoke("status", "--json").stdout)["jobs"][job]["items"]  # status reads the store alone


def assert_everything_once(sandbox, cases) -> None:
    assert_messages_once(sandbox, cases)
    assert_documents_once(sandbox, cases)
    no_contract_breach(sandbox)


# --- a fresh, lost or restored store ------------------------------------------------------------------
def test_a_fresh_store_adopts_what_another_store_pushed_and_sends_nothing_again(connected, sandbox, db_path, tmp_path):
    cases = import_active(connected, sandbox, db_path)
    push_all(connected)
    before = in_mycase(sandbox)
    assert before[0] and before[1]
    other_db = tmp_path / "moved" / "state.db"  # the store deleted, lost, or the tool moved to another server
    other = sandbox_cli(sandbox, tmp_path, other_db, CASESTATUS_RATE_LIMIT="500", MYCASE_RATE_LIMIT="1000")
    seed_tokens(sandbox, other_db)
    assert import_active(other, sandbox, other_db) == cases  # the Case Status cases are adopted by integration_id
    sandbox.mycase.reset_journal()
    push_all(other)
    assert in_mycase(sandbox) == before  # no note, no document, not even a version added
    assert sandbox.mycase.count(writes_only=True) == 0
    for job, kind in (("push-messages", "message"), ("push-documents", "document")):
        assert set(ledger_states(other_db, kind).values()) == {"sent"}
        items = status_items(other, job)
        assert items["sent"] == len(ledger_states(other_db, kind)) and items["pending"] == 0
        last = json.loads(other.invoke("status", "--json").stdout)["jobs"][job]["last_run"]["counts"]
        assert last["adopted"] == items["sent"] and "sent" not in last
    assert_everything_once(sandbox, cases)


def test_a_store_restored_from_a_backup_doubles_nothing_and_loses_nothing(connected, sandbox, db_path, tmp_path):
    cases = import_active(connected, sandbox, db_path)
    push_all(connected)
    backup = tmp_path / "backups" / "state-backup.db"
    backup.parent.mkdir()
    result = connected.run("backup", str(backup))
    assert result.code == 0 and str(backup) in result.stdout
    assert stat.S_IMODE(os.stat(backup).st_mode) == 0o600
    case = sorted(cases)[0]
    for n in range(5):  # pushed after the backup was taken
        sandbox.casestatus.add_message(case, "incoming", f"after the backup {n}", "Jane Doe")
        sandbox.casestatus.add_file(case, f"after-{n}.pdf", data=b"%PDF after " + bytes([n]))
    push_all(connected)
    shutil.copyfile(backup, db_path)  # the restore: the backup back in place while no job runs
    for suffix in ("-wal", "-shm"):
        if os.path.exists(f"{db_path}{suffix}"):
            os.unlink(f"{db_path}{suffix}")
    before = in_mycase(sandbox)
    push_all(connected)
    assert in_mycase(sandbox) == before
    assert_everything_once(sandbox, cases)


def test_a_backup_is_a_consistent_private_copy_and_never_the_store_itself(connected, sandbox, db_path, tmp_path):
    import_active(connected, sandbox, db_path)
    old = os.umask(0)
    try:
        result = connected.run("backup", str(tmp_path / "copy.db"))
    finally:
        os.umask(old)
    assert result.code == 0
    assert stat.S_IMODE(os.stat(tmp_path / "copy.db").st_mode) == 0o600
    copy = sqlite3.connect(tmp_path / "copy.db")
    live = sqlite3.connect(db_path)
    try:
        assert copy.execute("select count(*) from matters").fetchone() == live.execute(
            "select count(*) from matters").fetchone()
        assert copy.execute("pragma journal_mode").fetchone()[0] == "delete"  # one self-contained file
    finally:
        copy.close()
        live.close()
    refused = connected.run("backup", str(db_path))
    assert refused.code == 2 and "overwrite the state store itself" in refused.stderr
    assert connected.run("backup", str(tmp_path)).code == 2


# --- text that imitates a marker ---------------------------------------------------------------------------
def next_message_id(sandbox) -> int:
    with sandbox.casestatus.lock:
        return max([0, *sandbox.casestatus.messages]) + 1


# Each fault and each place for the imitation by default; every pairing under soak.
@pytest.mark.parametrize("where, fault", [
    pytest.param(where, fault, id=f"{where}-{fault}",
                 marks=() if (where, fault) in {("content", "drop"), ("sender", "timeout"), ("content", "crash")}
                 else pytest.mark.soak)
    for fault in ("drop", "timeout", "crash") for where in ("content", "sender")])
def test_a_message_imitating_the_next_ones_marker_cannot_make_it_vanish(connected, sandbox, db_path, fault, where):
    sandbox.mycase.timeout_hold = 0.5
    cases = import_active(connected, sandbox, db_path)
    push_all(connected)  # the seeded activity, out of the way
    case = sorted(cases)[0]
    later = next_message_id(sandbox) + 1
    fake = f"[casestatus:message:{later}]"
    if where == "content":
        first = sandbox.casestatus.add_message(case, "incoming", f"Please see {fake}", "Jane Doe")
    else:
        first = sandbox.casestatus.add_message(case, "incoming", "hello", f"Jane {fake}")
    second = sandbox.casestatus.add_message(case, "incoming", "The text that must reach MyCase", "Jane Doe")
    assert second["id"] == later
    env = {"MYCASE_SYNC_WORKERS": "1", "MYCASE_SYNC_TIMEOUT": "0.3"}
    if fault == "crash":  # the note of the second message lands, the run dies before its answer is kept
        KillAtWrite(sandbox, 2, method="POST", path=NOTES, services=["mycase"]).run(connected, "push-messages",
                                                                                    extra_env=env)
    else:
        sandbox.mycase.faults.add("POST", NOTES, fault, nth=2)
        assert connected.run("push-messages", extra_env=env).code == 1
    assert connected.run("push-messages").code == 0
    notes = list(sandbox.mycase.notes.values())
    ending = {}
    for note in notes:
        ending.setdefault(marker_at_end(note["note"], "message"), []).append(note)
    assert len(ending[first["id"]]) == 1 and len(ending[second["id"]]) == 1
    assert ending[second["id"]][0]["note"].startswith("The text that must reach MyCase")
    first_note = ending[first["id"]][0]
    if where == "content":
        assert fake not in first_note["note"]  # defused, visibly
        assert restore(first_note["note"]).startswith(f"Please see {fake}")
    else:
        assert fake not in first_note["subject"]
    assert set(ledger_states(db_path, "message").values()) == {"sent"}
    no_contract_breach(sandbox)


@pytest.mark.parametrize("fault", ["drop", "crash"])
def test_a_file_named_like_the_next_files_marker_cannot_steal_its_document(connected, sandbox, db_path, fault):
    cases = import_active(connected, sandbox, db_path)
    push_all(connected)
    case = sorted(cases)[0]
    with sandbox.casestatus.lock:
        later = max([0, *sandbox.casestatus.files]) + 2
    first = sandbox.casestatus.add_file(case, f"[casestatus:file:{later}].pdf", data=b"first file's bytes")
    second = sandbox.casestatus.add_file(case, "second.pdf", data=b"second file's bytes")
    assert second["id"] == later
    env = {"MYCASE_SYNC_WORKERS": "1"}
    if fault == "crash":
        KillAtWrite(sandbox, 2, method="POST", path=DOCUMENTS, services=["mycase"]).run(
            connected, "push-documents", extra_env=env)
    else:
        sandbox.mycase.faults.add("POST", DOCUMENTS, fault, nth=2)
        assert connected.run("push-documents", extra_env=env).code == 1
    assert connected.run("push-documents").code == 0
    docs = {marker_at_end(d["description"], "file"): d for d in sandbox.mycase.documents.values()}
    assert docs[first["id"]]["bytes_sha256"] == sandbox.casestatus.file_sha256(first["id"])
    assert docs[second["id"]]["bytes_sha256"] == sandbox.casestatus.file_sha256(second["id"])
    assert len(docs[first["id"]]["versions"]) == 1
    assert_documents_once(sandbox, cases)


def test_a_run_killed_while_it_looks_for_markers_loses_and_doubles_nothing(connected, sandbox, db_path):
    """The first-send lookup is a crash point too: killed as the matter's notes are listed."""
    cases = import_active(connected, sandbox, db_path)
    proc = None
    real = sandbox.mycase.handle

    def kill_on_list(req):
        if req.method == "GET" and req.path.endswith("/notes") and proc is not None:
            os.kill(proc.pid, signal.SIGKILL)
            return None, "drop_before"
        return real(req)

    sandbox.mycase.handle = kill_on_list
    try:
        proc = connected.popen("push-messages", extra_env={"MYCASE_SYNC_WORKERS": "1"})
        proc.communicate(timeout=60)
    finally:
        del sandbox.mycase.handle
    assert proc.returncode == -signal.SIGKILL
    assert connected.run("push-messages").code == 0
    assert_messages_once(sandbox, cases)


# --- cut-over from the hosted integration --------------------------------------------------------------------
def test_since_sends_exactly_the_items_from_the_cutover_on_and_is_recorded_once(connected, sandbox, db_path):
    cases = import_active(connected, sandbox, db_path)
    case = sorted(cases)[0]
    sandbox.clock.offset -= 3600
    old = sandbox.casestatus.add_message(case, "incoming", "before the cut-over", "Jane Doe")
    old_file = sandbox.casestatus.add_file(case, "old.pdf", data=b"old")
    sandbox.clock.offset += 3600
    cutover = sandbox.clock.now()
    new = sandbox.casestatus.add_message(case, "incoming", "after the cut-over", "Jane Doe")
    new_file = sandbox.casestatus.add_file(case, "new.pdf", data=b"new")
    since = cutover.strftime("%Y-%m-%dT%H:%M:%S")
    for job in JOBS:
        result = connected.run(job, "--since", since)
        assert result.code == 0, result.output
    pushed = {marker_at_end(n["note"], "message") for n in sandbox.mycase.notes.values()}
    filed = {marker_at_end(d["description"], "file") for d in sandbox.mycase.documents.values()}
    assert new["id"] in pushed and old["id"] not in pushed
    assert new_file["id"] in filed and old_file["id"] not in filed
    with sandbox.casestatus.lock:
        messages = list(sandbox.casestatus.messages.values())
    cut = cutover.replace(microsecond=0)  # as given: whole seconds
    assert {m["id"] for m in messages if parse_timestamp(m["created_at"]) >= cut} <= pushed
    assert not {m["id"] for m in messages if parse_timestamp(m["created_at"]) < cut} & pushed
    assert ledger_states(db_path, "message")[old["id"]] == "before_cutover"
    items = status_items(connected, "push-messages")
    assert items["before_cutover"] >= 1 and items["pending"] == 0 and items["cutover"].startswith(since[:16])
    # the same date again is accepted; another is refused before anything runs
    assert connected.run("push-messages", "--since", since).code == 0
    sandbox.mycase.reset_journal()
    refused = connected.run("push-messages", "--since", "2020-01-01")
    assert refused.code == 2 and "already has its cut-over" in refused.stderr and len(refused.stderr.splitlines()) == 1
    assert sandbox.mycase.count() == 0
    # later runs keep the cut-over: an --all rescan still never sends what came before it
    assert connected.run("push-messages", "--all").code == 0
    assert old["id"] not in {marker_at_end(n["note"], "message") for n in sandbox.mycase.notes.values()}


def test_without_since_a_first_run_sends_the_whole_history(connected, sandbox, db_path):
    cases = import_active(connected, sandbox, db_path)
    sandbox.clock.offset -= 400 * 86400
    ancient = sandbox.casestatus.add_message(sorted(cases)[0], "incoming", "a year ago and more", "Jane Doe")
    sandbox.clock.offset += 400 * 86400
    assert connected.run("push-messages").code == 0
    assert ancient["id"] in {marker_at_end(n["note"], "message") for n in sandbox.mycase.notes.values()}
    assert_messages_once(sandbox, cases)


# --- a store belongs to one firm ---------------------------------------------------------------------------
def test_another_case_status_key_on_a_store_stops_before_any_request(connected, sandbox, db_path):
    import_active(connected, sandbox, db_path)
    sandbox.mycase.reset_journal()
    sandbox.casestatus.reset_journal()
    for job in ("import-matters", *JOBS):
        result = connected.run(job, extra_env={"CASESTATUS_API_KEY": "another-firms-key-0123456789"})
        assert result.code == 2, result.output
        assert f"CASESTATUS_API_KEY is not the key state store {db_path} was built with" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert sandbox.casestatus.count() == 0 and sandbox.mycase.count(writes_only=True) == 0
    store_text = open(db_path, "rb").read()
    assert b"another-firms-key" not in store_text and sandbox.config.api_key.encode() not in store_text


def test_a_rotated_key_of_the_same_account_is_accepted_by_command(connected, sandbox, db_path):
    cases = import_active(connected, sandbox, db_path)
    assert cases
    sandbox.casestatus.api_key = "rotated-key-abcdef0123456789"
    rotated = {"CASESTATUS_API_KEY": "rotated-key-abcdef0123456789"}
    assert connected.run("push-messages", extra_env=rotated).code == 2
    result = connected.run("accept-casestatus-key", extra_env=rotated)
    assert result.code == 0 and "reaches the same" in result.stdout
    assert connected.run("push-messages", extra_env=rotated).code == 0
    assert connected.run("push-messages").code == 2  # the old key is no longer this store's


def test_auth_to_another_mycase_firm_is_refused_before_the_tokens_are_saved(connected, sandbox, db_path):
    import requests

    from mycase_sync.mycase.auth import authorize_url, begin_pending
    from mycase_sync.config import load_settings

    store = open_store(db_path)
    try:
        store.identity.record(mycase_firm_uuid="00000000-0000-0000-0000-000000000001", mycase_firm_name="Other LLP")
        before = store.tokens.read()
        state = begin_pending(store)
    finally:
        store.close()
    settings = load_settings(environ=connected.environment())
    with requests.Session() as browser:
        landing = browser.get(authorize_url(settings, state), allow_redirects=False).headers["Location"]
    result = connected.run("auth", "--redirect-url", landing)
    assert result.code == 2 and "belongs to another MyCase firm (Other LLP)" in result.stderr
    store = open_store(db_path)
    try:
        assert store.tokens.read()["access_token"] == before["access_token"]  # nothing was saved
    finally:
        store.close()


# --- empty documents ---------------------------------------------------------------------------------------
def test_a_zero_byte_document_is_filed_once_with_an_empty_body_not_a_chunked_one(connected, sandbox, db_path):
    cases = import_active(connected, sandbox, db_path)
    empty = sandbox.casestatus.add_file(sorted(cases)[0], "empty.txt", data=b"")
    result = connected.run("push-documents")
    assert result.code == 0, result.output
    (doc,) = [d for d in sandbox.mycase.documents.values() if marker_at_end(d["description"], "file") == empty["id"]]
    assert doc["size"] == 0 and len(doc["versions"]) == 1
    assert set(ledger_states(db_path, "document").values()) == {"sent"}
    assert_documents_once(sandbox, cases)  # also: no chunked PUT (a contract violation in the sandbox)
