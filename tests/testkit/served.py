"""A `cortask serve` process (any installation's) linked to a wasim process over loopback, as an
operator runs them: wasim from the checkout, Cortask from the given command, a trusted contact."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from testkit.paths import ROOT
from testkit.ports import free_port

ADA = "+4915123456789"
WASIM = [sys.executable, "-m", "wasim"]


@dataclass
class Served:
    url: str
    control: str
    env: dict[str, str]
    cortask: Sequence[str]
    cwd: Path

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.cortask, *args], env=self.env, capture_output=True, text=True, timeout=timeout, cwd=self.cwd
        )

    def wasim(self, *args: str) -> dict[str, object]:
        done = subprocess.run([*WASIM, *args, "--control", self.control], capture_output=True, text=True, cwd=ROOT)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else {}

    def link(self) -> None:
        """`cortask whatsapp link --json` through the running gateway, the QR scanned by wasim's phone."""
        link = subprocess.Popen(
            [*self.cortask, "whatsapp", "link", "--json"], env=self.env, stdout=subprocess.PIPE, text=True, cwd=self.cwd
        )
        assert link.stdout is not None
        first = json.loads(link.stdout.readline())
        self.wasim("scan", first["qr"])
        assert json.loads(link.stdout.readline()) == {"state": "linked"}
        assert link.wait(30) == 0

    def replies_to(self, contact: str) -> list[str]:
        inbox = self.wasim("inbox", "--contact", contact)["inbox"]
        assert isinstance(inbox, list)
        return [x["text"] for x in inbox if x["type"] == "message"]

    def wait_replies(self, contact: str, count: int, timeout: float = 60) -> list[str]:
        deadline = time.monotonic() + timeout
        while len(texts := self.replies_to(contact)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{contact} got {texts}, expected {count} replies")
            time.sleep(0.3)
        return texts


def _first_line(proc: subprocess.Popen[str], wanted: str, timeout: float = 120) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"exited early ({proc.wait()}): {proc.stderr.read() if proc.stderr else ''}")
        if wanted in line:
            return line
    raise AssertionError(f"no {wanted!r} line within {timeout} s")


@contextmanager
def served(cortask: Sequence[str], env: dict[str, str], workdir: Path, cwd: Path) -> Iterator[Served]:
    """wasim, then `cortask serve` on it with Ada trusted; both stopped (and checked) at the end."""
    sim = subprocess.Popen(
        [*WASIM, "serve", "--port", str(free_port()), "--state", str(workdir / "wasim")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    gateway: subprocess.Popen[str] | None = None
    try:
        info = json.loads(_first_line(sim, "root_public_key"))
        env = {
            **env,
            "CORTASK_WHATSAPP_SANDBOX_URL": info["url"],
            "CORTASK_WHATSAPP_SANDBOX_ROOT_KEY": info["root_public_key"],
        }
        port = free_port()
        result = Served(f"http://127.0.0.1:{port}", info["control_url"], env, cortask, cwd)
        result.wasim("contact", "add", ADA, "--name", "Ada")
        added = result.cli("contacts", "add", ADA, "--name", "Ada", "--permission", "write")
        assert added.returncode == 0, added.stderr
        gateway = subprocess.Popen(
            [*cortask, "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
        )
        _first_line(gateway, "Cortask is ready")
        yield result
    finally:
        for proc in (gateway, sim):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
