"""Fixtures for the channel's end-to-end tests: wasim on loopback and channels pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from testkit.channel import MakeChannel, echo

from cortask.channels.whatsapp.channel import WhatsAppChannel
from cortask.channels.whatsapp.config import Sandbox, WhatsAppConfig
from cortask.channels.whatsapp.journal import Journal
from wasim.server.app import Wasim


@pytest.fixture
async def make_channel(tmp_path: Path) -> AsyncIterator[MakeChannel]:
    """Channels on the given wasim; each closes (keeping its link) when the test ends."""
    made: list[WhatsAppChannel] = []

    async def make(
        sim: Wasim, handler: Any = echo, auth: str = "whatsapp-auth", ledger: Journal | None = None, **config: Any
    ) -> WhatsAppChannel:
        cfg = WhatsAppConfig(
            auth_dir=tmp_path / auth, sandbox=Sandbox(sim.url, sim.root_public_key), sidecar_log_level="warn", **config
        )
        channel = WhatsAppChannel(cfg, handler, ledger)
        made.append(channel)
        return channel

    yield make
    for channel in made:
        await channel.close()
