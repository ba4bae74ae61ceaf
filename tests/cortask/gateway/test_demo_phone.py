"""The demo as a visitor uses it: the settings page shows a QR, the simulated phone page "scans"
a screenshot of it, then the visitor chats as the trusted contact (typing, then the reply) and as
a stranger (silence). Debian's Chromium, driven by Playwright."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright
from testkit.gateway import printed_url
from testkit.paths import ROOT

pytestmark = pytest.mark.e2e

SHOTS = ROOT / "test-artifacts" / "screenshots"


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[str, str]]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "CORTASK_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cortask", "demo", "--port", str(port)], env=env, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(3)]
    phone = re.search(r"(http://127\.0\.0\.1:\d+/phone)", "".join(lines))
    assert "Cortask is ready" in lines[0] and phone, lines
    try:
        yield printed_url(lines[0]), phone.group(1)  # the address with the token, as a visitor opens it
    finally:
        proc.terminate()
        proc.wait(20)


def test_visitor_links_with_the_phone_page_and_chats(demo: tuple[str, str], tmp_path: Path) -> None:
    url, phone_url = demo
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
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
        browser.close()
