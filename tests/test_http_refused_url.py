"""A URL we refuse to follow is its own exception class, RefusedURL, told apart without a service-name test."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import requests_mock as rm

from mycase_sync.errors import RefusedURL, ServiceError
from mycase_sync.http import ServiceSession, check_followable_url
from mycase_sync.sync.documents import DocumentsJob


@pytest.mark.parametrize("url, words", [
    ("http://127.0.0.1:9/x", "refusing a loopback URL handed to us by a service"),
    ("file:///etc/passwd", "refusing a non-https URL (file)"),
    ("https://169.254.169.254/latest", "refusing a URL that points at an internal address"),
])
def test_a_refused_url_is_a_refused_url_with_the_same_words(url, words):
    with pytest.raises(RefusedURL) as caught:
        check_followable_url(url, allow_loopback=False)
    assert isinstance(caught.value, ServiceError) and caught.value.status is None
    assert str(caught.value) == f"security GET {caught.value.path}: no answer: {words}"


def test_a_redirect_we_refuse_raises_refused_url():
    with ServiceSession("Case Status files", rate=1000, timeout=5) as session, rm.Mocker() as mock:
        mock.get("https://files.example/d/1", status_code=302, headers={"Location": "https://10.0.0.1/x"})
        with pytest.raises(RefusedURL, match="internal address"):
            session.get("https://files.example/d/1")


class Downloads:
    """ctx.casestatus for DocumentsJob.download: each URL answers with bytes or an exception."""

    def __init__(self, answers):
        self.answers = answers

    def download(self, url, sink, size=None):
        answer = self.answers[url]
        if isinstance(answer, Exception):
            raise answer
        sink.write(answer)
        return len(answer)


@pytest.mark.parametrize("failure, relisted", [
    (RefusedURL("/x", "refusing a non-https URL (http)"), True),
    (ServiceError("Case Status files", "GET", "/x", 404, "gone"), True),
    (ServiceError("Case Status files", "GET", "/x", 500, "boom"), False),
    # A service error that merely names the service "security" is not a refusal.
    (ServiceError("security", "GET", "/x", 500, "boom"), False),
])
def test_a_refused_download_link_is_listed_again_like_an_expired_one(tmp_path, failure, relisted):
    fresh = {"url": "https://files.example/fresh", "size": 3}
    ctx = SimpleNamespace(casestatus=Downloads({"http://old.example/x": failure, fresh["url"]: b"abc"}),
                          relist=lambda item: fresh)
    item = SimpleNamespace(record={"url": "http://old.example/x", "size": 3}, sha256=None, size=None)
    if relisted:
        DocumentsJob().download(ctx, item, tmp_path / "f")
        assert item.size == 3
    else:
        with pytest.raises(ServiceError) as caught:
            DocumentsJob().download(ctx, item, tmp_path / "f")
        assert caught.value is failure
