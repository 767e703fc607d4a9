"""push-messages: every Case Status message on an imported case becomes one MyCase case note.

The note says who wrote to whom ("Case Status message from Jane Doe (client)" / "Case Status
message to client, from Lana Joseph"), carries the text, is dated when the message was sent,
and ends with the marker that lets a retry find it. Notes of one matter are posted in the order
the messages were sent; a failure holds back that matter's later messages until the next run.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from mycase_sync.casestatus import client as cs
from mycase_sync.mycase import client as mc
from mycase_sync.store.ledger import Item
from mycase_sync.sync.markers import Markers, marker, neutralise
from mycase_sync.sync.push import Context, Job, integration_text, run_push
from mycase_sync.text import clean, clean_line
from mycase_sync.values import parse_timestamp

MAX_SUBJECT = 255


def note_subject(record: dict) -> str:
    """Direction and sender, in the words a paralegal scanning the notes list needs."""
    sender = neutralise(clean_line(str(record.get(cs.MSG_SENDER) or ""))) or "unknown sender"
    kind = record.get(cs.MSG_TYPE)
    if kind == cs.MSG_INCOMING:
        subject = f"Case Status message from {sender} (client)"
    elif kind == cs.MSG_OUTGOING:
        subject = f"Case Status message to client, from {sender}"
    else:
        subject = f"Case Status message from {sender}"
    return subject[:MAX_SUBJECT]


def note_text(record: dict, item_id: int) -> str:
    """The message as written (marker-like text defused), then the marker on its own line: the
    marker always ends the note, and nothing a client wrote can."""
    content = record.get(cs.MSG_CONTENT)
    content = clean(content, lines=True).strip() if isinstance(content, str) else ""
    text = neutralise(content) if content else "(no text)"
    return f"{text}\n\n{marker(MessagesJob.word, item_id)}"


def note_date(record: dict) -> str:
    """When the message was sent, as Case Status gave it; an ISO 8601 date-time in any case."""
    raw = record.get(cs.MSG_SENT_AT)
    if parse_timestamp(raw) is not None and "T" in raw:
        return raw.strip()
    moment = parse_timestamp(record.get(cs.MSG_SENT_AT)) or parse_timestamp(record.get(cs.MSG_CREATED_AT))
    return (moment or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc).isoformat(timespec="seconds")


def _sent_order(item: Item) -> tuple:
    moment = parse_timestamp(item.record.get(cs.MSG_SENT_AT)) or parse_timestamp(item.record.get(cs.MSG_CREATED_AT))
    return (moment or dt.datetime.max.replace(tzinfo=dt.timezone.utc), item.item_id)


class MessagesJob(Job):
    name = "push-messages"
    kind = "message"
    word = "message"
    ordered = True

    def list_page(self, casestatus, page: int, size: int) -> list[dict]:
        return casestatus.list_messages(page, size)

    def integration_id(self, record: dict) -> str | None:
        return integration_text(record.get(cs.MSG_INTEGRATION_ID))

    def moment(self, record: dict) -> dt.datetime | None:
        return parse_timestamp(record.get(cs.MSG_CREATED_AT)) or parse_timestamp(record.get(cs.MSG_SENT_AT))

    def describe(self, item: Item) -> str:
        case = clean_line(str(item.record.get(cs.MSG_READABLE_ID) or item.integration_id or "")) or "?"
        where = f" to MyCase matter {item.integration_id}" if item.case_imported else ""
        return f"message {item.item_id} (case {case}){where}: {note_subject(item.record)}"

    def markers(self, mycase) -> Markers:
        return Markers(self.word, mycase.list_notes, lambda note: note.get(mc.NOTE_TEXT))

    def lanes(self, items: list[Item]) -> list[list[Item]]:
        """One lane per matter, in the order the messages were sent."""
        by_matter: dict[str, list[Item]] = defaultdict(list)
        for item in items:
            by_matter[item.integration_id].append(item)
        return [sorted(lane, key=_sent_order) for lane in by_matter.values()]

    def push(self, ctx: Context, item: Item) -> str:
        # Before the first send too: another store (lost, restored, on another server) may have sent it.
        ours = item.in_doubt  # a send of ours may have landed
        found = ctx.markers.lookup(item.integration_id, item.item_id)
        if found is not None:
            ctx.ledger.confirm(item, found)
            return "sent" if ours else "adopted"
        ctx.ledger.claim(item)
        record = item.record
        note = ctx.write(item, lambda: ctx.mycase.create_note(
            item.integration_id, note_subject(record), note_text(record, item.item_id), note_date(record)))
        ctx.ledger.confirm(item, note.get("id"))
        return "sent"


def push_messages(app, run_id: str, dry_run: bool = False, since=None, all_items: bool = False,
                  retry_failed: bool = False) -> dict:
    """The push-messages job (cli.py calls this inside run_job)."""
    return run_push(app, MessagesJob(), run_id, dry_run=dry_run, since=since, all_items=all_items,
                    retry_failed=retry_failed)
