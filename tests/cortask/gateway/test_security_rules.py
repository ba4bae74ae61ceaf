"""The gateway's access rules, in-process: host names, the failure limiter, the token file, the
cookie exchange and the headers every answer carries."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cortask.channels.whatsapp.config import Sandbox
from cortask.gateway.app import create_app
from cortask.gateway.security import FailureLimiter, InsecureBind, normalize_host
from cortask.gateway.server import gateway_token
from cortask.service import CortaskService

TOKEN = "k" * 43


@pytest.mark.parametrize(
    ("given", "host"),
    [
        ("127.0.0.1:8484", "127.0.0.1"),
        ("LocalHost", "localhost"),
        ("[::1]:8484", "::1"),
        ("[::1]", "::1"),
        ("::1", "::1"),
        ("[FD00::7]", "fd00::7"),
        ("cortask.lan:443", "cortask.lan"),
    ],
)
def test_host_names_compare_without_port_and_brackets(given: str, host: str) -> None:
    assert normalize_host(given) == host


def test_ten_wrong_tokens_a_minute_then_blocked_until_the_window_passes() -> None:
    limiter = FailureLimiter(allowed=10, window_s=60)
    for i in range(10):
        assert not limiter.blocked("10.0.0.5", i)
        limiter.fail("10.0.0.5", i)
    assert limiter.blocked("10.0.0.5", 10) and not limiter.blocked("10.0.0.6", 10)
    assert not limiter.blocked("10.0.0.5", 70)


def test_the_token_is_generated_once_kept_private_and_a_short_one_refused(tmp_path: Path) -> None:
    first = gateway_token(tmp_path, None)
    path = tmp_path / "gateway-token"
    assert len(first) >= 43 and stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o644)
    assert gateway_token(tmp_path, None) == first and stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(InsecureBind, match="at least 32"):
        gateway_token(tmp_path, "short-token")
    assert gateway_token(tmp_path, "u" * 32) == "u" * 32 == path.read_text()


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    service = CortaskService(tmp_path / "home", sandbox=Sandbox("ws://127.0.0.1:9/ws/chat", "00" * 32), environ={})
    return TestClient(create_app(service, token=TOKEN), base_url="http://127.0.0.1:8484", follow_redirects=False)


def test_the_printed_token_becomes_a_strict_http_only_cookie_and_leaves_the_address(client: TestClient) -> None:
    with client:
        assert client.get("/api/whatsapp").status_code == 401
        login = client.get(f"/?token={TOKEN}&tab=contacts")
        assert login.status_code == 303 and login.headers["location"] == "/?tab=contacts"
        cookie = login.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and TOKEN.lower() in cookie
        assert client.get("/api/whatsapp").status_code == 200  # the cookie now
        assert client.get("/?token=wrong").status_code == 401


def test_every_answer_carries_the_headers_and_the_cdn_docs_are_off(client: TestClient) -> None:
    with client:
        answers = [client.get(p) for p in ("/", "/app.js", "/api/health", "/api/whatsapp", "/openapi.json", "/docs")]
        for answer in answers:
            csp = answer.headers["content-security-policy"]
            assert "frame-ancestors 'none'" in csp and "script-src 'self';" in csp and "unsafe-inline" not in csp
            assert answer.headers["x-frame-options"] == "DENY"
            assert answer.headers["referrer-policy"] == "no-referrer"
            assert answer.headers["x-content-type-options"] == "nosniff"
        assert answers[2].json() == {"ok": True}  # open, and says nothing
        assert answers[4].status_code == 401  # the schema, behind the token
        docs = client.get("/docs", headers={"Authorization": f"Bearer {TOKEN}"})
        assert docs.status_code == 404 and "/openapi.json lists" in docs.json()["error"]  # not "see /docs"
        assert client.get("/redoc").status_code == 404


def test_the_page_has_no_inline_script_or_style() -> None:
    page = (Path(create_app.__code__.co_filename).parent / "static" / "index.html").read_text()
    assert "<script>" not in page and "<style" not in page and " style=" not in page
    assert " onclick=" not in page and "javascript:" not in page
    assert "http://" not in page and "https://" not in page  # no third-party origin
