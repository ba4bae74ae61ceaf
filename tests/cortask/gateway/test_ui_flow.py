"""The person's path through the web UI, in Debian's Chromium driven by Playwright: add the
channel, generate a QR code, the phone scans what the page shows, linked without a reload, add a
trusted contact, that contact gets answers and an unknown number gets nothing, stop, log out."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import zxingcpp
from PIL import Image
from playwright.sync_api import expect
from testkit.gateway import bearer
from testkit.page import chromium, inbox_texts, save_shot, serve_on_wasim, sim_request

pytestmark = pytest.mark.e2e

GRACE, EVE = "+447911123456", "+33612345678"


@pytest.fixture
def product(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    with serve_on_wasim(tmp_path) as found:
        yield found


def test_link_trust_chat_stop_and_log_out_in_the_browser(product: tuple[str, str, Path]) -> None:
    url, control, home = product
    with chromium() as browser:
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
        save_shot(page, "1-qr-shown")

        # The code on the page is exactly the string Baileys produced, and the phone can scan it.
        produced = httpx.get(url + "api/whatsapp", headers=bearer(home)).json()["qr"]["qr"]
        picture = Image.open(io.BytesIO(qr_image.screenshot()))
        decoded = [r.text for r in zxingcpp.read_barcodes(picture)]
        assert decoded == [produced]
        sim_request(control, "POST", "/scan", {"qr": decoded[0]})
        expect(page.get_by_test_id("status-state")).to_have_attribute("data-state", "open", timeout=30_000)  # no reload
        expect(qr_image).to_be_hidden()
        save_shot(page, "2-linked")

        # A trusted contact, added in the table, gets answers; the page shows the activity.
        page.get_by_test_id("contact-phone").fill("+44 7911 123456")
        page.get_by_test_id("contact-name").fill("Grace")
        page.get_by_test_id("contact-permission").select_option("write")
        page.get_by_test_id("contact-add").click()
        expect(page.locator(f'[data-testid="contacts-table"] [data-phone="{GRACE}"]')).to_be_visible()
        sim_request(control, "POST", "/contacts", {"phone": GRACE, "name": "Grace"})
        sim_request(control, "POST", "/contacts", {"phone": EVE, "name": "Eve"})
        sim_request(control, "POST", "/send", {"from": GRACE, "text": "hello from the browser test"})
        deadline = time.monotonic() + 30
        while not inbox_texts(control, GRACE) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert inbox_texts(control, GRACE) == ["Echo: hello from the browser test"]
        expect(page.get_by_test_id("activity-list")).to_contain_text(re.compile("replied", re.I), timeout=10_000)

        # An unknown number gets nothing at all.
        eve_message = sim_request(control, "POST", "/send", {"from": EVE, "text": "let me in"})["id"]  # type: ignore[index]
        expect(page.get_by_test_id("activity-list")).to_contain_text(EVE[1:], timeout=10_000)
        activity = httpx.get(url + "api/activity", headers=bearer(home)).json()
        assert [(a["kind"], a.get("reason")) for a in activity if a["message_id"] == eve_message] == [
            ("ignored", "not_allowed")
        ]
        inbox = sim_request(control, "GET", f"/inbox?contact=%2B{EVE[1:]}")["inbox"]  # type: ignore[index]
        assert [x for x in inbox if x["type"] in ("message", "chatstate")] == []
        save_shot(page, "3-chatting")

        # Stop asks first, unlinks on WhatsApp and removes the stored credentials; with nothing
        # linked any more, Log out (forget the link here) has nothing to do and is off (issue #17).
        page.get_by_test_id("stop").click()
        page.get_by_test_id("confirm-ok").click()
        expect(page.get_by_test_id("status-state")).to_have_attribute("data-state", "unlinked", timeout=20_000)
        devices = sim_request(control, "GET", "/devices")["accounts"][0]["devices"]  # type: ignore[index]
        assert [d["linked"] for d in devices] == [False]
        expect(page.get_by_test_id("logout")).to_be_disabled()
        expect(page.get_by_test_id("status-state")).to_have_attribute("data-state", "unlinked")
        assert not (home / "whatsapp-auth").exists()
        save_shot(page, "4-logged-out")
