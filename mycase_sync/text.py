"""Cleaning outside text: what MyCase and Case Status send, before we store, send, print or log it.

Text from a service is hostile until cleaned: half an emoji (a lone surrogate) cannot be encoded
as UTF-8, so SQLite, a terminal and a log file refuse it; a NUL cuts a note short in some
readers; a terminal escape sequence in a sender name would repaint the sysadmin's terminal when
a warning names that sender. `clean` repairs the first (U+FFFD, the replacement character) and
removes the others, keeping every letter of every script as it is.
"""

from __future__ import annotations

import re

REPLACEMENT = "\ufffd"

# Terminal escape sequences, removed whole (not just their ESC, which would leave "[2J" behind):
# CSI (ESC [ or the C1 byte), OSC / DCS / SOS / PM / APC strings up to BEL or ST, and ESC + one byte.
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?"
)
_SURROGATES = re.compile(r"[\ud800-\udfff]")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # C0 but tab and newline, DEL, C1
_LINE_BREAKS = re.compile(r"\r\n?|[\x0b\x0c\x85\u2028\u2029]")


def clean(text: str, lines: bool = False) -> str:
    """`text` without lone surrogates (replaced by U+FFFD), escape sequences or control characters.

    lines=True keeps newlines and tabs (message bodies, descriptions; CR LF becomes LF); otherwise
    (names, subjects, one-line output) each becomes a space. Nothing else changes: no trimming."""
    if not isinstance(text, str):
        text = str(text)
    if text.isascii() and text.isprintable():
        return text
    text = _SURROGATES.sub(REPLACEMENT, text)
    text = _ESCAPES.sub("", text)
    text = _LINE_BREAKS.sub("\n", text)
    if not lines:
        text = text.replace("\n", " ").replace("\t", " ")
    return _CONTROLS.sub("", text)


def clean_line(text: str) -> str:
    """One line of outside text for output: cleaned, white space collapsed, trimmed."""
    return " ".join(clean(text).split())
