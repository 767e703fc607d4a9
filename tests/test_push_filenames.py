"""Safe document names: a name typed on a client's phone must not escape, break or vanish."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, strategies as st

from mycase_sync.sync.filenames import MAX_BYTES, printable, safe_filename


@pytest.mark.parametrize("name, extension, expected", [
    ("../../etc/passwd.txt", "txt", "passwd.txt"),
    ("..\\..\\Windows\\win.ini", None, "win.ini"),
    ("C:\\Users\\me\\scan.pdf", "pdf", "scan.pdf"),
    ("Déclaration_Müller_日本.pdf", "pdf", "Déclaration_Müller_日本.pdf"),
    (" .pdf", "pdf", "document.pdf"),
    ("", "pdf", "document.pdf"),
    (None, None, "document"),
    ("..", None, "document"),
    ("...", "jpg", "document.jpg"),
    ("a\x00b\x1fc\x7f.pdf", "pdf", "abc.pdf"),
    ("line\nbreak.txt", "txt", "linebreak.txt"),
    ('a<b>c:d"e|f?g*h.doc', "doc", "a_b_c_d_e_f_g_h.doc"),
    ("report.", "pdf", "report.pdf"),
    ("noext", "png", "noext.png"),
    ("noext", "", "noext"),
    ("archive.tar.gz", "gz", "archive.tar.gz"),
    ("CON.txt", "txt", "_CON.txt"),
    ("lpt1", None, "_lpt1"),
    ("  spaced   out  name .pdf", "pdf", "spaced out name.pdf"),
    ("zero\u200bwidth.pdf", "pdf", "zerowidth.pdf"),
    ("bad.p\x07df", "pdf", "bad.pdf"),
    ("Cafe\u0301.pdf", "pdf", "Café.pdf"),  # NFC: one é
])
def test_safe_filename(name, extension, expected):
    assert safe_filename(name, extension) == expected


def test_long_names_are_cut_to_255_bytes_keeping_the_extension():
    name = safe_filename("日" * 200 + ".pdf", "pdf")
    assert name.endswith(".pdf") and len(name.encode()) <= MAX_BYTES
    assert name.startswith("日")


def test_printable_keeps_the_original_text_readable_on_one_line():
    assert printable("../../etc/passwd\n.txt") == "../../etc/passwd.txt"
    assert printable("a\tb  c") == "ab c"
    assert len(printable("x" * 1000)) == 200


@given(st.text(max_size=400), st.one_of(st.none(), st.text(max_size=20)))
def test_any_name_becomes_a_safe_one(name, extension):
    result = safe_filename(name, extension)
    assert result and result not in (".", "..")
    assert not set(result) & set('/\\<>:"|?*')
    assert not any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in result)
    assert not result.startswith((" ", ".")) and len(result.encode("utf-8")) <= MAX_BYTES
    assert safe_filename(result) == result  # stable: a safe name stays as it is
