"""push-messages and push-documents against requests-mock fakes of both services.

The fakes keep state (notes, documents, versions, uploaded bytes) so that every test can check
the one thing that matters: each Case Status item ends up exactly once in MyCase.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from mycase_sync.app import App
from mycase_sync.config import load_settings
from mycase_sync.errors import TemporaryError
from mycase_sync.mycase.tokens import save_token_set
from mycase_sync.sync import documents, messages
from mycase_sync.store.ledger import MAX_FAILED_RUNS
from mycase_sync.sync.push import PAGE_KEY

MYCASE = "https://mycase.test/v1"
CS = "https://cs.test"
NOW = dt.datetime.now(dt.timezone.utc)


def stamp(days_ago: float = 0, minutes: int = 0) -> str:
    return (NOW - dt.timedelta(days=days_ago) + dt.timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


class FakeCaseStatus:
    """Messages and files lists paged by page[number], and key-less download links that can expire."""

    def __init__(self, mock):
        self.messages: list[dict] = []
        self.files: list[dict] = []
        self.data: dict[int, bytes] = {}
        self.link_version: dict[int, int] = {}
        self.expired: set[int] = set()
        self.list_requests = 0
        mock.get(f"{CS}/v1/api/messages", json=lambda req, ctx: self._page(req, self.messages))
        mock.get(f"{CS}/v1/api/files", json=lambda req, ctx: self._page(req, self._files()))
        mock.get(re.compile(rf"{CS}/files/\d+"), content=self._download)

    def _page(self, request, records):
        self.list_requests += 1
        query = parse_qs(urlsplit(request.url).query)
        number, size = int(query["page[number]"][0]), int(query["page[size]"][0])
        return records[(number - 1) * size:number * size]

    def _files(self):
        out = []
        for record in self.files:
            version = self.link_version[record["id"]] = self.link_version.get(record["id"], 0) + 1
            out.append({**record, "url": f"{CS}/files/{record['id']}?v={version}"})
        return out

    def _download(self, request, context):
        file_id = int(urlsplit(request.url).path.rsplit("/", 1)[1])
        version = int(parse_qs(urlsplit(request.url).query)["v"][0])
        if file_id in self.expired and version < self.link_version[file_id]:
            context.status_code = 403
            return b'{"errors": [{"field": "expires", "message": "Download link expired"}]}'
        return self.data[file_id]

    def add_message(self, integration_id, content="Hello", type="incoming", sender="Jane Doe", sent_at=None):
        record = {"id": 5001 + len(self.messages), "type": type, "content": content, "sender_name": sender,
                  "sent_at": sent_at or stamp(), "created_at": stamp(), "readable_id": f"R-{integration_id}",
                  "integration_id": str(integration_id)}
        self.messages.append(record)
        return record

    def add_file(self, integration_id, name="scan.pdf", data=b"%PDF-1.4 bytes", size=None, created_at=None):
        record = {"id": 9001 + len(self.files), "size": len(data) if size is None else size, "file_name": name,
                  "extension": name.rsplit(".", 1)[-1] if "." in name else "", "content_type": "application/pdf",
                  "case_id": 70000 + int(integration_id), "case_readable_id": f"R-{integration_id}",
                  "case_practice_area": None, "case_integration_id": str(integration_id),
                  "created_at": created_at or stamp(), "updated_at": created_at or stamp()}
        self.files.append(record)
        self.data[record["id"]] = data
        return record


class FakeMyCase:
    """Notes, documents (with versions) and an S3 stand-in; `fail_next` plans faults per path."""

    def __init__(self, mock):
        self.notes: dict[int, dict] = {}
        self.documents: dict[int, dict] = {}
        self.requests: list[tuple[str, str]] = []
        self.faults: list[tuple[str, str, str]] = []  # (method, path regex, kind)
        self.put_headers_seen: list[dict] = []
        self.expire_puts = 0
        self.created = 0
        mock.post(re.compile(rf"{MYCASE}/cases/\d+/notes"), json=self._create_note)
        mock.get(re.compile(rf"{MYCASE}/cases/\d+/notes"), json=self._list(self.notes))
        mock.post(re.compile(rf"{MYCASE}/cases/\d+/documents"), json=self._create_document)
        mock.get(re.compile(rf"{MYCASE}/cases/\d+/documents"), json=self._list(self.documents))
        mock.post(re.compile(rf"{MYCASE}/documents/\d+/versions"), json=self._create_version)
        mock.get(re.compile(rf"{MYCASE}/documents/\d+/data"), content=self._data)
        mock.put(re.compile(r"https://s3\.test/.*"), content=self._put)
        mock.get(re.compile(r"https://s3\.test/.*"), content=self._get)

    def _fault(self, request, context):
        self.requests.append((request.method, urlsplit(request.url).path))
        for n, (method, regex, kind) in enumerate(self.faults):
            if method == request.method and re.fullmatch(regex, urlsplit(request.url).path):
                del self.faults[n]
                return kind
        return None

    @staticmethod
    def _case(request) -> int:
        return int(re.search(r"/cases/(\d+)/", request.url).group(1))

    def _answer(self, request, context, commit):
        kind = self._fault(request, context)
        if kind in ("500", "422", "404"):
            context.status_code = int(kind)
            return {"errors": [{"description": f"planned {kind}"}]}
        result = commit()
        if kind == "timeout":
            raise requests.exceptions.ReadTimeout("read timed out")
        if kind == "drop":
            raise requests.exceptions.ConnectionError("Connection aborted: RemoteDisconnected")
        return result

    def _create_note(self, request, context):
        def commit():
            body = request.json()
            note = {"id": len(self.notes) + 1, "case": {"id": self._case(request)}, **body}
            self.notes[note["id"]] = note
            return note
        context.status_code = 200
        return self._answer(request, context, commit)

    def _list(self, table):
        def answer(request, context):
            self._fault(request, context)
            case = self._case(request)
            return [r for r in table.values() if r["case"]["id"] == case]
        return answer

    def _upload_fields(self, doc_id, version):
        return {"put_url": f"https://s3.test/bucket/{doc_id}/v{version}?X-Amz-Signature=sig",
                "put_headers": {"x-amz-acl": "private"}}

    def _create_document(self, request, context):
        def commit():
            body = request.json()
            doc = {"id": 100 + self.created, "case": {"id": self._case(request)}, "versions": [None], **body}
            self.documents[doc["id"]] = doc
            self.created += 1
            return {k: v for k, v in doc.items() if k != "versions"} | self._upload_fields(doc["id"], 1)
        context.status_code = 201
        return self._answer(request, context, commit)

    def _create_version(self, request, context):
        doc_id = int(re.search(r"/documents/(\d+)/", request.url).group(1))
        if doc_id not in self.documents:
            context.status_code = 404
            return {"errors": [{"description": "Document not found"}]}

        def commit():
            self.documents[doc_id]["versions"].append(None)
            return {"id": 1, "version": len(self.documents[doc_id]["versions"]),
                    **self._upload_fields(doc_id, len(self.documents[doc_id]["versions"]))}
        context.status_code = 201
        return self._answer(request, context, commit)

    def _put(self, request, context):
        self.requests.append(("PUT", urlsplit(request.url).path))
        if self.expire_puts:
            self.expire_puts -= 1
            context.status_code = 403
            return b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
        _, _, doc_id, version = urlsplit(request.url).path.split("/")
        self.put_headers_seen.append(dict(request.headers))
        body = request.body.read() if hasattr(request.body, "read") else request.body
        self.documents[int(doc_id)]["versions"][int(version[1:]) - 1] = body
        return b""

    def _data(self, request, context):
        """302 to the latest version's bytes, 404 when it has none (never uploaded)."""
        self.requests.append(("GET", urlsplit(request.url).path))
        doc_id = int(re.search(r"/documents/(\d+)/", request.url).group(1))
        doc = self.documents.get(doc_id)
        if doc is None or doc["versions"][-1] is None:
            context.status_code = 404
            return b'{"errors": [{"description": "Document has no data"}]}'
        context.status_code = 302
        context.headers["Location"] = f"https://s3.test/bucket/{doc_id}/v{len(doc['versions'])}?X-Amz-Signature=get"
        return b""

    def _get(self, request, context):
        self.requests.append(("GET", urlsplit(request.url).path))
        _, _, doc_id, version = urlsplit(request.url).path.split("/")
        return self.documents[int(doc_id)]["versions"][int(version[1:]) - 1]

    def count(self, method, regex):
        return sum(1 for m, path in self.requests if m == method and re.fullmatch(regex, path))

    def notes_for(self, case_id):
        return [n for n in self.notes.values() if n["case"]["id"] == case_id]


