"""`whatsapp status`, `contacts list` and `agent show` print one JSON shape, whether a gateway runs
(the CLI goes through its API) or not (the CLI acts in-process): the real entry point, both ways,
on one Cortask home."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from testkit.paths import ROOT
from testkit.ports import free_port

from cortask.app.models import Agent, Contact, Status
from cortask.channels.whatsapp.state import ConnectionState

pytestmark = pytest.mark.e2e

CORTASK = [sys.executable, "-m", "cortask"]
COMMANDS = (("whatsapp", "status"), ("contacts", "list"), ("agent", "show"))


def cli_json(env: dict[str, str], *args: str) -> Any:
    done = subprocess.run([*CORTASK, *args, "--json"], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def shape(value: Any) -> Any:
    """The keys and the kinds of values, recursively (lists by their first item)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return "value"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {**os.environ, "CORTASK_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    for name in ("CORTASK_WHATSAPP_SANDBOX_URL", "CORTASK_WHATSAPP_SANDBOX_ROOT_KEY", "CORTASK_TOKEN"):
        env.pop(name, None)
    cli_json(env, "contacts", "add", "+44 7911 123456", "--name", "Grace")
    yield env


def test_the_same_shape_with_and_without_a_running_gateway(env: dict[str, str]) -> None:
    without = {args: cli_json(env, *args) for args in COMMANDS}

    proc = subprocess.Popen(
        [*CORTASK, "serve", "--port", str(free_port())], env=env, stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert proc.stdout is not None
        assert "Cortask is ready" in proc.stdout.readline()
        through = {args: cli_json(env, *args) for args in COMMANDS}
    finally:
        proc.terminate()
        assert proc.wait(30) == 0

    for args in COMMANDS:
        assert shape(without[args]) == shape(through[args]), args
    # and each is the model it claims to be, with the state a real ConnectionState both ways
    for answers, running in ((without, False), (through, True)):
        status = Status.model_validate(answers[("whatsapp", "status")])
        assert status.running is running and status.state is ConnectionState.UNLINKED
        assert [c.phone for c in map(Contact.model_validate, answers[("contacts", "list")])] == ["+447911123456"]
        assert Agent.model_validate(answers[("agent", "show")]).provider == "echo"
    assert without[("contacts", "list")] == through[("contacts", "list")]
    assert without[("agent", "show")] == through[("agent", "show")]
