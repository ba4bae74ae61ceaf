"""The channel's connection state as the user sees it: one named state, a sentence, an action.

Pure values. The channel decides *when* the state changes; this module decides *what it says*.
Each constructor on `ChannelStatus` builds the status for one state with its sentence and the
action the user should take (None when there is nothing to do), so the wording lives in one
place. `from_decision` turns a `reconnect.Decision` into the status to publish. When the channel
talks to the wasim sandbox instead of WhatsApp, every sentence says so.

Times are seconds since the epoch (what the caller's clock says); sentences that show a clock
time format it in `tz` (default: the machine's local zone).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, tzinfo
from enum import StrEnum
from typing import Any

from cortask.channels.whatsapp.reconnect import Action, CloseReason, Decision

__all__ = [
    "NOT_LINKED_ERROR",
    "SANDBOX_NOTE",
    "ChannelStatus",
    "ConnectionState",
    "Offer",
    "StatusNote",
    "Tone",
    "UserAction",
    "from_decision",
    "offers",
]

NOT_LINKED_ERROR = "WhatsApp is not linked: generate a QR code and scan it first."
SANDBOX_NOTE = "Sandbox: this is wasim, not the real WhatsApp."
_RELINK_ACTION = "Generate a new QR code and scan it."
CODE_STEPS = (
    "On your phone open WhatsApp → Settings → Linked Devices → Link a device → "
    "Link with phone number instead, and type the code."
)
CODE_REFUSED_DETAIL = "The phone refused the code; it cannot be used again."
_SCAN_ACTION = "Open WhatsApp on your phone, go to Settings → Linked Devices → Link a device, and scan the code."


class ConnectionState(StrEnum):
    UNLINKED = "unlinked"
    LINKED = "linked"  # a stored link, no connection: Cortask is not running, or the channel is not added
    LINKING = "linking"
    CONNECTING = "connecting"
    OPEN = "open"
    RECONNECTING = "reconnecting"
    PAUSED = "paused"
    STOPPED = "stopped"
    LOGGED_OUT = "logged_out"
    FORBIDDEN = "forbidden"
    MULTIDEVICE_MISMATCH = "multidevice_mismatch"
    GAVE_UP = "gave_up"
    CREDENTIALS_UNREADABLE = "credentials_unreadable"
    NEEDS_UPDATE = "needs_update"

    @property
    def terminal(self) -> bool:
        """The channel will not reconnect by itself; the user has to act."""
        return self in _TERMINAL

    @property
    def needs_relink(self) -> bool:
        """The stored link is dead: only a new QR scan helps."""
        return self in _NEEDS_RELINK

    @property
    def running(self) -> bool:
        """Connected, or on the way there."""
        return self in _RUNNING

    @property
    def label(self) -> str:
        """A few words for a badge or a title."""
        return _LABELS[self][0]

    @property
    def tone(self) -> Tone:
        return _LABELS[self][1]


class Tone(StrEnum):
    """How a state or an event should look: the UI picks its colour from this."""

    OK = "ok"
    BUSY = "busy"
    WARN = "warn"
    ERROR = "error"
    IDLE = "idle"


class UserAction(StrEnum):
    """What a person can ask of the channel from the UI."""

    START = "start"
    PAUSE = "pause"
    STOP = "stop"
    LOGOUT = "logout"
    QR = "qr"


@dataclass(frozen=True, slots=True)
class Offer:
    """One action, whether it may be taken now, its button's words, and why not when it may not."""

    action: UserAction
    allowed: bool
    label: str
    why_not: str | None = None


_NEEDS_RELINK = frozenset({ConnectionState.LOGGED_OUT, ConnectionState.FORBIDDEN, ConnectionState.MULTIDEVICE_MISMATCH})
_TERMINAL = _NEEDS_RELINK | {
    ConnectionState.GAVE_UP,
    ConnectionState.CREDENTIALS_UNREADABLE,
    ConnectionState.NEEDS_UPDATE,
}
_RUNNING = frozenset({ConnectionState.OPEN, ConnectionState.CONNECTING, ConnectionState.RECONNECTING})
_LABELS: dict[ConnectionState, tuple[str, Tone]] = {
    ConnectionState.UNLINKED: ("Not linked yet", Tone.IDLE),
    ConnectionState.LINKED: ("Linked, not connected", Tone.IDLE),
    ConnectionState.LINKING: ("Waiting for your phone to scan", Tone.BUSY),
    ConnectionState.CONNECTING: ("Connecting…", Tone.BUSY),
    ConnectionState.OPEN: ("Linked and running", Tone.OK),
    ConnectionState.RECONNECTING: ("Reconnecting…", Tone.WARN),
    ConnectionState.PAUSED: ("Paused", Tone.IDLE),
    ConnectionState.STOPPED: ("Stopped", Tone.IDLE),
    ConnectionState.LOGGED_OUT: ("Logged out", Tone.ERROR),
    ConnectionState.FORBIDDEN: ("Blocked by WhatsApp", Tone.ERROR),
    ConnectionState.MULTIDEVICE_MISMATCH: ("Multi-device problem", Tone.ERROR),
    ConnectionState.GAVE_UP: ("Stopped reconnecting", Tone.ERROR),
    ConnectionState.CREDENTIALS_UNREADABLE: ("Stored link unreadable", Tone.ERROR),
    ConnectionState.NEEDS_UPDATE: ("Update needed", Tone.ERROR),
}


