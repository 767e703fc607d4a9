"""Markers: only the tool's own, at the very end of what it wrote, ever identify an item."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mycase_sync.sync.markers import Markers, marker, marker_at_end, neutralise, restore
from mycase_sync.sync.messages import note_subject, note_text

marker_like = st.text(alphabet="[]casestuCASESTU:\\message0123456789 file", max_size=60)


@given(st.one_of(st.text(max_size=200), marker_like))
def test_neutralised_text_holds_no_marker_and_restores_exactly(text):
    safe = neutralise(text)
    assert "[casestatus:" not in safe.lower()
    assert restore(safe) == text


@given(st.text(max_size=200), st.integers(min_value=1, max_value=2**62))
def test_a_note_is_recognised_by_its_own_marker_whatever_the_client_wrote(content, item_id):
    text = note_text({"content": content}, item_id)
    assert marker_at_end(text, "message") == item_id
    assert marker_at_end(text, "file") is None


def test_a_marker_anywhere_but_the_end_is_content():
    assert marker_at_end("see [casestatus:message:12] above", "message") is None
    assert marker_at_end("text\n\n[casestatus:message:12]\n", "message") == 12
    assert marker_at_end("[casestatus:message:12]", "message") == 12
    assert marker_at_end("x<br>[casestatus:message:12]", "message") == 12
    assert marker_at_end("x[casestatus:message:12]", "message") is None
    assert marker_at_end("text [CASESTATUS:MESSAGE:12]", "message") is None
    assert marker_at_end(None, "message") is None


def test_notes_pushed_before_the_rule_are_still_recognised():
    legacy = "Can we talk?\n\n[casestatus:message:5011]"  # how every earlier note ends
    assert marker_at_end(legacy, "message") == 5011
    quoted = "I saw [casestatus:message:5012] in my portal\n\n[casestatus:message:5011]"
    assert marker_at_end(quoted, "message") == 5011


def test_a_sender_name_cannot_carry_a_marker_into_the_subject():
    subject = note_subject({"sender_name": "Jane [casestatus:message:9]", "type": "incoming"})
    assert "[casestatus:message:9]" not in subject and "[casestatus\\:message:9]" in subject


def test_the_index_keeps_only_records_that_end_with_a_marker():
    notes = [{"id": 1, "note": f"hello {marker('message', 7)} there\n\n{marker('message', 6)}"},
             {"id": 2, "note": "no marker at all"},
             {"id": 3, "note": f"x\n\n{marker('message', 7)}"},
             "not a record"]
    index = Markers("message", lambda matter: notes, lambda note: note.get("note"))
    assert index.lookup("11", 6) == "1"
    assert index.lookup("11", 7) == "3"  # not note 1, which only quotes it
    assert index.lookup("11", 8) is None
    assert index.lists == 1


def test_the_largest_id_a_record_can_have_is_recognised():
    largest = 2**63 - 1  # 19 digits: values.positive_id's bound
    assert marker_at_end(f"x\n\n{marker('message', largest)}", "message") == largest
