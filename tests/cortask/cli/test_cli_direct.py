"""The CLI with no gateway running, through its real entry point (subprocesses): it acts in-process
through the application layer (`cortask.app`, `LocalClient`), on the store, and runs the real
channel (sidecar, Baileys) against wasim on loopback when it needs WhatsApp. One process at a time
may hold the link; the others say who holds it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
import zxingcpp
from PIL import Image
from testkit.cli import CORTASK, on_terminal, plain, popen, read_terminal, sandbox_env
from testkit.cli import SimProcess as Sim
from testkit.gateway import bearer
from testkit.paths import ROOT
from testkit.ports import free_port

pytestmark = pytest.mark.e2e

QR_CHARS = frozenset("█▀▄ ")


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    server = Sim(tmp_path_factory.mktemp("wasim"))
    yield server
    server.close()


@pytest.fixture
def env(tmp_path: Path, sim: Sim) -> dict[str, str]:
    """A fresh Cortask home on the sandbox, configured by environment exactly as for `serve`."""
    return sandbox_env(tmp_path / "home", sim)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CORTASK, *args], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)


def cli_json(env: dict[str, str], *args: str) -> Any:
    done = cli(env, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def read_until(stream: IO[str], marker: str) -> list[str]:
    lines: list[str] = []
    while marker not in (lines[-1] if lines else ""):
        line = stream.readline()
        assert line, f"the output ended before {marker!r}: {lines}"
        lines.append(line)
    return lines


def decode_terminal_qr(lines: list[str]) -> str:
    """Read back a QR code drawn with half blocks (two modules per character, light = block)."""
    rows: list[str] = []  # the first block of lines drawn only with QR characters
    for line in (raw.rstrip("\r\n") for raw in lines):
        if len(line) > 20 and set(line) <= QR_CHARS:
            rows.append(line)
        elif rows:
            break
    assert len(rows) > 10, f"no QR block in the output: {lines}"
    halves = {"█": (255, 255), " ": (0, 0), "▄": (0, 255), "▀": (255, 0)}
    width, pad, scale = max(len(r) for r in rows), 4, 6
    image = Image.new("L", (width + 2 * pad, 2 * len(rows) + 2 * pad), 255)
    for y, row in enumerate(rows):
        for x, char in enumerate(row):
            top, bottom = halves[char]
            image.putpixel((x + pad, 2 * y + pad), top)
            image.putpixel((x + pad, 2 * y + 1 + pad), bottom)
    image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    decoded = [r.text for r in zxingcpp.read_barcodes(image)]
    assert len(decoded) == 1, "the QR block did not decode"
    return decoded[0]


def serve(env: dict[str, str]) -> tuple[subprocess.Popen[str], httpx.Client]:
    """`cortask serve`, and its API with the token from the token file (as the CLI reads it)."""
    port = free_port()
    proc = popen(env, "serve", "--port", str(port))
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "Cortask is ready" in line, (line, proc.wait(20), proc.stderr.read() if proc.stderr else "")
    return proc, httpx.Client(base_url=f"http://127.0.0.1:{port}/api", headers=bearer(Path(env["CORTASK_HOME"])))


def wait_for_state(api: httpx.Client, wanted: str) -> str:
    """The channel's state once it is `wanted` or has settled elsewhere (bounded by the test timeout)."""
    while True:
        state = str(api.get("/whatsapp/status", timeout=30).json()["state"])
        if state == wanted or state not in ("unlinked", "connecting", "reconnecting"):
            return state
        time.sleep(0.2)


