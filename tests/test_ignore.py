"""`mycase-sync ignore`: matters and push items the firm will not fix (issue 17, item 2).

Before it, two matters that can never import made every nightly import exit 1 and `status --check`
alarm every hour, with no way to acknowledge them. Run in this process (`Cli.invoke`) against the
sandbox over real HTTP.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from conftest import seed_imported

REASON = "closed matter with no client; the firm keeps it out of Case Status"


@pytest.fixture
def sandbox_config():
    from mycase_sync.sandbox.server import SandboxConfig

    return SandboxConfig(matters=60, seed=7, mycase_rate_limit=None)


def states(db_path, table: str, key: str) -> dict:
    conn = sqlite3.connect(db_path)
    try:
        return dict(conn.execute(f"select {key}, state from {table}").fetchall())
    finally:
        conn.close()


def test_ignored_matters_are_not_retried_do_not_fail_the_run_nor_trouble_status(connected, sandbox, db_path):
    first = connected.invoke("import-matters")
    assert first.code == 1, first.output
    failed = sorted(k for k, v in states(db_path, "matters", "mycase_id").items() if v == "failed")
    assert failed
    result = connected.invoke("ignore", *failed, "--reason", REASON)
    assert result.code == 0, result.output
    assert result.stdout.splitlines() == [f"MyCase case {mid}: ignored" for mid in failed]

    sandbox.mycase.reset_journal()
    again = connected.invoke("import-matters")
    assert again.code == 0, again.output
    read_by_id = {e["path"] for e in sandbox.mycase.journal if e["path"].startswith("/v1/cases/")}
    assert not read_by_id & {f"/v1/cases/{mid}" for mid in failed}  # not retried
    assert connected.invoke("status", "--check").code == 0
    report = json.loads(connected.invoke("status", "--json").stdout)
    items = report["jobs"]["import-matters"]["items"]
    assert items["failed"] == 0 and items["ignored"] == len(failed)
    assert {i["mycase_id"] for i in items["ignored_items"]} == set(failed)
    assert all(i["reason"] == REASON and i["ignored_at"] for i in items["ignored_items"])
    shown = connected.invoke("status").stdout
    assert all(f"ignored: MyCase case {mid} " in shown for mid in failed) and REASON in shown

    undone = connected.invoke("ignore", "--undo", failed[0])
    assert undone.stdout == f"MyCase case {failed[0]}: no longer ignored (failed: the next import retries it)\n"
    assert connected.invoke("import-matters").code == 1  # the matter is back, and still broken


def test_an_ignored_parked_item_is_given_up_while_retry_failed_sends_the_others(connected, sandbox, db_path):
    case = min(seed_imported(sandbox, db_path, [next(iter(sorted(sandbox.mycase.cases)))]))
    kept = sandbox.casestatus.add_message(case, "incoming", "send me after all", "Jane Doe")["id"]
    given_up = sandbox.casestatus.add_message(case, "incoming", "never send me", "Jane Doe")["id"]
    sandbox.mycase.faults.add("POST", rf"/v1/cases/{case}/notes", "500", times=100)
    assert connected.invoke("push-messages").code == 1
    conn = sqlite3.connect(db_path)  # as after 10 failed runs: parked
    with conn:
        conn.execute("update ledger set state = 'failed' where item_id in (?, ?)", [kept, given_up])
    conn.close()
    sandbox.mycase.faults.clear()

    result = connected.invoke("ignore", "--item", f"message:{given_up}", "--reason", "spam")
    assert (result.code, result.stdout) == (0, f"Case Status message {given_up}: ignored\n")
    assert connected.invoke("push-messages", "--retry-failed").code == 0
    ledger = states(db_path, "ledger", "item_id")
    assert (ledger[kept], ledger[given_up]) == ("sent", "ignored")
    notes = " ".join(n["note"] for n in sandbox.mycase.notes_for(int(case)))
    assert f"[casestatus:message:{kept}]" in notes and f"[casestatus:message:{given_up}]" not in notes
    report = json.loads(connected.invoke("status", "--json").stdout)["jobs"]["push-messages"]["items"]
    assert report["failed"] == 0 and report["ignored"] == 1
    assert report["ignored_items"][0]["item_id"] == given_up and report["ignored_items"][0]["reason"] == "spam"

    back = connected.invoke("ignore", "--undo", "--item", f"message:{given_up}")
    assert "no longer ignored (failed: parked as failed: `mycase-sync push-messages --retry-failed` sends it)" in back.stdout
    assert states(db_path, "ledger", "item_id")[given_up] == "failed"


@pytest.mark.parametrize("args, code, words", [
    ((), 2, "name at least one MyCase case id"),
    (("abc",), 2, "'abc' is not a MyCase case id"),
    (("--item", "note:5"), 2, "is not KIND:ID"),
    (("--undo", "--reason", "x", "5"), 2, "--reason goes with ignoring"),
    (("5",), 2, "no state store at"),
])
def test_bad_input_is_one_line_and_changes_nothing(cli, args, code, words):
    result = cli.invoke("ignore", *args)
    assert result.code == code and words in result.stderr, result.output
    assert "Traceback" not in result.output


def test_an_unknown_id_changes_nothing_not_even_the_known_ones(connected, sandbox, db_path):
    known = min(seed_imported(sandbox, db_path, [next(iter(sorted(sandbox.mycase.cases)))]))
    result = connected.invoke("ignore", known, "424242")
    assert result.code == 2 and "MyCase case 424242 is not in state store" in result.stderr
    assert states(db_path, "matters", "mycase_id")[known] == "synced"
