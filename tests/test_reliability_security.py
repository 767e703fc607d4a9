"""Security: no secret in any output, private state, https only, TLS always verified, no SSRF.

A poisoned record (a file URL, an upload URL, a pagination link or a redirect pointing at
file:, plain http or an internal address) must never make the tool read internal data and file it
into MyCase, nor carry our credentials to another host.
"""

from __future__ import annotations

import http.server
import re
import ssl
import threading
from pathlib import Path

import pytest
import requests
import requests_mock as rm

from conftest import Cli, active_cases, assert_no_secrets, find_secrets, seed_imported, store_text_without_tokens
from mycase_sync.casestatus.client import CaseStatusClient
from mycase_sync.config import load_settings
from mycase_sync.errors import ServiceError, SyncError, TemporaryError
from mycase_sync.http import ServiceSession, check_followable_url
from mycase_sync.mycase.client import MyCaseClient
from mycase_sync.store import open_store
from oracle import assert_documents_once

SOURCE = Path(__file__).resolve().parent.parent / "mycase_sync"

# A self-signed certificate for 127.0.0.1 (test only, valid until 2126): no client should trust it.
TEST_CERT = """-----BEGIN CERTIFICATE-----
MIIDJzCCAg+gAwIBAgIURmDfy8vv2yffzrnQlpSj2r8DaIwwDQYJKoZIhvcNAQEL
BQAwFDESMBAGA1UEAwwJMTI3LjAuMC4xMCAXDTI2MTEyNjE4MjAxOFoYDzIxMjYx
MTAyMTgyMDE4WjAUMRIwEAYDVQQDDAkxMjcuMC4wLjEwggEiMA0GCSqGSIb3DQEB
AQUAA4IBDwAwggEKAoIBAQCdC0SggxkhmH6sE2xw4xJzNe1YJk/mhzG804a9dcc9
gjvIJdEV9Z5Q1F2h2prSDjk7VGq4olDw2D/ngSV6zTKPEDSoePmL0m7dGvQXSb6P
Ncs4YtTI/Q+uaC7VIs2SDNnHcNtFZt05+6oX4LneK/Th4q5uFyFS3hxzRPnoV8kK
6D4J+x1HOyNOJFYr3ZzqjnlJZW7OTyQ3SMKFajTtQ9BpcyO3W9Jl96t2gdRmrm61
uUCNGUsVGAhodEwhJYaEufXBAdRHKT/CKM4nI8eNpCPTNY2CyFmKMLMp9xegSBvb
i8SI/0u6DQWJcPw9rNOLk75Oq/GSfRr4a/lorrUeFc45AgMBAAGjbzBtMB0GA1Ud
DgQWBBT7M9TOzp60MZy/4EWM5zS7DccDWDAfBgNVHSMEGDAWgBT7M9TOzp60MZy/
4EWM5zS7DccDWDAPBgNVHRMBAf8EBTADAQH/MBoGA1UdEQQTMBGHBH8AAAGCCWxv
Y2FsaG9zdDANBgkqhkiG9w0BAQsFAAOCAQEAQZaoEAm2baPYDazA0bhqCxGIMbSS
YRgNvhxQRux5eOOsulfg1fTcWTTMo9ti8quEH/fvatKOp0FL0xD5J0yENGOQpdgZ
WNvy3bqlUrZusk4GqqRZ7pqHVdCrb2hrsvdRvGcmAGiWuuAjcLSiJ+I7CjPBkMou
9M3ik48/uIAbXPqgV6jTMNhL8c6kyXaW2jN5OyvwtMyrI3goMWoPG9Z/ILDGvPPx
EGOBNFPkC7G3wM0l0FG90zUPFCcXocZfYO4oBx3Gj+bSrQgxEmfVCQJWrcAQ/Svl
USL93LBExb4O43uGGwflz6gbo7THGBa7B3ayzPeg/cTGQXoZXhKyoB5iHg==
-----END CERTIFICATE-----
"""
TEST_KEY = """-----BEGIN PRIVATE KEY-----
MIIEuwIBADANBgkqhkiG9w0BAQEFAASCBKUwggShAgEAAoIBAQCdC0SggxkhmH6s
E2xw4xJzNe1YJk/mhzG804a9dcc9gjvIJdEV9Z5Q1F2h2prSDjk7VGq4olDw2D/n
gSV6zTKPEDSoePmL0m7dGvQXSb6PNcs4YtTI/Q+uaC7VIs2SDNnHcNtFZt05+6oX
4LneK/Th4q5uFyFS3hxzRPnoV8kK6D4J+x1HOyNOJFYr3ZzqjnlJZW7OTyQ3SMKF
ajTtQ9BpcyO3W9Jl96t2gdRmrm61uUCNGUsVGAhodEwhJYaEufXBAdRHKT/CKM4n
I8eNpCPTNY2CyFmKMLMp9xegSBvbi8SI/0u6DQWJcPw9rNOLk75Oq/GSfRr4a/lo
rrUeFc45AgMBAAECgf9cBD4xzp7rEG8oZDkl6+bjmrV28PvgF1cNTOOmH1yerbBZ
lc7tDv20Xrp+G5ibe7oNCWl+xZyngg3vl7xeN91n9hbkn/2X77UF2MUs4AjH4L0y
TLZhDeYiSukl+T56VQ1Fztqrz5nQX6VKWGKPyzGxKSELYIImC/6fi8riWI1z1bUA
xs7V8G0ZJGAZF++NSsP+RlXapC4HkRpbUJ/poJ8Y39fssgXcr5qKUcDYYa5eEHh8
5ADTJUWpa8x0+NHBb/9P8JuIhQKd/Gc3U8ly8t638EbFgodbCxVk5uxN9qQt+eyZ
nJ9YaczyIqhDUmDPvT8BhHjR2HRiPTekidZATZkCgYEA1p2EzYIyJkkiQVt0F1Mw
aNKv1lBM3Wq1z2oYPqzr+QHed2rfSZ31hZrxWUt5ZGNobh5AluU0/1epRJfj7RL5
pNPna+m37GAlzxFVg3ykwIsRUCth7httalmFc+BIbYCw5jb1hUOaTFYDSnm3LOhb
OA6fal+p8WVAuCIl/8rRhMsCgYEAu1O+UG5tPBo5l9FRkiShygDhaHxXjVWKMK1h
Wo5raPD5d7w08aSqUCNgMXBPcttIkKMi9YasQbbdBFS9tuwxYLaY1n2nAu+r6/eL
s2GpgpHa3I5gyYdi9iXNQh4PIioDprk644yS5qsBJSORke4dHpQUPvFuADk9AJ+y
jm5VnIsCgYB56HImdn1cKBDQRU21bijCcmM1ftmasGHkFuT8vScxg/FFrix12cc8
hF3yFiA3eQw5+O9Bh6NKJBZfg1QSN8Qc7822C8XQ/HCdpcAId4XyZUyJWItBQM0v
KvjWcKFTqlVSAAgJEfSUxgsKhAcb+ETQm+XL+9lB6P0RWzxwh1nqbwKBgQCDNwuu
J0uYt/3znAl5RvOVHbzGhaKGO47KvgfdeLlADtuPxWOIiAFMlRsCRltAZt2TgtIw
DZ+HgGGccQdapGOKDR1N0UI1SlCwvvs6MYSdEzGtIIYnZBArvxrh31BWa/uWw1S+
o28a6Fmq/BkxkQsQqkTsOg0FVxKl5zcZkauiNQKBgBFZJS4Ol9eO8aDaQr9WmORG
w9z9Kdy1q2pBDZEwkooqN9ZdsI4VqB0G+QnfCprSmVJXgaweYmHcY6TS6vFG2il2
Qe0yKpbqBvrQDyFXtIEzURNhnx+wCVye74X77/jI+nr6q0p0ELqOhYg7KvLRFst/
gLvFJdB8YO1F3uDQBx0u
-----END PRIVATE KEY-----
"""

