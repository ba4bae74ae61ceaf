"""Connection state: every state's sentence and action, JSON shape, sandbox wording, decisions."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, timedelta, timezone

import pytest

from cortask.channels.whatsapp.reconnect import Action, CloseReason, Decision, Reconnector, ReconnectPolicy
from cortask.channels.whatsapp.state import (
    NOT_LINKED_ERROR,
    SANDBOX_NOTE,
    ChannelStatus,
    ConnectionState,
    StatusNote,
    from_decision,
)

T = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


@pytest.mark.parametrize(
    ("status", "state", "sentence", "action"),
    [
        (
            ChannelStatus.unlinked(),
            ConnectionState.UNLINKED,
            "WhatsApp is not linked.",
            "Generate a QR code and scan it with WhatsApp on your phone.",
        ),
        (
            ChannelStatus.qr_expired(),
            ConnectionState.UNLINKED,
            "The QR code expired before it was scanned.",
            "Generate a new QR code and scan it within 60 seconds.",
        ),
        (
            ChannelStatus.linking(T + 42.3, T),
            ConnectionState.LINKING,
            "Waiting for the QR code to be scanned.",
            "Open WhatsApp on your phone, go to Settings → Linked Devices → Link a device, and scan the code.",
        ),
        (ChannelStatus.connecting(), ConnectionState.CONNECTING, "Connecting to WhatsApp…", None),
        (ChannelStatus.open(), ConnectionState.OPEN, "Connected to WhatsApp.", None),
        (ChannelStatus.open("+4915123456789"), ConnectionState.OPEN, "Connected to WhatsApp as +4915123456789.", None),
        (
            ChannelStatus.reconnecting(3, 10, T, tz=UTC),
            ConnectionState.RECONNECTING,
            "Connection lost; reconnecting (attempt 3 of 10) at 22:13:20.",
            None,
        ),
        (
            ChannelStatus.reconnecting(2, 10, T + 30, CloseReason.REPLACED, tz=UTC),
            ConnectionState.RECONNECTING,
            "Another WhatsApp Web session took over this link; reconnecting (attempt 2 of 10) at 22:13:50.",
            "Make sure no other Cortask instance or program uses these WhatsApp credentials.",
        ),
        (
            ChannelStatus.reconnecting(1, 10, T, CloseReason.VERSION_REFUSED, tz=UTC),
            ConnectionState.RECONNECTING,
            "WhatsApp refused this client version; trying again (attempt 1 of 10) at 22:13:20.",
            "If this repeats, update the WhatsApp sidecar (run scripts/setup).",
        ),
        (
            ChannelStatus.reconnecting(1, 10, T, CloseReason.SIDECAR_EXITED, tz=UTC),
            ConnectionState.RECONNECTING,
            "The WhatsApp sidecar stopped unexpectedly; restarting it (attempt 1 of 10) at 22:13:20.",
            None,
        ),
        (
            ChannelStatus.paused(),
            ConnectionState.PAUSED,
            "The channel is paused; the device stays linked.",
            "Resume the channel to reconnect.",
        ),
        (
            ChannelStatus.stopped(),
            ConnectionState.STOPPED,
            "The channel is stopped.",
            "Start the channel to connect to WhatsApp.",
        ),
        (
            ChannelStatus.logged_out(),
            ConnectionState.LOGGED_OUT,
            "WhatsApp logged this device out.",
            "Generate a new QR code and scan it.",
        ),
        (
            ChannelStatus.forbidden(),
            ConnectionState.FORBIDDEN,
            "WhatsApp refused this account; it may be banned or restricted.",
            "Check WhatsApp on your phone. Generate a new QR code and scan it.",
        ),
        (
            ChannelStatus.multidevice_mismatch(),
            ConnectionState.MULTIDEVICE_MISMATCH,
            "WhatsApp reported a multi-device mismatch.",
            "Update WhatsApp on your phone. Generate a new QR code and scan it.",
        ),
        (
            ChannelStatus.gave_up(10),
            ConnectionState.GAVE_UP,
            "Could not reconnect to WhatsApp after 10 attempts; stopped trying.",
            "Check the network connection, then start the channel again.",
        ),
        (
            ChannelStatus.credentials_unreadable("creds.db: file is not a database"),
            ConnectionState.CREDENTIALS_UNREADABLE,
            "The stored WhatsApp credentials could not be read; nothing was overwritten.",
            "Restore the auth directory from a backup, or log out and scan a new QR code.",
        ),
        (
            ChannelStatus.needs_update(),
            ConnectionState.NEEDS_UPDATE,
            "WhatsApp refused this client version; the WhatsApp sidecar needs updating.",
            "Update the sidecar (run scripts/setup), then start the channel again. The link is kept.",
        ),
    ],
)
def test_each_state_has_its_sentence_and_action(
    status: ChannelStatus, state: ConnectionState, sentence: str, action: str | None
) -> None:
    assert (status.state, status.sentence, status.action) == (state, sentence, action)
    assert not status.sandbox
    assert status.sentence.endswith((".", "…"))


def test_every_state_has_a_constructor() -> None:
    built = {
        ChannelStatus.unlinked().state,
        ChannelStatus.linked().state,
        ChannelStatus.linking(T, T).state,
        ChannelStatus.connecting().state,
        ChannelStatus.open().state,
        ChannelStatus.reconnecting(1, 10, T).state,
        ChannelStatus.paused().state,
        ChannelStatus.stopped().state,
        ChannelStatus.logged_out().state,
        ChannelStatus.forbidden().state,
        ChannelStatus.multidevice_mismatch().state,
        ChannelStatus.gave_up(10).state,
        ChannelStatus.credentials_unreadable().state,
        ChannelStatus.needs_update().state,
    }
    assert built == set(ConnectionState)


@pytest.mark.parametrize(
    ("state", "terminal", "relink"),
    [
        (ConnectionState.LOGGED_OUT, True, True),
        (ConnectionState.FORBIDDEN, True, True),
        (ConnectionState.MULTIDEVICE_MISMATCH, True, True),
        (ConnectionState.GAVE_UP, True, False),
        (ConnectionState.NEEDS_UPDATE, True, False),
        (ConnectionState.CREDENTIALS_UNREADABLE, True, False),
        (ConnectionState.OPEN, False, False),
        (ConnectionState.RECONNECTING, False, False),
        (ConnectionState.UNLINKED, False, False),
        (ConnectionState.STOPPED, False, False),
    ],
)
def test_terminal_and_relink(state: ConnectionState, terminal: bool, relink: bool) -> None:
    assert (state.terminal, state.needs_relink) == (terminal, relink)


def test_linking_leaves_the_countdown_to_the_qr_panel() -> None:
    # One countdown (issue #17): the sentence stays still, the deadline travels in qr_expires_at.
    assert ChannelStatus.linking(T + 60, T).sentence == ChannelStatus.linking(T + 60, T + 59.5).sentence
    assert "expires in" not in ChannelStatus.linking(T + 60, T).sentence
    assert ChannelStatus.linking(T + 60, T).qr_expires_at == T + 60


def test_reconnecting_clock_uses_the_given_zone() -> None:
    berlin_winter = timezone(timedelta(hours=1))
    status = ChannelStatus.reconnecting(3, 10, T, tz=berlin_winter)
    assert status.sentence == "Connection lost; reconnecting (attempt 3 of 10) at 23:13:20."
    assert (status.attempt, status.max_attempts, status.next_retry_at) == (3, 10, T)


def test_reconnecting_default_zone_is_local_time() -> None:
    # Whatever the machine's zone, the sentence carries an HH:MM:SS clock.
    sentence = ChannelStatus.reconnecting(1, 10, T).sentence
    clock = sentence.rsplit(" at ", 1)[1].rstrip(".")
    assert len(clock) == 8 and clock[2] == clock[5] == ":"


@pytest.mark.parametrize(
    "status",
    [
        ChannelStatus.open("+4915123456789", sandbox=True),
        ChannelStatus.linking(T + 60, T, sandbox=True),
        ChannelStatus.reconnecting(1, 10, T, sandbox=True, tz=UTC),
        ChannelStatus.logged_out(sandbox=True),
        ChannelStatus.unlinked(sandbox=True),
    ],
)
def test_sandbox_is_always_said(status: ChannelStatus) -> None:
    assert status.sandbox
    assert status.sentence.endswith(SANDBOX_NOTE)
    assert "wasim" in status.sentence


def test_to_dict_is_json_ready() -> None:
    status = ChannelStatus.reconnecting(3, 10, T, CloseReason.CONNECTION_LOST, detail="code 408", tz=UTC).with_activity(
        inbound_at=T - 5, outbound_at=T - 4
    )
    data = status.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data == {
        "state": "reconnecting",
        "sentence": "Connection lost; reconnecting (attempt 3 of 10) at 22:13:20.",
        "action": None,
        "attempt": 3,
        "max_attempts": 10,
        "next_retry_at": T,
        "qr_expires_at": None,
        "sandbox": False,
        "last_inbound_at": T - 5,
        "last_outbound_at": T - 4,
        "detail": "code 408",
        "terminal": False,
        "needs_relink": False,
        "notes": [],
    }


def test_notes_are_said_in_the_dict() -> None:
    status = dataclasses.replace(ChannelStatus.open(), notes=(StatusNote("store_failing", "The disk is full."),))
    assert status.to_dict()["notes"] == [{"kind": "store_failing", "sentence": "The disk is full."}]


def test_with_activity_keeps_what_is_not_given() -> None:
    status = ChannelStatus.open().with_activity(inbound_at=1.0, outbound_at=2.0)
    assert status.with_activity(inbound_at=3.0).last_outbound_at == 2.0
    assert status.with_activity(outbound_at=4.0).last_inbound_at == 1.0
    assert status.with_activity() == status


def test_not_linked_error() -> None:
    assert NOT_LINKED_ERROR == "WhatsApp is not linked: generate a QR code and scan it first."


# --- from reconnect decisions ----------------------------------------------------------------


def _decide(code: int | None, closes: int = 1) -> Decision:
    r = Reconnector(ReconnectPolicy(jitter=0), random=lambda: 0.0)
    decision = r.on_close(code, T)
    for _ in range(closes - 1):
        decision = r.on_close(code, T)
    return decision


@pytest.mark.parametrize(
    ("code", "closes", "state"),
    [
        (515, 1, ConnectionState.CONNECTING),
        (428, 1, ConnectionState.RECONNECTING),
        (440, 1, ConnectionState.RECONNECTING),
        (None, 1, ConnectionState.RECONNECTING),
        (405, 1, ConnectionState.RECONNECTING),
        (405, 2, ConnectionState.NEEDS_UPDATE),
        (401, 1, ConnectionState.LOGGED_OUT),
        (403, 1, ConnectionState.FORBIDDEN),
        (411, 1, ConnectionState.MULTIDEVICE_MISMATCH),
        (428, 11, ConnectionState.GAVE_UP),
    ],
)
def test_from_decision(code: int | None, closes: int, state: ConnectionState) -> None:
    status = from_decision(_decide(code, closes), tz=UTC)
    assert status.state is state
    assert status.detail is not None and (f"code {code}" if code else "no code") in status.detail


def test_from_decision_reconnecting_carries_the_schedule() -> None:
    decision = _decide(440)
    status = from_decision(decision, sandbox=True, tz=UTC)
    assert (status.attempt, status.max_attempts, status.next_retry_at) == (1, 10, T + 30)
    assert status.sentence.startswith("Another WhatsApp Web session took over this link")
    assert status.sentence.endswith(SANDBOX_NOTE)


def test_from_decision_keeps_baileys_message_in_detail() -> None:
    r = Reconnector(ReconnectPolicy(jitter=0), random=lambda: 0.0)
    status = from_decision(r.on_close(401, T, "Intentional Logout"))
    assert status.detail is not None and status.detail.endswith("(Intentional Logout)")


def test_from_decision_gave_up_sentence() -> None:
    status = from_decision(_decide(428, 11))
    assert status.sentence == "Could not reconnect to WhatsApp after 10 attempts; stopped trying."
    assert status.to_dict()["terminal"] is True


def test_from_decision_rejects_an_impossible_decision() -> None:
    bogus = Decision(Action.TERMINAL, CloseReason.CONNECTION_LOST, 408, 1, 10)
    with pytest.raises(ValueError):
        from_decision(bogus)
