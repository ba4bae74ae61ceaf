"""The demo as a visitor uses it: the settings page shows a QR, the simulated phone page "scans"
a screenshot of it, then the visitor chats as the trusted contact (typing, then the reply) and as
a stranger (silence). Debian's Chromium, driven by Playwright."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect
from testkit.page import chromium, serve_demo
from testkit.paths import ROOT

pytestmark = pytest.mark.e2e

SHOTS = ROOT / "test-artifacts" / "screenshots"


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[str, str]]:
    with serve_demo(tmp_path / "home") as found:
        yield found


def test_visitor_links_with_the_phone_page_and_chats(demo: tuple[str, str], tmp_path: Path) -> None:
    url, phone_url = demo
    with chromium() as browser:
        settings = browser.new_page(viewport={"width": 1280, "height": 1000})
        settings.goto(url)
        settings.get_by_test_id("generate-qr").click()
        qr = settings.get_by_test_id("qr-image")
        expect(qr).to_be_visible(timeout=20_000)
        screenshot = tmp_path / "qr.png"
        qr.screenshot(path=str(screenshot))

        phone = browser.new_page(viewport={"width": 480, "height": 900})
        phone.goto(phone_url)
        phone.get_by_test_id("phone-qr-file").set_input_files(str(screenshot))
        phone.get_by_test_id("phone-scan").click()
        expect(phone.get_by_test_id("phone-scan-result")).to_contain_text("Linked as", timeout=20_000)
        expect(settings.get_by_test_id("status-state")).to_have_attribute("data-state", "open", timeout=30_000)

        phone.get_by_test_id("phone-contact").select_option("+4915123456789")
        phone.get_by_test_id("phone-text").fill("hi from the phone page")
        phone.get_by_test_id("phone-send").click()
        expect(phone.get_by_test_id("phone-chat")).to_contain_text("Echo: hi from the phone page", timeout=20_000)
        SHOTS.mkdir(parents=True, exist_ok=True)
        phone.screenshot(path=str(SHOTS / "5-phone-page.png"))
