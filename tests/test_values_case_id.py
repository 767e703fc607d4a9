"""Case Status case ids are read by values.positive_id, the one id parser (no private copy in the client)."""

from __future__ import annotations

import pytest
import requests_mock as rm

from mycase_sync.casestatus import client as cs_client
from mycase_sync.casestatus.client import CaseStatusClient
from mycase_sync.config import load_settings
from mycase_sync.errors import ServiceError
from mycase_sync.values import positive_id

CS = "http://127.0.0.1:9"


@pytest.fixture
def client(tmp_path):
    settings = load_settings(environ={"CASESTATUS_API_URL": CS, "CASESTATUS_API_KEY": "k",
                                      "MYCASE_SYNC_DB": str(tmp_path / "state.db")})
    made = CaseStatusClient(settings)
    made.session.sleep = lambda seconds: None
    with rm.Mocker() as mock:
        yield made, mock
    made.close()


def test_the_client_has_no_id_parser_of_its_own():
    assert cs_client.positive_id is positive_id
    assert not hasattr(cs_client, "_case_id")


@pytest.mark.parametrize("sent", [42, "42", " 42 "])
def test_a_created_or_conflicting_case_id_is_read_like_every_other_id(client, sent):
    made, mock = client
    mock.post(f"{CS}/v1/api/cases", [{"status_code": 201, "json": {"id": sent}},
                                     {"status_code": 409, "json": {"id": sent}}])
    assert made.create_case({}) == (positive_id(sent), True) == (42, True)
    assert made.create_case({}) == (42, False)


@pytest.mark.parametrize("sent", [True, 0, -3, "4x", None, 1.5])
def test_an_unusable_id_is_refused(client, sent):
    made, mock = client
    mock.post(f"{CS}/v1/api/cases", status_code=201, json={"id": sent})
    assert positive_id(sent) is None
    with pytest.raises(ServiceError, match="no usable case id"):
        made.create_case({})
