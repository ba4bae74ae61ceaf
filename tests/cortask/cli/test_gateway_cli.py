"""The gateway and the CLI through their real entry points (subprocesses), on the demo sandbox."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from testkit.gateway import bearer
from testkit.paths import ROOT
from testkit.ports import free_port

pytestmark = pytest.mark.e2e

CORTASK = [sys.executable, "-m", "cortask"]


def _start(
    args: list[str], env: dict[str, str], ready: str = "Cortask is ready"
) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"exited early: {proc.wait()} {proc.stderr.read() if proc.stderr else ''}")
        lines.append(line)
        if ready in line:
            return proc, lines
    raise AssertionError(f"not ready: {lines}")


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[str, str, dict[str, str]]]:
    env = {**os.environ, "CORTASK_HOME": str(tmp_path / "home")}
    port = free_port()
    proc, lines = _start([*CORTASK, "demo", "--port", str(port)], env, ready="control API")
    url = re.search(r"http://127\.0\.0\.1:\d+/", lines[0])
    control = re.search(r"control API: (http://127\.0\.0\.1:\d+)", lines[-1])
    assert url and control, lines
    yield url.group(0), control.group(1), env
    proc.terminate()
    assert proc.wait(20) == 0


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CORTASK, *args], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_bad_input_gets_a_4xx_with_a_sentence(demo: tuple[str, str, dict[str, str]]) -> None:
    url, _, env = demo
    api = httpx.Client(base_url=url + "api", timeout=30, headers=bearer(Path(env["CORTASK_HOME"])))
    cases = [
        ("POST", "/whatsapp/contacts", {"phone": "12"}, 400, "too short"),
        ("POST", "/whatsapp/contacts", {"phone": "+4915123456789x", "permission": "write"}, 400, ""),
        ("POST", "/whatsapp/contacts", {"phone": "+447911123456", "permission": "owner"}, 400, "read, write or admin"),
        ("POST", "/whatsapp/contacts", {"name": "no phone"}, 400, "phone"),
        ("PUT", "/whatsapp/contacts/%2B14155550123", {"name": "x"}, 404, ""),
        ("PUT", "/agent", {"provider": "telepathy"}, 400, ""),
    ]
    for method, path, body, status, words in cases:
        resp = api.request(method, path, json=body)
        assert resp.status_code == status, (path, body, resp.text)
        assert words.lower() in resp.json()["error"].lower(), resp.json()
    malformed = api.post("/whatsapp/contacts", content=b"{not json", headers={"content-type": "application/json"})
    assert malformed.status_code == 400 and "not valid JSON" in malformed.json()["error"]
    assert api.get("/no-such-channel").status_code == 404


def test_the_event_stream_stays_alive_with_heartbeats_and_keeps_delivering(tmp_path: Path) -> None:
    env = {**os.environ, "CORTASK_HOME": str(tmp_path / "home"), "CORTASK_SSE_HEARTBEAT": "0.3"}
    port = free_port()
    proc, _ = _start([*CORTASK, "demo", "--port", str(port)], env, ready="control API")
    try:
        base = f"http://127.0.0.1:{port}/api"
        auth = bearer(Path(env["CORTASK_HOME"]))
        with httpx.stream("GET", base + "/events", timeout=30, headers=auth) as stream:
            lines = stream.iter_lines()
            assert next(lines) == "event: status"
            seen: list[str] = []
            while ": ping" not in seen:
                seen.append(next(lines))
            httpx.post(base + "/whatsapp/contacts", json={"phone": "+447911123456", "name": "Grace"}, headers=auth)
            while "event: contacts" not in seen:
                seen.append(next(lines))
            assert "+447911123456" in next(lines)
    finally:
        proc.terminate()
        proc.wait(20)


def test_foreign_host_and_origin_are_refused(demo: tuple[str, str, dict[str, str]]) -> None:
    url, _, _ = demo
    rebinding = httpx.get(url + "api/health", headers={"Host": "attacker.example"})
    assert rebinding.status_code == 421
    csrf = httpx.post(url + "api/whatsapp/pause", headers={"Origin": "http://attacker.example"})
    assert csrf.status_code == 403
    same_origin = httpx.get(url + "api/health", headers={"Origin": url.rstrip("/")})
    assert same_origin.status_code == 200


def test_beyond_loopback_the_names_are_given_and_the_token_is_required(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "CORTASK_HOME": str(home)}
    env.pop("CORTASK_TOKEN", None)
    nameless = _cli(env, "serve", "--host", "0.0.0.0", "--port", str(free_port()))
    assert nameless.returncode == 2 and "--allowed-host" in nameless.stderr
    on_the_command_line = _cli(env, "serve", "--host", "0.0.0.0", "--token", "x" * 40)
    assert on_the_command_line.returncode == 1
    assert "CORTASK_TOKEN" in on_the_command_line.stdout + on_the_command_line.stderr
    port = free_port()
    token = "a-token-of-forty-characters-0123456789ab"
    names = ["--allowed-host", "cortask.lan", "--allowed-host", "[fd00::7]", "--allowed-host", "fd00::8"]
    proc, _ = _start(
        [*CORTASK, "serve", "--host", "0.0.0.0", "--port", str(port), *names], {**env, "CORTASK_TOKEN": token}
    )
    try:
        base = f"http://127.0.0.1:{port}/api"
        assert httpx.get(base + "/whatsapp").status_code == 401
        assert httpx.get(base + "/whatsapp", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert httpx.get(base + "/whatsapp", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert (home / "gateway-token").read_text() == token  # the CLI finds it there
        for host in ("cortask.lan", f"cortask.lan:{port}", f"[fd00::7]:{port}", "[fd00::8]", f"[fd00::8]:{port}"):
            assert httpx.get(base + "/health", headers={"Host": host}).status_code == 200, host
        for host in ("attacker.example", f"0.0.0.0:{port}", "[fd00::9]"):
            assert httpx.get(base + "/health", headers={"Host": host}).status_code == 421, host
    finally:
        proc.terminate()
        proc.wait(20)


def test_cli_links_by_qr_and_manages_contacts_through_the_gateway(demo: tuple[str, str, dict[str, str]]) -> None:
    _, control, env = demo
    added = _cli(env, "contacts", "add", "+44 7911 123456", "--name", "Grace", "--permission", "read", "--json")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout) == {
        "phone": "+447911123456",
        "name": "Grace",
        "permission": "read",
        "written": "+44 7911 123456",  # shown as typed (issue #13)
        "whatsapp": "unchecked",  # not linked yet: WhatsApp is asked after the link
        "whatsapp_address": None,
        "whatsapp_checked_at": None,
        "note": None,
    }
    bad = _cli(env, "contacts", "add", "12")
    assert bad.returncode == 1 and "too short" in bad.stderr
    listed = json.loads(_cli(env, "contacts", "list", "--json").stdout)
    assert [c["phone"] for c in listed] == ["+4915123456789", "+447911123456"]

    link = subprocess.Popen(
        [*CORTASK, "whatsapp", "link", "--json"], env=env, stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert link.stdout is not None
    first = json.loads(link.stdout.readline())
    assert first["qr"].startswith("https://wa.me/settings/linked_devices#") and 0 < first["expires_in"] <= 60
    scan = subprocess.run(
        [sys.executable, "-m", "wasim", "scan", "--control", control, first["qr"]], capture_output=True, text=True
    )
    assert scan.returncode == 0, scan.stderr
    assert json.loads(link.stdout.readline()) == {"state": "linked"}
    assert link.wait(20) == 0
    status = json.loads(_cli(env, "whatsapp", "status", "--json").stdout)
    assert status["state"] == "open" and status["sandbox"] is True
    assert status["last_inbound_at"] is None and "Last message in" not in _cli(env, "whatsapp", "status").stderr

    # The status says when the last message came in and the last reply went out.
    sent = subprocess.run(
        [sys.executable, "-m", "wasim", "send", "--control", control, "--from", "+4915123456789", "--text", "hi"],
        capture_output=True,
        text=True,
    )
    assert sent.returncode == 0, sent.stderr
    deadline = time.monotonic() + 30
    while not status["last_outbound_at"] and time.monotonic() < deadline:
        time.sleep(0.3)
        status = json.loads(_cli(env, "whatsapp", "status", "--json").stdout)
    assert status["last_inbound_at"] and status["last_outbound_at"] >= status["last_inbound_at"]
    human = _cli(env, "whatsapp", "status").stderr
    assert "Last message in 20" in human and "last reply out 20" in human, human


def test_readme_run_command_brings_the_demo_up(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    assert "scripts/run" in readme.split("```")[1], "README opens with the run command"
    env = {**os.environ, "CORTASK_HOME": str(tmp_path / "home")}
    proc, lines = _start(["scripts/run", "--port", str(free_port())], env)
    try:
        url = re.search(r"(http://127\.0\.0\.1:\d+/)", lines[-1])
        assert url, lines
        assert httpx.get(url.group(1) + "api/health").json()["ok"] is True
        assert "<html" in httpx.get(url.group(1)).text.lower()
    finally:
        proc.terminate()
        proc.wait(20)