def offers(state: ConnectionState) -> tuple[Offer, ...]:
    """The actions a UI may offer in `state`, in button order. Logout is allowed whenever something
    may be stored: it also clears credentials left behind by a failed link."""
    unlinked = state.needs_relink or state in (ConnectionState.UNLINKED, ConnectionState.LINKING)
    start_blocked = "Already running." if state.running else None
    if unlinked:
        start_blocked = "Link your phone first: generate a QR code and scan it."
    resume = state in (ConnectionState.PAUSED, ConnectionState.GAVE_UP)
    nothing_to_stop = state in (ConnectionState.UNLINKED, ConnectionState.STOPPED, ConnectionState.LOGGED_OUT)
    no_link = state in (ConnectionState.UNLINKED, ConnectionState.LINKING)
    return (
        Offer(UserAction.START, start_blocked is None, "Resume" if resume else "Start", start_blocked),
        Offer(
            UserAction.PAUSE, state.running, "Pause", None if state.running else "Only a running channel can be paused."
        ),
        # Stop tells WhatsApp (the phone's Linked Devices drops this device); Log out forgets the link
        # here only: the words on the buttons say which (issue #17).
        Offer(UserAction.STOP, not nothing_to_stop, "Stop and unlink", "Nothing to stop." if nothing_to_stop else None),
        # Allowed whenever something may be stored (a link, or what a failed one left behind).
        Offer(UserAction.LOGOUT, not no_link, "Forget link here", "Nothing is linked." if no_link else None),
        Offer(UserAction.QR, unlinked, "Generate QR code", None if unlinked else "WhatsApp is already linked."),
    )


@dataclass(frozen=True, slots=True)
class StatusNote:
    """Something the owner should know that is not the connection's state: `kind` is a code
    (`store_failing`, `send_failed`), `sentence` says it in words."""

    kind: str
    sentence: str


