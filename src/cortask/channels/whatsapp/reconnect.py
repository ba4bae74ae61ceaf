"""When to reconnect after the WhatsApp connection closes: a small, pure state machine.

The channel feeds it events (`on_open(now)`, `on_close(code, now)`) and gets a `Decision` back;
time is a number the caller passes in and randomness is an injected callable, so tests run the
whole schedule in microseconds. Every limit is a `ReconnectPolicy` field.

Rules (close codes are Baileys' DisconnectReason, see docs/baileys.md, "Close codes"):

* 515 restart required: reconnect at once and do not count it; WhatsApp sends it right after
  pairing. More than `max_immediate_restarts` of them without a stable open are counted like any
  failure, so a server that keeps asking cannot make us spin.
* 401 logged out, 403 forbidden, 411 multi-device mismatch: terminal; stop, the device must be
  linked again. 402 and 406 (temporary/permanent ban) count as forbidden and 419 (unauthorised)
  as logged out: retrying any of them is only more rejected logins.
* 405 client version refused: retried `version_retries` times (default once, in case WhatsApp's
  refusal was a blip), then terminal "needs update": retrying an outdated client never helps
  and only adds login attempts. The credentials stay valid, so no re-link is needed.
* 440 replaced (another client uses the same link): retried with backoff, but never sooner than
  `replaced_min_delay` (30 s), so two instances cannot ping-pong.
* 408, 428, 500, 503, None (the sidecar died, or closed without a code) and any other code:
  retried with exponential backoff.
* The sidecar dying after its connection had opened (killed, out of memory) is our own process
  failing, not WhatsApp turning us away: it is restarted at once, like 515 and within the same
  `max_immediate_restarts` budget, so one crash costs no backoff wait; a sidecar that keeps dying
  before a stable open soon falls back to counted, backed-off retries.
* Retries are counted: attempt n waits base·factor^(n−1), capped at max_delay, minus up to
  `jitter` of it (jitter only ever shortens the wait, so the spec's 5-minute maximum holds).
  Once `max_attempts` retries have failed the next close gives up.
* The counters reset only after an open that stayed up `stable_open_seconds`, judged at the next
  close (now − opened_at ≥ stable_open_seconds); a connection that opens and drops at once does not
  reset anything, so a 440 ping-pong still runs out of attempts.
* Terminal and gave-up decisions latch: every later close returns the same decision until
  `reset()` (the user pressed Start or re-linked).
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "Action",
    "CloseReason",
    "Decision",
    "ReconnectPolicy",
    "Reconnector",
    "classify_close",
]


class CloseReason(StrEnum):
    RESTART_REQUIRED = "restart_required"
    CONNECTION_CLOSED = "connection_closed"
    CONNECTION_LOST = "connection_lost"
    BAD_SESSION = "bad_session"
    UNAVAILABLE = "unavailable"
    REPLACED = "replaced"
    VERSION_REFUSED = "version_refused"
    LOGGED_OUT = "logged_out"
    FORBIDDEN = "forbidden"
    MULTIDEVICE_MISMATCH = "multidevice_mismatch"
    SIDECAR_EXITED = "sidecar_exited"
    UNKNOWN = "unknown"

    @property
    def terminal(self) -> bool:
        """Closes after which reconnecting is pointless whatever the count (405 aside)."""
        return self in _RELINK

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]


_CODES: Mapping[int, CloseReason] = {
    515: CloseReason.RESTART_REQUIRED,
    428: CloseReason.CONNECTION_CLOSED,
    408: CloseReason.CONNECTION_LOST,  # also "timed out": the same number in Baileys
    500: CloseReason.BAD_SESSION,
    503: CloseReason.UNAVAILABLE,
    440: CloseReason.REPLACED,
    405: CloseReason.VERSION_REFUSED,
    401: CloseReason.LOGGED_OUT,
    419: CloseReason.LOGGED_OUT,
    403: CloseReason.FORBIDDEN,
    402: CloseReason.FORBIDDEN,
    406: CloseReason.FORBIDDEN,
    411: CloseReason.MULTIDEVICE_MISMATCH,
}

_RELINK = frozenset({CloseReason.LOGGED_OUT, CloseReason.FORBIDDEN, CloseReason.MULTIDEVICE_MISMATCH})

_DESCRIPTIONS: Mapping[CloseReason, str] = {
    CloseReason.RESTART_REQUIRED: "WhatsApp asked for a restart",
    CloseReason.CONNECTION_CLOSED: "the connection was closed",
    CloseReason.CONNECTION_LOST: "the connection was lost or timed out",
    CloseReason.BAD_SESSION: "WhatsApp reported a stream error",
    CloseReason.UNAVAILABLE: "WhatsApp's service is unavailable",
    CloseReason.REPLACED: "another WhatsApp Web client opened a session with the same link",
    CloseReason.VERSION_REFUSED: "WhatsApp refused this client version; the sidecar needs updating",
    CloseReason.LOGGED_OUT: "WhatsApp logged this device out",
    CloseReason.FORBIDDEN: "WhatsApp refused this account (it may be banned or restricted)",
    CloseReason.MULTIDEVICE_MISMATCH: "WhatsApp reported a multi-device mismatch",
    CloseReason.SIDECAR_EXITED: "the WhatsApp sidecar stopped unexpectedly",
    CloseReason.UNKNOWN: "the connection closed",
}


def classify_close(code: int | None) -> CloseReason:
    """The reason for a close code; None means the sidecar died or gave no code."""
    if code is None:
        return CloseReason.SIDECAR_EXITED
    return _CODES.get(code, CloseReason.UNKNOWN)


class Action(StrEnum):
    RECONNECT_NOW = "reconnect_now"
    RETRY_AFTER = "retry_after"
    TERMINAL = "terminal"
    GAVE_UP = "gave_up"


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    max_attempts: int = 10
    base_delay: float = 5.0
    factor: float = 2.0
    max_delay: float = 300.0
    jitter: float = 0.1  # fraction of the delay that may be taken off at random
    stable_open_seconds: float = 60.0
    replaced_min_delay: float = 30.0
    max_immediate_restarts: int = 3
    version_retries: int = 1

    def __post_init__(self) -> None:
        if self.max_attempts < 0 or self.max_immediate_restarts < 0 or self.version_retries < 0:
            raise ValueError("max_attempts, max_immediate_restarts and version_retries must be ≥ 0")
        if self.base_delay < 0 or self.max_delay < 0 or self.replaced_min_delay < 0:
            raise ValueError("delays must be ≥ 0")
        if self.factor < 1:
            raise ValueError("factor must be ≥ 1, or delays would shrink")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter is a fraction between 0 and 1")
        if self.stable_open_seconds < 0:
            raise ValueError("stable_open_seconds must be ≥ 0")

    def delay(self, attempt: int, reason: CloseReason, rand: float = 0.0) -> float:
        """Seconds to wait before retry number `attempt` (1-based); `rand` is in [0, 1)."""
        # Multiply step by step and stop at the cap: factor**n overflows a float for large n.
        capped = min(self.base_delay, self.max_delay)
        for _ in range(attempt - 1):
            if capped >= self.max_delay:
                break
            capped = min(capped * self.factor, self.max_delay)
        wait = capped * (1 - self.jitter * min(max(rand, 0.0), 1.0))
        if reason is CloseReason.REPLACED:
            wait = max(wait, self.replaced_min_delay)
        return wait


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: CloseReason
    code: int | None
    attempt: int  # retries used so far (0 for an immediate restart after a stable open)
    max_attempts: int
    delay: float = 0.0
    retry_at: float | None = None  # `now` + delay, for RECONNECT_NOW and RETRY_AFTER
    detail: str = ""  # Baileys' own error message, for logs

    @property
    def reconnects(self) -> bool:
        return self.action in (Action.RECONNECT_NOW, Action.RETRY_AFTER)

    @property
    def relink_required(self) -> bool:
        return self.action is Action.TERMINAL and self.reason in _RELINK

    @property
    def sentence(self) -> str:
        """One line for logs; the user-facing status is built in `state`."""
        code = "no code" if self.code is None else f"code {self.code}"
        what = f"{self.reason.description[0].upper()}{self.reason.description[1:]} ({code})"
        if self.action is Action.RECONNECT_NOW:
            return f"{what}; reconnecting now."
        if self.action is Action.RETRY_AFTER:
            return f"{what}; reconnecting (attempt {self.attempt} of {self.max_attempts}) in {self.delay:.0f} s."
        if self.action is Action.GAVE_UP:
            return f"{what}; gave up after {self.max_attempts} reconnection attempts."
        if self.reason is CloseReason.VERSION_REFUSED:
            return f"{what}; not reconnecting until the sidecar is updated."
        return f"{what}; not reconnecting: the device must be linked again."


class Reconnector:
    """Counts failures between stable opens and answers every close with a Decision."""

    def __init__(self, policy: ReconnectPolicy | None = None, random: Callable[[], float] = _random.random) -> None:
        self.policy = policy or ReconnectPolicy()
        self._random = random
        self.reset()

    def reset(self) -> None:
        """Forget everything: the user started the channel again or linked a new device."""
        self._attempt = 0
        self._immediate_restarts = 0
        self._version_refusals = 0
        self._opened_at: float | None = None
        self._latched: Decision | None = None

    @property
    def attempt(self) -> int:
        return self._attempt

    @property
    def latched(self) -> Decision | None:
        """The terminal or gave-up decision in force, if any."""
        return self._latched

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None

    def on_open(self, now: float) -> None:
        self._opened_at = now

    def on_close(self, code: int | None, now: float, reason_text: str = "") -> Decision:
        if self._latched is not None:
            return self._latched
        policy = self.policy
        was_open = self._opened_at is not None
        if self._opened_at is not None and now - self._opened_at >= policy.stable_open_seconds:
            self._attempt = 0
            self._immediate_restarts = 0
            self._version_refusals = 0
        self._opened_at = None

        reason = classify_close(code)
        restart_now = reason is CloseReason.RESTART_REQUIRED or (reason is CloseReason.SIDECAR_EXITED and was_open)

        def decide(action: Action, delay: float = 0.0) -> Decision:
            retry_at = now + delay if action in (Action.RECONNECT_NOW, Action.RETRY_AFTER) else None
            decision = Decision(action, reason, code, self._attempt, policy.max_attempts, delay, retry_at, reason_text)
            if action in (Action.TERMINAL, Action.GAVE_UP):
                self._latched = decision
            return decision

        if reason.terminal:
            return decide(Action.TERMINAL)
        if reason is CloseReason.VERSION_REFUSED:
            self._version_refusals += 1
            if self._version_refusals > policy.version_retries:
                return decide(Action.TERMINAL)
        if restart_now and self._immediate_restarts < policy.max_immediate_restarts:
            self._immediate_restarts += 1
            return decide(Action.RECONNECT_NOW)

        if self._attempt >= policy.max_attempts:
            return decide(Action.GAVE_UP)
        self._attempt += 1
        return decide(Action.RETRY_AFTER, policy.delay(self._attempt, reason, self._random()))
