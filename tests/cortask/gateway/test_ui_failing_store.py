"""The page says when the database cannot be written (issue #13): `cortask serve` and wasim as
processes, Debian's Chromium, another process holding the database locked past the busy timeout.
The note shows while it lasts, goes when it clears, and the message is answered exactly once."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright
from testkit.gateway import bearer, printed_url
from testkit.paths import ROOT
from testkit.ports import free_port

from cortask.store.db import BUSY_TIMEOUT_MS

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "test-artifacts" / "screenshots"
GRACE = "+447911123456"
HOLD_LOCK = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("COMMIT")
"""


@pytest.fixture
def product(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    sim = subprocess.Popen(
        [sys.executable, "-m", "wasim", "serve", "--state", str(tmp_path / "wasim")], stdout=subprocess.PIPE, text=True
    )
    assert sim.stdout is not None
    info = json.loads(sim.stdout.readline())
    home = tmp_path / "home"
    env = {
        **os.environ,
        "CORTASK_HOME": str(home),
        "CORTASK_WHATSAPP_SANDBOX_URL": info["url"],
        "CORTASK_WHATSAPP_SANDBOX_ROOT_KEY": info["root_public_key"],
    }
    port = free_port()
    gateway = subprocess.Popen(
        [sys.executable, "-m", "cortask", "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE, text=True
    )
    assert gateway.stdout is not None
    line = gateway.stdout.readline()
    assert "Cortask is ready" in line, line
    try:
        yield printed_url(line), info["control_url"], home
    finally:
        for proc in (gateway, sim):
            proc.terminate()
            proc.wait(20)


def _control(control: str, method: str, path: str, body: object = None) -> object:
    resp = httpx.request(method, control + path, json=body, timeout=30)
    assert resp.status_code < 400, resp.text
    return resp.json()


def _shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _inbox_texts(control: str, phone: str) -> list[str]:
    data = _control(control, "GET", f"/inbox?contact=%2B{phone[1:]}")
    return [x["text"] for x in data["inbox"] if x["type"] == "message"]  # type: ignore[index]


def test_the_page_says_the_database_is_failing_and_the_message_is_answered_once_after(
    product: tuple[str, str, Path],
) -> None:
    url, control, home = product
    assert Path(CHROMIUM).exists(), "Debian's chromium is needed: scripts/setup installs it (apt-get install chromium)"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(url)
        url = page.url
        page.get_by_test_id("add-channel").click()
        page.get_by_test_id("generate-qr").click()
        expect(page.get_by_test_id("qr-image")).to_be_visible(timeout=20_000)
        produced = httpx.get(url + "api/whatsapp", headers=bearer(home)).json()["qr"]["qr"]
        _control(control, "POST", "/scan", {"qr": produced})
        expect(page.get_by_test_id("status-state")).to_have_attribute("data-state", "open", timeout=30_000)
        page.get_by_test_id("contact-phone").fill("+44 7911 123456")
        page.get_by_test_id("contact-permission").select_option("write")
        page.get_by_test_id("contact-add").click()
        expect(page.locator(f'[data-testid="contacts-table"] [data-phone="{GRACE}"]')).to_be_visible()
        _control(control, "POST", "/contacts", {"phone": GRACE, "name": "Grace"})
        notes = page.get_by_test_id("status-notes")
        expect(notes).to_be_hidden()

        seconds = BUSY_TIMEOUT_MS / 1000 + 8
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, str(home / "cortask.db"), str(seconds)], stdout=subprocess.PIPE, text=True
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
            _control(control, "POST", "/send", {"from": GRACE, "text": "are you there?"})
            expect(notes).to_contain_text("cannot write to its database", timeout=(seconds - 1) * 1000)
            expect(notes).to_contain_text("recorded as soon as it works again")
            assert _inbox_texts(control, GRACE) == []
            status = httpx.get(url + "api/whatsapp", headers=bearer(home)).json()["status"]
            assert [n["kind"] for n in status["notes"]] == ["store_failing"]
            _shot(page, "store-1-database-failing")
            holder.wait(seconds + 5)
        finally:
            holder.kill()
            holder.wait()

        expect(notes).to_be_hidden(timeout=30_000)
        deadline = time.monotonic() + 30
        while not _inbox_texts(control, GRACE) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2)  # nothing more comes
        assert _inbox_texts(control, GRACE) == ["Echo: are you there?"]
        expect(page.get_by_test_id("activity-list")).to_contain_text(re.compile("Database back"), timeout=10_000)
        _shot(page, "store-2-database-back")
        browser.close()
