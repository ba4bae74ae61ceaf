"""Shared fixtures: a wasim on loopback and real Baileys clients in Node processes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from wasim.server.app import Wasim
from wasim.testing.baileys import BaileysDriver

logging.getLogger("wasim").setLevel(logging.INFO)


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[Wasim]:
    async with Wasim(tmp_path / "wasim-state") as server:
        yield server


@pytest.fixture
async def make_baileys(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[BaileysDriver]]]:
    """Start real Baileys processes; each gets its own auth directory unless one is given."""
    started: list[BaileysDriver] = []

    async def start(name: str = "auth", auth_dir: Path | None = None) -> BaileysDriver:
        driver = await BaileysDriver(auth_dir or tmp_path / name).start()
        started.append(driver)
        return driver

    yield start
    for driver in started:
        await driver.close()