@pytest.fixture
def settings_env(tmp_path):
    return {"MYCASE_API_URL": MYCASE, "CASESTATUS_API_URL": CS, "CASESTATUS_API_KEY": "cs-key-123456",
            "MYCASE_CLIENT_ID": "client", "MYCASE_CLIENT_SECRET": "secret-123456",
            "MYCASE_SYNC_DB": str(tmp_path / "state" / "state.db"), "MYCASE_SYNC_BACKOFF": "0.001",
            "MYCASE_SYNC_WORKERS": "4"}


@pytest.fixture
def new_app(settings_env):
    apps = []

    def make(**env):
        app = App(load_settings(environ={**settings_env, **env}))
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


@pytest.fixture
def app(new_app):
    app = new_app()
    save_token_set(app.store, {"access_token": "access-abcdef", "refresh_token": "refresh-abcdef",
                               "token_type": "Bearer", "expires_in": 86400})
    return app


@pytest.fixture
def cs(requests_mock):
    return FakeCaseStatus(requests_mock)


@pytest.fixture
def mc(requests_mock):
    return FakeMyCase(requests_mock)


def imported(app, *case_ids):
    """As import-matters leaves it: these MyCase cases exist in Case Status."""
    with app.store.transaction() as db:
        for case_id in case_ids:
            db["matters"].insert({"mycase_id": str(case_id), "casestatus_id": 70000 + case_id, "state": "synced"},
                                 replace=True)


