"""The MyCase 504 rule is a session parameter set by MyCaseClient, not a test of the service's name."""

from __future__ import annotations

import pytest
import requests_mock as rm

from mycase_sync.casestatus.client import CaseStatusClient
from mycase_sync.config import load_settings
from mycase_sync.http import ServiceSession
from mycase_sync.pacing import Grant
from mycase_sync.mycase import client as mc_client
from mycase_sync.mycase.client import MyCaseClient

API = "http://127.0.0.1:9/v1"
TIMED_OUT = {"status_code": 504, "json": {"message": "Endpoint request timed out"}}


class Tokens:
    def access_token(self):
        return "token"


@pytest.fixture
def settings(tmp_path):
    return load_settings(environ={"MYCASE_API_URL": API, "CASESTATUS_API_URL": "http://127.0.0.1:9",
                                  "MYCASE_SYNC_DB": str(tmp_path / "state.db")})


def no_waiting(session: ServiceSession) -> ServiceSession:
    session.sleep = lambda seconds: None
    session.pacer.acquire = lambda: Grant(0.0, 1000.0, 0)  # no shared pacing file, no spacing
    return session


def test_the_mycase_client_retries_a_504_twice(settings):
    client = MyCaseClient(settings, Tokens())
    no_waiting(client.session)
    try:
        assert client.session.gateway_timeout_retries == mc_client.GATEWAY_TIMEOUT_RETRIES == 2
        with rm.Mocker() as mock:
            mock.get(API + "/me", **TIMED_OUT)
            assert client.request("GET", "/me").status_code == 504
            assert mock.call_count == 3
    finally:
        client.close()


def test_case_status_and_any_unmarked_session_retry_a_504_like_any_gateway_error(settings):
    client = CaseStatusClient(settings)
    sessions = [no_waiting(client.session), no_waiting(ServiceSession("MyCase", rate=1000, timeout=5))]
    try:
        for session in sessions:  # the name "MyCase" alone no longer changes anything
            assert session.gateway_timeout_retries == session.max_retries == 5
            with rm.Mocker() as mock:
                mock.get("http://127.0.0.1:9/x", **TIMED_OUT)
                assert session.get("http://127.0.0.1:9/x").status_code == 504
                assert mock.call_count == session.max_retries + 1
    finally:
        client.close()
        sessions[1].close()


def test_a_504_on_a_write_that_may_not_be_repeated_is_still_not_retried():
    session = no_waiting(ServiceSession("MyCase", rate=1000, timeout=5, gateway_timeout_retries=2))
    with session, rm.Mocker() as mock:
        mock.post("http://127.0.0.1:9/tokens", **TIMED_OUT)
        assert session.post("http://127.0.0.1:9/tokens", json={}).status_code == 504
        assert mock.call_count == 1
