"""The contacts panel in Debian's Chromium (Playwright) with real numbers (issue #13): a contact is
shown as the person wrote it, with its E.164 form, and with what WhatsApp said when asked: the
address it knows the number as, or that the number is not on WhatsApp. wasim registers the
Mexican contact as ``521…``, as WhatsApp does, and she gets an answer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect
from testkit.gateway import bearer
from testkit.page import chromium, link_by_qr, save_shot, serve_on_wasim, sim_request

pytestmark = pytest.mark.e2e

LUPITA, LUPITA_ADDRESS = "+525512345678", "5215512345678"


@pytest.fixture
def product(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    with serve_on_wasim(tmp_path) as found:
        yield found


def _add(page: Page, written: str, name: str) -> None:
    page.get_by_test_id("contact-phone").fill(written)
    page.get_by_test_id("contact-name").fill(name)
    page.get_by_test_id("contact-add").click()


def test_contacts_show_the_number_as_written_and_what_whatsapp_knows(product: tuple[str, str, Path]) -> None:
    url, control, home = product
    sim_request(control, "POST", "/contacts", {"phone": LUPITA, "name": "Lupita", "address": LUPITA_ADDRESS})
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(url)
        url = page.url
        link_by_qr(page, control, home)

        _add(page, "+52 1 55 1234 5678", "Lupita")
        row = page.locator(f'[data-testid="contacts-table"] [data-phone="{LUPITA}"]')
        expect(row.get_by_test_id("contact-row-written")).to_have_text("+52 1 55 1234 5678")
        expect(row.get_by_test_id("contact-row-e164")).to_have_text(LUPITA)
        expect(row.get_by_test_id("contact-row-note")).to_have_text(
            "WhatsApp knows this number as +52 1 55 1234 5678.", timeout=20_000
        )

        _add(page, "+52 55 8765 4321", "Nadie")
        nobody = page.locator('[data-testid="contacts-table"] [data-phone="+525587654321"]')
        expect(nobody.get_by_test_id("contact-row-written")).to_have_text("+52 55 8765 4321")
        expect(nobody.get_by_test_id("contact-row-note")).to_contain_text("Not on WhatsApp", timeout=20_000)

        _add(page, "+49 151 23456789", "Ada")  # not in wasim either; written as E.164 reads
        ada = page.locator('[data-testid="contacts-table"] [data-phone="+4915123456789"]')
        expect(ada.get_by_test_id("contact-row-written")).to_have_text("+49 151 23456789")
        # The summary follows the list: all three may write (a number not on WhatsApp is still trusted).
        expect(page.get_by_test_id("access-sentence")).to_have_text("3 trusted contacts can reach the agent.")
        save_shot(page, "numbers-contacts-panel")

        # The note is what the API says too, and Lupita, writing as 521…, gets her answer.
        api = {c["phone"]: c for c in httpx.get(url + "api/whatsapp/contacts", headers=bearer(home)).json()}
        assert api[LUPITA]["written"] == "+52 1 55 1234 5678"
        assert api[LUPITA]["whatsapp"] == "registered"
        assert api["+525587654321"]["whatsapp"] == "not_on_whatsapp"
        sim_request(control, "POST", "/send", {"from": LUPITA, "text": "hola"})
        deadline = time.monotonic() + 30
        texts: list[str] = []
        while not texts and time.monotonic() < deadline:
            inbox = sim_request(control, "GET", f"/inbox?contact=%2B{LUPITA[1:]}")
            texts = [x["text"] for x in inbox["inbox"] if x["type"] == "message"]  # type: ignore[index]
            time.sleep(0.2)
        assert texts == ["Echo: hola"]
