"""A newcomer's first hour at the terminal (issue #17), through the real `cortask` command and
`scripts/run`/`scripts/setup`: real processes, real signals, real ports, a real store."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from testkit.gateway import bearer
from testkit.lines import first_lines
from testkit.paths import ROOT
from testkit.ports import free_port

pytestmark = pytest.mark.e2e

CORTASK = str(Path(sys.executable).parent / "cortask")  # the console script a person runs


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORTASK_")}
    return {**env, "CORTASK_HOME": str(home), **extra}


def cli(home: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CORTASK, *args], env=_env(home), capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False
    )


@contextlib.contextmanager
def serving(home: Path, *args: str) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """`cortask serve` on a free port until the block ends; the process and its port."""
    port = free_port()
    proc = subprocess.Popen(
        [CORTASK, "serve", "--port", str(port), *args],
        env=_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "Cortask is ready" in line, (line, proc.poll())
    try:
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(20)


def _open_event_stream(home: Path, port: int) -> tuple[threading.Event, threading.Thread]:
    """A client holding `/api/events` open, as a browser tab does; `ended` is set when the server ends it."""
    opened, ended = threading.Event(), threading.Event()

    def follow() -> None:
        with contextlib.suppress(httpx.HTTPError):
            with httpx.stream("GET", f"http://127.0.0.1:{port}/api/events", headers=bearer(home), timeout=60) as resp:
                for _ in resp.iter_lines():
                    opened.set()
        ended.set()

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    assert opened.wait(20), "the event stream did not open"
    return ended, thread


# -- 1. Ctrl-C and SIGTERM stop the service whatever clients are connected -------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_serve_within_seconds_with_a_page_open(tmp_path: Path, sig: signal.Signals) -> None:
    with serving(tmp_path / "home") as (proc, port):
        ended, _ = _open_event_stream(tmp_path / "home", port)
        started = time.monotonic()
        proc.send_signal(sig)
        try:
            code = proc.wait(8)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{sig.name} left `cortask serve` running with an event stream open")
        took = time.monotonic() - started
        assert proc.stderr is not None
        said = proc.stderr.read()
    assert code == 0 and took < 8, (code, took)
    assert "stopping" in said, said  # it says what it is doing
    assert ended.wait(5)


# -- 2. nothing is written for a link that does not exist --------------------------------------------


def test_serve_without_a_link_leaves_no_link_folder(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert cli(home, "contacts", "add", "+4915123456789").returncode == 0
    with serving(home) as (proc, _):
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    assert not (home / "whatsapp-auth").exists(), sorted(p.name for p in home.iterdir())


def test_serve_on_a_busy_port_says_so_in_one_line_and_writes_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = cli(home, "serve", "--port", str(port))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) <= 2, done.stderr  # 9: no traceback
    assert "--port" in done.stderr and str(port) in done.stderr
    assert "Traceback" not in done.stderr
    assert not (home / "whatsapp-auth").exists()


def test_scripts_run_picks_the_demo_while_nothing_is_linked(tmp_path: Path) -> None:
    """An empty link folder (left by an older version) is not a link: `scripts/run` still runs the demo."""
    home = tmp_path / "home"
    (home / "whatsapp-auth").mkdir(parents=True)
    port = free_port()
    proc = subprocess.Popen(
        [str(ROOT / "scripts" / "run"), "--port", str(port)],
        env=_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "Cortask is ready" in line, line
        assert httpx.get(f"http://127.0.0.1:{port}/api/whatsapp", headers=bearer(home)).json()["status"]["sandbox"]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


# -- 3. an unknown agent is refused at start, as `agent set` refuses it ------------------------------


@pytest.mark.parametrize("command", ["demo", "serve"])
def test_an_unknown_agent_is_refused_at_start(tmp_path: Path, command: str) -> None:
    done = cli(tmp_path / "home", command, "--port", str(free_port()), "--agent", "nosuch")
    assert done.returncode == 1, done
    assert "ready" not in done.stdout
    assert "unknown agent provider 'nosuch'" in done.stderr and "echo" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2 and "Traceback" not in done.stderr
    # the same sentence `agent set` gives
    assert "unknown agent provider 'nosuch'" in cli(tmp_path / "home", "agent", "set", "nosuch").stderr


# -- 9. a second demo: one line, not a traceback ----------------------------------------------------


def test_a_second_demo_says_who_holds_it_in_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = free_port()
    first = subprocess.Popen(
        [CORTASK, "demo", "--port", str(port)], env=_env(home), stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert first.stdout is not None
        said = first_lines(first.stdout, 6)  # ready, the phone, linking by code, wasim, where the data lives
        assert said and "Cortask is ready" in said[0], said
        # 4. where the demo's data lives, said where it starts
        assert any(str(home / "demo") in line for line in said), said
        same_port = cli(home, "demo", "--port", str(port))
        other_port = cli(home, "demo", "--port", str(free_port()))
        # 4. the CLI reaches the demo's home while it runs
        contacts = cli(home, "contacts", "list", "--json")
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(20)
    for done in (same_port, other_port):
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) <= 2, done.stderr
    assert "--port" in same_port.stderr
    assert "in use by" in other_port.stderr and "cortask demo" in other_port.stderr
    assert "+4915123456789" in contacts.stdout, contacts


# -- 11. which agent runs now, which is stored ------------------------------------------------------


def test_agent_show_and_set_say_what_runs_now_and_what_is_stored(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with serving(home, "--agent", "echo"):
        saved = cli(home, "agent", "set", "openai", "--set", "base_url=http://127.0.0.1:9/v1", "--set", "model=m")
        shown = cli(home, "agent", "show")
    for done in (saved, shown):
        assert done.returncode == 0, done.stderr
        words = " ".join(done.stderr.split())
        assert "Stored agent: openai" in words and "Running now: echo" in words, words
    assert "agent: echo" not in saved.stderr


# -- 14. start and pause say what is true --------------------------------------------------------------


def test_pause_with_no_link_says_there_is_nothing_to_pause(tmp_path: Path) -> None:
    done = cli(tmp_path / "home", "whatsapp", "pause")
    assert done.returncode == 0, done.stderr
    assert "Nothing to pause" in done.stderr and "link is kept" not in done.stderr, done.stderr
    status = cli(tmp_path / "home", "whatsapp", "status", "--json")
    assert '"paused": false' in status.stdout  # nothing was changed


# -- 12. states in words ---------------------------------------------------------------------------------


def test_status_says_the_state_in_words(tmp_path: Path) -> None:
    done = cli(tmp_path / "home", "whatsapp", "status")
    assert done.stderr.startswith("Not linked yet:"), done.stderr


# -- 15. phone numbers as people type them; help screens --------------------------------------------


def test_contacts_take_numbers_as_people_type_them(tmp_path: Path) -> None:
    home = tmp_path / "home"
    short = cli(home, "contacts", "add", "12345")
    assert short.returncode == 1 and "United States" not in short.stderr and "+" in short.stderr, short.stderr
    spaced = cli(home, "contacts", "add", "+33", "6", "12", "34", "56", "78", "--name", "Eve")
    assert spaced.returncode == 0, spaced.stderr
    assert "+33612345678" in cli(home, "contacts", "list", "--json").stdout
    assert cli(home, "contacts", "set", "+33", "6", "12", "34", "56", "78", "--permission", "read").returncode == 0
    assert cli(home, "contacts", "remove", "+33", "6", "12", "34", "56", "78").returncode == 0


@pytest.mark.parametrize("args", [["--help"], ["contacts", "add", "--help"], ["whatsapp", "status", "--help"]])
def test_help_screens_do_not_show_types_on_flags(tmp_path: Path, args: list[str]) -> None:
    done = cli(tmp_path / "home", *args)
    assert done.returncode == 0 and "--help" in done.stdout, done
    assert "<bool>" not in done.stdout, done.stdout


# -- 17. the first setup says what it is doing --------------------------------------------------------


def test_setup_says_what_it_installs(tmp_path: Path) -> None:
    stamp = ROOT / ".venv" / ".setup-stamp"
    stamp.unlink(missing_ok=True)  # as on a first run: the Python packages are (re)installed
    done = subprocess.run(
        [str(ROOT / "scripts" / "setup")], env={**os.environ, "CORTASK_SKIP_BROWSER": "1"},
        capture_output=True, text=True, timeout=600, cwd=ROOT, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "setup: installing the Python packages" in done.stderr, done.stderr[-2000:]
    assert stamp.exists()
    again = subprocess.run(
        [str(ROOT / "scripts" / "setup")], env={**os.environ, "CORTASK_SKIP_BROWSER": "1"},
        capture_output=True, text=True, timeout=600, cwd=ROOT, check=False,
    )  # fmt: skip
    assert "installing" not in again.stderr  # a later run only checks, quietly
