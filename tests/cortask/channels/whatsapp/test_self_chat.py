"""Self-chat (issue #14): which of the account's own messages are the owner talking to the agent.
Only the owner's own chat counts, only with the setting on, and never a message we sent."""

from __future__ import annotations

from typing import Any

import pytest

from cortask.channels.whatsapp.inbound import Ignored, IgnoreReason, InboundText, SelfChat, classify

OWN_PN = "15550001111@s.whatsapp.net"
OWN_LID = "200000000000001@lid"
OURS = {"3EB0REPLY"}  # ids we reserved for our replies
SELF = SelfChat(frozenset({"15550001111", "200000000000001"}), OURS.__contains__)


def own(chat: str, msg_id: str = "3A0FROMPHONE", *, upsert: str = "notify", self_chat: SelfChat | None = SELF) -> Any:
    raw = {
        "key": {"remoteJid": chat, "fromMe": True, "id": msg_id},
        "message": {"conversation": "note to self"},
        "messageTimestamp": 1_700_000_000,
    }
    return classify(raw, upsert, self_chat=self_chat)


@pytest.mark.parametrize(
    ("chat", "msg_id", "self_chat", "accepted"),
    [
        (OWN_PN, "3A0FROMPHONE", SELF, True),  # the phone, in the own chat
        (OWN_PN.replace("@", ":3@"), "3A0OTHERDEV", SELF, True),  # a device suffix on the chat
        (OWN_LID, "3A0BYLID", SELF, True),  # the own chat addressed by LID
        (OWN_PN, "3EB0REPLY", SELF, False),  # our own reply coming back: never input
        (OWN_PN, "3A0FROMPHONE", None, False),  # setting off
        ("4915123456789@s.whatsapp.net", "3A0TOADA", SELF, False),  # the owner writing to someone else
        ("120363025246125486@g.us", "3A0INGROUP", SELF, False),  # the owner in a group
        ("status@broadcast", "3A0STATUS", SELF, False),
    ],
)
def test_only_the_owners_own_chat_counts(chat: str, msg_id: str, self_chat: SelfChat | None, accepted: bool) -> None:
    result = own(chat, msg_id, self_chat=self_chat)
    if accepted:
        assert isinstance(result, InboundText) and result.from_owner
        assert result.text == "note to self" and result.chat_jid == chat
    else:
        assert isinstance(result, Ignored)
        assert result.reason in (IgnoreReason.FROM_ME, IgnoreReason.STATUS_BROADCAST)


def test_a_contacts_message_is_never_the_owners() -> None:
    raw = {
        "key": {"remoteJid": "4915123456789@s.whatsapp.net", "fromMe": False, "id": "X"},
        "message": {"conversation": "hi"},
    }
    result = classify(raw, "notify", self_chat=SELF)
    assert isinstance(result, InboundText) and not result.from_owner


def test_history_sync_of_the_own_chat_is_not_input() -> None:
    assert isinstance(own(OWN_PN, upsert="history"), Ignored)
