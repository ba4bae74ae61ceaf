"""Issue #12 through the real `cortask` entry point: files under $CORTASK_HOME are private even when
they existed with a looser mode, what the CLI shows and logs is masked, and the command agent is
set on the machine (in-process) even while a gateway runs, whose API refuses it."""

from __future__ import annotations

import json
import os
import re
import stat
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
KEY = "sk-proj-4fJ9kQ2mZx7LwP0vR3tY8uB1nC6dE5aH"


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CORTASK, *args], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_loose_files_are_made_private_and_nothing_shown_or_logged_holds_the_key(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    loose = [home / "cli.log", home / "cli.log.1"]
    for path in loose:
        path.write_text("an older line\n")
        os.chmod(path, 0o644)
    os.chmod(home, 0o755)
    env = {**os.environ, "CORTASK_HOME": str(home)}

    command = f"python3 agent.py --api-key {KEY}"
    done = cli(env, "agent", "set", "command", "--set", f"command={command}", "--json")
    assert done.returncode == 0, done.stderr
    shown = cli(env, "agent", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["provider"] == "command"

    assert mode(home) == 0o700
    created = [p for p in home.rglob("*")]
    assert home / "cortask.db" in created and all(p in created for p in loose)
    for path in created:
        assert mode(path) == (0o700 if path.is_dir() else 0o600), path
    for text in (done.stdout, done.stderr, shown.stdout, shown.stderr, *(p.read_text() for p in loose)):
        assert KEY not in text


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    env = {**os.environ, "CORTASK_HOME": str(tmp_path / "home"), "CORTASK_TOKEN": "t" * 40}
    proc = subprocess.Popen(
        [*CORTASK, "serve", "--port", str(free_port())],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None
    deadline, url = time.monotonic() + 90, None
    while url is None and time.monotonic() < deadline:
        line = proc.stdout.readline()
        assert line, f"the demo exited early: {proc.wait()}"
        found = re.search(r"Cortask is ready: (http://127\.0\.0\.1:\d+/\S*)", line)
        url = found.group(1) if found else None
    assert url is not None
    try:
        yield url, env
    finally:
        proc.terminate()
        proc.wait(20)


def test_while_a_gateway_runs_the_cli_sets_the_command_agent_in_process_and_the_api_refuses(
    gateway: tuple[str, dict[str, str]],
) -> None:
    _, env = gateway
    home = Path(env["CORTASK_HOME"])
    info = json.loads((home / "gateway.json").read_text())
    api = httpx.Client(base_url=info["url"] + "api", headers=bearer(home), timeout=30)  # as the owner would

    refused = api.put("/agent", json={"provider": "command", "settings": {"command": "id"}})
    assert refused.status_code == 403
    assert "cortask agent set command --set" in refused.json()["error"]

    done = cli(env, "agent", "set", "command", "--set", "command=python3 agent.py", "--json")
    assert done.returncode == 0, done.stderr
    assert api.get("/agent").json()["provider"] == "command"  # the running gateway reads it from the store