@dataclass(frozen=True, slots=True)
class ChannelStatus:
    state: ConnectionState
    sentence: str
    action: str | None = None
    attempt: int = 0
    max_attempts: int = 0
    next_retry_at: float | None = None
    qr_expires_at: float | None = None
    sandbox: bool = False
    last_inbound_at: float | None = None
    last_outbound_at: float | None = None
    detail: str | None = None
    notes: tuple[StatusNote, ...] = ()  # troubles beside the connection's state (a failing store…)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; `terminal` and `needs_relink` are included so a UI need not know the rules."""
        return {
            "state": self.state.value,
            "sentence": self.sentence,
            "action": self.action,
            "attempt": self.attempt,
            "max_attempts": self.max_attempts,
            "next_retry_at": self.next_retry_at,
            "qr_expires_at": self.qr_expires_at,
            "sandbox": self.sandbox,
            "last_inbound_at": self.last_inbound_at,
            "last_outbound_at": self.last_outbound_at,
            "detail": self.detail,
            "terminal": self.state.terminal,
            "needs_relink": self.state.needs_relink,
            "notes": [{"kind": n.kind, "sentence": n.sentence} for n in self.notes],
        }

    def with_activity(self, *, inbound_at: float | None = None, outbound_at: float | None = None) -> ChannelStatus:
        """A copy with the given last-message times; None keeps the current value."""
        return replace(
            self,
            last_inbound_at=self.last_inbound_at if inbound_at is None else inbound_at,
            last_outbound_at=self.last_outbound_at if outbound_at is None else outbound_at,
        )

    # --- one constructor per state ----------------------------------------------------------

    @classmethod
    def unlinked(cls, *, sandbox: bool = False, detail: str | None = None) -> ChannelStatus:
        return cls._make(
            ConnectionState.UNLINKED,
            "WhatsApp is not linked.",
            "Generate a QR code and scan it with WhatsApp on your phone.",
            sandbox=sandbox,
            detail=detail,
        )

    @classmethod
    def linked(cls, account: str | None = None, *, sandbox: bool = False) -> ChannelStatus:
        """A stored link with no connection (the channel is not added, or not started)."""
        who = f" as {account}" if account else ""
        return cls._make(
            ConnectionState.LINKED,
            f"WhatsApp is linked{who}; the channel is not connected.",
            "Start the channel to connect.",
            sandbox=sandbox,
        )

    @classmethod
    def qr_expired(cls, *, sandbox: bool = False) -> ChannelStatus:
        """Back to unlinked because nobody scanned the code in time."""
        return cls._make(
            ConnectionState.UNLINKED,
            "The QR code expired before it was scanned.",
            "Generate a new QR code and scan it within 60 seconds.",
            sandbox=sandbox,
        )

    @classmethod
    def code_linking(cls, grouped_code: str, expires_at: float, now: float, *, sandbox: bool = False) -> ChannelStatus:
        """Linking by phone number: waiting for the code to be typed on the phone."""
        del now  # the time left is shown by the code panel's countdown alone (issue #17: one countdown)
        return cls._make(
            ConnectionState.LINKING,
            f"Waiting for the code {grouped_code} to be typed on the phone.",
            CODE_STEPS,
            qr_expires_at=expires_at,
            sandbox=sandbox,
        )

    @classmethod
    def code_expired(cls, *, sandbox: bool = False) -> ChannelStatus:
        """Back to unlinked because nobody typed the code in time."""
        return cls._make(
            ConnectionState.UNLINKED,
            "The code expired before it was typed on the phone.",
            "Ask for a new code and type it on the phone within 60 seconds.",
            sandbox=sandbox,
        )

    @classmethod
    def code_refused(cls, *, sandbox: bool = False) -> ChannelStatus:
        """The phone refused the code (it was typed wrong): it is spent, linking ended."""
        return cls._make(
            ConnectionState.UNLINKED,
            "WhatsApp refused the code: it was not typed on the phone exactly as shown.",
            "Ask for a new code and type it exactly as shown, or link with a QR code instead.",
            sandbox=sandbox,
            detail=CODE_REFUSED_DETAIL,
        )

    @classmethod
    def linking(cls, qr_expires_at: float, now: float, *, sandbox: bool = False) -> ChannelStatus:
        del now  # the time left is shown by the countdown, from qr_expires_at
        return cls._make(
            ConnectionState.LINKING,
            # The countdown is the QR panel's (and the terminal's) alone: one countdown (issue #17).
            "Waiting for the QR code to be scanned.",
            _SCAN_ACTION,
            qr_expires_at=qr_expires_at,
            sandbox=sandbox,
        )

    @classmethod
    def connecting(cls, *, sandbox: bool = False, detail: str | None = None) -> ChannelStatus:
        return cls._make(ConnectionState.CONNECTING, "Connecting to WhatsApp…", None, sandbox=sandbox, detail=detail)

    @classmethod
    def open(cls, account: str | None = None, *, sandbox: bool = False) -> ChannelStatus:
        who = f" as {account}" if account else ""
        return cls._make(ConnectionState.OPEN, f"Connected to WhatsApp{who}.", None, sandbox=sandbox)

    @classmethod
    def reconnecting(
        cls,
        attempt: int,
        max_attempts: int,
        next_retry_at: float,
        reason: CloseReason | None = None,
        *,
        sandbox: bool = False,
        detail: str | None = None,
        tz: tzinfo | None = None,
    ) -> ChannelStatus:
        when = f"(attempt {attempt} of {max_attempts}) at {_clock(next_retry_at, tz)}"
        action: str | None = None
        if reason is CloseReason.REPLACED:
            sentence = f"Another WhatsApp Web session took over this link; reconnecting {when}."
            action = "Make sure no other Cortask instance or program uses these WhatsApp credentials."
        elif reason is CloseReason.VERSION_REFUSED:
            sentence = f"WhatsApp refused this client version; trying again {when}."
            action = "If this repeats, update the WhatsApp sidecar (run scripts/setup)."
        elif reason is CloseReason.SIDECAR_EXITED:
            sentence = f"The WhatsApp sidecar stopped unexpectedly; restarting it {when}."
        else:
            sentence = f"Connection lost; reconnecting {when}."
        return cls._make(
            ConnectionState.RECONNECTING,
            sentence,
            action,
            attempt=attempt,
            max_attempts=max_attempts,
            next_retry_at=next_retry_at,
            sandbox=sandbox,
            detail=detail,
        )

    @classmethod
    def paused(cls, *, sandbox: bool = False) -> ChannelStatus:
        return cls._make(
            ConnectionState.PAUSED,
            "The channel is paused; the device stays linked.",
            "Resume the channel to reconnect.",
            sandbox=sandbox,
        )

    @classmethod
    def stopped(cls, *, sandbox: bool = False, detail: str | None = None) -> ChannelStatus:
        return cls._make(
            ConnectionState.STOPPED,
            "The channel is stopped.",
            "Start the channel to connect to WhatsApp.",
            sandbox=sandbox,
            detail=detail,
        )

    @classmethod
    def logged_out(cls, *, sandbox: bool = False, detail: str | None = None) -> ChannelStatus:
        return cls._make(
            ConnectionState.LOGGED_OUT,
            "WhatsApp logged this device out.",
            _RELINK_ACTION,
            sandbox=sandbox,
            detail=detail,
        )

    @classmethod
    def forbidden(cls, *, sandbox: bool = False, detail: str | None = None) -> ChannelStatus:
        return cls._make(
            ConnectionState.FORBIDDEN,
            "WhatsApp refused this account; it may be banned or restricted.",
            f"Check WhatsApp on your phone. {_RELINK_ACTION}",
            sandbox=sandbox,
            detail=detail,
        )

    @classmethod
    def multidevice_mismatch(cls, *, sandbox: bool = False, detail: str | None = None) -> ChannelStatus:
        return cls._make(
            ConnectionState.MULTIDEVICE_MISMATCH,
            "WhatsApp reported a multi-device mismatch.",
            f"Update WhatsApp on your phone. {_RELINK_ACTION}",
            sandbox=sandbox,
            detail=detail,
        )

    @classmethod
    def gave_up(cls, max_attempts: int, *, sandbox: bool = False, detail: str | None = None) -> ChannelStatus:
        return cls._make(
            ConnectionState.GAVE_UP,
            f"Could not reconnect to WhatsApp after {max_attempts} attempts; stopped trying.",
            "Check the network connection, then start the channel again.",
            attempt=max_attempts,
            max_attempts=max_attempts,
            sandbox=sandbox,
            detail=detail,
        )

    @classmethod
    def credentials_unreadable(cls, detail: str | None = None, *, sandbox: bool = False) -> ChannelStatus:
        return cls._make(
            ConnectionState.CREDENTIALS_UNREADABLE,
            "The stored WhatsApp credentials could not be read; nothing was overwritten.",
            "Restore the auth directory from a backup, or log out and scan a new QR code.",
            sandbox=sandbox,
            detail=detail,
        )

    @classmethod
    def needs_update(cls, *, sandbox: bool = False, detail: str | None = None) -> ChannelStatus:
        return cls._make(
            ConnectionState.NEEDS_UPDATE,
            "WhatsApp refused this client version; the WhatsApp sidecar needs updating.",
            "Update the sidecar (run scripts/setup), then start the channel again. The link is kept.",
            sandbox=sandbox,
            detail=detail,
        )

    @classmethod
    def _make(
        cls,
        state: ConnectionState,
        sentence: str,
        action: str | None,
        *,
        sandbox: bool,
        detail: str | None = None,
        attempt: int = 0,
        max_attempts: int = 0,
        next_retry_at: float | None = None,
        qr_expires_at: float | None = None,
    ) -> ChannelStatus:
        return cls(
            state=state,
            sentence=f"{sentence} {SANDBOX_NOTE}" if sandbox else sentence,
            action=action,
            attempt=attempt,
            max_attempts=max_attempts,
            next_retry_at=next_retry_at,
            qr_expires_at=qr_expires_at,
            sandbox=sandbox,
            detail=detail,
        )


