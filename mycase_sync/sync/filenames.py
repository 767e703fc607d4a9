"""Safe document names: what a client typed in Case Status becomes a name MyCase can file.

A file name comes from a client's device, so it may carry directory parts ("../../etc/passwd"),
control characters, characters Windows or MyCase paths reserve ("/" splits a MyCase folder path),
or nothing at all. The rule: keep the last path component, drop control characters, replace
reserved ones with "_", keep letters of every script and the extension, never return an empty
or dot-only name, and stay within 255 bytes.
"""

from __future__ import annotations

import re
import unicodedata

from mycase_sync.text import clean

FALLBACK = "document"
MAX_BYTES = 255
MAX_EXTENSION = 16
RESERVED = set('<>:"/\\|?*')
INVISIBLE = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}  # control, format, surrogate, private, unassigned
# Names Windows refuses whatever the extension (staff open these documents on Windows machines).
# COM0/LPT0 and the superscript digits (COM¹, LPT²...) included: Windows refuses those too.
_PORT_DIGITS = "0123456789\u00b9\u00b2\u00b3"
WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$",
                   *(f"{port}{digit}" for port in ("COM", "LPT") for digit in _PORT_DIGITS)}


def printable(text: str | None, limit: int = 200) -> str:
    """Text as it can be quoted in a description: no control characters, one line, bounded."""
    kept = (c for c in unicodedata.normalize("NFC", clean(text or "", lines=True)) if unicodedata.category(c) not in INVISIBLE)
    return re.sub(r"\s+", " ", "".join(kept)).strip()[:limit]


def _clean(text: str) -> str:
    """Drop control/format characters, replace reserved ones, collapse whitespace."""
    return printable("".join("_" if char in RESERVED else char for char in text), limit=10_000)


def _clean_extension(text: str | None) -> str:
    ext = "".join(c for c in _clean(text or "") if c.isalnum())
    return ext[:MAX_EXTENSION]


def _fit(stem: str, suffix: str) -> str:
    """Shorten the stem (never the extension) until the name fits in MAX_BYTES of UTF-8."""
    budget = MAX_BYTES - len(suffix.encode("utf-8"))
    encoded = stem.encode("utf-8")
    if len(encoded) > budget:
        stem = encoded[:budget].decode("utf-8", errors="ignore").rstrip(" .")
    return (stem or FALLBACK) + suffix


def safe_filename(name: str | None, extension: str | None = None) -> str:
    """A name safe to file: last path part, no control or reserved characters, extension kept.

    `extension` (the record's own field) is added when the name has lost or never had one.
    Either may be anything a service sent: what is not text counts as absent.
    """
    name = name if isinstance(name, str) else None
    extension = extension if isinstance(extension, str) else None
    base = re.split(r"[/\\]", name or "")[-1]
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    ext = _clean_extension(ext)
    if not ext:
        stem = base if not dot else stem
        ext = _clean_extension(extension)
    stem = _clean(stem).strip(" .")
    if stem.split(".")[0].rstrip(" ").upper() in WINDOWS_DEVICES:
        stem = "_" + stem
    return _fit(stem or FALLBACK, f".{ext}" if ext else "")
