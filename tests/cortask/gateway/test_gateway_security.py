"""Nobody let in, checked on the real thing: `cortask demo` as a process on loopback, the CLI as a
second process, and a hostile page on another loopback port opened in Debian's Chromium."""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect
from testkit.gateway import bearer, printed_url
from testkit.page import chromium
from testkit.paths import ROOT
from testkit.ports import free_port

pytestmark = pytest.mark.e2e

CORTASK = [sys.executable, "-m", "cortask"]
ADA = "+4915123456789"  # the demo's trusted contact


@dataclass
class Demo:
    printed: str  # the start-up line's address, with the token
    base: str  # http://127.0.0.1:<port>/
    home: Path

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.base + "api", headers=bearer(self.home), timeout=30)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    home = tmp_path / "home"
    env = {**os.environ, "CORTASK_HOME": str(home)}
    env.pop("CORTASK_TOKEN", None)
    port = free_port()
    proc = subprocess.Popen(
        [*CORTASK, "demo", "--port", str(port)], env=env, stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "Cortask is ready" in line, (line, proc.poll())
    try:
        yield Demo(printed_url(line), f"http://127.0.0.1:{port}/", home)
    finally:
        proc.terminate()
        proc.wait(20)


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def test_every_api_route_and_the_event_stream_answer_401_without_the_token(demo: Demo) -> None:
    schema = demo.api().get(demo.base + "openapi.json").json()
    assert httpx.get(demo.base + "openapi.json").status_code == 401
    walked = 0
    for path, operations in schema["paths"].items():
        for method in operations:
            if path == "/api/health":
                continue
            answer = httpx.request(method, demo.base.rstrip("/") + _concrete(path), json={}, timeout=30)
            assert answer.status_code == 401, (method, path, answer.status_code, answer.text)
            assert "token" in answer.json()["error"]
            walked += 1
    assert walked >= 20
    with httpx.stream("GET", demo.base + "api/events", timeout=30) as events:
        assert events.status_code == 401
    health = httpx.get(demo.base + "api/health").json()
    assert health == {"ok": True}  # open, and no state


def test_a_process_that_cannot_read_the_token_file_changes_nothing(demo: Demo, tmp_path: Path) -> None:
    token_file = demo.home / "gateway-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert token_file.read_text() not in (demo.home / "gateway.json").read_text()
    # Another local process finds the gateway (gateway.json) but not its token.
    other = tmp_path / "other-home"
    other.mkdir()
    shutil.copy(demo.home / "gateway.json", other / "gateway.json")
    env = {**os.environ, "CORTASK_HOME": str(other)}
    for args in (["contacts", "add", "+447911123456", "--permission", "admin"], ["whatsapp", "pause"]):
        refused = subprocess.run([*CORTASK, *args], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert refused.returncode == 1 and "token" in refused.stderr, (args, refused.stderr)
    assert [c["phone"] for c in demo.api().get("/whatsapp/contacts").json()] == [ADA]
    assert demo.api().get("/whatsapp/status").json()["state"] != "paused"


def test_a_rebinding_host_gets_421_and_a_short_token_is_refused(demo: Demo, tmp_path: Path) -> None:
    rebinding = httpx.get(demo.base + "api/whatsapp", headers={"Host": "attacker.example", **bearer(demo.home)})
    assert rebinding.status_code == 421
    env = {**os.environ, "CORTASK_HOME": str(tmp_path / "short")}
    short = subprocess.run(
        [*CORTASK, "serve", "--port", str(free_port())],
        env={**env, "CORTASK_TOKEN": "s3cret-t0ken"},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert short.returncode == 2 and "at least 32" in short.stderr
    (tmp_path / "token").write_text("t" * 31 + "\n")
    from_file = subprocess.run(
        [*CORTASK, "serve", "--port", str(free_port()), "--token-file", str(tmp_path / "token")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert from_file.returncode == 2 and "at least 32" in from_file.stderr


def test_wrong_tokens_are_rate_limited_per_address(demo: Demo) -> None:
    api = demo.base + "api/whatsapp"
    for _ in range(10):
        assert httpx.get(api, headers={"Authorization": "Bearer " + "g" * 43}).status_code == 401
    limited = httpx.get(api, headers={"Authorization": "Bearer " + "g" * 43})
    assert limited.status_code == 429 and "wait a minute" in limited.json()["error"]
    assert httpx.get(api, headers=bearer(demo.home)).status_code == 429  # guessing right now proves nothing
    assert httpx.get(demo.base + "api/health").status_code == 200


HOSTILE = """<!doctype html><html><head><title>cute cats</title></head><body>
<iframe id="ui" src="{ui}" width="800" height="600"></iframe>
<iframe name="sink" id="sink"></iframe>
<form id="f" action="{ui}api/whatsapp/contacts" method="POST" enctype="text/plain" target="sink">
<input name='{{"phone": "+447911123456", "permission": "admin", "pad": "' value='"}}'></form>
<script>
const post = (path, body) => fetch("{ui}api/" + path, {{method: "POST", mode: "no-cors", credentials: "include",
  headers: {{"Content-Type": "text/plain"}}, body: JSON.stringify(body)}}).catch(() => null);
Promise.all([post("whatsapp/contacts", {{phone: "+33612345678", permission: "admin"}}), post("whatsapp/pause", {{}}),
  post("whatsapp/logout", {{}})]).then(() => {{ document.title = "sent"; }});
document.getElementById("f").submit();
</script></body></html>"""


@pytest.fixture
def hostile(demo: Demo) -> Iterator[str]:
    page = HOSTILE.format(ui=demo.base).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_a_hostile_page_cannot_frame_the_ui_or_change_anything(demo: Demo, hostile: str) -> None:
    with chromium() as browser:
        context = browser.new_context()
        # The owner opened the printed address: the browser holds the cookie (the strongest case).
        owner = context.new_page()
        console: list[str] = []
        owner.on("console", lambda message: console.append(message.text))
        owner.goto(demo.printed)
        assert owner.url == demo.base, owner.url  # the token left the address bar
        expect(owner.get_by_test_id("sandbox-badge")).to_be_visible(timeout=20_000)
        assert json.loads(owner.evaluate("JSON.stringify(document.cookie)")) == ""  # HttpOnly
        owner.get_by_test_id("generate-qr").click()  # the QR is a data: image: allowed by the policy
        expect(owner.get_by_test_id("qr-image")).to_be_visible(timeout=20_000)
        assert not [m for m in console if "Content Security Policy" in m], console  # the page obeys its own policy

        before = demo.api().get("/whatsapp/status").json()["state"]  # linking: a pause or logout would show
        attack = context.new_page()
        attack.goto(hostile)
        expect(attack).to_have_title("sent", timeout=20_000)
        attack.wait_for_timeout(1000)  # the form's answer lands in the sink frame
        ui = next(f for f in attack.frames if f.name != "sink" and f != attack.main_frame)
        assert ui.query_selector("[data-testid=workspace]") is None  # the frame stays empty
        assert ui.evaluate("document.body ? document.body.innerText : ''").find("Cortask") == -1
    assert [c["phone"] for c in demo.api().get("/whatsapp/contacts").json()] == [ADA]
    assert demo.api().get("/whatsapp/status").json()["state"] == before
