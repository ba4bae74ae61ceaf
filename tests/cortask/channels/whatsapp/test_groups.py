"""Which group messages call the account (issue #14): a mention by phone or LID, a reply to one of
ours, or always; only in listed groups when a list is set. Pure; the table walks every branch."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cortask.channels.whatsapp.groups import NOT_ALLOWED_GROUP, NOT_MENTIONED, GroupRule, group_gate
from cortask.channels.whatsapp.inbound import InboundText, classify

GROUP = "120363025246125486@g.us"
OTHER = "120363000000000001@g.us"
OWN = frozenset({"15550001111", "200000000000001"})
OURS = {"3EB0OURS"}
BASE = InboundText(
    GROUP, "3A0X", "4915123456789@s.whatsapp.net", "+4915123456789", None, "Ada", "hi", None, True, False
)


@pytest.mark.parametrize(
    ("change", "rule", "expected"),
    [
        ({}, GroupRule(), NOT_MENTIONED),
        ({"mentions": ("15550001111@s.whatsapp.net",)}, GroupRule(), None),
        ({"mentions": ("200000000000001@lid",)}, GroupRule(), None),
        ({"mentions": ("15550001111:7@s.whatsapp.net",)}, GroupRule(), None),
        ({"mentions": ("4915100000666@s.whatsapp.net",)}, GroupRule(), NOT_MENTIONED),  # someone else
        ({"quoted_id": "3EB0OURS", "quoted_participant": "15550001111@s.whatsapp.net"}, GroupRule(), None),
        # A reply to the owner's own (human) message is not a call: only ids we reserved count.
        ({"quoted_id": "3A0PHONE", "quoted_participant": "15550001111@s.whatsapp.net"}, GroupRule(), NOT_MENTIONED),
        ({}, GroupRule("always"), None),
        ({}, GroupRule("always", frozenset({OTHER})), NOT_ALLOWED_GROUP),
        ({"mentions": ("15550001111@s.whatsapp.net",)}, GroupRule("mention", frozenset({OTHER})), NOT_ALLOWED_GROUP),
        ({"chat_jid": OTHER}, GroupRule("always", frozenset({OTHER})), None),
        ({"is_group": False, "chat_jid": "4915123456789@s.whatsapp.net"}, GroupRule(), None),  # not a group
    ],
)
def test_group_gate(change: dict[str, object], rule: GroupRule, expected: str | None) -> None:
    assert group_gate(replace(BASE, **change), rule, OWN, OURS.__contains__) == expected  # type: ignore[arg-type]


def test_mentions_and_quotes_are_read_from_the_context_of_a_group_text() -> None:
    raw = {
        "key": {"remoteJid": GROUP, "id": "3A0X", "participant": "4915123456789@s.whatsapp.net"},
        "message": {
            "extendedTextMessage": {
                "text": "@15550001111 hi",
                "contextInfo": {
                    "mentionedJid": ["15550001111@s.whatsapp.net"],
                    "stanzaId": "3EB0OURS",
                    "participant": "15550001111@s.whatsapp.net",
                },
            }
        },
    }
    item = classify(raw, "notify", answer_groups=True)
    assert isinstance(item, InboundText)
    assert item.mentions == ("15550001111@s.whatsapp.net",)
    assert (item.quoted_id, item.quoted_participant) == ("3EB0OURS", "15550001111@s.whatsapp.net")


def test_a_group_reply_carries_the_message_it_quotes_to_the_sidecar() -> None:
    import json

    from cortask.channels.whatsapp import wire

    quoted = wire.Quoted("3A0X", GROUP, "4915123456789@s.whatsapp.net", "hi")
    line = json.loads(wire.encode(wire.SendText(GROUP, "Echo: hi", "3EB0AA", quoted), 3))
    assert line["quoted"] == {
        "id": "3A0X", "remoteJid": GROUP, "participant": "4915123456789@s.whatsapp.net", "text": "hi",
    }  # fmt: skip
