"""What the browser tests of the page share: `cortask serve` on a wasim process, as an operator
runs them; calls to wasim's control API; screenshots saved where people look at them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from playwright.sync_api import Page

from testkit.gateway import printed_url
from testkit.paths import ROOT
from testkit.ports import free_port

SHOTS = ROOT / "test-artifacts" / "screenshots"


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
    gateway = subprocess.Popen(
        [sys.executable, "-m", "cortask", "serve", "--port", str(free_port())],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert gateway.stdout is not None
    line = gateway.stdout.readline()
    try:
        assert "Cortask is ready" in line, line
        yield printed_url(line), info["control_url"], home
    finally:
        for proc in (gateway, sim):
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
