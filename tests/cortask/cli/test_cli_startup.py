"""`cortask --help` answers at once (issue #18): it shows every command, and what only a command
needs (rich, asyncio, pydantic, the HTTP client, the gateway, the channel) is not imported for it.
The time itself is a benchmark (bench/startup.py), not a test."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from testkit.paths import ROOT

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