CLIENT_SECRET = "cs-4c1f9e2d7b3a"
API_KEY = "ak-8e2b6d0f1a9c"
ACCESS_TOKEN = "at-51d8c3e7f0b2a4"


class FixedTokens:
    """A token source for client-level tests (the real TokenManager is tested with the sandbox)."""

    def __init__(self, token: str = ACCESS_TOKEN):
        self.token = token
        self.refreshed: list[str | None] = []

    def access_token(self) -> str:
        return self.token

    def refresh_after_401(self, used: str | None) -> None:
        self.refreshed.append(used)


def settings_for(api: str = "https://mycase.example/v1", casestatus: str = "https://casestatus.example", **extra):
    environ = {
        "MYCASE_CLIENT_ID": "client-id", "MYCASE_CLIENT_SECRET": CLIENT_SECRET, "CASESTATUS_API_KEY": API_KEY,
        "MYCASE_API_URL": api, "MYCASE_AUTH_URL": api.rsplit("/v1", 1)[0], "CASESTATUS_API_URL": casestatus,
        "MYCASE_SYNC_BACKOFF": "0.001", "MYCASE_RATE_LIMIT": "1000", "CASESTATUS_RATE_LIMIT": "1000",
    }
    environ.update(extra)
    return load_settings(environ=environ)