def from_decision(decision: Decision, *, sandbox: bool = False, tz: tzinfo | None = None) -> ChannelStatus:
    """The status to publish after the reconnect policy decided what to do about a close."""
    detail = decision.sentence + (f" ({decision.detail})" if decision.detail else "")
    if decision.action is Action.RECONNECT_NOW:
        return ChannelStatus.connecting(sandbox=sandbox, detail=detail)
    if decision.action is Action.RETRY_AFTER:
        assert decision.retry_at is not None
        return ChannelStatus.reconnecting(
            decision.attempt,
            decision.max_attempts,
            decision.retry_at,
            decision.reason,
            sandbox=sandbox,
            detail=detail,
            tz=tz,
        )
    if decision.action is Action.GAVE_UP:
        return ChannelStatus.gave_up(decision.max_attempts, sandbox=sandbox, detail=detail)
    if decision.reason is CloseReason.LOGGED_OUT:
        return ChannelStatus.logged_out(sandbox=sandbox, detail=detail)
    if decision.reason is CloseReason.FORBIDDEN:
        return ChannelStatus.forbidden(sandbox=sandbox, detail=detail)
    if decision.reason is CloseReason.MULTIDEVICE_MISMATCH:
        return ChannelStatus.multidevice_mismatch(sandbox=sandbox, detail=detail)
    if decision.reason is CloseReason.VERSION_REFUSED:
        return ChannelStatus.needs_update(sandbox=sandbox, detail=detail)
    raise ValueError(f"no status for terminal decision {decision.reason}")  # unreachable by design


def _clock(timestamp: float, tz: tzinfo | None) -> str:
    if tz is None:
        return datetime.fromtimestamp(timestamp).astimezone().strftime("%H:%M:%S")
    return datetime.fromtimestamp(timestamp, tz).strftime("%H:%M:%S")