def ledger(app, kind):
    return {row["item_id"]: row for row in app.store.db.query("select * from ledger where kind = ?", [kind])}


def push_messages(app, **kwargs):
    return messages.push_messages(app, "run", **kwargs)


def push_documents(app, **kwargs):
    return documents.push_documents(app, "run", **kwargs)


# --- messages ----------------------------------------------------------------------------------
def test_each_message_on_an_imported_case_becomes_one_note_and_the_rest_wait(app, cs, mc, new_app):
    imported(app, 11)
    first = cs.add_message(11, "Can we talk?", "incoming", "Jane Doe")
    second = cs.add_message(11, "Yes, Monday.", "outgoing", "Lana Joseph")
    cs.add_message(12, "Not imported yet")
    counts = push_messages(app)
    assert counts["sent"] == 2 and counts["waiting"] == 1 and "failed" not in counts
    notes = mc.notes_for(11)
    assert [n["subject"] for n in notes] == ["Case Status message from Jane Doe (client)",
                                             "Case Status message to client, from Lana Joseph"]
    assert notes[0]["note"] == f"Can we talk?\n\n[casestatus:message:{first['id']}]"
    assert notes[1]["note"].endswith(f"[casestatus:message:{second['id']}]")
    assert notes[0]["date"] == first["sent_at"]
    rows = ledger(app, "message")
    assert rows[first["id"]]["state"] == "sent" and rows[first["id"]]["remote_id"] == str(notes[0]["id"])
    assert rows[5003]["state"] == "waiting"

    # the case gets imported: the waiting message goes out; nothing else is sent again
    imported(app, 12)
    later = new_app()
    counts = push_messages(later)
    assert counts["sent"] == 1 and len(mc.notes) == 3 and mc.notes_for(12)[0]["note"].startswith("Not imported yet")


def test_an_idle_run_reads_one_page_and_never_builds_the_mycase_client(app, cs, mc, new_app):
    imported(app, 11)
    for n in range(5):
        cs.add_message(11, f"m{n}")
    push_messages(app)
    cs.list_requests = 0
    mc.requests.clear()
    idle = new_app()
    counts = push_messages(idle)
    assert counts == {"list_requests": 2}  # the cursor's page, and the empty one that ends the list
    assert cs.list_requests == 2 and mc.requests == []
    assert idle._mycase is None  # no token read, no refresh


def test_notes_of_a_matter_go_in_sent_order_and_a_failure_holds_back_the_later_ones(app, cs, mc):
    imported(app, 11, 12)
    late = cs.add_message(11, "sent last", sent_at=stamp(minutes=3))
    early = cs.add_message(11, "sent first", sent_at=stamp(minutes=1))
    middle = cs.add_message(11, "sent second", sent_at=stamp(minutes=2))
    other = cs.add_message(12, "other matter")
    mc.faults.append(("POST", r"/v1/cases/11/notes", "422"))
    counts = push_messages(app)
    assert counts["failed"] == 1 and counts["held_back"] == 2 and counts["sent"] == 1
    rows = ledger(app, "message")
    assert rows[early["id"]]["state"] == "pending" and rows[early["id"]]["attempts"] == 1
    assert "planned 422" in rows[early["id"]]["last_error"]
    assert rows[middle["id"]]["state"] == "pending" and rows[middle["id"]]["attempts"] == 0  # held back
    assert rows[other["id"]]["state"] == "sent"
    counts = push_messages(app)
    assert counts["sent"] == 3
    assert [n["note"].split("\n")[0] for n in mc.notes_for(11)] == ["sent first", "sent second", "sent last"]
    assert late["id"] < early["id"]  # posted in sent order, not id order


