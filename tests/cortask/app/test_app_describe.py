"""What the server says about a status and an activity entry, so the page need not know the rules:
labels, tones, the buttons allowed now, each entry's sentence, and how a linking session ended."""

from __future__ import annotations

import pytest

from cortask.app.activity import chat_words, describe, label, own_users, reason_sentence
from cortask.app.status import channel_status, link_outcome, stored_status
from cortask.channels.whatsapp.authpeek import LinkInfo
from cortask.channels.whatsapp.inbound import Ignored, IgnoreReason
from cortask.channels.whatsapp.state import ChannelStatus, ConnectionState, Tone, UserAction, offers
from cortask.store import WhatsAppSettings

ME = "4915123456789:3@s.whatsapp.net"


def allowed(state: ConnectionState) -> set[UserAction]:
    return {o.action for o in offers(state) if o.allowed}


def test_every_state_has_a_label_and_a_tone_and_offers_every_action() -> None:
    for state in ConnectionState:
        assert state.label and isinstance(state.tone, Tone)
        assert [o.action for o in offers(state)] == list(UserAction)
        assert all(o.allowed or o.why_not for o in offers(state)), state  # a refusal says why


@pytest.mark.parametrize(
    ("state", "actions"),
    [
        # Log out is disabled when nothing is linked (issue #17).
        (ConnectionState.UNLINKED, {UserAction.QR}),
        (ConnectionState.LINKING, {UserAction.STOP, UserAction.QR}),
        (ConnectionState.OPEN, {UserAction.PAUSE, UserAction.STOP, UserAction.LOGOUT}),
        (ConnectionState.RECONNECTING, {UserAction.PAUSE, UserAction.STOP, UserAction.LOGOUT}),
        (ConnectionState.PAUSED, {UserAction.START, UserAction.STOP, UserAction.LOGOUT}),
        (ConnectionState.LINKED, {UserAction.START, UserAction.STOP, UserAction.LOGOUT}),
        (ConnectionState.LOGGED_OUT, {UserAction.LOGOUT, UserAction.QR}),
        (ConnectionState.FORBIDDEN, {UserAction.STOP, UserAction.LOGOUT, UserAction.QR}),
        (ConnectionState.GAVE_UP, {UserAction.START, UserAction.STOP, UserAction.LOGOUT}),
    ],
)
def test_the_actions_allowed_in_each_state(state: ConnectionState, actions: set[UserAction]) -> None:
    assert allowed(state) == actions


def test_start_says_resume_after_a_pause_and_why_it_is_refused() -> None:
    start = {o.action: o for o in offers(ConnectionState.PAUSED)}[UserAction.START]
    assert (start.label, start.allowed) == ("Resume", True)
    running = {o.action: o for o in offers(ConnectionState.OPEN)}[UserAction.START]
    assert (running.allowed, running.why_not) == (False, "Already running.")
    assert ConnectionState.OPEN.tone is Tone.OK and ConnectionState.LOGGED_OUT.tone is Tone.ERROR


def test_one_status_shape_running_or_not() -> None:
    settings = WhatsAppSettings(1, enabled=True)
    stored = stored_status(LinkInfo(True, ME), settings, sandbox=False)
    live = channel_status(ChannelStatus.open(ME), LinkInfo(True, ME, in_use_by="us"), settings)
    assert stored.model_dump().keys() == live.model_dump().keys()
    assert (stored.state, stored.running, live.state, live.running) == ("linked", False, "open", True)
    assert live.in_use_by is None  # the holder is the running service itself
    assert live.label == "Linked and running" and live.tone is Tone.OK


def test_a_channel_never_connected_with_a_stored_link_says_linked() -> None:
    status = channel_status(ChannelStatus.unlinked(), LinkInfo(True, ME), WhatsAppSettings(1))
    assert status.state is ConnectionState.LINKED and ME in status.sentence
    assert channel_status(ChannelStatus.unlinked(), LinkInfo(False), WhatsAppSettings(1)).state == "unlinked"


def test_how_a_linking_session_ended() -> None:
    reconnecting = ChannelStatus.reconnecting(1, 10, 0.0, detail="connection lost (code 428)")
    assert link_outcome(ChannelStatus.open(ME), True, []) == ("linked", None)
    assert link_outcome(ChannelStatus.qr_expired(), True, []) == ("expired", None)
    outcome, reason = link_outcome(ChannelStatus.unlinked(), False, [reconnecting])
    assert outcome == "failed" and reason and "code 428" in reason
    outcome, reason = link_outcome(ChannelStatus.needs_update(), True, [])
    assert outcome == "failed" and reason and "sidecar" in reason


def no_names(phone: str) -> str | None:
    return None


def test_reasons_are_worded_once_in_the_inbound_module() -> None:
    for reason in IgnoreReason:
        assert reason_sentence(reason.value) == Ignored(reason).sentence
    assert "trusted contact" in reason_sentence("not_allowed")
    assert reason_sentence("something_new") == "Something new."


def test_each_entry_has_its_sentence_tone_and_quietness() -> None:
    chat = "447911123456@s.whatsapp.net"
    ignored = {"kind": "ignored", "chat": chat, "reason": "media"}
    assert describe(ignored, no_names) == (Ignored(IgnoreReason.MEDIA).sentence, Tone.IDLE, False)
    assert describe({"kind": "ignored", "chat": chat, "reason": "from_me"}, no_names)[2] is True
    read_only = describe(
        {"kind": "received", "chat": chat, "sender": "+447911123456", "verdict": "read_only"}, no_names
    )
    assert read_only[1] is Tone.WARN and "read-only" in read_only[0] and "From" not in read_only[0]
    replied = describe({"kind": "replied", "chat": chat, "chars": 1}, no_names)
    assert replied == ("The reply has 1 character.", Tone.OK, False)
    refused = describe({"kind": "refused", "chat": chat, "error": "463"}, no_names)
    assert refused[1] is Tone.ERROR and "463" in refused[0]
    in_group = {"kind": "received", "chat": "123-456@g.us", "sender": "+447911123456", "verdict": "agent"}
    assert describe(in_group, {"+447911123456": "Grace"}.get)[0] == "From Grace. Passed to the agent."
    assert (label("received"), label("something_new")) == ("Received", "Something new")


def test_the_owners_own_chat_is_named_as_theirs_not_as_an_untrusted_number() -> None:
    own = own_users([ME, "201234567890123@lid", None])
    for chat in ("4915123456789@s.whatsapp.net", "4915123456789:3@s.whatsapp.net", "201234567890123@lid"):
        assert chat_words(chat, own) == ("You", "your own chat"), chat
    # Anyone else's chat (and a group, and no account at all) is for the page to name.
    assert chat_words("447911123456@s.whatsapp.net", own) is None
    assert chat_words("4915123456789-1600000000@g.us", own) is None
    assert chat_words("4915123456789@s.whatsapp.net", frozenset()) is None
    assert chat_words(None, own) is None
