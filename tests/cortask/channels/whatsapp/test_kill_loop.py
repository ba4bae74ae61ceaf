"""Kill -9 at random moments, 50 times (the service or only its sidecar) while contacts keep
writing: no re-scan, every message answered exactly once, the auth directory still loads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from testkit.kill_loop import run_kill_loop

pytestmark = pytest.mark.e2e

CYCLES = int(os.environ.get("CORTASK_KILL_LOOP_CYCLES", "50"))


@pytest.mark.timeout(1200)
async def test_killed_at_random_moments_nothing_is_lost_doubled_or_unlinked(tmp_path: Path) -> None:
    result = await run_kill_loop(tmp_path, CYCLES, seed=7)
    assert result.cycles == CYCLES
    assert result.service_kills > 0 and result.sidecar_kills > 0
    assert result.rescans == 0, "a kill cost a re-scan"
    assert result.answered_twice == 0, "a message was answered twice"
    assert result.lost == 0, f"unanswered: {result.lost_texts} (see {tmp_path / 'service.log'})"
    assert result.answered_once == result.sent > 0
    assert result.auth_loads, "the auth directory no longer loads"
    assert result.leftover_sidecars == 0, "a sidecar outlived its service"
