"""The fault matrix: every way wasim can end or break a connection, against a linked, open channel
(real sidecar, real Baileys), each ending in the state and the retry behaviour the spec gives.

The spec, as a table: the three terminal reasons (logged out 401, forbidden 403, multi-device
mismatch 411) stop and ask for a new link; 515 reconnects at once and is not counted; 440 waits
at least its floor and says another client took over; 405 (client version refused) is retried
once, then says the sidecar needs updating; everything else (428, 500, 503, a silent
drop noticed by the keep-alive, a server that refuses connections) reconnects with exponential
backoff, and ten failed attempts end in "gave up". After every reconnection the channel still
answers a message, once.

Delays are small parameters here; the published delays are checked against the policy, and the
real waits only from below (a reconnection never comes before its published time), so a slow
machine cannot fail the test.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from enum import Enum

import pytest
from testkit.channel import MakeChannel, link, reply_seen, texts_received

from cortask.channels.whatsapp.channel import WhatsAppChannel
from cortask.channels.whatsapp.reconnect import ReconnectPolicy
from cortask.channels.whatsapp.state import ChannelStatus, ConnectionState
from cortask.contacts.access import TrustedContact
from wasim.server.app import Wasim
from wasim.server.faults import Fault

pytestmark = pytest.mark.e2e

ADA = "+4915123456789"
BASE, CAP, REPLACED_FLOOR = 0.3, 0.6, 1.5
POLICY = ReconnectPolicy(base_delay=BASE, factor=2.0, max_delay=CAP, jitter=0.0, replaced_min_delay=REPLACED_FLOOR)
KEEP_ALIVE_MS = 500  # Baileys declares the link lost when nothing came back for this + 5 s
QUIET = 2.0  # how long a stopped channel is watched for attempts it should not make


class Retry(Enum):
    NEVER = "never: terminal, a new link is needed"
    BACKOFF = "with exponential backoff"
    AT_ONCE = "at once, not counted as a failure"
    AFTER_FLOOR = "no sooner than the 440 floor"
    GIVES_UP = "ten attempts, then gives up"
    ONCE_THEN_UPDATE = "retried once, then stops: the sidecar needs updating (the link is kept)"


@dataclass(frozen=True)
class Case:
    fault: Fault
    ends_in: ConnectionState  # the state the fault leads to
    retry: Retry
    code: int | None = None  # the close code Baileys reports, when the status shows it
    times: int = 1  # the fault is applied again after each reconnection: the attempt count grows
    refuse_for: float = 0.0  # the server refuses new connections this long before the fault


def _case(case: Case, name: str) -> object:
    return pytest.param(case, id=name)


MATRIX = [
    _case(Case(Fault("stream_error", 401), ConnectionState.LOGGED_OUT, Retry.NEVER), "401 stream error: logged out"),
    _case(Case(Fault("failure", 401), ConnectionState.LOGGED_OUT, Retry.NEVER), "401 failure: logged out"),
    _case(Case(Fault("stream_error", 403), ConnectionState.FORBIDDEN, Retry.NEVER), "403 stream error: forbidden"),
    _case(Case(Fault("failure", 403), ConnectionState.FORBIDDEN, Retry.NEVER), "403 failure: forbidden"),
    _case(
        Case(Fault("stream_error", 411), ConnectionState.MULTIDEVICE_MISMATCH, Retry.NEVER),
        "411 stream error: multi-device mismatch",
    ),
    _case(
        Case(Fault("failure", 411), ConnectionState.MULTIDEVICE_MISMATCH, Retry.NEVER),
        "411 failure: multi-device mismatch",
    ),
    _case(
        Case(Fault("downgrade"), ConnectionState.MULTIDEVICE_MISMATCH, Retry.NEVER),
        "downgrade_webclient: multi-device mismatch",
    ),
    _case(Case(Fault("stream_error", 428), ConnectionState.RECONNECTING, Retry.BACKOFF, 428, 2), "428 stream error"),
    _case(Case(Fault("stream_end"), ConnectionState.RECONNECTING, Retry.BACKOFF, 428, 2), "stream end: 428"),
    _case(Case(Fault("close"), ConnectionState.RECONNECTING, Retry.BACKOFF, 428, 2), "socket closed: 428"),
    _case(Case(Fault("stream_error", 500), ConnectionState.RECONNECTING, Retry.BACKOFF, 500, 2), "500 stream error"),
    _case(Case(Fault("failure", 500), ConnectionState.RECONNECTING, Retry.BACKOFF, 500, 2), "500 failure"),
    _case(Case(Fault("stream_error", 503), ConnectionState.RECONNECTING, Retry.BACKOFF, 503, 2), "503 stream error"),
    _case(Case(Fault("failure", 503), ConnectionState.RECONNECTING, Retry.BACKOFF, 503, 2), "503 failure"),
    _case(
        Case(Fault("stream_error", 440), ConnectionState.RECONNECTING, Retry.AFTER_FLOOR, 440),
        "440 replaced: waits the floor",
    ),
    _case(
        Case(Fault("stream_error", 515), ConnectionState.CONNECTING, Retry.AT_ONCE, 515),
        "515 restart: reconnects at once",
    ),
    _case(
        Case(Fault("stream_error", 405), ConnectionState.RECONNECTING, Retry.ONCE_THEN_UPDATE, 405),
        "405 version refused: once more, then needs update",
    ),
    _case(
        Case(Fault("drop"), ConnectionState.RECONNECTING, Retry.BACKOFF, 408), "silent drop: keep-alive notices, 408"
    ),
    _case(
        Case(Fault("close"), ConnectionState.RECONNECTING, Retry.BACKOFF, refuse_for=2.5),
        "server refuses for a while: reconnects after",
    ),
    _case(
        Case(Fault("close"), ConnectionState.GAVE_UP, Retry.GIVES_UP, refuse_for=60),
        "server refuses past ten attempts: gave up",
    ),
]


class StatusLog:
    """Every status the channel publishes, with when this subscriber saw it."""

    def __init__(self, channel: WhatsAppChannel) -> None:
        self.seen: list[tuple[float, ChannelStatus]] = []
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._follow(channel))

    async def _follow(self, channel: WhatsAppChannel) -> None:
        async for status in channel.subscribe():
            self.seen.append((time.time(), status))
            self._changed.set()
            self._changed = asyncio.Event()

    def mark(self) -> int:
        return len(self.seen)

    async def wait(self, *states: ConnectionState, since: int, timeout: float = 30) -> ChannelStatus:
        async with asyncio.timeout(timeout):
            while True:
                changed = self._changed
                for _, status in self.seen[since:]:
                    if status.state in states:
                        return status
                await changed.wait()

    def retries(self, since: int) -> list[tuple[float, ChannelStatus]]:
        return [(at, s) for at, s in self.seen[since:] if s.state is ConnectionState.RECONNECTING]

    def states(self, since: int) -> list[ConnectionState]:
        return [s.state for _, s in self.seen[since:]]

    def close(self) -> None:
        self._task.cancel()


def _expected_delay(attempt: int) -> float:
    return min(BASE * 2 ** (attempt - 1), CAP)


def _check_published_delays(
    retries: list[tuple[float, ChannelStatus]], started_at: float, first_attempt: int = 1
) -> None:
    """Attempt numbers count up from `first_attempt`, and each published delay is the policy's,
    pinned from both sides without depending on how busy the machine is: what is left when a
    subscriber sees the status can only be less than the delay (it was computed earlier), and
    the time since the previous attempt (or the fault, `started_at`) can only be more."""
    attempts = [s.attempt for _, s in retries]
    assert attempts == list(range(first_attempt, first_attempt + len(attempts))), attempts
    previous = started_at
    for seen_at, status in retries:
        assert status.next_retry_at is not None and status.max_attempts == POLICY.max_attempts
        expected = _expected_delay(status.attempt)
        assert status.next_retry_at - seen_at <= expected + 1e-3, (status.attempt, expected)
        assert status.next_retry_at - previous >= expected - 1e-3, (status.attempt, expected)
        previous = status.next_retry_at


async def _answers_once(sim: Wasim, text: str) -> None:
    before = texts_received(sim, ADA)
    await sim.messaging.send(ADA, text)
    assert await reply_seen(sim, ADA, len(before) + 1) == [*before, f"echo: {text}"]


async def _reconnected(sim: Wasim, log: StatusLog, since_status: int, since_event: int) -> None:
    """Open again, through a new login on wasim that came no sooner than the published retry time."""
    await log.wait(ConnectionState.OPEN, since=since_status, timeout=30)
    login = await sim.events.wait_for("login", since=since_event, timeout=10)
    retries = log.retries(since_status)
    if retries:
        due = retries[-1][1].next_retry_at
        assert due is not None and login.at >= due - 0.01, "reconnected before the published retry time"


@pytest.mark.parametrize("case", MATRIX)
async def test_fault_matrix(sim: Wasim, make_channel: MakeChannel, case: Case) -> None:
    channel = await make_channel(
        sim,
        reconnect=POLICY,
        keep_alive_ms=KEEP_ALIVE_MS,
        pacing=None,
        trusted_contacts=(TrustedContact.parse(ADA, "write"),),
    )
    await link(channel, sim)
    sim.add_contact(ADA, "Ada")
    log = StatusLog(channel)
    try:
        await _run_case(sim, channel, log, case)
    finally:
        log.close()


async def _run_case(sim: Wasim, channel: WhatsAppChannel, log: StatusLog, case: Case) -> None:
    if case.refuse_for:
        await sim.inject(Fault("refuse", seconds=case.refuse_for))
    for round_ in range(case.times):
        mark, since = log.mark(), sim.events.last_seq
        fault_at = time.time()
        await sim.inject(case.fault)
        status = await log.wait(case.ends_in, since=mark, timeout=60)

        if case.retry is Retry.NEVER:
            assert status.state.needs_relink and status.action and "QR" in status.action
            await asyncio.sleep(QUIET)  # long enough for several retries, had any been scheduled
            assert not sim.events.since(since, "connection.opened"), "a terminal close was retried"
            assert channel.sidecar_pid is None or await _sidecar_ends(channel)
            assert log.states(mark)[-1] is case.ends_in
            return

        if case.retry is Retry.GIVES_UP:
            assert status.action and "start the channel again" in status.action
            _check_published_delays(log.retries(mark), fault_at)
            assert len(log.retries(mark)) == POLICY.max_attempts
            assert await _sidecar_ends(channel)
            return

        if case.code is not None:
            assert status.detail and f"(code {case.code})" in status.detail, status.detail

        if case.retry is Retry.ONCE_THEN_UPDATE:
            assert "refused this client version" in status.sentence and status.attempt == 1
            await _reconnected(sim, log, mark, since)
            mark, since = log.mark(), sim.events.last_seq
            await sim.inject(case.fault)
            final = await log.wait(ConnectionState.NEEDS_UPDATE, since=mark)
            assert not final.state.needs_relink and final.action and "sidecar" in final.action
            await asyncio.sleep(QUIET)
            assert not sim.events.since(since, "connection.opened"), "retried after the second refusal"
            assert await _sidecar_ends(channel)
            return

        if case.retry is Retry.AT_ONCE:
            await _reconnected(sim, log, mark, since)
            assert ConnectionState.RECONNECTING not in log.states(mark)
            assert channel.status.attempt == 0
            # Not counted: the next real failure is still attempt 1.
            mark, since = log.mark(), sim.events.last_seq
            await sim.inject(Fault("stream_error", 503))
            first = await log.wait(ConnectionState.RECONNECTING, since=mark)
            assert first.attempt == 1
            await _reconnected(sim, log, mark, since)
        elif case.retry is Retry.AFTER_FLOOR:
            assert "took over this link" in status.sentence and status.action
            assert status.next_retry_at is not None and status.next_retry_at >= fault_at + REPLACED_FLOOR
            await _reconnected(sim, log, mark, since)
        else:
            await _reconnected(sim, log, mark, since)
            # Counted since the last stable open, so each round starts where the last one stopped.
            first_attempt = len(log.retries(0)) - len(log.retries(mark)) + 1
            _check_published_delays(log.retries(mark), fault_at, first_attempt)
            if case.refuse_for:
                assert len(log.retries(mark)) >= 2, "refused attempts were retried"
        await _answers_once(sim, f"still there after round {round_ + 1}?")


async def _sidecar_ends(channel: WhatsAppChannel, timeout: float = 10) -> bool:
    async with asyncio.timeout(timeout):
        while channel.sidecar_pid is not None:  # noqa: ASYNC110 (a process property, no event to wait on)
            await asyncio.sleep(0.05)
    return True
