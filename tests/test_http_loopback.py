"""One loopback check: the settings, both clients and the HTTP layer agree on every spelling.

A host is loopback in every spelling the resolver accepts (127.1, 2130706433, 0x7f.0.0.1, ::1,
*.localhost); the settings check once refused 127.1 while the HTTP layer treated it as loopback.
"""

from __future__ import annotations

import pytest

from mycase_sync.casestatus.client import CaseStatusClient
from mycase_sync.config import check_url, load_settings
from mycase_sync.errors import ConfigError, ServiceError
from mycase_sync.http import check_followable_url
from mycase_sync.mycase.client import MyCaseClient
from mycase_sync.netaddr import is_loopback

LOOPBACK = ["127.0.0.1", "127.1", "2130706433", "0x7f.0.0.1", "127.9.9.9", "[::1]", "localhost", "localhost.",
            "sandbox.localhost"]
ELSEWHERE = ["10.0.0.1", "192.168.1.1", "169.254.169.254", "example.com", "localhost.example.com", "128.0.0.1",
             "[::2]"]


@pytest.mark.parametrize("host", LOOPBACK)
def test_a_loopback_spelling_is_loopback_everywhere(host, tmp_path):
    url = f"http://{host}:8080"
    assert is_loopback(host.strip("[]"))
    assert check_url("MYCASE_API_URL", url + "/v1") == url + "/v1"
    assert check_followable_url(url + "/file", allow_loopback=True)
    with pytest.raises(ServiceError, match="refusing a loopback URL"):
        check_followable_url(url + "/file", allow_loopback=False)
    settings = load_settings(environ={"MYCASE_API_URL": url + "/v1", "MYCASE_AUTH_URL": url,
                                      "CASESTATUS_API_URL": url, "MYCASE_SYNC_DB": str(tmp_path / "state.db")})
    mycase, casestatus = MyCaseClient(settings, tokens=None), CaseStatusClient(settings)
    try:
        assert mycase.allow_loopback and casestatus.allow_loopback
    finally:
        mycase.close()
        casestatus.close()


@pytest.mark.parametrize("host", ELSEWHERE)
def test_plain_http_elsewhere_is_refused_everywhere(host):
    assert not is_loopback(host.strip("[]"))
    with pytest.raises(ConfigError, match="must use https"):
        check_url("MYCASE_API_URL", f"http://{host}:8080/v1")
    with pytest.raises(ServiceError, match="refusing"):
        check_followable_url(f"http://{host}:8080/file", allow_loopback=True)


def test_config_accepts_127_1_and_refuses_a_private_address():
    settings = load_settings(environ={"CASESTATUS_API_URL": "http://127.1:8080"})
    assert settings.casestatus_api_url == "http://127.1:8080"
    with pytest.raises(ConfigError, match="CASESTATUS_API_URL must use https"):
        load_settings(environ={"CASESTATUS_API_URL": "http://10.0.0.1"})


def test_an_https_api_does_not_allow_loopback_urls(tmp_path):
    settings = load_settings(environ={"MYCASE_SYNC_DB": str(tmp_path / "state.db")})
    client = CaseStatusClient(settings)
    try:
        assert not client.allow_loopback
    finally:
        client.close()