# --- the secret scanner itself must be able to fail ---------------------------------------------
def test_the_scanner_finds_a_secret_and_names_it_without_printing_it(tmp_path):
    secrets = {"client secret": CLIENT_SECRET, "short": "abc"}
    assert find_secrets(f"error: client_secret={CLIENT_SECRET}", secrets) == ["client secret"]
    assert find_secrets("abc abc", secrets) == []  # too short to be told from ordinary words
    with pytest.raises(AssertionError) as caught:
        assert_no_secrets(f"...{CLIENT_SECRET}...", secrets, "stderr")
    assert CLIENT_SECRET not in str(caught.value) and "client secret" in str(caught.value)


def test_the_scanner_knows_the_cli_settings_dotenv_and_stored_tokens(tmp_path):
    db = tmp_path / "state" / "state.db"
    store = open_store(db)
    store.db["tokens"].insert({"id": 1, "access_token": ACCESS_TOKEN, "refresh_token": "rt-0e9d8c7b6a5f"})
    store.db["runs"].insert({"run_id": "r1", "job": "push-messages", "error": "oops rt-0e9d8c7b6a5f"})
    store.close()
    (tmp_path / ".env").write_text(f"MYCASE_CLIENT_SECRET={CLIENT_SECRET}\n")
    cli = Cli(env={"MYCASE_SYNC_DB": str(db), "CASESTATUS_API_KEY": API_KEY}, cwd=tmp_path)
    known = set(cli.secrets().values())
    assert {CLIENT_SECRET, API_KEY, ACCESS_TOKEN, "rt-0e9d8c7b6a5f"} <= known
    with pytest.raises(AssertionError, match="stored refresh token"):
        assert_no_secrets(store_text_without_tokens(db), cli.secrets(), "the store")
    with pytest.raises(AssertionError, match="CASESTATUS_API_KEY"):
        cli.scan(f"Authorization: ApiKey {API_KEY}", "stderr")
    store = open_store(db)
    store.db.execute("delete from runs")
    store.db.conn.commit()
    store.close()


def test_the_sandbox_fixture_feeds_the_scanner_every_issued_token(sandbox, cli):
    issued = sandbox.mycase.issue_tokens()
    known = set(cli.secrets().values())
    assert {issued["access_token"], issued["refresh_token"], sandbox.config.client_secret,
            sandbox.config.api_key} <= known


# --- plain http and TLS ---------------------------------------------------------------------------
URL_SETTINGS = ["MYCASE_AUTH_URL", "MYCASE_API_URL", "CASESTATUS_API_URL", "MYCASE_REDIRECT_URI"]
NOT_LOOPBACK = ["http://example.com", "http://127.0.0.1.evil.example", "http://localhost.evil.example:80",
                "http://localhost@evil.example", "http://10.0.0.5:8080", "http://169.254.169.254"]


