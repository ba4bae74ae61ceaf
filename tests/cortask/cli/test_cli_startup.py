"""`cortask --help` answers at once (issue #18): it shows every command, and what only a command
needs (rich, asyncio, pydantic, the HTTP client, the gateway, the channel) is not imported for it.
The time itself is a benchmark (bench/startup.py), not a test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from testkit.gateway import bearer
from testkit.paths import ROOT
from testkit.ports import free_port

pytestmark = pytest.mark.e2e  # starts a process

# What `--help` imports decides how soon it answers: these are imported when a command runs.
HEAVY = ("asyncio", "rich", "pydantic", "httpx", "aiohttp", "fastapi", "cortask.gateway", "cortask.channels")

PROBE = """
import json, sys
sys.argv = ["cortask", "--help"]
from cortask.cli import main
try:
    main()
except SystemExit as done:
    code = done.code
heavy = sorted({m.split(".")[0] if not m.startswith("cortask.") else ".".join(m.split(".")[:2]) for m in sys.modules})
print(json.dumps({"code": code, "modules": heavy}), file=sys.stderr)
"""


def test_help_lists_every_command_without_importing_what_commands_need() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, cwd=ROOT)
    report = json.loads(done.stderr.strip().splitlines()[-1])

    assert report["code"] == 0
    for command in ("serve", "demo", "whatsapp", "contacts", "agent", "sidecar", "service", "doctor"):
        assert f" {command} " in done.stdout, done.stdout
    assert "Cortask: talk to your agent from WhatsApp." in done.stdout
    loaded = [name for name in HEAVY if name in report["modules"]]
    assert loaded == [], f"`cortask --help` imported {loaded}"


def test_importing_the_agents_does_not_import_the_webhook_client() -> None:
    """aiohttp costs a fifth of a second at start-up; only a webhook agent's reply needs it."""
    code = "import sys, cortask.agents; print('aiohttp' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)

    assert done.stdout.split() == ["False"], done.stderr


# `cortask serve` with WhatsApp not added says ready before it loads the channel, the sidecar
# protocol or the QR library (issue #18), and builds the channel right after. The probe prints a
# line when one of them is imported, on the same stdout as the ready line, so the order is exact.
SERVE_PROBE = """
import sys
WATCHED = {"cortask.channels.whatsapp." + m for m in ("channel", "wire", "qr")} | {"segno"}

class Watch:
    def find_spec(self, name, path=None, target=None):
        if name in WATCHED:
            print("imported " + name, flush=True)
        return None

sys.meta_path.insert(0, Watch())
sys.argv = ["cortask", "serve", "--port", sys.argv[1]]
from cortask.cli import main
main()
"""


def test_serve_with_whatsapp_not_added_is_ready_before_loading_the_channel(tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = free_port()
    env = {**os.environ, "CORTASK_HOME": str(home)}
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE_PROBE, str(port)], env=env, stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("Cortask is ready"), f"before the ready line: {first!r}"
        # The channel is built just after: the status comes from it, and the page can link.
        url = f"http://127.0.0.1:{port}"
        status = httpx.get(f"{url}/api/whatsapp/status", headers=bearer(home), timeout=30)
        assert status.status_code == 200, status.text
        assert status.json()["running"] is True  # the live channel's status, not the stored one
        loaded = {proc.stdout.readline().split()[-1] for _ in range(4)}
        assert loaded == {"cortask.channels.whatsapp.channel", "cortask.channels.whatsapp.wire",
                          "cortask.channels.whatsapp.qr", "segno"}  # fmt: skip
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
