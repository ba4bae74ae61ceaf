"""`cortask whatsapp link --phone` (issue #15) through the real entry point, on wasim in its own
process: the code is printed (JSON lines, or grouped with the steps for a person), the simulated
phone types it, and the command follows to `linked` like the QR path."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from testkit.cli import CORTASK, on_terminal, plain, popen, read_terminal, sandbox_env
from testkit.cli import SimProcess as Sim
from testkit.gateway import bearer
from testkit.ports import free_port

pytestmark = pytest.mark.e2e

OWN = "4915112345678"  # the simulated phone's own number (WhatsApp's test default is not a valid one)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    server = Sim(tmp_path_factory.mktemp("wasim"), "--phone", OWN)
    yield server
    server.close()


@pytest.fixture
def env(tmp_path: Path, sim: Sim) -> dict[str, str]:
    return sandbox_env(tmp_path / "home", sim)


def test_link_by_code_json_prints_the_code_then_linked(env: dict[str, str], sim: Sim) -> None:
    link = popen(env, "whatsapp", "link", "--phone", "+49 151 12345678", "--json")
    assert link.stdout is not None
    first = json.loads(link.stdout.readline())
    assert re.fullmatch(r"[0-9A-Z]{4}-[0-9A-Z]{4}", first["code"]) and 50 < first["expires_in"] <= 60
    assert sim.pair(first["code"]).status_code == 200
    assert json.loads(link.stdout.readline()) == {"state": "linked"}
    assert link.wait(60) == 0
    assert link.stdout.read() == ""  # nothing but the JSON lines on stdout
    status = subprocess.run([*CORTASK, "whatsapp", "status", "--json"], env=env, capture_output=True, text=True)
    assert json.loads(status.stdout)["linked"] is True


def test_link_by_code_for_people_shows_the_grouped_code_and_the_steps(env: dict[str, str], sim: Sim) -> None:
    link = popen(env, "whatsapp", "link", "--phone", "+4915112345678", "--code", "CORTASK1")
    assert link.stdout is not None and link.stderr is not None
    seen: list[str] = []
    while not any("Link with phone number instead" in line for line in seen):
        line = link.stderr.readline()
        assert line, "".join(seen)
        seen.append(line)
    shown = "".join(seen)
    assert "CORT-ASK1" in shown and re.search(r"Type it within \d+ s", shown)
    assert "Linked Devices" in shown
    assert sim.pair("CORT-ASK1").status_code == 200
    out, err = link.communicate(timeout=60)
    assert link.returncode == 0, err
    assert "Linked." in out + err


def test_a_number_that_is_not_a_phone_number_or_not_on_whatsapp_says_what_to_do(env: dict[str, str]) -> None:
    done = subprocess.run(
        [*CORTASK, "whatsapp", "link", "--phone", "12345", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "too short" in done.stderr and "phone that has WhatsApp" in done.stderr
    # A real number with no WhatsApp account: WhatsApp refuses the code request, and we say what to do.
    done = subprocess.run(
        [*CORTASK, "whatsapp", "link", "--phone", "+49 30 1234567", "--json"],
        env=env, capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert done.returncode == 1
    assert "no account for +49301234567" in done.stderr and "QR code instead" in done.stderr


def test_link_by_code_through_a_running_gateway(env: dict[str, str], sim: Sim) -> None:
    # With `cortask serve` running, the CLI asks it (the HTTP client) and follows its event stream.
    port = free_port()
    serve = popen(env, "serve", "--port", str(port))
    assert serve.stdout is not None
    assert "Cortask is ready" in serve.stdout.readline()
    try:
        link = popen(env, "whatsapp", "link", "--phone", "+4915112345678", "--json")
        assert link.stdout is not None
        first = json.loads(link.stdout.readline())
        assert re.fullmatch(r"[0-9A-Z]{4}-[0-9A-Z]{4}", first["code"]) and 50 < first["expires_in"] <= 60
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}/api", headers=bearer(Path(env["CORTASK_HOME"])))
        shown = api.get("/whatsapp", timeout=30).json()["code"]
        assert shown["grouped"] == first["code"] and shown["phone"] == "+4915112345678"
        assert sim.pair(first["code"]).status_code == 200
        assert json.loads(link.stdout.readline()) == {"state": "linked"}
        assert link.wait(60) == 0
    finally:
        serve.terminate()
        assert serve.wait(30) == 0


def test_link_by_code_on_a_terminal_shows_the_live_code_and_its_countdown(env: dict[str, str], sim: Sim) -> None:
    with on_terminal(env, "whatsapp", "link", "--phone", "+4915112345678") as (link, leader):
        seen = read_terminal(leader, rb"Type it within \d+ s")
        text = plain(seen)
        code = re.search(r"\b([0-9A-Z]{4}-[0-9A-Z]{4})\b", text)
        assert code, text
        assert "Link with phone number instead" in text
        assert sim.pair(code.group(1)).status_code == 200
        while True:  # read to the end, so the live display's writes never block
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            seen += chunk
        assert link.wait(60) == 0
    assert b"Linked." in seen
