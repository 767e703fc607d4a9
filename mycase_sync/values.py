"""Reading plain values: times and ids, whether we wrote them or a service sent them.

One parser each, so that MyCase, Case Status, the command line and the state store agree on
what a timestamp or an id is. Values from a service are hostile until checked: these return
None for anything they cannot read, and the caller decides what a missing value means.
"""

from __future__ import annotations

import datetime as dt
from typing import Any


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def iso(moment: dt.datetime | None) -> str | None:
    """How the state store keeps a moment: ISO 8601 in UTC."""
    return moment.astimezone(dt.timezone.utc).isoformat() if moment else None


def parse_iso(text: str | None) -> dt.datetime | None:
    """A moment the state store kept (see `iso`), or None when there is none or it is unreadable."""
    return parse_timestamp(text)


def parse_timestamp(value: Any) -> dt.datetime | None:
    """ISO 8601 with Z or an offset, with or without fractions, as an aware datetime; naive is UTC.

    None when absent or unusable.
    """
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


MAX_ID = 2**63 - 1  # SQLite's largest integer: an id beyond it cannot be kept, so it is malformed


def positive_id(value: Any) -> int | None:
    """A record id as the services send it (a number, sometimes its digits as a string).

    The positive integer up to MAX_ID, or None for anything else: a bool, a fraction, zero, text,
    a number SQLite cannot hold.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float):
        value = int(value) if value.is_integer() and abs(value) <= MAX_ID else None
    elif isinstance(value, str):
        digits = value.strip()
        value = int(digits) if digits.isdecimal() and digits.isascii() and len(digits) <= 19 else None
    return value if isinstance(value, int) and 0 < value <= MAX_ID else None
