"""What the browser tests of the page share: `cortask serve` on a wasim process, as an operator
runs them; calls to wasim's control API; screenshots saved where people look at them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from playwright.sync_api import Browser, Page, expect, sync_playwright

from testkit.gateway import bearer, printed_url
from testkit.paths import ROOT
from testkit.ports import free_port

SHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright; closed afterwards."""
    assert Path(CHROMIUM).exists(), "Debian's chromium is needed: scripts/setup installs it (apt-get install chromium)"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def link_by_qr(page: Page, control: str, home: Path) -> None:
    """Link as a person does on the page: add the channel, generate a QR code, scan the code the
    server produced (read from the API) with wasim's phone, and wait for the page to say open."""
    page.get_by_test_id("add-channel").click()
    page.get_by_test_id("generate-qr").click()
    expect(page.get_by_test_id("qr-image")).to_be_visible(timeout=20_000)
    base = page.url.split("?")[0]
    produced = httpx.get(base + "api/whatsapp", headers=bearer(home)).json()["qr"]["qr"]
    sim_request(control, "POST", "/scan", {"qr": produced})
    expect(page.get_by_test_id("status-state")).to_have_attribute("data-state", "open", timeout=30_000)


@contextmanager
def serve_on_wasim(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """wasim and `cortask serve` configured to use it as its WhatsApp, as separate processes: the
    address `cortask serve` printed (with its token), wasim's control URL and Cortask's home."""
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
    gateway = _cortask(env, "serve", "--port", str(free_port()))
    assert gateway.stdout is not None
    line = gateway.stdout.readline()
    try:
        assert "Cortask is ready" in line, line
        yield printed_url(line), info["control_url"], home
    finally:
        for proc in (gateway, sim):
            proc.terminate()
            proc.wait(20)


def _cortask(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """`cortask` with `args` as a separate process, its output read line by line."""
    return subprocess.Popen([sys.executable, "-m", "cortask", *args], env=env, stdout=subprocess.PIPE, text=True)


@contextmanager
def serve_demo(home: Path) -> Iterator[tuple[str, str]]:
    """`cortask demo` with its home in `home`: the address it printed (with its token, as a visitor
    opens it) and its simulated phone's page."""
    env = {**os.environ, "CORTASK_HOME": str(home)}
    proc = _cortask(env, "demo", "--port", str(free_port()))
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(3)]
    phone = re.search(r"(http://127\.0\.0\.1:\d+/phone)", "".join(lines))
    assert "Cortask is ready" in lines[0] and phone, lines
    try:
        yield printed_url(lines[0]), phone.group(1)
    finally:
        proc.terminate()
        proc.wait(20)


def sim_request(control: str, method: str, path: str, body: object = None) -> object:
    """One call to wasim's control API (the simulated phones), failing the test on an error."""
    resp = httpx.request(method, control + path, json=body, timeout=30)
    assert resp.status_code < 400, resp.text
    return resp.json()


def inbox_texts(control: str, phone: str) -> list[str]:
    """The texts a simulated contact's phone has received."""
    data = sim_request(control, "GET", f"/inbox?contact=%2B{phone[1:]}")
    return [x["text"] for x in data["inbox"] if x["type"] == "message"]  # type: ignore[index]


def save_shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
