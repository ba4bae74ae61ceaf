"""Security promises, checked on the real thing: the link's files are private after linking and
messaging, message text never reaches a log above debug, the token check is constant-time, and
the gateway serves no file outside its UI."""

from __future__ import annotations

import hmac
import logging
import stat
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from testkit.channel import echo, link, texts_received

from cortask.channels.whatsapp.channel import WhatsAppChannel
from cortask.channels.whatsapp.config import Sandbox, WhatsAppConfig
from cortask.contacts.access import TrustedContact
from cortask.gateway.app import create_app
from cortask.service import CortaskService
from wasim.server.app import Wasim

ADA, EVE = "+4915123456789", "+33612345678"
SECRET = "the-quick-brown-secret-7d1f"  # a text that must never be logged above debug


async def converse(channel: WhatsAppChannel, sim: Wasim) -> None:
    """Link, then a trusted contact and a stranger each send the secret."""
    await link(channel, sim)
    sim.add_contact(ADA, "Ada")
    sim.add_contact(EVE, "Eve")
    await sim.messaging.send(ADA, f"please keep {SECRET} to yourself")
    await sim.events.wait_for("contact.received", lambda e: bool(texts_received(sim, ADA)), timeout=20)
    assert texts_received(sim, ADA) == [f"echo: please keep {SECRET} to yourself"]
    stranger = await sim.messaging.send(EVE, f"stranger says {SECRET}")
    await channel.wait_activity(lambda a: a["message_id"] == stranger and a["kind"] == "ignored")


@pytest.mark.e2e  # starts a process
async def test_linked_files_are_private_and_message_text_stays_out_of_info_logs(
    sim: Wasim, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # everything, so Baileys' own logs are forwarded too
    config = WhatsAppConfig(
        auth_dir=tmp_path / "whatsapp-auth",
        sandbox=Sandbox(sim.url, sim.root_public_key),
        sidecar_log_level="trace",  # Baileys' most talkative, so whatever it logs is checked too
        trusted_contacts=(TrustedContact.parse(ADA, "write"),),
    )
    channel = WhatsAppChannel(config, echo)
    try:
        await converse(channel, sim)
        assert_private(tmp_path / "whatsapp-auth")  # while linked and open (the WAL files exist now)
    finally:
        await channel.close()

    above_debug = [r for r in caplog.records if r.levelno > logging.DEBUG]
    assert above_debug, "no INFO+ records at all: the check below would prove nothing"
    leaks = [r.getMessage()[:300] for r in above_debug if SECRET in r.getMessage()]
    assert leaks == [], leaks
    assert_private(tmp_path / "whatsapp-auth")


def assert_private(auth: Path) -> None:
    assert stat.S_IMODE(auth.stat().st_mode) == 0o700
    files = [p for p in auth.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"auth.db", "owner.lock"}
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_the_token_is_compared_in_constant_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr("cortask.gateway.security.hmac.compare_digest", spy)
    service = CortaskService(tmp_path / "home", sandbox=Sandbox("ws://127.0.0.1:9/ws/chat", "00" * 32), environ={})
    app = create_app(service, bind_host="127.0.0.1", token="s3cret-t0ken")
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert client.get("/api/whatsapp", headers={"Authorization": "Bearer s3cret-t0kem"}).status_code == 401
        assert client.get("/api/whatsapp", headers={"Authorization": "Bearer s3cret-t0ken"}).status_code == 200
    assert (b"s3cret-t0kem", b"s3cret-t0ken") in compared and (b"s3cret-t0ken", b"s3cret-t0ken") in compared


@pytest.mark.parametrize(
    "path",
    [
        "/../../../../etc/passwd",
        "/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/static/../../../../etc/passwd",
        "/api/sessions/..%2F..%2F..%2Fetc%2Fpasswd/history",
        "//etc/passwd",
    ],
)
def test_the_gateway_serves_no_file_outside_its_ui(tmp_path: Path, path: str) -> None:
    service = CortaskService(tmp_path / "home", sandbox=Sandbox("ws://127.0.0.1:9/ws/chat", "00" * 32), environ={})
    token = "t" * 32
    app = create_app(service, token=token)
    with TestClient(app, base_url="http://127.0.0.1", headers={"Authorization": f"Bearer {token}"}) as client:
        response = client.get(path)
    assert "root:" not in response.text
    assert response.status_code in (200, 404), (path, response.status_code)
    if response.status_code == 404:
        assert response.json()["error"]
