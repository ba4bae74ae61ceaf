"""Shared fixtures: a wasim on loopback and real Baileys clients in Node processes."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from testkit.baileys import BaileysDriver

from wasim.server.app import Wasim

logging.getLogger("wasim").setLevel(logging.INFO)


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[Wasim]:
    async with Wasim(tmp_path / "wasim-state") as server:
        yield server


@pytest.fixture
async def make_baileys(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[BaileysDriver]]]:
    """Start real Baileys processes; each gets its own auth directory unless one is given."""
    started: list[BaileysDriver] = []

    async def start(name: str = "auth", auth_dir: Path | None = None) -> BaileysDriver:
        driver = await BaileysDriver(auth_dir or tmp_path / name).start()
        started.append(driver)
        return driver

    yield start
    for driver in started:
        await driver.close()


# -- the fast suite --------------------------------------------------------------------------------
# End-to-end tests (real Baileys in Node, the sidecar, CLI subprocesses, a browser) are marked
# `e2e`; `pytest -m "not e2e"` runs the rest in well under a minute. An unmarked test that starts a
# process fails, so the fast suite stays free of processes without anyone having to remember.

E2E_HINT = (
    "this test starts a process ({what}), so it is an end-to-end test: mark its module with "
    "`pytestmark = pytest.mark.e2e` (the fast suite, `-m 'not e2e'`, starts no processes)"
)


# A fixture named `oracle` runs Baileys' own code in a Node process to check ours against it.
E2E_FIXTURES = frozenset({"oracle"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if E2E_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


_running: list[pytest.Item] = []  # the test being set up, run or torn down


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> object:
    _running.append(item)
    try:
        return (yield)
    finally:
        _running.pop()


def pytest_configure(config: pytest.Config) -> None:
    # Patched once for the session, so a process started by a module- or session-scoped fixture
    # is caught too: it starts while the first test that needs it is being set up.
    real = subprocess.Popen._execute_child  # type: ignore[attr-defined]

    def guarded(self: subprocess.Popen[bytes], args: object, *rest: object, **kw: object) -> None:
        if _running and _running[-1].get_closest_marker("e2e") is None:
            what = args if isinstance(args, str | bytes) else " ".join(str(a) for a in args)  # type: ignore[attr-defined]
            raise AssertionError(E2E_HINT.format(what=str(what)[:80]))
        real(self, args, *rest, **kw)

    subprocess.Popen._execute_child = guarded  # type: ignore[attr-defined]
