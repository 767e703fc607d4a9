"""The MyCase case id a Case Status item names is outside text: cleaned before the store keys on it."""

from mycase_sync.sync.push import integration_text


def test_an_integration_id_with_half_an_emoji_can_be_stored():
    text = integration_text(" 1001\ud83d ")
    text.encode("utf-8")  # SQLite refuses what UTF-8 cannot encode
    assert text == "1001\ufffd"
    assert integration_text(" 1001 ") == "1001"
    assert integration_text(None) is None and integration_text(True) is None and integration_text("  ") is None
