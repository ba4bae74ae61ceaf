"""Configuration of the WhatsApp channel, and where things live on disk.

`CORTASK_HOME` relocates `~/.cortask` (and with it the default auth directory). The sandbox is
used only when set explicitly, here or by `CORTASK_WHATSAPP_SANDBOX_URL` and
`CORTASK_WHATSAPP_SANDBOX_ROOT_KEY`; never by default.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cortask.channels.whatsapp.flood import FloodPolicy
from cortask.channels.whatsapp.groups import GroupRule
from cortask.channels.whatsapp.pacing import PacingPolicy
from cortask.channels.whatsapp.reconnect import ReconnectPolicy
from cortask.channels.whatsapp.retry import RetryPolicy
from cortask.contacts.access import AccessPolicy, TrustedContact
from cortask.home import cortask_home


class ConfigError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Sandbox:
    """A wasim server to use instead of WhatsApp: its WebSocket URL and root public key (hex)."""

    url: str
    root_key: str

    def __post_init__(self) -> None:
        if not re.fullmatch(r"wss?://[^\s]+", self.url):
            raise ConfigError(f"the sandbox URL must be ws://host:port/ws/chat, got {self.url!r}")
        if not re.fullmatch(r"[0-9a-fA-F]{64}", self.root_key):
            raise ConfigError("the sandbox root key must be 64 hex characters (wasim prints it as root_public_key)")


MAX_MESSAGE_CHARS = 65_536


@dataclass(frozen=True, slots=True)
class WhatsAppConfig:
    auth_dir: Path
    sandbox: Sandbox | None = None
    trusted_contacts: tuple[TrustedContact, ...] = ()
    allowed_users: tuple[str, ...] = ()
    open_to_everyone: bool = False
    answer_groups: bool = False
    self_chat: bool = False  # the owner talks to the agent in their own chat (issue #14)
    group_rule: GroupRule = field(default_factory=GroupRule)  # mention-gated groups (issue #14)
    default_region: str | None = None
    qr_session_seconds: float = 60.0
    reconnect: ReconnectPolicy = field(default_factory=ReconnectPolicy)
    typing_refresh_seconds: float = 8.0  # WhatsApp drops a typing indicator after about 10 s
    keep_alive_ms: int | None = None  # Baileys' default (30 s) unless tests shorten it
    sidecar_log_level: str = "info"
    # Messages delivered late (WhatsApp's offline queue) older than this are recorded, not answered.
    max_message_age_seconds: float = 24 * 3600
    pacing: PacingPolicy | None = field(default_factory=PacingPolicy)  # None: send as fast as possible
    flood: FloodPolicy = field(default_factory=FloodPolicy)  # per-sender limits, chat queue bound
    # The sidecar must answer a ping within `watchdog_timeout_seconds`, asked every interval; a
    # sidecar that does not is killed and handled as a lost connection. Never based on message
    # silence: a quiet personal account is normal.
    watchdog_interval_seconds: float = 30.0
    watchdog_timeout_seconds: float = 10.0
    # A journal that cannot be written now (locked, disk full): retried until it can, never given up.
    store_retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(0.5, 10.0))
    # A reply whose send keeps failing: retried, then marked failed (other chats go on meanwhile).
    send_retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(2.0, 60.0, attempts=5))
    # WhatsApp takes at most 65,536 characters in a message; longer replies go out in parts.
    max_part_chars: int = MAX_MESSAGE_CHARS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, **overrides: object) -> WhatsAppConfig:
        auth_dir = cortask_home(environ) / "whatsapp-auth"
        url = environ.get("CORTASK_WHATSAPP_SANDBOX_URL")
        key = environ.get("CORTASK_WHATSAPP_SANDBOX_ROOT_KEY")
        if bool(url) != bool(key):
            raise ConfigError(
                "set both CORTASK_WHATSAPP_SANDBOX_URL and CORTASK_WHATSAPP_SANDBOX_ROOT_KEY to use the sandbox"
            )
        sandbox = Sandbox(url, key) if url and key else None
        values: dict[str, object] = {"auth_dir": auth_dir, "sandbox": sandbox, **overrides}
        return cls(**values)  # type: ignore[arg-type]

    @staticmethod
    def tuning_from_env(environ: Mapping[str, str] = os.environ) -> dict[str, object]:
        """Timing overrides for tests and benchmarks that run the real service as a process:
        `CORTASK_WHATSAPP_RECONNECT_BASE_SECONDS` (first reconnect delay, default 5)."""
        overrides: dict[str, object] = {}
        base = environ.get("CORTASK_WHATSAPP_RECONNECT_BASE_SECONDS")
        if base:
            try:
                overrides["reconnect"] = dataclasses.replace(ReconnectPolicy(), base_delay=float(base))
            except ValueError:
                raise ConfigError(
                    f"CORTASK_WHATSAPP_RECONNECT_BASE_SECONDS must be a number of seconds ≥ 0 (got {base!r})"
                ) from None
        flood = _flood_from_env(environ)
        if flood is not None:
            overrides["flood"] = flood
        # The soak benchmark answers a day of 50 contacts in minutes: faster than a person types.
        rate = environ.get("CORTASK_WHATSAPP_PACING_PER_SECOND")
        if rate:
            try:
                overrides["pacing"] = PacingPolicy(rate_per_second=float(rate))
            except ValueError:
                raise ConfigError(
                    f"CORTASK_WHATSAPP_PACING_PER_SECOND must be a number of replies per second > 0 (got {rate!r})"
                ) from None
        overrides.update(_parts_from_env(environ))
        return overrides

    def access_policy(self) -> AccessPolicy:
        return AccessPolicy(
            self.trusted_contacts,
            self.allowed_users,
            open_to_everyone=self.open_to_everyone,
            default_region=self.default_region,
        )


# Flood control's limits, each optional: (environment variable, FloodPolicy field).
_FLOOD_ENV = (
    ("CORTASK_WHATSAPP_SENDER_LIMIT_PER_MINUTE", "per_minute"),
    ("CORTASK_WHATSAPP_OPEN_RUNS_PER_HOUR", "open_per_hour"),
    ("CORTASK_WHATSAPP_CHAT_QUEUE_LIMIT", "chat_queue"),
)


def _flood_from_env(environ: Mapping[str, str]) -> FloodPolicy | None:
    """Flood limits set in the environment (the defaults otherwise), or None when none is set."""
    limits: dict[str, int] = {}
    for name, field_name in _FLOOD_ENV:
        text = environ.get(name)
        if not text:
            continue
        if not text.isdigit() or int(text) < 1:
            raise ConfigError(f"{name} must be a whole number of at least 1 (got {text!r})")
        limits[field_name] = int(text)
    return dataclasses.replace(FloodPolicy(), **limits) if limits else None


def _parts_from_env(environ: Mapping[str, str]) -> dict[str, object]:
    """`CORTASK_WHATSAPP_MAX_PART_CHARS`: the longest part a long reply is sent in (default and
    most 65,536, WhatsApp's limit), for people who prefer shorter messages."""
    text = environ.get("CORTASK_WHATSAPP_MAX_PART_CHARS")
    if not text:
        return {}
    if not text.isdigit() or not 100 <= int(text) <= MAX_MESSAGE_CHARS:
        raise ConfigError(
            f"CORTASK_WHATSAPP_MAX_PART_CHARS must be a whole number from 100 to {MAX_MESSAGE_CHARS} (got {text!r})"
        )
    return {"max_part_chars": int(text)}