@pytest.mark.parametrize("name", URL_SETTINGS)
@pytest.mark.parametrize("url", NOT_LOOPBACK)
def test_plain_http_to_a_non_loopback_host_is_refused_with_exit_2(tmp_path, name, url):
    cli = Cli(env={"MYCASE_SYNC_DB": str(tmp_path / "state" / "state.db"), name: url,
                   "MYCASE_CLIENT_ID": "id", "MYCASE_CLIENT_SECRET": CLIENT_SECRET,
                   "CASESTATUS_API_KEY": API_KEY}, cwd=tmp_path)
    result = cli.invoke("push-messages")  # in this process: refused while reading the settings
    assert result.code == 2, result.output
    assert result.stderr.count("\n") == 1 and name in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "state").exists()


def test_no_code_path_turns_tls_verification_off():
    """A static guard: the usual ways of disabling verification appear nowhere in the tool."""
    pattern = re.compile(r"verify\s*=\s*False|CERT_NONE|check_hostname\s*=\s*False|disable_warnings|"
                         r"_create_unverified_context|trust_env\s*=")
    offenders = [f"{path.relative_to(SOURCE)}:{n}" for path in SOURCE.rglob("*.py")
                 for n, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert offenders == []


@pytest.fixture
def tls_server(tmp_path):
    """An https server on 127.0.0.1 with a certificate nobody trusts; counts requests it got."""
    cert = tmp_path / "cert.pem"
    cert.write_text(TEST_CERT + TEST_KEY)
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.path)
            body = b'{"name": "x", "url": "y"}' if "firm" in self.path else b"[]"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address):  # failed handshakes are the point
            pass

    server = Server(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", seen, cert
    finally:
        server.shutdown()
        server.server_close()


def test_every_session_refuses_an_untrusted_certificate(tls_server):
    base, seen, cert = tls_server
    settings = settings_for(api=f"{base}/v1", casestatus=base)
    mycase = MyCaseClient(settings, FixedTokens())
    casestatus = CaseStatusClient(settings)
    try:
        with pytest.raises(TemporaryError, match="unreachable"):
            mycase.firm()
        with pytest.raises(TemporaryError, match="unreachable"):
            casestatus.list_users()
        with pytest.raises((TemporaryError, ServiceError)):
            casestatus.download(f"{base}/downloads/1", open(cert.with_name("out"), "wb"))
        upload = cert.with_name("upload.bin")
        upload.write_bytes(b"data")
        with pytest.raises((TemporaryError, ServiceError)):
            mycase.upload(f"{base}/s3/bucket/key", {}, str(upload))
        assert seen == []  # no request got past the handshake
        # The control: the same server, once its certificate is trusted, answers.
        for session in (mycase.session, mycase.uploads, casestatus.session, casestatus.downloads):
            assert session.verify is True
        assert mycase.session.get(f"{base}/v1/firm", verify=str(cert)).json() == {"name": "x", "url": "y"}
        assert seen == ["/v1/firm"]
    finally:
        mycase.close()
        casestatus.close()


# --- URLs handed to us by a service ---------------------------------------------------------------
REFUSED_ALWAYS = [
    "file:///etc/passwd",
    "file://localhost/etc/shadow",
    "ftp://files.example/x",
    "gopher://files.example/x",
    "http://files.example/x",  # plain http off loopback
    "https://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://169.254.169.254/latest/meta-data/",
    "https://169.254.169.254./latest/meta-data/",
    "https://2852039166/latest/meta-data/",  # 169.254.169.254 as one decimal number
    "https://0xa9fea9fe/latest/meta-data/",
    "https://0251.0376.0251.0376/latest/meta-data/",
    "https://[fe80::1]/x",
    "https://[::ffff:169.254.169.254]/x",
    "https://[fd00:ec2::254]/x",  # the IPv6 metadata address
    "https://10.1.2.3/x",
    "https://172.16.0.1/x",
    "https://192.168.0.1/x",
    "https://100.64.0.1/x",  # carrier-grade NAT
    "https://0.0.0.0/x",
    "https://[::]/x",
    "https://224.0.0.1/x",
    "https:///no-host",
    "https://user:pass@169.254.169.254/x",
    "data:text/plain,hello",
    "javascript:alert(1)",
]
LOOPBACK = ["http://127.0.0.1:9/x", "http://localhost:9/x", "https://127.0.0.1/x", "http://[::1]:9/x",
            "http://127.1:9/x", "http://2130706433:9/x", "http://localhost.:9/x", "http://a.localhost:9/x"]


@pytest.mark.parametrize("url", REFUSED_ALWAYS)
@pytest.mark.parametrize("allow_loopback", [False, True])
def test_a_url_from_a_service_is_refused_unless_https_to_a_public_host(url, allow_loopback):
    with pytest.raises(ServiceError) as caught:
        check_followable_url(url, allow_loopback=allow_loopback)
    assert caught.value.service == "security" and "refusing" in str(caught.value)


@pytest.mark.parametrize("url", LOOPBACK)
def test_loopback_urls_are_followed_only_when_talking_to_a_local_sandbox(url):
    assert check_followable_url(url, allow_loopback=True) == url
    with pytest.raises(ServiceError, match="loopback"):
        check_followable_url(url, allow_loopback=False)


@pytest.mark.parametrize("url", ["https://s3.amazonaws.com/bucket/key?X-Amz-Signature=abc",
                                 "https://files.casestatus.com/downloads/1?expires=1&signature=2",
                                 "https://8.8.8.8/x", "https://[2606:4700::1111]/x"])
def test_https_to_a_public_host_is_followed(url):
    assert check_followable_url(url, allow_loopback=False) == url


@pytest.fixture
def mycase_client():
    client = MyCaseClient(settings_for(), FixedTokens())
    yield client
    client.close()


@pytest.fixture
def casestatus_client():
    client = CaseStatusClient(settings_for())
    yield client
    client.close()


def test_a_poisoned_download_url_is_never_fetched(casestatus_client, requests_mock):
    requests_mock.get(rm.ANY, content=b"root:x:0:0")  # any request at all would be answered (and counted)
    for url in ("file:///etc/passwd", "http://169.254.169.254/latest/meta-data/", "https://10.0.0.1/x",
                "http://127.0.0.1:9/x"):
        with pytest.raises(ServiceError, match="refusing"):
            casestatus_client.download(url, open("/dev/null", "wb"))
    assert requests_mock.call_count == 0


def test_a_download_redirected_to_an_internal_address_is_not_followed(casestatus_client, requests_mock, tmp_path):
    requests_mock.get("https://files.example/d/1", status_code=302,
                      headers={"Location": "http://169.254.169.254/latest/meta-data/"})
    requests_mock.get("https://files.example/d/2", status_code=302, headers={"Location": "file:///etc/passwd"})
    requests_mock.get("http://169.254.169.254/latest/meta-data/", text="secret-credentials")
    for n in (1, 2):
        sink = tmp_path / f"out{n}"
        with open(sink, "wb") as out, pytest.raises(ServiceError, match="refusing"):
            casestatus_client.download(f"https://files.example/d/{n}", out)
        assert sink.read_bytes() == b""
    assert [r.url for r in requests_mock.request_history] == ["https://files.example/d/1", "https://files.example/d/2"]


def test_a_poisoned_upload_url_never_receives_the_file(mycase_client, requests_mock, tmp_path):
    upload = tmp_path / "doc.pdf"
    upload.write_bytes(b"privileged client document")
    requests_mock.put(rm.ANY, status_code=200)
    for url in ("http://169.254.169.254/x", "file:///tmp/x", "https://192.168.1.10/bucket/key",
                "http://uploads.example/bucket/key"):
        with pytest.raises(ServiceError, match="refusing"):
            mycase_client.upload(url, {"x-amz-acl": "private"}, str(upload))
    assert requests_mock.call_count == 0
    mycase_client.upload("https://s3.example/bucket/key", {"x-amz-acl": "private"}, str(upload))
    sent = requests_mock.request_history[-1]
    assert "Authorization" not in sent.headers  # S3 gets no Bearer token
    assert sent.headers["x-amz-acl"] == "private"


def test_a_download_never_carries_the_case_status_api_key(casestatus_client, requests_mock, tmp_path):
    requests_mock.get("https://files.example/d/1", content=b"abc")
    with open(tmp_path / "out", "wb") as out:
        assert casestatus_client.download("https://files.example/d/1", out) == 3
    assert "Authorization" not in requests_mock.request_history[0].headers


@pytest.mark.parametrize("next_url", [
    "https://evil.example/v1/cases?page_token=abc",
    "https://mycase.example.evil.example/v1/cases?page_token=abc",
    "http://mycase.example/v1/cases?page_token=abc",
    "https://mycase.example:8443/v1/cases?page_token=abc",
    "file:///etc/passwd",
    "https://169.254.169.254/v1/cases",
])
def test_a_next_page_link_to_another_host_is_not_followed_with_our_token(mycase_client, requests_mock, next_url):
    requests_mock.get(rm.ANY, json=[])  # registered first: the more specific one below wins
    requests_mock.get("https://mycase.example/v1/cases", json=[{"id": 1}],
                      headers={"Link": f'<{next_url}>; rel="next"'})
    pages = mycase_client.iter_case_pages()
    assert next(pages) == [{"id": 1}]
    with pytest.raises(ServiceError, match="refusing"):
        next(pages)
    assert [r.url.split("?")[0] for r in requests_mock.request_history] == ["https://mycase.example/v1/cases"]


def test_a_next_page_link_on_the_api_host_is_followed(mycase_client, requests_mock):
    requests_mock.get("https://mycase.example/v1/cases", [
        {"json": [{"id": 1}], "headers": {"Link": '<https://mycase.example/v1/cases?page_token=a%2Bb>; rel="next"'}},
        {"json": [{"id": 2}]},
    ])
    assert list(mycase_client.iter_case_pages(status="open")) == [[{"id": 1}], [{"id": 2}]]
    assert requests_mock.request_history[1].headers["Authorization"] == f"Bearer {ACCESS_TOKEN}"


def test_a_redirect_to_another_host_drops_the_bearer_token(requests_mock):
    """requests strips Authorization across hosts; a MyCase /data redirect to S3 must not carry our token."""
    session = ServiceSession("MyCase", 1000, 5, 0.001)
    session.headers["Authorization"] = f"Bearer {ACCESS_TOKEN}"
    requests_mock.get("https://mycase.example/v1/documents/1/data", status_code=302,
                      headers={"Location": "https://s3.example/bucket/key?X-Amz-Signature=abc"})
    requests_mock.get("https://s3.example/bucket/key", content=b"bytes")
    assert session.get("https://mycase.example/v1/documents/1/data").content == b"bytes"
    assert "Authorization" not in requests_mock.request_history[-1].headers
    session.close()


def test_errors_quote_the_service_but_never_our_credentials(casestatus_client, requests_mock):
    requests_mock.get("https://casestatus.example/v1/api/users", status_code=401,
                      json={"errors": [{"field": "Authorization", "message": f"Invalid API key ApiKey {API_KEY}"}]})
    with pytest.raises(SyncError) as caught:  # refused at first contact: the setting is named (exit 2)
        casestatus_client.list_users()
    assert API_KEY not in str(caught.value) and "HTTP 401" in str(caught.value)


def test_requests_session_verify_default_is_not_overridden_by_an_empty_ca_bundle_variable(monkeypatch, tls_server):
    """CURL_CA_BUNDLE='' once turned verification off in requests; it must not here."""
    base, seen, _ = tls_server
    monkeypatch.setenv("CURL_CA_BUNDLE", "")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "")
    client = MyCaseClient(settings_for(api=f"{base}/v1"), FixedTokens())
    try:
        with pytest.raises(TemporaryError):
            client.firm()
        assert seen == []
    finally:
        client.close()


