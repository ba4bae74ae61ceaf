"""Linking without a camera in the web UI (issue #15): "Link with phone number instead" on the
settings page, the code typed on the simulated phone page; a wrong code first, which ends in a
sentence saying what to do, then a new code that links. Debian's Chromium, driven by Playwright,
on `cortask demo` (real gateway, real sidecar and Baileys, wasim)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect
from testkit.page import chromium, serve_demo

from cortask.demo import DEMO_OWN_PHONE

pytestmark = pytest.mark.e2e

SHOTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "screenshots"
CODE = re.compile(r"^[0-9A-Z]{4}-[0-9A-Z]{4}$")


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[str, str]]:
    with serve_demo(tmp_path / "home") as found:
        yield found


def test_link_by_code_through_the_ui_and_the_phone_page(demo: tuple[str, str]) -> None:
    url, phone_url = demo
    SHOTS.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        settings = browser.new_page(viewport={"width": 1280, "height": 1100})
        settings.goto(url)
        # QR first, then the code instead, then back to the QR: one linking session throughout.
        settings.get_by_test_id("generate-qr").click()
        expect(settings.get_by_test_id("qr-image")).to_be_visible(timeout=20_000)
        settings.get_by_test_id("code-toggle").click()
        expect(settings.get_by_test_id("qr-image")).to_be_hidden()
        settings.get_by_test_id("code-phone").fill("12345")
        settings.get_by_test_id("code-request").click()
        expect(settings.get_by_test_id("code-error")).to_contain_text("too short", timeout=10_000)
        settings.get_by_test_id("code-phone").fill("+49 30 1234567")  # a real number, no WhatsApp account
        settings.get_by_test_id("code-request").click()
        expect(settings.get_by_test_id("code-error")).to_contain_text("no account for +49301234567", timeout=30_000)
        expect(settings.get_by_test_id("code-error")).to_contain_text("QR code instead")
        settings.get_by_test_id("code-phone").fill("+49 151 12345678")
        settings.get_by_test_id("code-request").click()
        code = settings.get_by_test_id("code-value")
        expect(code).to_have_text(CODE, timeout=30_000)
        expect(settings.get_by_test_id("code-countdown")).to_contain_text("expires in")
        settings.get_by_test_id("code-back").click()
        expect(settings.get_by_test_id("qr-image")).to_be_visible(timeout=10_000)
        settings.get_by_test_id("code-toggle").click()
        settings.get_by_test_id("code-phone").fill(DEMO_OWN_PHONE)
        settings.get_by_test_id("code-request").click()
        expect(code).to_have_text(CODE, timeout=30_000)
        first = code.inner_text()
        settings.screenshot(path=str(SHOTS / "15-code-shown.png"))
        settings.reload()  # a page opened again shows the code waiting to be typed, with its countdown
        expect(code).to_have_text(first, timeout=20_000)
        expect(settings.get_by_test_id("code-countdown")).to_contain_text("expires in")

        # A wrong code typed on the phone: refused there, and the page says what to do.
        phone = browser.new_page(viewport={"width": 480, "height": 900})
        phone.goto(phone_url)
        wrong = "ZZZZ-ZZZZ" if first != "ZZZZ-ZZZZ" else "YYYY-YYYY"
        phone.get_by_test_id("phone-link-code").fill(wrong)
        phone.get_by_test_id("phone-pair").click()
        expect(phone.get_by_test_id("phone-pair-result")).to_contain_text("Couldn't link device", timeout=30_000)
        error = settings.get_by_test_id("code-error")
        expect(error).to_contain_text("refused the code", timeout=20_000)
        expect(error).to_contain_text("Ask for a new code")
        settings.screenshot(path=str(SHOTS / "15-code-refused.png"))

        # A new code on request, typed right: linked, with the same live states as the QR path.
        settings.get_by_test_id("code-request").click()
        expect(code).to_have_text(CODE, timeout=30_000)
        assert code.inner_text() != first, "a new code, not the refused one"
        refused_next = code.inner_text()
        settings.get_by_test_id("code-new").click()  # "Get a new code" in the same session
        expect(code).not_to_have_text(refused_next, timeout=30_000)
        expect(code).to_have_text(CODE)
        phone.get_by_test_id("phone-link-code").fill(code.inner_text().lower())
        phone.get_by_test_id("phone-pair").click()
        expect(phone.get_by_test_id("phone-pair-result")).to_contain_text("Linked as", timeout=30_000)
        expect(settings.get_by_test_id("status-state")).to_have_attribute("data-state", "open", timeout=30_000)
        expect(settings.get_by_test_id("code-link")).to_be_hidden()
        settings.screenshot(path=str(SHOTS / "15-code-linked.png"))
        phone.screenshot(path=str(SHOTS / "15-phone-page-code.png"))
