"""The person's path through the web UI, in Debian's Chromium driven by Playwright: add the
channel, generate a QR code, the phone scans what the page shows, linked without a reload, add a
trusted contact, that contact gets answers and an unknown number gets nothing, stop, log out."""

from __future__ import annotations

import io
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
import zxingcpp
from PIL import Image
from playwright.sync_api import Page, expect, sync_playwright
from testkit.gateway import bearer, printed_url
from testkit.paths import ROOT
from testkit.ports import free_port

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "test-artifacts" / "screenshots"
GRACE, EVE = "+447911123456", "+33612345678"


@pytest.fixture
def product(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """wasim and `cortask serve` configured to use it as its WhatsApp, as separate processes; the
    address `cortask serve` printed (with its token), wasim's control URL and the home."""
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


def test_link_trust_chat_stop_and_log_out_in_the_browser(product: tuple[str, str, Path]) -> None:
    url, control, home = product
    assert Path(CHROMIUM).exists(), "Debian's chromium is needed: scripts/setup installs it (apt-get install chromium)"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(url)  # the printed address: its token becomes a cookie and leaves the address bar
        assert page.url == url.split("?")[0], page.url
        url = page.url
        expect(page.get_by_test_id("sandbox-badge")).to_be_visible()
        page.get_by_test_id("add-channel").click()
        page.get_by_test_id("generate-qr").click()
        qr_image = page.get_by_test_id("qr-image")
        expect(qr_image).to_be_visible(timeout=20_000)
        expect(page.get_by_test_id("qr-countdown")).to_contain_text("s")
        _shot(page, "1-qr-shown")

        # The code on the page is exactly the string Baileys produced, and the phone can scan it.
        produced = httpx.get(url + "api/whatsapp", headers=bearer(home)).json()["qr"]["qr"]
        picture = Image.open(io.BytesIO(qr_image.screenshot()))
        decoded = [r.text for r in zxingcpp.read_barcodes(picture)]
        assert decoded == [produced]
        _control(control, "POST", "/scan", {"qr": decoded[0]})
        expect(page.get_by_test_id("status-state")).to_have_attribute("data-state", "open", timeout=30_000)  # no reload
        expect(qr_image).to_be_hidden()
        _shot(page, "2-linked")

        # A trusted contact, added in the table, gets answers; the page shows the activity.
        page.get_by_test_id("contact-phone").fill("+44 7911 123456")
        page.get_by_test_id("contact-name").fill("Grace")
        page.get_by_test_id("contact-permission").select_option("write")
        page.get_by_test_id("contact-add").click()
        expect(page.locator(f'[data-testid="contacts-table"] [data-phone="{GRACE}"]')).to_be_visible()
        _control(control, "POST", "/contacts", {"phone": GRACE, "name": "Grace"})
        _control(control, "POST", "/contacts", {"phone": EVE, "name": "Eve"})
        _control(control, "POST", "/send", {"from": GRACE, "text": "hello from the browser test"})
        deadline = time.monotonic() + 30
        while not _inbox_texts(control, GRACE) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _inbox_texts(control, GRACE) == ["Echo: hello from the browser test"]
        expect(page.get_by_test_id("activity-list")).to_contain_text(re.compile("replied", re.I), timeout=10_000)

        # An unknown number gets nothing at all.
        eve_message = _control(control, "POST", "/send", {"from": EVE, "text": "let me in"})["id"]  # type: ignore[index]
        expect(page.get_by_test_id("activity-list")).to_contain_text(EVE[1:], timeout=10_000)
        activity = httpx.get(url + "api/activity", headers=bearer(home)).json()
        assert [(a["kind"], a.get("reason")) for a in activity if a["message_id"] == eve_message] == [
            ("ignored", "not_allowed")
        ]
        inbox = _control(control, "GET", f"/inbox?contact=%2B{EVE[1:]}")["inbox"]  # type: ignore[index]
        assert [x for x in inbox if x["type"] in ("message", "chatstate")] == []
        _shot(page, "3-chatting")

        # Stop asks first, unlinks on WhatsApp and removes the stored credentials; with nothing
        # linked any more, Log out (forget the link here) has nothing to do and is off (issue #17).
        page.get_by_test_id("stop").click()
        page.get_by_test_id("confirm-ok").click()
        expect(page.get_by_test_id("status-state")).to_have_attribute("data-state", "unlinked", timeout=20_000)
        devices = _control(control, "GET", "/devices")["accounts"][0]["devices"]  # type: ignore[index]
        assert [d["linked"] for d in devices] == [False]
        expect(page.get_by_test_id("logout")).to_be_disabled()
        expect(page.get_by_test_id("status-state")).to_have_attribute("data-state", "unlinked")
        assert not (home / "whatsapp-auth").exists()
        _shot(page, "4-logged-out")
        browser.close()
