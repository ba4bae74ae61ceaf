"""The page's status card shows what Cortask keeps on disk (issue #13): the database's size and
its oldest record, with the retention rule on hover. Debian's Chromium, a real `cortask serve`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect
from testkit.gateway import printed_url
from testkit.page import chromium
from testkit.paths import ROOT
from testkit.ports import free_port

from cortask.store import Store

pytestmark = pytest.mark.e2e

SHOTS = ROOT / "test-artifacts" / "screenshots"
LONG_AGO = datetime.now(UTC) - timedelta(days=12)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """`cortask serve` over a home whose channel is added and whose journal goes back 12 days."""
    home = tmp_path / "home"
    with Store.open(home / "cortask.db", clock=lambda: LONG_AGO) as store:
        store.whatsapp.set_enabled(store.workspaces.ensure_default().id, True)
        store.journal.record("1@s.whatsapp.net", "2@s.whatsapp.net", "OLD", "+4915123456789", "hi")
    env = {
        **os.environ,
        "CORTASK_HOME": str(home),
        # a sandbox nobody listens on: the channel never reaches WhatsApp's real servers
        "CORTASK_WHATSAPP_SANDBOX_URL": f"ws://127.0.0.1:{free_port()}/ws/chat",
        "CORTASK_WHATSAPP_SANDBOX_ROOT_KEY": "11" * 32,
    }
    command = [sys.executable, "-m", "cortask", "serve", "--port", str(free_port())]
    gateway = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    assert gateway.stdout is not None
    line = gateway.stdout.readline()
    assert "Cortask is ready" in line, line
    try:
        yield printed_url(line)
    finally:
        gateway.terminate()
        gateway.wait(20)


def test_the_status_card_shows_the_database_size_and_its_oldest_record(served: str) -> None:
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(served)
        storage = page.get_by_test_id("status-storage")
        expect(storage).to_be_visible(timeout=15_000)
        expect(storage).to_contain_text(" KB")
        expect(storage).to_contain_text("since")
        expect(storage.locator("time")).to_have_attribute("datetime", re.compile("^" + LONG_AGO.strftime("%Y-%m-%dT")))
        title = storage.get_attribute("title") or ""
        assert "the oldest record kept is 12 days old" in title, title
        assert "older than 30 days are pruned" in title, title
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "storage-status-card.png"), full_page=True)
