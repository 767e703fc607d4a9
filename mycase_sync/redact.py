"""Keep secrets out of every line we print or log.

Secrets are registered by value as soon as they are known (settings, token loads and
refreshes); `redact` replaces each with `***` in any text, and `RedactingFilter` applies it
to every log record, arguments and exception text included.
"""

from __future__ import annotations

import logging
import re
import threading

from mycase_sync.text import clean

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern | None = None

# Values that look like credentials in URLs or bodies even when we never registered them: a
# credential name (not the tail of a longer word), then `=` (a query, a form), a quoted name and a
# colon (JSON, a dict), or, for names no sentence uses, a bare colon. "code" and "signature" are
# also plain words: "no authorization code: run ..." is prose, not a value.
_NAMES = r"access_token|refresh_token|client_secret|api_key|apikey|x-amz-signature"
_WORDS = r"code|signature"
_GENERIC = re.compile(
    r"(?i)((?<![a-z0-9])(?:"
    rf"(?:{_NAMES}|{_WORDS})[\"']?\s*=|"  # name=value, name = value
    rf"[\"'](?:{_NAMES}|{_WORDS})[\"']\s*:|"  # "name": value
    rf"(?:{_NAMES})\s*:"  # name: value
    r")\s*[\"']?)([^&\s\"',}]+)"
)
_AUTH_HEADER = re.compile(r"(?i)\b(Bearer|ApiKey)\s+[A-Za-z0-9._~+/=-]+")


def register_secret(value: str | None) -> None:
    """Remember a secret so that it is masked wherever it would appear."""
    global _pattern
    if not value or len(value) < 4:
        return
    with _lock:
        if value in _secrets:
            return
        _secrets.add(value)
        ordered = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(s) for s in ordered))


def redact(text: object) -> str:
    """The text with every registered secret, auth header and credential-looking field masked."""
    result = str(text)
    pattern = _pattern
    if pattern is not None:
        result = pattern.sub("***", result)
    result = _AUTH_HEADER.sub(lambda m: f"{m.group(1)} ***", result)
    return _GENERIC.sub(lambda m: f"{m.group(1)}***", result)


class RedactingFilter(logging.Filter):
    """Masks secrets in the fully formatted message and any exception text of a record, and cleans
    them of what outside text may carry (escape sequences, NUL, half an emoji): see text.clean."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = clean(redact(record.getMessage()), lines=True)
        record.args = None
        if record.exc_info:
            record.exc_text = clean(redact(logging.Formatter().formatException(record.exc_info)), lines=True)
            record.exc_info = None
        return True
