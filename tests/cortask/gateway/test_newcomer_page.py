"""A newcomer's first hour in the browser (issue #17), in Debian's Chromium driven by Playwright
against real processes: wasim and `cortask serve` (or `cortask demo`), real Baileys, a real store.

Saves the screenshot set of the main states under test-artifacts/screenshots/newcomer-*.png:
empty, QR, linked with activity, agent failed, 390 px wide, server gone (page and phone)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from testkit.gateway import bearer, printed_url
from testkit.lines import first_lines
from testkit.page import chromium, inbox_texts, save_shot, sim_request
from testkit.ports import free_port

pytestmark = pytest.mark.e2e

GRACE = "+447911123456"
CORTASK = str(Path(sys.executable).parent / "cortask")


def _shot(page: Page, name: str) -> None:
    save_shot(page, f"newcomer-{name}")


def _wait_for(predicate: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


@pytest.fixture
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@dataclass
class Product:
    """wasim and `cortask serve` using it as its WhatsApp, as separate processes; serve can restart."""

    tmp: Path
    home: Path = field(init=False)
    port: int = field(default_factory=free_port)
    sim: subprocess.Popen[str] | None = None
    gateway: subprocess.Popen[str] | None = None
    control: str = ""
    env: dict[str, str] = field(default_factory=dict)
    url: str = ""
    logs: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.home = self.tmp / "home"
        self.sim = subprocess.Popen(
            [sys.executable, "-m", "wasim", "serve", "--state", str(self.tmp / "wasim")],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.sim.stdout is not None
        info = json.loads(self.sim.stdout.readline())
        self.control = info["control_url"]
        self.env = {
            **os.environ,
            "CORTASK_HOME": str(self.home),
            "CORTASK_WHATSAPP_SANDBOX_URL": info["url"],
            "CORTASK_WHATSAPP_SANDBOX_ROOT_KEY": info["root_public_key"],
        }

    def start(self) -> None:
        log = self.tmp / f"serve-{len(self.logs)}.err"
        self.logs.append(log)
        err: IO[str] = log.open("w")
        self.gateway = subprocess.Popen(
            [CORTASK, "serve", "--port", str(self.port)], env=self.env, stdout=subprocess.PIPE, stderr=err, text=True
        )
        assert self.gateway.stdout is not None
        line = self.gateway.stdout.readline()
        assert "Cortask is ready" in line, (line, log.read_text())
        self.url = printed_url(line)

    def stop(self) -> None:
        if self.gateway is not None and self.gateway.poll() is None:
            self.gateway.send_signal(signal.SIGTERM)
            self.gateway.wait(20)

    def api(self, path: str) -> Any:
        return httpx.get(f"http://127.0.0.1:{self.port}/api/{path}", headers=bearer(self.home), timeout=30).json()

    def close(self) -> None:
        self.stop()
        if self.sim is not None:
            self.sim.terminate()
            self.sim.wait(20)


@pytest.fixture
def product(tmp_path: Path) -> Iterator[Product]:
    p = Product(tmp_path)
    try:
        p.start()
        yield p
    finally:
        p.close()


def _link(page: Page, control: str) -> None:
    page.get_by_test_id("generate-qr").click()
    qr = page.get_by_test_id("qr-image")
    expect(qr).to_be_visible(timeout=30_000)
    code = qr.get_attribute("data-qr")
    assert code
    sim_request(control, "POST", "/scan", {"qr": code})
    expect(page.get_by_test_id("status-state")).to_have_attribute("data-state", "open", timeout=30_000)


def test_newcomer_states_in_the_page(product: Product, browser: Browser) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(product.url)
    expect(page.get_by_test_id("add-channel")).to_be_visible()
    _shot(page, "1-empty")
    page.get_by_test_id("add-channel").click()

    # 12: the state in words; 8: Log out is off with nothing linked, and the two unlinks say how they differ.
    state = page.get_by_test_id("status-state")
    expect(state).to_have_text("Not linked yet")
    expect(state).to_have_attribute("data-state", "unlinked")
    expect(page.get_by_test_id("logout")).to_be_disabled()
    expect(page.get_by_test_id("stop")).to_contain_text("Stop and unlink")
    expect(page.get_by_test_id("logout")).to_contain_text("Forget link here")
    expect(page.get_by_test_id("actions-hint")).to_contain_text("without telling WhatsApp")

    # 15: an empty contact form says what is missing, and keeps saying it (a pending inline
    # check of the field just emptied must not wipe the error).
    page.get_by_test_id("contact-phone").fill("+4")
    page.get_by_test_id("contact-phone").fill("")
    page.get_by_test_id("contact-add").click()
    error = page.get_by_test_id("contact-phone-error")
    expect(error).to_contain_text("Enter the phone number")
    page.wait_for_timeout(1200)
    expect(error).to_contain_text("Enter the phone number")

    # 6: one countdown, in the QR panel; the headline stays still.
    page.get_by_test_id("generate-qr").click()
    expect(page.get_by_test_id("qr-image")).to_be_visible(timeout=30_000)
    expect(page.get_by_test_id("qr-countdown")).to_contain_text("expires in")
    headline = page.get_by_test_id("status-sentence").inner_text()
    assert "expires" not in headline and not re.search(r"\d+ s\b", headline), headline
    _shot(page, "2-qr")
    code = page.get_by_test_id("qr-image").get_attribute("data-qr")
    sim_request(product.control, "POST", "/scan", {"qr": code})
    expect(state).to_have_attribute("data-state", "open", timeout=30_000)
    expect(state).to_have_text("Linked and running")

    # 12: our own number for people, never a JID. (It comes with the snapshot the page reads once
    # the state is open, a moment after the state itself.)
    expect(page.get_by_test_id("status-account")).to_have_text(re.compile(r"\+\d{1,3} [\d ()-]+$"), timeout=10_000)
    account = page.get_by_test_id("status-account").inner_text()
    assert re.search(r"^\+\d{1,3} [\d ()-]+$", account.splitlines()[-1]), account
    assert "@" not in page.get_by_test_id("status-sentence").inner_text()
    expect(page.get_by_test_id("logout")).to_be_enabled()

    # 5: a reply is one "Replied" row; its echo from our own account is not an "Ignored" row.
    sim_request(product.control, "POST", "/contacts", {"phone": GRACE, "name": "Grace"})
    httpx.post(
        product.url.split("?")[0] + "api/whatsapp/contacts",
        json={"phone": GRACE, "name": "Grace", "permission": "write"},
        headers=bearer(product.home),
    ).raise_for_status()
    sim_request(product.control, "POST", "/send", {"from": GRACE, "text": "hello"})
    _wait_for(lambda: inbox_texts(product.control, GRACE) == ["Echo: hello"])
    expect(page.get_by_test_id("activity-list")).to_contain_text("Replied", timeout=10_000)
    time.sleep(2)  # the echo of our reply arrives after it
    kinds = [(a["kind"], a.get("reason")) for a in product.api("activity")]
    assert ("ignored", "from_me") not in kinds, kinds
    expect(page.locator('[data-testid="activity-entry"][data-kind="ignored"]')).to_have_count(0)
    _shot(page, "3-linked-with-activity")

    # 12: the status card fits a 390 px phone.
    page.set_viewport_size({"width": 390, "height": 844})
    overflow = page.evaluate(
        "() => [document.documentElement.scrollWidth,"
        " ...[...document.querySelectorAll('.connection, .connection *')].map(e => e.getBoundingClientRect().right)]"
    )
    assert max(overflow) <= 390.5, overflow
    _shot(page, "6-390px")
    page.set_viewport_size({"width": 1280, "height": 1000})

    # 13: the restart after pairing (515) is not logged as an error on the terminal.
    assert "stream errored out" not in product.logs[0].read_text(), product.logs[0].read_text()

    # 3: an agent that fails shows as failed, with the reason, secrets masked; never "Replied".
    dead = free_port()
    done = subprocess.run(
        [CORTASK, "agent", "set", "webhook", "--set", f"url=http://ada:s3cr3t-pw@127.0.0.1:{dead}/hook"],
        env=product.env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    sent = sim_request(product.control, "POST", "/send", {"from": GRACE, "text": "are you there?"})["id"]  # type: ignore[index]
    failed = page.locator('[data-testid="activity-entry"][data-kind="failed"]')
    expect(failed).to_have_count(1, timeout=30_000)
    expect(failed).to_contain_text("Agent failed")
    expect(failed).to_contain_text("The agent failed")
    assert "s3cr3t-pw" not in failed.inner_text()
    replies = [a for a in product.api("activity") if a["kind"] in ("replied", "failed")]
    assert [a["kind"] for a in replies] == ["replied", "failed"], replies  # the first echo, then the failure
    assert all("s3cr3t-pw" not in json.dumps(a) for a in product.api("activity"))
    assert sent
    _shot(page, "4-agent-failed")

    # 10: after a restart the activity and the last message in are still there.
    product.stop()
    product.start()
    page.goto(product.url)
    expect(page.get_by_test_id("status-state")).to_have_attribute("data-state", "open", timeout=30_000)
    expect(page.locator('[data-testid="activity-entry"][data-kind="failed"]')).to_have_count(1)
    expect(page.locator('[data-testid="activity-entry"][data-kind="replied"]')).to_have_count(1)
    expect(page.get_by_test_id("status-last-inbound")).not_to_have_text("None yet")
    expect(page.get_by_test_id("status-last-outbound")).not_to_have_text("None yet")

    # 1 and 16: the server goes away: the page says so plainly and its buttons are off.
    product.stop()
    expect(page.get_by_test_id("server-gone")).to_be_visible(timeout=15_000)
    expect(page.get_by_test_id("pause")).to_be_disabled()
    expect(page.get_by_test_id("contact-add")).to_be_disabled()
    _shot(page, "5-server-gone")


def test_demo_points_to_its_phone_and_the_phone_page_says_what_is_true(tmp_path: Path, browser: Browser) -> None:
    home = tmp_path / "home"
    port = free_port()
    while free_port() == port + 1:  # the phone's port is the gateway's plus one
        port = free_port()
    env = {**os.environ, "CORTASK_HOME": str(home)}
    demo = subprocess.Popen([CORTASK, "demo", "--port", str(port)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert demo.stdout is not None
        lines = first_lines(demo.stdout, 5)  # ready, the phone, linking by code, wasim, where the data lives
        assert len(lines) == 5 and "Cortask is ready" in lines[0], lines
        phone_url = f"http://127.0.0.1:{port + 1}/phone"
        assert phone_url in lines[1], lines  # 7: a stable address: the gateway's port plus one
        assert str(home / "demo") in lines[4], lines  # 4: where the demo's data lives

        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(printed_url(lines[0]))
        link = page.get_by_test_id("phone-link")
        expect(link).to_be_visible()  # 7: the page points to the simulated phone
        expect(link).to_have_text("Open the simulated phone")
        assert link.get_attribute("href") == phone_url

        phone = browser.new_page(viewport={"width": 480, "height": 900})
        missing: list[str] = []
        phone.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
        phone.goto(phone_url)
        state = phone.get_by_test_id("phone-link-state")
        expect(state).to_contain_text("Not linked yet")  # 16: it says whether it is linked

        page.get_by_test_id("generate-qr").click()
        qr = page.get_by_test_id("qr-image")
        expect(qr).to_be_visible(timeout=30_000)
        phone.get_by_test_id("phone-qr-text").fill(qr.get_attribute("data-qr") or "")
        phone.get_by_test_id("phone-scan").click()
        expect(page.get_by_test_id("status-state")).to_have_attribute("data-state", "open", timeout=30_000)
        expect(state).to_contain_text("Linked", timeout=10_000)
        expect(state).to_contain_text("connected")

        # 14: `whatsapp start` while connected says so and does not reconnect.
        page.evaluate(
            "() => { window.__states = []; new MutationObserver(() => window.__states.push("
            "document.querySelector('[data-testid=status-state]').dataset.state)).observe("
            "document.querySelector('[data-testid=status-state]'), {attributes: true, childList: true}); }"
        )
        started = subprocess.run([CORTASK, "whatsapp", "start"], env=env, capture_output=True, text=True, timeout=60)
        assert started.returncode == 0 and "Already connected" in started.stderr, started.stderr
        time.sleep(2)
        assert "connecting" not in page.evaluate("() => window.__states"), page.evaluate("() => window.__states")

        # 16: what I wrote survives a reload.
        phone.get_by_test_id("phone-contact").select_option("+4915123456789")
        phone.get_by_test_id("phone-text").fill("hi, it's me")
        phone.get_by_test_id("phone-send").click()
        chat = phone.get_by_test_id("phone-chat")
        expect(chat).to_contain_text("Echo: hi, it's me", timeout=20_000)
        phone.reload()
        phone.get_by_test_id("phone-contact").select_option("+4915123456789")
        expect(chat.locator(".bubble.me")).to_have_text(["hi, it's me"], timeout=5_000)
        expect(chat).to_contain_text("Echo: hi, it's me")
        assert missing == [], missing  # 16: no 404 on load (the favicon)

        # 16: the sandbox stops: the phone page says so plainly and its buttons are off.
        demo.send_signal(signal.SIGINT)
        assert demo.wait(15) == 0  # 1: Ctrl-C stops it with pages open
        expect(phone.get_by_test_id("phone-gone")).to_be_visible(timeout=10_000)
        expect(phone.get_by_test_id("phone-send")).to_be_disabled()
        expect(phone.get_by_test_id("phone-scan")).to_be_disabled()
        phone.wait_for_timeout(1500)  # several refreshes that fail: the chat stays as it was
        expect(chat).to_contain_text("Echo: hi, it's me")
        expect(chat).to_contain_text("hi, it's me")
        save_shot(phone, "newcomer-7-phone-server-gone")
    finally:
        if demo.poll() is None:
            demo.kill()
        demo.wait(20)