def test_requests_exceptions_are_all_wrapped(casestatus_client, requests_mock):
    """A failure inside requests never escapes as a raw requests exception (its text can carry URLs with keys)."""
    requests_mock.get("https://casestatus.example/v1/api/users", exc=requests.exceptions.InvalidURL("bad"))
    with pytest.raises(ServiceError):
        casestatus_client.list_users()


# --- end to end: the real CLI against the sandbox ------------------------------------------------
def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_the_state_store_and_everything_beside_it_stay_private_even_with_an_open_umask(connected, sandbox, db_path):
    import os

    seed_imported(sandbox, db_path, active_cases(sandbox))
    for job in ("import-matters", "push-messages", "push-documents"):
        proc = connected.popen(job, "--all" if job != "import-matters" else "--full", preexec_fn=lambda: os.umask(0))
        out, err = proc.communicate(timeout=120)
        assert proc.returncode in (0, 1), err
    state = db_path.parent
    assert _mode(state) == 0o700
    files = sorted(p for p in state.iterdir())
    assert db_path in files and any(p.name.endswith(".lock") for p in files)
    assert {p.name: _mode(p) for p in files} == {p.name: 0o600 for p in files}


def test_verbose_logs_reports_and_errors_of_every_job_carry_no_secret(connected, sandbox, db_path, tmp_path):
    """-vv and a log file show every request; a token expired at MyCase forces a 401 and a refresh.

    The conftest scanner reads the output, the log, the report and the store's tables afterwards.
    """
    seed_imported(sandbox, db_path, active_cases(sandbox))
    sandbox.clock.advance(2 * 86400)  # the stored access token is now expired as MyCase sees it
    sandbox.mycase.faults.add("POST", r"/v1/cases/\d+/notes", "500", nth=2)  # one error line too
    log = tmp_path / "sync.log"
    results = [connected.run("-vv", "--log-file", str(log), "import-matters", "--report", str(tmp_path / "r.csv")),
               connected.run("-vv", "--log-file", str(log), "push-messages", "--all"),
               connected.run("-vv", "--log-file", str(log), "push-documents", "--all"),
               connected.run("-vv", "--log-file", str(log), "auth", "status", "--json")]
    assert [r.code for r in results][1:] == [1, 0, 0], [r.output for r in results]
    assert sandbox.mycase.refresh_calls >= 1 and sandbox.mycase.count(path_regex=r"/v1/.*") > 20
    text = log.read_text()
    assert "access token refreshed" in text and "retried next run" in text  # the scan had something to read
    assert (tmp_path / "r.csv").stat().st_size > 0


