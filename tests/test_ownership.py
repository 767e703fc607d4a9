"""A state store belongs to one MyCase firm and one Case Status account (in-process)."""

from __future__ import annotations

import pytest

from mycase_sync.errors import ConfigError
from mycase_sync.ownership import accept_casestatus_key, check_casestatus_key, check_mycase_firm
from mycase_sync.store import open_store


@pytest.fixture
def store(tmp_path):
    opened = open_store(tmp_path / "state.db")
    yield opened
    opened.close()


def test_the_first_key_is_recorded_as_a_keyed_fingerprint_and_another_is_refused(store, tmp_path):
    check_casestatus_key(store, "key-of-firm-a-0123456789")
    check_casestatus_key(store, "key-of-firm-a-0123456789")  # the same key, any number of times
    with pytest.raises(ConfigError, match="CASESTATUS_API_KEY is not the key state store .* was built with") as refused:
        check_casestatus_key(store, "key-of-firm-b-0123456789")
    assert str(store.path) in str(refused.value) and "key-of-firm" not in str(refused.value)
    assert "mycase-sync doctor" in str(refused.value)  # a mistyped key looks the same: doctor tells them apart
    raw = (tmp_path / "state.db").read_bytes()
    assert b"key-of-firm" not in raw
    other = open_store(tmp_path / "other.db")  # another store: another salt, another fingerprint
    try:
        check_casestatus_key(other, "key-of-firm-a-0123456789")
        assert other.identity.read()["casestatus_key_fingerprint"] != store.identity.read()["casestatus_key_fingerprint"]
    finally:
        other.close()


def test_a_connection_to_another_firm_is_refused_and_the_first_firm_recorded(store):
    check_mycase_firm(store, "firm-a", "A LLP")
    assert store.identity.read()["mycase_firm_uuid"] == "firm-a"
    check_mycase_firm(store, "firm-a", "A LLP")
    check_mycase_firm(store, None, None)  # an answer without a firm says nothing either way
    with pytest.raises(ConfigError, match=r"belongs to another MyCase firm \(A LLP\); this account is of B LLP"):
        check_mycase_firm(store, "firm-b", "B LLP")


def test_a_store_connected_before_firms_were_recorded_takes_its_firm_from_the_tokens(store):
    store.tokens.replace({"access_token": "a", "refresh_token": "r", "firm_uuid": "firm-a"})
    with pytest.raises(ConfigError):
        check_mycase_firm(store, "firm-b", "B LLP")
    check_mycase_firm(store, "firm-a", "A LLP")


class FakeCaseStatus:
    def __init__(self, cases):
        self.cases = cases
        self.asked = []

    def find_case(self, integration_id):
        self.asked.append(integration_id)
        return self.cases.get(integration_id)


def imported(store, pairs):
    for mycase_id, casestatus_id in pairs:
        store.matters.record(mycase_id, mycase_id, "synced", casestatus_id=casestatus_id)


def test_a_rotated_key_is_accepted_only_when_it_reaches_the_cases_this_store_imported(store):
    check_casestatus_key(store, "old-key-0123456789")
    imported(store, [("11", 70011), ("12", 70012)])
    elsewhere = FakeCaseStatus({"11": {"id": 99}})  # another account: other ids, or none
    with pytest.raises(ConfigError, match="does not reach the account"):
        accept_casestatus_key(store, elsewhere, "new-key-0123456789")
    with pytest.raises(ConfigError):
        check_casestatus_key(store, "new-key-0123456789")  # still refused
    same = FakeCaseStatus({"11": {"id": 70011}, "12": {"id": 70012}})
    assert "reaches the same 2 imported cases" in accept_casestatus_key(store, same, "new-key-0123456789")
    check_casestatus_key(store, "new-key-0123456789")
    with pytest.raises(ConfigError):
        check_casestatus_key(store, "old-key-0123456789")
