"""push-documents: every file shared in Case Status on an imported case, filed once in its matter.

Two MyCase steps per file: create the document record (its description carries the marker),
then PUT the bytes to the pre-signed URL it answers with. The record's id is committed between
the steps, so a crash or an expired URL after step one is completed with a new version of that
document, never with a second document. Bytes stream from Case Status to a private temporary
file and from it to S3, so memory stays flat whatever the size; the size is checked against the
Case Status record (and the sha256 kept in the ledger) before anything is uploaded.

The temporary files live in a 0700 directory beside the state store rather than in /tmp, which
is often a RAM disk: a 1 GB upload must not become 1 GB of memory. The job lock makes the
directory ours alone; it is emptied at the start and removed at the end of every run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import shutil
from pathlib import Path
from typing import Iterator

from mycase_sync.casestatus import client as cs
from mycase_sync.errors import RefusedURL, ServiceError, TemporaryError, os_fault
from mycase_sync.locks import private_dirs
from mycase_sync.mycase import client as mc
from mycase_sync.store.ledger import Item
from mycase_sync.sync.filenames import printable, safe_filename
from mycase_sync.sync.markers import Markers, marker, neutralise
from mycase_sync.sync.push import Context, ItemError, Job, integration_text, run_push
from mycase_sync.text import clean_line
from mycase_sync.values import parse_timestamp

SCRATCH_DIR = "push-documents.tmp"
EXPIRED = (403, 404, 410)  # how a stale download link or pre-signed URL answers


class _Hashing:
    """A write-only file wrapper that counts and hashes what passes through it."""

    def __init__(self, target):
        self.target = target
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.target.write(data)


class Scratch:
    """The run's private directory for downloaded bytes."""

    def __init__(self, path: Path):
        self.path = path

    @contextlib.contextmanager
    def file_for(self, item: Item) -> Iterator[Path]:
        path = self.path / f"file-{item.item_id}.part"
        try:
            yield path
        finally:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


@contextlib.contextmanager
def scratch_dir(db_path: Path) -> Iterator[Scratch]:
    path = Path(db_path).parent / SCRATCH_DIR
    shutil.rmtree(path, ignore_errors=True)  # left by a run that was killed (we hold the job lock)
    private_dirs(path)
    try:
        yield Scratch(path)
    finally:
        shutil.rmtree(path, ignore_errors=True)


def display_name(record: dict) -> str:
    return safe_filename(record.get(cs.FILE_NAME), record.get(cs.FILE_EXTENSION))


def document_path(record: dict, folder: str | None) -> str:
    """Where in the matter's documents it goes: the root folder ("Case Documents") unless configured."""
    name = display_name(record)
    return f"{folder}/{name}" if folder else name


def description(record: dict, item_id: int) -> str:
    """Where it came from, the original name when the safe name differs (marker-like text in either
    defused), and the marker last: the description ends with it, and nothing a client named can."""
    case = neutralise(printable(str(record.get(cs.FILE_CASE_READABLE_ID) or ""))) or "?"
    text = f"Shared in Case Status (case {case})"
    name = record.get(cs.FILE_NAME)
    original = neutralise(printable(name if isinstance(name, str) else ""))
    if original and original != display_name(record):
        text += f', uploaded as "{original}"'
    return f"{text}. {marker(DocumentsJob.word, item_id)}"


