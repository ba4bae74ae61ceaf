"""Configuration that scripts rely on: CORTASK_HOME, and the sandbox only when asked for."""

from __future__ import annotations

from pathlib import Path

import pytest

from cortask.channels.whatsapp.config import ConfigError, Sandbox, WhatsAppConfig
from cortask.home import cortask_home

KEY = "ab" * 32


def test_cortask_home_relocates_the_auth_directory(tmp_path: Path) -> None:
    config = WhatsAppConfig.from_env({"CORTASK_HOME": str(tmp_path / "elsewhere")})
    assert config.auth_dir == tmp_path / "elsewhere" / "whatsapp-auth"
    assert cortask_home({}) == Path.home() / ".cortask"


def test_no_sandbox_unless_explicitly_configured() -> None:
    assert WhatsAppConfig.from_env({}).sandbox is None
    config = WhatsAppConfig.from_env(
        {"CORTASK_WHATSAPP_SANDBOX_URL": "ws://127.0.0.1:8765/ws/chat", "CORTASK_WHATSAPP_SANDBOX_ROOT_KEY": KEY}
    )
    assert config.sandbox == Sandbox("ws://127.0.0.1:8765/ws/chat", KEY)


@pytest.mark.parametrize(
    ("env", "why"),
    [
        ({"CORTASK_WHATSAPP_SANDBOX_URL": "ws://127.0.0.1:1/ws/chat"}, "set both"),
        ({"CORTASK_WHATSAPP_SANDBOX_URL": "http://x", "CORTASK_WHATSAPP_SANDBOX_ROOT_KEY": KEY}, "ws://"),
        ({"CORTASK_WHATSAPP_SANDBOX_URL": "ws://h:1/ws/chat", "CORTASK_WHATSAPP_SANDBOX_ROOT_KEY": "xyz"}, "64 hex"),
    ],
)
def test_a_half_or_wrong_sandbox_setting_is_refused_with_a_reason(env: dict[str, str], why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        WhatsAppConfig.from_env(env)
