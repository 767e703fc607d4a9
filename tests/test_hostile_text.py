"""Hostile text from either service: half an emoji, NUL, terminal escape sequences.

None of it may stop a run (a lone surrogate cannot be encoded as UTF-8: SQLite, the terminal and
the log file refuse it), and none of it reaches what we write (Case Status cases, MyCase notes and
documents) or what we print and log: surrogates become U+FFFD, the rest is removed.
"""

from __future__ import annotations

import sqlite3

import pytest

from conftest import seed_imported
from mycase_sync.sync.documents import description, display_name
from mycase_sync.sync.messages import note_subject, note_text
from mycase_sync.text import clean, clean_line

HALF_EMOJI = "\ud83d"
ESCAPES = "\x1b[2J\x1b[31m\x1b]0;owned\x07\x9b1m"
HOSTILE = f"A{HALF_EMOJI}B\x00C{ESCAPES}D\x7f"


def raw_bad(text: str) -> list[str]:
    """What must never be in output or in what we write: surrogates, NUL, ESC and the other controls."""
    return sorted({f"U+{ord(c):04X}" for c in text
                   if 0xD800 <= ord(c) <= 0xDFFF or (ord(c) < 32 and c not in "\n\t") or 0x7F <= ord(c) <= 0x9F})


# --- the helper -------------------------------------------------------------------------------------
@pytest.mark.parametrize("raw, lines, wanted", [
    (HOSTILE, False, "A\ufffdBCD"),
    ("Jane\x1b[2J Doe", False, "Jane Doe"),
    ("title\x1b]0;evil title\x1b\\ end", False, "title end"),
    ("line one\r\nline two\ttab\x00", True, "line one\nline two\ttab"),
    ("line one\nline two\ttab", False, "line one line two tab"),
    ("Zoë 李 مرحبا 😀 \u200d", False, "Zoë 李 مرحبا 😀 \u200d"),
    ("plain", False, "plain"),
])
def test_clean_repairs_surrogates_and_removes_escapes_and_controls(raw, lines, wanted):
    assert clean(raw, lines=lines) == wanted
    assert clean(raw, lines=lines).encode("utf-8")


def test_clean_line_is_one_trimmed_line():
    assert clean_line(f"  Evil\n{ESCAPES}Name{HALF_EMOJI}\x00  ") == "Evil Name\ufffd"


# --- what we write: pure functions --------------------------------------------------------------------
def test_a_note_subject_and_text_carry_no_raw_hostile_text():
    record = {"id": 5, "type": "incoming", "sender_name": f"Evil{ESCAPES} Name{HALF_EMOJI}\x00",
              "content": f"hello\x00 there {HALF_EMOJI}\r\nsecond line{ESCAPES}"}
    subject, text = note_subject(record), note_text(record, 5)
    assert subject == "Case Status message from Evil Name\ufffd (client)"
    assert text == "hello there \ufffd\nsecond line\n\n[casestatus:message:5]"
    assert not raw_bad(subject) and not raw_bad(text)


def test_a_document_description_and_name_carry_no_raw_hostile_text():
    record = {"id": 9, "file_name": f"scan{ESCAPES}{HALF_EMOJI}.pdf", "case_readable_id": f"2024-1{ESCAPES}"}
    text, name = description(record, 9), display_name(record)
    assert not raw_bad(text) and not raw_bad(name)
    assert "[2J" not in text and "owned" not in text and "[31m" not in name
    assert text.startswith("Shared in Case Status (case 2024-1)")


# --- end to end -----------------------------------------------------------------------------------------
def _synced_matter(db_path) -> int:
    conn = sqlite3.connect(db_path)
    try:
        return int(conn.execute("select mycase_id from matters where state = 'synced' and casestatus_id is not null"
                                " order by mycase_id limit 1").fetchone()[0])
    finally:
        conn.close()


def test_hostile_text_in_a_mycase_matter_neither_stops_the_import_nor_reaches_case_status(connected, sandbox, db_path):
    first = connected.run("import-matters")
    assert first.code in (0, 1), first.output
    mycase_id = _synced_matter(db_path)
    sandbox.mycase.update_case(mycase_id, description=f"Estate {HOSTILE}\nsecond line",
                               name=f"Matter {HALF_EMOJI}{ESCAPES}")

    dry = connected.run("import-matters", "--dry-run")
    assert dry.code == first.code and "internal error" not in dry.output, dry.output
    assert not raw_bad(dry.output), dry.output

    log = connected.cwd / "sync.log"
    real = connected.run("--log-file", str(log), "import-matters")
    assert real.code == first.code and "internal error" not in real.output, real.output
    assert not raw_bad(real.output) and not raw_bad(log.read_text(encoding="utf-8"))
    case = sandbox.casestatus.case_by_integration_id(str(mycase_id))
    assert case["description"] == "Estate A\ufffdBCD\nsecond line"
    again = connected.run("import-matters")  # in step: nothing left to write for it
    assert again.code == first.code, again.output


def test_hostile_text_in_a_case_status_message_is_cleaned_in_the_note_the_plan_and_the_warnings(
        connected, sandbox, db_path):
    quiet_case = next(str(c) for c in sorted(sandbox.mycase.cases)
                      if c not in {int(m["integration_id"]) for m in sandbox.firm.messages})
    seed_imported(sandbox, db_path, [quiet_case])
    sandbox.casestatus.add_message(quiet_case, "incoming", f"hi\x00 there {HALF_EMOJI}{ESCAPES}\nbye",
                                   f"Evil{ESCAPES} Sender{HALF_EMOJI}\x00")

    dry = connected.run("push-messages", "--dry-run")
    assert dry.code == 0, dry.output
    assert "Case Status message from Evil Sender\ufffd (client)" in dry.stdout
    assert not raw_bad(dry.output), dry.output

    log = connected.cwd / "sync.log"
    sandbox.mycase.faults.add("POST", r"/v1/cases/\d+/notes", "500")  # refused once: a warning names it
    failed = connected.run("--log-file", str(log), "push-messages")
    assert failed.code == 1 and "Evil Sender\ufffd" in failed.stderr, failed.output
    assert "internal error" not in failed.output and "Traceback" not in failed.output
    assert not raw_bad(failed.output)

    sent = connected.run("-v", "--log-file", str(log), "push-messages")
    assert sent.code == 0, sent.output
    assert not raw_bad(sent.output)
    text = log.read_text(encoding="utf-8")
    assert "Evil Sender\ufffd" in text and not raw_bad(text) and "Logging error" not in text
    notes = sandbox.mycase.notes_for(int(quiet_case))
    assert len(notes) == 1, notes
    assert notes[0]["subject"] == "Case Status message from Evil Sender\ufffd (client)"
    assert notes[0]["note"].startswith("hi there \ufffd\nbye\n\n[casestatus:message:")