def stop_gracefully(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    assert proc.wait(30) == 0


# -- linking here, then the link is used by serve -------------------------------------------------


def test_link_json_directly_then_serve_connects_without_a_scan(env: dict[str, str], sim: Sim) -> None:
    before = cli_json(env, "whatsapp", "status")
    assert before["state"] == "unlinked" and before["running"] is False and before["sandbox"] is True
    assert "not running" in before["sentence"] and "cortask serve" in before["action"]

    link = popen(env, "whatsapp", "link", "--json")
    assert link.stdout is not None and link.stderr is not None
    first = json.loads(link.stdout.readline())
    assert first["qr"].startswith("https://wa.me/settings/linked_devices#") and 0 < first["expires_in"] <= 60

    # While `link` holds the link nobody else may open a socket on it, and each says who holds it.
    for args in (["serve", "--port", str(free_port())], ["whatsapp", "link"], ["whatsapp", "logout"]):
        refused = cli(env, *args)
        assert refused.returncode == 1, (args, refused.stderr)
        assert re.search(r"in use by process \d+ \(cortask whatsapp link\)", refused.stderr), refused.stderr
    held = cli_json(env, "whatsapp", "status")
    assert held["in_use_by"] and "cortask whatsapp link" in held["in_use_by"]

    sim.scan(first["qr"])
    assert json.loads(link.stdout.readline()) == {"state": "linked"}
    assert link.wait(60) == 0
    assert link.stdout.read() == ""  # nothing but the JSON lines on stdout

    linked = cli_json(env, "whatsapp", "status")
    assert (linked["state"], linked["linked"], linked["in_use_by"]) == ("linked", True, None)
    assert linked["account"] in [d["jid"] for d in sim.devices() if d["linked"]]

    proc, api = serve(env)  # no scan: the stored link is used
    try:
        assert wait_for_state(api, "open") == "open"
        assert cli_json(env, "whatsapp", "status")["state"] == "open"  # now through the gateway
        # Without its gateway.json (as in the moment before serve writes it) the CLI would act
        # directly: the link's lock still refuses it, naming serve.
        info = Path(env["CORTASK_HOME"]) / "gateway.json"
        info.rename(info.with_suffix(".away"))
        try:
            for args in (["whatsapp", "link"], ["whatsapp", "stop"], ["whatsapp", "logout"]):
                refused = cli(env, *args)
                assert refused.returncode == 1, (args, refused.stderr)
                assert re.search(r"in use by process \d+ \(cortask serve\)", refused.stderr), refused.stderr
        finally:
            info.with_suffix(".away").rename(info)
        assert wait_for_state(api, "open") == "open"  # and serve's connection was left alone
    finally:
        stop_gracefully(proc)


def test_pause_and_start_are_kept_for_serve_and_stop_logs_out_on_the_server(env: dict[str, str], sim: Sim) -> None:
    link = popen(env, "whatsapp", "link", "--json")
    assert link.stdout is not None
    sim.scan(json.loads(link.stdout.readline())["qr"])
    assert json.loads(link.stdout.readline()) == {"state": "linked"} and link.wait(60) == 0

    paused = cli(env, "whatsapp", "pause")
    assert paused.returncode == 0 and "Paused" in paused.stderr and "not running" in paused.stderr
    assert cli_json(env, "whatsapp", "status")["state"] == "paused"
    proc, api = serve(env)
    try:
        assert wait_for_state(api, "paused") == "paused"
        cli_json(env, "whatsapp", "start")  # through the gateway, which saves it too
        assert wait_for_state(api, "open") == "open"
        cli_json(env, "whatsapp", "pause")
    finally:
        stop_gracefully(proc)
    assert cli_json(env, "whatsapp", "status")["state"] == "paused"  # the gateway's pause was kept

    started = cli_json(env, "whatsapp", "start")
    assert (started["state"], started["paused"], started["enabled"]) == ("linked", False, True)
    account = started["account"]

    stopped = cli(env, "whatsapp", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert "logged out" in stopped.stderr
    assert cli_json(env, "whatsapp", "status")["state"] == "unlinked"
    assert not (Path(env["CORTASK_HOME"]) / "whatsapp-auth").exists()
    assert [d["linked"] for d in sim.devices() if d["jid"] == account] == [False]  # the server forgot it

    again = cli(env, "whatsapp", "stop")
    assert again.returncode == 1 and "not linked" in again.stderr


def test_link_in_human_mode_draws_a_qr_code_that_a_phone_can_scan(env: dict[str, str], sim: Sim) -> None:
    link = popen(env, "whatsapp", "link")
    assert link.stderr is not None and link.stdout is not None
    shown = read_until(link.stderr, "Scan within")
    assert re.search(r"Scan within \d+ s: WhatsApp → Settings → Linked Devices", shown[-1])
    qr = decode_terminal_qr(shown)
    assert qr.startswith("https://wa.me/settings/linked_devices#")
    sim.scan(qr)
    rest = read_until(link.stderr, "Linked.")
    assert link.wait(60) == 0
    assert "cortask serve" in link.stderr.read() + "".join(rest)
    assert link.stdout.read() == ""
    logged_out = cli(env, "whatsapp", "logout")
    assert logged_out.returncode == 0 and "Linked Devices" in logged_out.stderr  # says the phone was not told
    assert cli_json(env, "whatsapp", "status")["state"] == "unlinked"


def test_link_on_a_terminal_draws_the_whole_live_code_and_ctrl_c_leaves_nothing_behind(env: dict[str, str]) -> None:
    import threading

    # 24 lines: shorter than the code, which must still show whole
    with on_terminal(env, "whatsapp", "link", rows=24) as (link, leader):
        seen = read_terminal(leader, rb"Scan within \d+ s")
        # keep reading: a terminal nobody reads would block the live display's writes
        drain = threading.Thread(target=lambda: _drain(leader), daemon=True)
        drain.start()
        link.send_signal(signal.SIGINT)
        assert link.wait(60) == 130
    assert decode_terminal_qr(plain(seen).splitlines()).startswith("https://wa.me/settings/linked_devices#")
    status = cli_json(env, "whatsapp", "status")
    assert (status["linked"], status["in_use_by"]) == (False, None)  # the lock went with the process


def _drain(fd: int) -> None:
    with contextlib.suppress(OSError):
        while os.read(fd, 65536):
            pass
    os.close(fd)


# -- the store, directly ------------------------------------------------------------------------


def test_contacts_and_agent_directly_with_the_apis_checks_and_words(tmp_path: Path) -> None:
    env = {**os.environ, "CORTASK_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    for name in ("CORTASK_WHATSAPP_SANDBOX_URL", "CORTASK_WHATSAPP_SANDBOX_ROOT_KEY"):
        env.pop(name, None)
    assert cli_json(env, "contacts", "add", "+44 7911 123456", "--name", "Grace")["permission"] == "write"
    changed = cli_json(env, "contacts", "set", "+447911123456", "--permission", "admin")
    assert {k: changed[k] for k in ("phone", "name", "permission", "written", "whatsapp")} == {
        "phone": "+447911123456",
        "name": "Grace",
        "permission": "admin",
        "written": "+44 7911 123456",  # kept as typed when it was added (issue #13)
        "whatsapp": "unchecked",
    }
    cases = [
        (["contacts", "set", "12", "--name", "x"], "too short"),
        (["contacts", "set", "+14155550123", "--name", "x"], "is not a trusted contact"),
        (["contacts", "set", "+447911123456", "--permission", "owner"], "read, write or admin"),
        (["contacts", "remove", "+14155550123"], "+14155550123 is not a trusted contact"),
        (["agent", "set", "telepathy"], "telepathy"),
        (["agent", "set", "openai", "--set", "model"], "NAME=VALUE"),
        (["whatsapp", "start"], "not linked"),
    ]
    for args, words in cases:
        done = cli(env, *args)
        assert done.returncode == 1 and words in done.stderr, (args, done.stderr)
        assert done.stdout == ""
    assert cli_json(env, "contacts", "remove", "+447911123456") == {"removed": "+447911123456"}
    assert cli_json(env, "contacts", "list") == []

    assert cli_json(env, "agent", "show") == {"provider": "echo", "settings": {}, "active": "echo", "override": False}
    cli_json(env, "agent", "set", "openai", "--set", "model=llama3.2", "--set", "api_key=sk-secret-123456")
    shown = cli_json(env, "agent", "show")
    assert (shown["provider"], shown["settings"]["model"]) == ("openai", "llama3.2")
    assert "sk-secret-123456" not in json.dumps(shown)

    status = cli_json(env, "whatsapp", "status")
    assert (status["state"], status["sandbox"], status["running"]) == ("unlinked", False, False)


def test_logout_removes_unreadable_credentials_that_nothing_can_open(tmp_path: Path) -> None:
    env = {**os.environ, "CORTASK_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    auth = tmp_path / "home" / "whatsapp-auth"
    auth.mkdir(parents=True)
    (auth / "auth.db").write_bytes(b"not a database" * 200)
    broken = cli_json(env, "whatsapp", "status")
    assert broken["state"] == "credentials_unreadable" and "logout" in broken["action"]
    refused = cli(env, "whatsapp", "link")
    assert refused.returncode == 1 and "cannot be read" in refused.stderr
    assert (auth / "auth.db").exists()  # left untouched by everything but logout
    assert cli_json(env, "whatsapp", "logout")["state"] == "unlinked"
    assert not auth.exists()
