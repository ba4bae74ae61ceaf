"""Reconnect policy: the backoff schedule, terminal codes, 515, 440, 405, and when counters reset."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cortask.channels.whatsapp.reconnect import (
    Action,
    CloseReason,
    Decision,
    Reconnector,
    ReconnectPolicy,
    classify_close,
)

NO_JITTER = ReconnectPolicy(jitter=0)


def reconnector(policy: ReconnectPolicy = NO_JITTER, rand: float = 0.0) -> Reconnector:
    return Reconnector(policy, random=lambda: rand)


def test_default_policy_is_the_spec() -> None:
    policy = ReconnectPolicy()
    assert (policy.max_attempts, policy.base_delay, policy.factor, policy.max_delay) == (10, 5.0, 2, 300.0)
    assert (policy.stable_open_seconds, policy.replaced_min_delay) == (60, 30.0)
    assert 0 < policy.jitter <= 0.2


@pytest.mark.parametrize("code", [428, 408, 500, 503, None, 499, 999])
def test_backoff_sequence_then_gave_up(code: int | None) -> None:
    r = reconnector()
    decisions = [r.on_close(code, now=0.0) for _ in range(11)]
    assert [d.delay for d in decisions[:10]] == [5, 10, 20, 40, 80, 160, 300, 300, 300, 300]
    assert [d.attempt for d in decisions[:10]] == list(range(1, 11))
    assert all(d.action is Action.RETRY_AFTER and d.max_attempts == 10 for d in decisions[:10])
    assert decisions[10].action is Action.GAVE_UP
    assert not decisions[10].reconnects


def test_retry_at_is_now_plus_delay() -> None:
    r = reconnector()
    r.on_close(428, now=1000.0)
    decision = r.on_close(428, now=1005.0)
    assert (decision.delay, decision.retry_at) == (10, 1015.0)


def test_gave_up_latches_until_reset() -> None:
    r = reconnector(ReconnectPolicy(jitter=0, max_attempts=2))
    r.on_close(428, 0.0)
    r.on_close(428, 1.0)
    gave_up = r.on_close(428, 2.0)
    assert gave_up.action is Action.GAVE_UP
    r.on_open(3.0)
    assert r.on_close(515, 1000.0) is gave_up  # latched: not even a restart gets through
    assert r.latched is gave_up
    r.reset()
    assert r.latched is None
    assert r.on_close(428, 1001.0).action is Action.RETRY_AFTER


def test_515_reconnects_immediately_without_counting() -> None:
    r = reconnector()
    r.on_close(428, 0.0)
    decision = r.on_close(515, 10.0, "Stream Errored (restart required)")
    assert decision.action is Action.RECONNECT_NOW
    assert (decision.delay, decision.retry_at, decision.attempt) == (0, 10.0, 1)
    assert decision.detail == "Stream Errored (restart required)"
    assert r.on_close(428, 20.0).attempt == 2  # the 515 did not use an attempt


def test_515_after_pairing_then_open() -> None:
    r = reconnector()
    assert r.on_close(515, 0.0).action is Action.RECONNECT_NOW
    r.on_open(1.0)
    assert r.is_open


def test_515_storm_is_bounded() -> None:
    r = reconnector(ReconnectPolicy(jitter=0, max_immediate_restarts=3))
    actions = []
    for i in range(5):
        r.on_open(float(i))  # opens that never stay up
        actions.append(r.on_close(515, i + 0.5).action)
    assert actions == [Action.RECONNECT_NOW] * 3 + [Action.RETRY_AFTER] * 2


def test_515_budget_refills_after_a_stable_open() -> None:
    r = reconnector(ReconnectPolicy(jitter=0, max_immediate_restarts=1))
    assert r.on_close(515, 0.0).action is Action.RECONNECT_NOW
    assert r.on_close(515, 1.0).action is Action.RETRY_AFTER
    r.on_open(2.0)
    assert r.on_close(515, 100.0).action is Action.RECONNECT_NOW


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (401, CloseReason.LOGGED_OUT),
        (403, CloseReason.FORBIDDEN),
        (411, CloseReason.MULTIDEVICE_MISMATCH),
        (402, CloseReason.FORBIDDEN),
        (406, CloseReason.FORBIDDEN),
        (419, CloseReason.LOGGED_OUT),
    ],
)
def test_terminal_codes_stop_and_need_relinking(code: int, reason: CloseReason) -> None:
    r = reconnector()
    r.on_open(0.0)
    decision = r.on_close(code, 500.0)
    assert decision.action is Action.TERMINAL
    assert decision.reason is reason
    assert decision.relink_required
    assert not decision.reconnects
    assert decision.retry_at is None
    assert "linked again" in decision.sentence
    # A sidecar crash after the logout must not bring the connection back.
    assert r.on_close(None, 501.0) is decision


def test_terminal_even_on_the_first_attempt_of_a_fresh_start() -> None:
    assert reconnector().on_close(401, 0.0).action is Action.TERMINAL


def test_440_waits_at_least_replaced_min_delay() -> None:
    r = reconnector()
    decisions = [r.on_close(440, float(i)) for i in range(6)]
    assert [d.delay for d in decisions] == [30, 30, 30, 40, 80, 160]
    assert all(d.reason is CloseReason.REPLACED for d in decisions)
    assert decisions[0].sentence.startswith("Another WhatsApp Web client")


def test_440_min_delay_holds_with_jitter() -> None:
    r = reconnector(ReconnectPolicy(jitter=1.0), rand=0.999)
    assert r.on_close(440, 0.0).delay >= 30


def test_440_ping_pong_runs_out_of_attempts() -> None:
    # Each cycle opens briefly before being replaced again: the brief opens reset nothing.
    r = reconnector()
    now = 0.0
    decision: Decision | None = None
    for _ in range(11):
        decision = r.on_close(440, now)
        if decision.action is not Action.RETRY_AFTER:
            break
        now += decision.delay
        r.on_open(now)
        now += 5
    assert decision is not None and decision.action is Action.GAVE_UP


def test_405_is_retried_once_then_needs_update() -> None:
    r = reconnector()
    first = r.on_close(405, 0.0)
    assert first.action is Action.RETRY_AFTER and first.reason is CloseReason.VERSION_REFUSED
    second = r.on_close(405, 10.0)
    assert second.action is Action.TERMINAL and second.reason is CloseReason.VERSION_REFUSED
    assert not second.relink_required  # the link is fine, the client is old
    assert "sidecar" in second.sentence and "updated" in second.sentence


def test_405_with_no_retries() -> None:
    r = reconnector(ReconnectPolicy(jitter=0, version_retries=0))
    assert r.on_close(405, 0.0).action is Action.TERMINAL


def test_counter_resets_after_a_stable_open() -> None:
    r = reconnector()
    for i in range(4):
        r.on_close(428, float(i))
    assert r.attempt == 4
    r.on_open(100.0)
    decision = r.on_close(428, 160.0)  # exactly stable_open_seconds later
    assert (decision.attempt, decision.delay) == (1, 5)


def test_counter_does_not_reset_after_a_short_open() -> None:
    r = reconnector()
    for i in range(4):
        r.on_close(428, float(i))
    r.on_open(100.0)
    decision = r.on_close(428, 159.9)
    assert (decision.attempt, decision.delay) == (5, 80)


def test_a_close_without_an_open_does_not_reset() -> None:
    r = reconnector()
    r.on_open(0.0)
    r.on_close(428, 10.0)  # short open
    decision = r.on_close(428, 1000.0)  # long after, but never opened again
    assert decision.attempt == 2


def test_sidecar_crash_counts_as_lost_connection() -> None:
    decision = reconnector().on_close(None, 0.0)
    assert decision.action is Action.RETRY_AFTER
    assert decision.reason is CloseReason.SIDECAR_EXITED
    assert "sidecar" in decision.sentence and "no code" in decision.sentence


def test_a_sidecar_that_dies_after_opening_is_restarted_at_once_a_few_times_then_backed_off() -> None:
    r = reconnector(ReconnectPolicy(jitter=0))
    decisions = []
    for i in range(5):
        r.on_open(float(i))
        decisions.append(r.on_close(None, i + 0.5))  # killed half a second after each open
    assert [d.action for d in decisions] == [Action.RECONNECT_NOW] * 3 + [Action.RETRY_AFTER] * 2
    assert [d.delay for d in decisions] == [0, 0, 0, 5, 10]
    assert "sidecar" in decisions[0].sentence and "reconnecting now" in decisions[0].sentence
    # after a stable open the budget is whole again
    r.on_open(100.0)
    assert r.on_close(None, 200.0).action is Action.RECONNECT_NOW
    # dying before the connection opened is not a restart: it is retried with backoff
    assert r.on_close(None, 201.0).action is Action.RETRY_AFTER


@pytest.mark.parametrize(("rand", "expected"), [(0.0, 5.0), (0.5, 4.75), (0.999999, 4.500005), (-3.0, 5.0), (7.0, 4.5)])
def test_jitter_only_shortens(rand: float, expected: float) -> None:
    decision = reconnector(ReconnectPolicy(jitter=0.1), rand).on_close(428, 0.0)
    assert decision.delay == pytest.approx(expected)


@given(attempt=st.integers(min_value=1, max_value=10_000), rand=st.floats(min_value=0, max_value=1))
def test_delay_never_exceeds_the_cap(attempt: int, rand: float) -> None:
    policy = ReconnectPolicy(factor=10)
    delay = policy.delay(attempt, CloseReason.CONNECTION_LOST, rand)
    assert 0 <= delay <= policy.max_delay


def test_parameters_compress_time_for_tests() -> None:
    policy = ReconnectPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02, jitter=0, replaced_min_delay=0.05)
    r = reconnector(policy)
    assert [r.on_close(428, 0.0).delay for _ in range(3)] == [0.01, 0.02, 0.02]
    assert r.on_close(428, 0.0).action is Action.GAVE_UP


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (515, CloseReason.RESTART_REQUIRED),
        (428, CloseReason.CONNECTION_CLOSED),
        (408, CloseReason.CONNECTION_LOST),
        (500, CloseReason.BAD_SESSION),
        (503, CloseReason.UNAVAILABLE),
        (440, CloseReason.REPLACED),
        (405, CloseReason.VERSION_REFUSED),
        (None, CloseReason.SIDECAR_EXITED),
        (200, CloseReason.UNKNOWN),
    ],
)
def test_classify_close(code: int | None, reason: CloseReason) -> None:
    assert classify_close(code) is reason
    assert not reason.terminal


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": -1},
        {"base_delay": -1},
        {"factor": 0.5},
        {"jitter": 1.5},
        {"jitter": -0.1},
        {"stable_open_seconds": -1},
        {"replaced_min_delay": -1},
    ],
)
def test_policy_validation(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ReconnectPolicy(**kwargs)  # type: ignore[arg-type]


def test_sentences() -> None:
    r = reconnector()
    assert r.on_close(428, 0.0).sentence == (
        "The connection was closed (code 428); reconnecting (attempt 1 of 10) in 5 s."
    )
    assert r.on_close(515, 0.0).sentence == "WhatsApp asked for a restart (code 515); reconnecting now."
    r2 = reconnector(ReconnectPolicy(jitter=0, max_attempts=0))
    assert r2.on_close(408, 0.0).sentence == (
        "The connection was lost or timed out (code 408); gave up after 0 reconnection attempts."
    )
