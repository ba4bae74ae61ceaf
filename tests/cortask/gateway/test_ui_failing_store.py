"""The page says when the database cannot be written (issue #13): `cortask serve` and wasim as
processes, Debian's Chromium, another process holding the database locked past the busy timeout.
The note shows while it lasts, goes when it clears, and the message is answered exactly once."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect
from testkit.gateway import bearer
from testkit.page import chromium, inbox_texts, link_by_qr, save_shot, serve_on_wasim, sim_request

from cortask.store.db import BUSY_TIMEOUT_MS

pytestmark = pytest.mark.e2e

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
    with serve_on_wasim(tmp_path) as found:
        yield found


def test_the_page_says_the_database_is_failing_and_the_message_is_answered_once_after(
    product: tuple[str, str, Path],
) -> None:
    url, control, home = product
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(url)
        url = page.url
        link_by_qr(page, control, home)
        page.get_by_test_id("contact-phone").fill("+44 7911 123456")
        page.get_by_test_id("contact-permission").select_option("write")
        page.get_by_test_id("contact-add").click()
        expect(page.locator(f'[data-testid="contacts-table"] [data-phone="{GRACE}"]')).to_be_visible()
        sim_request(control, "POST", "/contacts", {"phone": GRACE, "name": "Grace"})
        notes = page.get_by_test_id("status-notes")
        expect(notes).to_be_hidden()

        seconds = BUSY_TIMEOUT_MS / 1000 + 8
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, str(home / "cortask.db"), str(seconds)], stdout=subprocess.PIPE, text=True
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
            sim_request(control, "POST", "/send", {"from": GRACE, "text": "are you there?"})
            expect(notes).to_contain_text("cannot write to its database", timeout=(seconds - 1) * 1000)
            expect(notes).to_contain_text("recorded as soon as it works again")
            assert inbox_texts(control, GRACE) == []
            status = httpx.get(url + "api/whatsapp", headers=bearer(home)).json()["status"]
            assert [n["kind"] for n in status["notes"]] == ["store_failing"]
            save_shot(page, "store-1-database-failing")
            holder.wait(seconds + 5)
        finally:
            holder.kill()
            holder.wait()

        expect(notes).to_be_hidden(timeout=30_000)
        deadline = time.monotonic() + 30
        while not inbox_texts(control, GRACE) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2)  # nothing more comes
        assert inbox_texts(control, GRACE) == ["Echo: are you there?"]
        expect(page.get_by_test_id("activity-list")).to_contain_text(re.compile("Database back"), timeout=10_000)
        save_shot(page, "store-2-database-back")