@pytest.mark.parametrize("fault", ["500", "timeout", "drop"])
def test_a_note_whose_outcome_is_unknown_is_looked_for_before_it_is_sent_again(app, cs, mc, fault):
    imported(app, 11)
    message = cs.add_message(11, "Important")
    mc.faults.append(("POST", r"/v1/cases/11/notes", fault))
    counts = push_messages(app)
    assert counts["failed"] == 1
    row = ledger(app, "message")[message["id"]]
    assert row["state"] == "claimed"  # in doubt: the next run looks for the marker
    counts = push_messages(app)
    assert counts["sent"] == 1 and "failed" not in counts
    assert len(mc.notes_for(11)) == 1  # exactly one, whether or not the first attempt landed
    assert mc.count("GET", r"/v1/cases/11/notes") == 2  # looked for once per run, before each send


def test_a_refused_note_is_not_in_doubt_and_is_parked_after_ten_failed_runs(app, cs, mc, new_app, capsys):
    imported(app, 11)
    message = cs.add_message(11, "x")
    for run in range(MAX_FAILED_RUNS):
        mc.faults.append(("POST", r"/v1/cases/11/notes", "422"))
        counts = push_messages(app)
        assert counts["failed"] == 1
        if run + 1 < MAX_FAILED_RUNS:  # a 4xx means nothing landed: pending, not in doubt
            assert ledger(app, "message")[message["id"]]["state"] == "pending"
    row = ledger(app, "message")[message["id"]]
    assert row["state"] == "failed" and row["attempts"] == MAX_FAILED_RUNS
    # every run looks for its marker once before sending (a first send too: another store may have sent it)
    assert mc.count("GET", r"/v1/cases/11/notes") == MAX_FAILED_RUNS
    assert "parked" in counts and counts["parked"] == 1
    # parked: later runs leave it alone (and cost no MyCase request)
    mc.requests.clear()
    assert "failed" not in push_messages(app) and mc.requests == []
    # --retry-failed puts it back; it is looked for first, then sent once
    counts = push_messages(new_app(), retry_failed=True)
    assert counts["unparked"] == 1 and counts["sent"] == 1 and len(mc.notes) == 1
    assert mc.count("GET", r"/v1/cases/11/notes") == 1


def test_a_message_found_by_its_marker_is_recorded_without_a_second_note(app, cs, mc):
    imported(app, 11)
    message = cs.add_message(11, "hello")
    with app.store.transaction() as db:  # as a run that crashed after sending left it
        db.execute("insert into ledger (kind, item_id, integration_id, state, attempts, item) values"
                   " ('message', ?, '11', 'claimed', 1, ?)", [message["id"], json.dumps(message)])
    app.store.set_cursor("push-messages", {"page": 1, "highest": message["id"], "order": "asc", "size": 100})
    mc.notes[77] = {"id": 77, "case": {"id": 11}, "note": f"hello\n\n[casestatus:message:{message['id']}]"}
    mc.notes[78] = {"id": 78, "case": {"id": 11}, "note": f"[casestatus:message:{message['id']}0]"}  # another id
    counts = push_messages(app)
    assert counts["sent"] == 1 and len(mc.notes) == 2 and mc.count("POST", r"/v1/cases/11/notes") == 0
    assert ledger(app, "message")[message["id"]]["remote_id"] == "77"


def test_an_unreachable_mycase_stops_the_run_without_counting_attempts(app, cs, mc, requests_mock):
    imported(app, 11)
    message = cs.add_message(11, "x")
    requests_mock.post(re.compile(rf"{MYCASE}/cases/\d+/notes"),
                       exc=requests.exceptions.ConnectionError("NewConnectionError: Connection refused"))
    with pytest.raises(TemporaryError):
        push_messages(app)
    row = ledger(app, "message")[message["id"]]
    assert row["attempts"] == 0 and row["state"] in ("pending", "claimed")


