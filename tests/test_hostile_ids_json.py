"""Ids SQLite cannot hold and JSON nested without end: a malformed record or one clear error, never a crash.

An id beyond 2^63 made SQLite raise OverflowError, which stopped push-messages on every run; a
deeply nested answer (with any status) made the JSON decoder raise RecursionError. The first is a
malformed record (ignored and counted, the others go on), the second one ServiceError for that answer.
"""

from __future__ import annotations

import pytest

from conftest import seed_imported
from mycase_sync.errors import ServiceError
from mycase_sync.values import MAX_ID, positive_id
from oracle import assert_matters_once, expected_matters
from test_reliability_badinput import CALLS, clients  # noqa: F401 (the fixture)

DEEP = b"[" * 100_000 + b"]" * 100_000
NESTED = b'{"a": ' * 40 + b"1" + b"}" * 40  # decodes, but deeper than any answer a service gives


@pytest.mark.parametrize("value, wanted", [
    (MAX_ID, MAX_ID), (str(MAX_ID), MAX_ID), (MAX_ID + 1, None), (2**64, None), (str(2**64), None),
    ("9" * 5000, None), (1e30, None), (float(2**64), None), (-(2**70), None), ("\u0661\u0662", None),
])
def test_an_id_sqlite_cannot_hold_is_no_id(value, wanted):
    assert positive_id(value) == wanted


PICKED = {"mycase.cases", "mycase.create_note", "casestatus.messages", "casestatus.create_case", "mycase.notes"}


@pytest.mark.parametrize("status", [200, 422, 503])
@pytest.mark.parametrize("body", [DEEP, NESTED], ids=["recursion-deep", "nested-40"])
@pytest.mark.parametrize("call", [c for c in CALLS if c[0] in PICKED], ids=lambda c: c[0])
def test_a_deeply_nested_answer_is_one_clear_service_error(clients, requests_mock, tmp_path, call, body, status):
    name, method, url, invoke, expected = call
    mc, cs = clients
    requests_mock.register_uri(method, url, status_code=status, content=body,
                               headers={"Content-Type": "application/json"})
    with pytest.raises(ServiceError) as raised:
        invoke(mc, cs, tmp_path)
    text = str(raised.value)
    assert "answer nested too deeply" in text and "\n" not in text and len(text) < 200, text[:300]


def test_a_token_refresh_answer_nested_too_deeply_is_a_clear_error(tmp_path, requests_mock):
    from mycase_sync.mycase.tokens import _oauth_error, _token_answer

    response = __import__("requests").Response()
    response._content, response.status_code = DEEP, 200
    assert _token_answer(response) is None and _oauth_error(response) is None


def test_a_case_status_message_with_an_id_beyond_2_63_is_ignored_and_the_others_are_filed(connected, sandbox, db_path):
    quiet_case = next(str(c) for c in sorted(sandbox.mycase.cases)
                      if c not in {int(m["integration_id"]) for m in sandbox.firm.messages})
    seed_imported(sandbox, db_path, [quiet_case])
    sandbox.casestatus.add_message(quiet_case, "incoming", "a normal message", "Jane Doe")
    huge = sandbox.casestatus.add_message(quiet_case, "incoming", "a message with an impossible id", "Jane Doe")
    with sandbox.casestatus.lock:
        record = sandbox.casestatus.messages.pop(huge["id"])
        record["id"] = 2**64 + 5
        sandbox.casestatus.messages[record["id"]] = record
        order = sandbox.casestatus._orders["messages"]
        order[order.index(huge["id"])] = record["id"]

    for _ in range(2):  # and again: nothing stops the job for good
        result = connected.run("push-messages")
        assert result.code == 0, result.output
        assert "internal error" not in result.output and "Traceback" not in result.output
    assert "Case Status records without a usable id were ignored" in result.stderr
    notes = sandbox.mycase.notes_for(int(quiet_case))
    assert [n["note"].split("\n")[0] for n in notes] == ["a normal message"]


def test_one_record_nested_too_deeply_fails_alone_and_the_rest_of_its_page_is_imported(connected, sandbox, db_path):
    """Found by the hostile-input property test: a case whose name was nested 40 deep made every page that
    held it one error ("answer nested too deeply"); the import stopped there on every run, nothing imported."""
    wanted = expected_matters(sandbox)
    deep_id = int(next(iter(wanted)))
    sandbox.mycase.serve_as("case", deep_id, name=deep(40), case_number=None)
    del wanted[str(deep_id)]
    for why in ("name is not text (list)", "could not read it from MyCase"):  # then retried by id: one record
        result = connected.invoke("import-matters")
        assert result.code == 1, result.output
        assert f"matter {deep_id} (no Case ID): failed: {why}" in result.stderr, result.stderr
    assert_matters_once(sandbox, db_path, wanted)


def test_a_message_nested_too_deeply_never_stops_the_others(connected, sandbox, db_path):
    quiet_case = next(str(c) for c in sorted(sandbox.mycase.cases)
                      if c not in {int(m["integration_id"]) for m in sandbox.firm.messages})
    seed_imported(sandbox, db_path, [quiet_case])
    normal = sandbox.casestatus.add_message(quiet_case, "incoming", "a normal message", "Jane Doe")
    nested = sandbox.casestatus.add_message(quiet_case, "incoming", "a message", "Jane Doe")
    sandbox.casestatus.serve_as("message", nested["id"], content=deep(40))
    result = connected.invoke("push-messages")
    assert result.code == 0, result.output
    notes = sandbox.mycase.notes_for(int(quiet_case))  # a message whose content is no text: "(no text)"
    assert [n["note"].split("\n")[0] for n in notes] == [normal["content"], "(no text)"]


def test_a_page_nested_beyond_the_decoder_keeps_its_records_and_cuts_the_deep_part():
    from mycase_sync.jsondepth import TOO_DEEP, page_without_deep_parts

    text = '[{"id": 1, "name": "ok"}, {"id": 2, "name": ' + "[" * 100_000 + "]" * 100_000 + ', "x": "[{"}]'
    page = page_without_deep_parts(text, 32)
    assert page[0] == {"id": 1, "name": "ok"} and page[1]["x"] == "[{" and page[1]["id"] == 2
    name = page[1]["name"]
    for _ in range(29):  # the page is 1 deep, the record 2, its name 3: the 32nd opens at the limit
        name = name[0]
    assert name == TOO_DEEP
    assert page_without_deep_parts("[" * 100_000 + "]" * 100_000, 32) is None  # arrays in arrays: no records


def deep(levels: int) -> list:
    value: list = []
    for _ in range(levels):
        value = [value]
    return value
