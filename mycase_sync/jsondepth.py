"""JSON nested too deeply in a page of records: the deep parts cut out, so that record fails alone.

Python's decoder meets a deep enough answer with RecursionError, and what it can decode may still
be too deep for the encoder that stores it. For an answer that is one record, that is one clear
error for that record. A page of records (a JSON array) refused whole for one such record would
stop the job at that page on every run; instead, in a page of objects, every array or object that
opens at the depth limit is replaced by TOO_DEEP, an object no field takes for a value: the record holding it fails
alone (reported by its id), the others on the page go on.
"""

from __future__ import annotations

import json
import re
from typing import Any

TOO_DEEP = {"nested too deeply": True}
_MARKER = json.dumps(TOO_DEEP)
# A string (its escapes included: a bracket in a string is text) or a bracket.
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def depth_of(value: Any) -> int:
    """How many arrays and objects deep `value` nests (0 for a scalar), without recursion."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            pending.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def cut_too_deep(text: str, limit: int) -> str:
    """`text` with every array or object that opens at depth `limit` replaced by TOO_DEEP."""
    parts, depth, start, kept = [], 0, None, 0
    for token in _TOKENS.finditer(text):
        char = token.group()
        if char[0] == '"':
            continue
        if char in "[{":
            depth += 1
            if depth == limit and start is None:
                start = token.start()
        else:
            if depth == limit and start is not None:
                parts += [text[kept:start], _MARKER]
                kept, start = token.end(), None
            depth -= 1
    parts.append(text[kept:])
    return "".join(parts)


def page_without_deep_parts(text: str, limit: int) -> list[dict] | None:
    """A page of records (a JSON array of objects) nested deeper than `limit`, with its deep parts
    cut out; None when `text` is not such a page (one record, an error body, arrays in arrays)."""
    if not text.lstrip().startswith("["):
        return None
    try:
        page = json.loads(cut_too_deep(text, limit))
    except (RecursionError, ValueError):
        return None
    if not isinstance(page, list) or not all(isinstance(record, dict) for record in page):
        return None
    return page if depth_of(page) <= limit else None