def test_a_poisoned_download_link_is_never_followed_and_nothing_internal_is_filed(connected, sandbox, db_path):
    mapped = seed_imported(sandbox, db_path, active_cases(sandbox))
    cs = sandbox.casestatus
    poisoned = {}
    for url, file_id in zip(("file:///etc/passwd", "http://169.254.169.254/latest/meta-data/iam/",
                             "https://169.254.169.254/latest/", "https://10.0.0.7/admin"), sorted(cs.files)):
        poisoned[file_id] = url
    real = cs.download_url
    cs.download_url = lambda file_id, base_url=None: poisoned.get(file_id) or real(file_id, base_url)
    result = connected.run("push-documents", "--all")
    assert result.code == 1, result.output
    refusals = [line for line in result.stderr.splitlines() if "refusing" in line]
    assert len(refusals) == len(poisoned), result.stderr
    assert "Traceback" not in result.output
    with sandbox.mycase.lock:
        filed = {d["description"] for d in sandbox.mycase.documents.values()}
        blobs = [v["data"] or b"" for d in sandbox.mycase.documents.values() for v in d["versions"]]
    assert not any(f"[casestatus:file:{file_id}]" in text for file_id in poisoned for text in filed)
    assert not any(b"root:" in blob for blob in blobs)
    # once Case Status hands out real links again, the same files arrive, once
    cs.download_url = real
    assert connected.run("push-documents").code == 0
    assert_documents_once(sandbox, mapped)


def test_a_poisoned_upload_url_never_receives_the_bytes_and_a_later_version_completes_the_document(connected, sandbox, db_path):
    mapped = seed_imported(sandbox, db_path, active_cases(sandbox))
    mc = sandbox.mycase
    real = mc._upload_fields
    mc._upload_fields = lambda req, version: {**real(req, version), "put_url": "http://169.254.169.254/upload"}
    result = connected.run("push-documents", "--all")
    assert result.code == 1 and "refusing" in result.stderr and "Traceback" not in result.output
    assert mc.count("PUT") == 0  # not one byte went anywhere
    mc._upload_fields = real
    assert connected.run("push-documents").code == 0
    assert_documents_once(sandbox, mapped)
