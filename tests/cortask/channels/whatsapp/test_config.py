"""Configuration that scripts rely on: CORTASK_HOME, and the sandbox only when asked for."""

from __future__ import annotations

from pathlib import Path

import pytest

from cortask.channels.whatsapp.config import MAX_MESSAGE_CHARS, ConfigError, Sandbox, WhatsAppConfig
from cortask.channels.whatsapp.flood import FloodPolicy
from cortask.channels.whatsapp.pacing import PacingPolicy
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


def test_flood_limits_come_from_the_environment_or_default() -> None:
    assert "flood" not in WhatsAppConfig.tuning_from_env({})
    tuned = WhatsAppConfig.tuning_from_env({"CORTASK_WHATSAPP_SENDER_LIMIT_PER_MINUTE": "5"})
    assert tuned["flood"] == FloodPolicy(per_minute=5)
    assert WhatsAppConfig(auth_dir=Path("x")).flood == FloodPolicy()
    for bad in ("0", "-3", "many"):
        with pytest.raises(ConfigError, match="CORTASK_WHATSAPP_CHAT_QUEUE_LIMIT must be a whole number"):
            WhatsAppConfig.tuning_from_env({"CORTASK_WHATSAPP_CHAT_QUEUE_LIMIT": bad})


def test_a_benchmark_can_pace_replies_faster_and_a_bad_rate_is_refused() -> None:
    assert "pacing" not in WhatsAppConfig.tuning_from_env({})
    tuned = WhatsAppConfig.tuning_from_env({"CORTASK_WHATSAPP_PACING_PER_SECOND": "4"})
    assert tuned["pacing"] == PacingPolicy(rate_per_second=4.0)
    for bad in ("fast", "0", "-1"):
        with pytest.raises(ConfigError, match="CORTASK_WHATSAPP_PACING_PER_SECOND must be a number"):
            WhatsAppConfig.tuning_from_env({"CORTASK_WHATSAPP_PACING_PER_SECOND": bad})


def test_the_part_size_is_set_from_the_environment_within_whatsapps_limit() -> None:
    assert WhatsAppConfig.tuning_from_env({}).get("max_part_chars") is None
    assert WhatsAppConfig.tuning_from_env({"CORTASK_WHATSAPP_MAX_PART_CHARS": "1000"})["max_part_chars"] == 1000
    for bad in ("99", "65537", "many", "-5"):
        with pytest.raises(ConfigError, match="CORTASK_WHATSAPP_MAX_PART_CHARS must be a whole number from 100"):
            WhatsAppConfig.tuning_from_env({"CORTASK_WHATSAPP_MAX_PART_CHARS": bad})
    assert MAX_MESSAGE_CHARS == 65_536
