"""Every name Windows refuses as a device is filed with a "_" in front (staff open these on Windows)."""

from __future__ import annotations

import pytest

from mycase_sync.sync.filenames import safe_filename


@pytest.mark.parametrize("name, wanted", [
    ("COM0.pdf", "_COM0.pdf"), ("lpt0.txt", "_lpt0.txt"), ("COM\u00b2.pdf", "_COM\u00b2.pdf"),
    ("LPT\u00b9.docx", "_LPT\u00b9.docx"), ("lpt\u00b3", "_lpt\u00b3"), ("CONIN$.txt", "_CONIN$.txt"),
    ("conout$", "_conout$"), ("CON .txt", "_CON.txt"), ("CON .tar.gz", "_CON .tar.gz"), ("COM1.tar.gz", "_COM1.tar.gz"),
])
def test_windows_device_names_are_never_filed_as_they_are(name, wanted):
    assert safe_filename(name) == wanted


@pytest.mark.parametrize("name", ["COM10.pdf", "COMPUTER.pdf", "CONINX.txt", "LPT.pdf", "console.log"])
def test_names_that_only_look_like_devices_are_kept(name):
    assert safe_filename(name) == name
