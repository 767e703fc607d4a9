"""The marker every pushed note or document carries, and finding it again in MyCase.

A marker names the Case Status item (`[casestatus:message:ID]`, `[casestatus:file:ID]`), so that a
send whose outcome was never confirmed is looked for before it is sent again.
"""

from __future__ import annotations

import re
import threading
from typing import Any, Callable


def marker(word: str, item_id: int) -> str:
    """The tag every pushed record carries: unambiguous ("]" ends the id) and searchable."""
    return f"[casestatus:{word}:{int(item_id)}]"


def markers_in(text: Any, word: str) -> list[int]:
    """The Case Status ids of `word` markers in a text (a note body, a document description)."""
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
        """The MyCase id of the record carrying this item's marker, or None if there is none."""
        with self._lock:
            lock = self._matter_locks.setdefault(matter_id, threading.Lock())
        with lock:
            if matter_id not in self._index:
                self.lists += 1
                index: dict[int, str] = {}
                for record in sorted(self.list_records(matter_id), key=_oldest_first):
                    for found in markers_in(self.text_of(record), self.word):
                        index.setdefault(found, str(record.get("id")))
                self._index[matter_id] = index
            return self._index[matter_id].get(item_id)


def _oldest_first(record: dict) -> tuple:
    """Should a marker appear twice (it never should), the older record is the one we keep."""
    text = str(record.get("id"))
    return (len(text), text)