def test_dry_run_lists_and_changes_nothing(app, cs, mc):
    imported(app, 11)
    cs.add_message(11, "hello", sender="Jane Doe")
    cs.add_message(12, "waits")
    counts = push_messages(app, dry_run=True)
    out = "\n".join(counts["plan"])  # the lines the command prints
    assert "would push message 5001 (case R-11) to MyCase matter 11: Case Status message from Jane Doe (client)" in out
    assert "waiting: message 5002" in out and "case 12 is not imported yet" in out
    assert counts["would_push"] == 1 and counts["waiting"] == 1
    assert ledger(app, "message") == {} and app.store.get_cursor("push-messages") is None
    assert mc.requests == []


def test_first_run_takes_the_whole_history_and_since_holds_back_what_came_before_the_cutover(app, cs, mc, new_app):
    imported(app, 11)
    old = cs.add_message(11, "old", sent_at=stamp(days_ago=45))
    old["created_at"] = stamp(days_ago=45)
    recent = cs.add_message(11, "recent")
    counts = push_messages(app)
    assert counts["sent"] == 2 and "older_than_window" not in counts  # as the hosted integration promised
    assert push_messages(new_app(), all_items=True).get("sent", 0) == 0  # nothing already pushed goes twice
    # a cut-over: what is created before it is held back, on this run and every later one
    before = cs.add_message(12, "before the cut-over", sent_at=stamp(days_ago=2))
    before["created_at"] = stamp(days_ago=2)
    imported(app, 12)
    after = cs.add_message(12, "after the cut-over")
    counts = push_messages(new_app(), since=NOW - dt.timedelta(days=1))
    assert counts["sent"] == 1 and len(mc.notes) == 3
    assert ledger(app, "message")[before["id"]]["state"] == "before_cutover"
    assert ledger(app, "message")[after["id"]]["state"] == "sent"
    assert {old["id"], recent["id"]} <= {i for i, row in ledger(app, "message").items() if row["state"] == "sent"}


# --- documents ---------------------------------------------------------------------------------
def docs_in(mc, case_id):
    return [d for d in mc.documents.values() if d["case"]["id"] == case_id]


def test_each_file_becomes_one_document_with_identical_bytes_and_a_safe_name(app, cs, mc, tmp_path):
    imported(app, 11)
    data = bytes(range(256)) * 1000
    evil = cs.add_file(11, "../../etc/passwd.txt", data=b"root:x:0:0")
    scan = cs.add_file(11, "Déclaration_Müller.pdf", data=data)
    cs.add_file(12, "waits.pdf")
    counts = push_documents(app)
    assert counts["sent"] == 2 and counts["waiting"] == 1
    docs = {d["description"].rsplit(" ", 1)[1]: d for d in docs_in(mc, 11)}
    passwd = docs[f"[casestatus:file:{evil['id']}]"]
    assert passwd["path"] == "passwd.txt" and passwd["filename"] == "passwd.txt"
    assert 'uploaded as "../../etc/passwd.txt"' in passwd["description"]
    assert passwd["versions"] == [b"root:x:0:0"]
    pdf = docs[f"[casestatus:file:{scan['id']}]"]
    assert pdf["path"] == "Déclaration_Müller.pdf" and pdf["versions"] == [data]
    assert all(h["Content-Type"] == "application/octet-stream" and h["x-amz-acl"] == "private"
               and "Authorization" not in h for h in mc.put_headers_seen)
    row = ledger(app, "document")[scan["id"]]
    assert row["state"] == "sent" and row["sha256"] == hashlib.sha256(data).hexdigest() and row["size"] == len(data)
    assert not (tmp_path / "state" / documents.SCRATCH_DIR).exists()


def test_documents_go_under_the_configured_folder(new_app, cs, mc):
    app = new_app(MYCASE_DOCUMENTS_FOLDER="From clients/Case Status")
    save_token_set(app.store, {"access_token": "access-abcdef", "refresh_token": "refresh-abcdef", "expires_in": 86400})
    imported(app, 11)
    cs.add_file(11, "scan.pdf")
    push_documents(app)
    assert docs_in(mc, 11)[0]["path"] == "From clients/Case Status/scan.pdf"