def expected_size(record: dict) -> int | None:
    value = record.get(cs.FILE_SIZE)
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class DocumentsJob(Job):
    name = "push-documents"
    kind = "document"
    word = "file"
    ordered = False

    def list_page(self, casestatus, page: int, size: int) -> list[dict]:
        return casestatus.list_files(page, size)

    def integration_id(self, record: dict) -> str | None:
        return integration_text(record.get(cs.FILE_CASE_INTEGRATION_ID))

    def moment(self, record: dict) -> dt.datetime | None:
        return parse_timestamp(record.get(cs.FILE_CREATED_AT)) or parse_timestamp(record.get(cs.FILE_UPDATED_AT))

    def describe(self, item: Item) -> str:
        case = clean_line(str(item.record.get(cs.FILE_CASE_READABLE_ID) or item.integration_id or "")) or "?"
        where = f" to MyCase matter {item.integration_id}" if item.case_imported else ""
        return f'file {item.item_id} "{display_name(item.record)}" (case {case}){where}'

    def markers(self, mycase) -> Markers:
        return Markers(self.word, mycase.list_documents, lambda document: document.get(mc.DOCUMENT_DESCRIPTION))

    def resources(self, app):
        return scratch_dir(app.settings.db_path)

    # --- the steps ------------------------------------------------------------------------------
    def download(self, ctx: Context, item: Item, path: Path) -> None:
        """Case Status bytes into `path`, counted and hashed; a stale link, or one we refuse to
        follow, is replaced once by listing the file again (the ledger's copy of the record may be
        from an earlier run). The size must match the record's before anything is uploaded."""
        record = item.record
        try:
            sink = self._fetch(ctx, record, path)
        except (ServiceError, ItemError) as exc:
            if isinstance(exc, ServiceError) and exc.status not in EXPIRED and not isinstance(exc, RefusedURL):
                raise
            record = ctx.relist(item)
            if record is None:
                raise ItemError("the file is no longer listed in Case Status") from None
            sink = self._fetch(ctx, record, path)
        expected = expected_size(record)
        if expected is not None and sink.size != expected:
            raise ItemError(f"downloaded {sink.size} bytes but Case Status lists {expected}")
        item.sha256, item.size = sink.digest.hexdigest(), sink.size

    @staticmethod
    def _fetch(ctx: Context, record: dict, path: Path) -> _Hashing:
        url = record.get(cs.FILE_URL)
        if not isinstance(url, str) or not url:
            raise ItemError("the Case Status file record has no download link")
        try:
            with open(path, "wb") as target:
                sink = _Hashing(target)
                ctx.casestatus.download(url, sink, expected_size(record))  # never more than it declares
        except OSError as exc:  # a full disk, an I/O error: the machine's fault, named with the file
            raise (os_fault(exc, path) or exc) from None
        return sink

    def _new_upload(self, ctx: Context, item: Item) -> dict | None:
        """A fresh version (and put_url) for the document we created; None if MyCase no longer has it."""
        try:
            return ctx.write(item, lambda: ctx.mycase.create_document_version(item.remote_id))
        except ServiceError as exc:
            if exc.status == 404:
                return None
            raise

    def push(self, ctx: Context, item: Item) -> str:
        with ctx.resources.file_for(item) as path:
            self.download(ctx, item, path)
            adopted = False
            if item.remote_id is None:
                # Before the first send too: another store (lost, restored, elsewhere) may have filed it.
                ours = item.in_doubt  # a create of ours may have landed
                found = ctx.markers.lookup(item.integration_id, item.item_id)
                if found is not None:
                    ctx.ledger.created(item, found)
                    adopted = not ours
            if item.remote_id is not None and self._holds_bytes(ctx, item):
                ctx.ledger.confirm(item, item.remote_id)  # filed whole already: nothing to upload
                return "adopted" if adopted else "sent"
            ctx.ledger.claim(item)
            upload = self._new_upload(ctx, item) if item.remote_id is not None else None
            if upload is None:
                record = item.record
                upload = ctx.write(item, lambda: ctx.mycase.create_document(
                    item.integration_id, document_path(record, ctx.app.settings.documents_folder),
                    display_name(record), description(record, item.item_id)))
                if upload.get("id") is None:
                    raise ItemError("MyCase created the document but its answer has no id")
                ctx.ledger.created(item, upload["id"])
            try:
                self._put(ctx, upload, path)
            except ServiceError as exc:
                if exc.status not in EXPIRED:
                    raise
                upload = self._new_upload(ctx, item)  # the pre-signed URL expired: one fresh version
                if upload is None:
                    raise
                self._put(ctx, upload, path)
            ctx.ledger.confirm(item, item.remote_id)
            return "sent"

    @staticmethod
    def _holds_bytes(ctx: Context, item: Item) -> bool:
        """Does the MyCase document already hold exactly these bytes? Only then is it complete: its
        upload may have been cut off, or its answer lost. Unknown (a failed read) counts as no."""
        try:
            held = ctx.mycase.document_digest(item.remote_id)
        except TemporaryError:
            raise
        except ServiceError:  # unreadable for whatever reason: a new version makes sure of the bytes
            return False
        return held == (item.sha256, item.size)

    @staticmethod
    def _put(ctx: Context, upload: dict, path: Path) -> None:
        put_url = upload.get(mc.UPLOAD_URL)
        if not isinstance(put_url, str) or not put_url:
            raise ItemError("MyCase gave no upload URL for the document")
        headers = upload.get(mc.UPLOAD_HEADERS)
        ctx.mycase.upload(put_url, headers if isinstance(headers, dict) else {}, os.fspath(path))


def push_documents(app, run_id: str, dry_run: bool = False, since=None, all_items: bool = False,
                   retry_failed: bool = False) -> dict:
    """The push-documents job (cli.py calls this inside run_job)."""
    return run_push(app, DocumentsJob(), run_id, dry_run=dry_run, since=since, all_items=all_items,
                    retry_failed=retry_failed)
