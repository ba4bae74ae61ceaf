"""What `cortask whatsapp status` says when Cortask is not running: one case per stored state."""

from __future__ import annotations

import pytest

from cortask.app.status import stored_status
from cortask.channels.whatsapp.authpeek import LinkInfo
from cortask.store import WhatsAppSettings

ME = "4915123456789:3@s.whatsapp.net"
LINKED = LinkInfo(True, ME)


@pytest.mark.parametrize(
    ("info", "settings", "state", "says", "action"),
    [
        (LinkInfo(False), WhatsAppSettings(1), "unlinked", "not linked", "cortask whatsapp link"),
        (LINKED, WhatsAppSettings(1, enabled=True), "linked", f"linked as {ME}", "cortask serve"),
        (LINKED, WhatsAppSettings(1, enabled=True, paused=True), "paused", "paused", "cortask whatsapp start"),
        (LINKED, WhatsAppSettings(1), "linked", "not added", "cortask whatsapp start"),
        (LinkInfo(False, problem="the credentials cannot be read"), WhatsAppSettings(1), "credentials_unreadable",
         "cannot be read", "logout"),
    ],
)  # fmt: skip
def test_each_stored_state_is_named_and_says_the_service_is_not_running(
    info: LinkInfo, settings: WhatsAppSettings, state: str, says: str, action: str
) -> None:
    status = stored_status(info, settings, sandbox=False).model_dump(mode="json")
    assert status["state"] == state and status["running"] is False
    assert says in status["sentence"] and action in status["action"]
    if state != "credentials_unreadable":
        assert "Cortask is not running" in status["sentence"]
    assert (status["enabled"], status["paused"], status["linked"]) == (settings.enabled, settings.paused, info.linked)


def test_the_holder_of_the_link_and_the_sandbox_are_named() -> None:
    held = LinkInfo(True, ME, in_use_by="process 42 (cortask whatsapp link) on box since now")
    status = stored_status(held, WhatsAppSettings(1, enabled=True), sandbox=True).model_dump(mode="json")
    assert "in use by process 42 (cortask whatsapp link)" in status["sentence"]
    assert status["sentence"].endswith("Sandbox: this is wasim, not the real WhatsApp.")
    assert (status["in_use_by"], status["sandbox"]) == (held.in_use_by, True)