def test_a_size_mismatch_fails_the_item_before_anything_is_written(app, cs, mc):
    imported(app, 11)
    record = cs.add_file(11, "scan.pdf", data=b"12345", size=9)
    counts = push_documents(app)
    assert counts["failed"] == 1 and mc.documents == {}
    row = ledger(app, "document")[record["id"]]
    assert row["state"] == "pending" and "downloaded 5 bytes but Case Status lists 9" in row["last_error"]


def test_a_stale_download_link_is_refreshed_by_listing_the_file_again(app, cs, mc):
    imported(app, 11)
    record = cs.add_file(11, "scan.pdf", data=b"abc")
    with app.store.transaction() as db:  # as a previous run left it: listed then, link now stale
        db.execute("insert into ledger (kind, item_id, integration_id, state, attempts, item) values"
                   " ('document', ?, '11', 'pending', 1, ?)",
                   [record["id"], json.dumps({**record, "url": f"{CS}/files/{record['id']}?v=1", PAGE_KEY: 1})])
    app.store.set_cursor("push-documents", {"page": 1, "highest": record["id"], "order": "asc", "size": 100})
    cs.link_version[record["id"]] = 1
    cs.expired.add(record["id"])
    counts = push_documents(app)
    assert counts["sent"] == 1 and docs_in(mc, 11)[0]["versions"] == [b"abc"]


def test_a_document_created_but_without_bytes_is_completed_with_a_version(app, cs, mc):
    imported(app, 11)
    record = cs.add_file(11, "scan.pdf", data=b"the bytes")
    mc.expire_puts = 2  # the first put_url and the fresh version's both refused
    counts = push_documents(app)
    assert counts["failed"] == 1
    row = ledger(app, "document")[record["id"]]
    assert row["state"] == "claimed" and row["remote_id"] == "100"  # bytes pending
    counts = push_documents(app)
    assert counts["sent"] == 1
    assert len(mc.documents) == 1 and mc.documents[100]["versions"][-1] == b"the bytes"
    assert mc.count("POST", r"/v1/cases/11/documents") == 1


def test_an_expired_put_url_is_renewed_with_a_version_in_the_same_run(app, cs, mc):
    imported(app, 11)
    cs.add_file(11, "scan.pdf", data=b"xyz")
    mc.expire_puts = 1
    counts = push_documents(app)
    assert counts["sent"] == 1 and len(mc.documents) == 1
    assert mc.documents[100]["versions"] == [None, b"xyz"]


@pytest.mark.parametrize("fault", ["500", "timeout", "drop"])
def test_a_document_create_with_unknown_outcome_is_found_by_its_marker(app, cs, mc, fault):
    imported(app, 11)
    record = cs.add_file(11, "scan.pdf", data=b"payload")
    mc.faults.append(("POST", r"/v1/cases/11/documents", fault))
    assert push_documents(app)["failed"] == 1
    assert ledger(app, "document")[record["id"]]["state"] == "claimed"
    assert push_documents(app)["sent"] == 1
    assert len(docs_in(mc, 11)) == 1 and docs_in(mc, 11)[0]["versions"][-1] == b"payload"


def test_a_document_deleted_in_mycase_before_its_bytes_arrived_is_created_again(app, cs, mc):
    imported(app, 11)
    record = cs.add_file(11, "scan.pdf", data=b"payload")
    mc.expire_puts = 2
    push_documents(app)
    del mc.documents[100]
    assert push_documents(app)["sent"] == 1
    assert [d["versions"] for d in docs_in(mc, 11)] == [[b"payload"]]
    assert ledger(app, "document")[record["id"]]["remote_id"] == "101"


def test_a_download_link_to_an_internal_address_is_refused(app, cs, mc, requests_mock):
    imported(app, 11)
    record = cs.add_file(11, "scan.pdf")
    requests_mock.get(f"{CS}/v1/api/files", json=[{**record, "url": "http://169.254.169.254/latest/meta-data"}])
    counts = push_documents(app)
    assert counts["failed"] == 1 and mc.documents == {}
    assert "refusing" in ledger(app, "document")[record["id"]]["last_error"]


def test_documents_dry_run_changes_nothing(app, cs, mc, tmp_path):
    imported(app, 11)
    cs.add_file(11, "../x/scan.pdf")
    counts = push_documents(app, dry_run=True)
    assert counts["would_push"] == 1
    assert 'would push file 9001 "scan.pdf" (case R-11) to MyCase matter 11' in "\n".join(counts["plan"])
    assert ledger(app, "document") == {} and mc.requests == []
    assert not (tmp_path / "state" / documents.SCRATCH_DIR).exists()
