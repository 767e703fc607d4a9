"""The marker every pushed note or document carries, and finding it again in MyCase.

A marker names the Case Status item (`[casestatus:message:ID]`, `[casestatus:file:ID]`). Before
an item is sent the first time, and again after a send whose outcome was never confirmed, its
matter's notes (or documents) are read and the marker looked for: a fresh, lost or restored state
store then adopts what is already in MyCase instead of sending it twice.

A marker counts only where the tool alone writes it: at the very end of a note's text (on its own
line) or of a document's description, and only in that exact form, for that kind and id. What a
client typed (message text, sender names, file names) goes in earlier, with any marker-like
sequence neutralised first, so no content can claim to be another item. Notes and documents
pushed before this rule already end with their marker, so they are recognised the same way.
"""

from __future__ import annotations

import re
import threading
from typing import Any, Callable

# "[casestatus" + backslashes + ":" in outside text gets one more backslash: visible to a reader,
# reversible (drop one backslash), and never a marker, whose "[casestatus:" has none.
_MARKER_LIKE = re.compile(r"(\[casestatus)(\\*):", re.IGNORECASE)


def marker(word: str, item_id: int) -> str:
    """The tag every pushed record ends with: unambiguous ("]" ends the id)."""
    return f"[casestatus:{word}:{int(item_id)}]"


def neutralise(text: str) -> str:
    """Outside text with every marker-like sequence defused, e.g. `[casestatus\\:message:5]`."""
    return _MARKER_LIKE.sub(lambda m: f"{m.group(1)}\\{m.group(2)}:", text)


def restore(text: str) -> str:
    """The text `neutralise` was given (for a person reading a note that quotes one)."""
    return re.sub(r"(\[casestatus)\\(\\*):", r"\1\2:", text, flags=re.IGNORECASE)


def marker_at_end(text: Any, word: str) -> int | None:
    """The item id of the `word` marker that ends `text`, or None: a marker anywhere else is content.

    Before it: the start, white space, or the end of an HTML tag (should MyCase store `<br>`)."""
    if not isinstance(text, str):
        return None
    found = re.search(rf"(?:\A|\s|>)\[casestatus:{re.escape(word)}:(\d{{1,19}})\]\s*\Z", text)
    return int(found.group(1)) if found else None


def markers_in(text: Any, word: str) -> list[int]:
    """Every `word` marker-shaped id anywhere in a text (for checks and tests, never for adoption)."""
    if not isinstance(text, str):
        return []
    return [int(found) for found in re.findall(rf"\[casestatus:{re.escape(word)}:(\d+)\]", text)]


class Markers:
    """The Case Status ids already filed in each matter, read from MyCase once per matter per run."""

    def __init__(self, word: str, list_records: Callable[[str], list[dict]], text_of: Callable[[dict], Any]):
        self.word = word
        self.list_records = list_records
        self.text_of = text_of
        self._lock = threading.Lock()
        self._matter_locks: dict[str, threading.Lock] = {}
        self._index: dict[str, dict[int, str]] = {}
        self.lists = 0

    def lookup(self, matter_id: str, item_id: int) -> str | None:
        """The MyCase id of the record ending with this item's marker, or None if there is none."""
        with self._lock:
            lock = self._matter_locks.setdefault(matter_id, threading.Lock())
        with lock:
            if matter_id not in self._index:
                self.lists += 1
                index: dict[int, str] = {}
                records = [r for r in self.list_records(matter_id) if isinstance(r, dict)]
                for record in sorted(records, key=_oldest_first):
                    found = marker_at_end(self.text_of(record), self.word)
                    if found is not None and record.get("id") is not None:
                        index.setdefault(found, str(record.get("id")))
                self._index[matter_id] = index
            return self._index[matter_id].get(item_id)


def _oldest_first(record: dict) -> tuple:
    """Should a marker appear twice (it never should), the older record is the one we keep."""
    text = str(record.get("id"))
    return (len(text), text)
