"""Inbound classification: what is text for the agent, who sent it, and what is ignored and why."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cortask.channels.whatsapp.inbound import (
    Ignored,
    IgnoreReason,
    InboundText,
    classify,
    classify_upsert,
    is_lid,
    normalize_jid,
)

PN = "4915123456789@s.whatsapp.net"
PHONE = "+4915123456789"
LID = "123456789012345@lid"
GROUP = "120363025246125486@g.us"


def msg(
    content: dict[str, Any] | None = None,
    *,
    chat: str = PN,
    from_me: bool = False,
    msg_id: str = "3EB0ABCDEF",
    **key: Any,
) -> dict[str, Any]:
    """A WAMessage as the sidecar sends it (see describeMessage in sidecar/index.mjs)."""
    return {
        "key": {"remoteJid": chat, "fromMe": from_me, "id": msg_id, **key},
        "message": {"conversation": "hello"} if content is None else content,
        "pushName": "Alice",
        "messageTimestamp": 1_700_000_000,
        "messageStubType": None,
        "messageStubParameters": None,
        "broadcast": False,
    }


def text_of(result: InboundText | Ignored) -> InboundText:
    assert isinstance(result, InboundText), result
    return result


def reason_of(result: InboundText | Ignored) -> IgnoreReason:
    assert isinstance(result, Ignored), result
    return result.reason


# --- text ------------------------------------------------------------------------------------


def test_plain_conversation_is_text() -> None:
    result = text_of(classify(msg(), "notify"))
    assert result == InboundText(
        chat_jid=PN,
        message_id="3EB0ABCDEF",
        sender_jid=PN,
        sender_phone=PHONE,
        sender_lid=None,
        push_name="Alice",
        text="hello",
        timestamp=1_700_000_000,
        is_group=False,
        offline=False,
    )


@pytest.mark.parametrize(
    "content",
    [
        {"conversation": "hi there"},
        {"extendedTextMessage": {"text": "hi there", "contextInfo": {"stanzaId": "X"}}},
        {"conversation": "hi there", "messageContextInfo": {"deviceListMetadata": {}}},
        {"senderKeyDistributionMessage": {"groupId": "g"}, "conversation": "hi there"},
        {"ephemeralMessage": {"message": {"extendedTextMessage": {"text": "hi there"}}}},
        {"ephemeralMessage": {"message": {"conversation": "hi there"}}},
        {"viewOnceMessageV2": {"message": {"conversation": "hi there"}}},
        {"ephemeralMessage": {"message": {"viewOnceMessage": {"message": {"conversation": "hi there"}}}}},
        {"deviceSentMessage": {"destinationJid": PN, "message": {"conversation": "hi there"}}},
    ],
)
def test_text_shapes(content: dict[str, Any]) -> None:
    assert text_of(classify(msg(content), "notify")).text == "hi there"


def test_text_is_passed_on_unchanged() -> None:
    assert text_of(classify(msg({"conversation": "  two\nlines  "}), "notify")).text == "  two\nlines  "


def test_offline_delivery_takes_the_same_path_flagged_offline() -> None:
    live = text_of(classify(msg(), "notify"))
    offline = text_of(classify(msg(), "append"))
    assert offline.offline and not live.offline
    assert offline.text == live.text and offline.sender_phone == live.sender_phone


# --- ignored ---------------------------------------------------------------------------------

NON_TEXT = [
    ({"imageMessage": {"url": "u", "caption": "look"}}, IgnoreReason.MEDIA),
    ({"videoMessage": {"caption": "look"}}, IgnoreReason.MEDIA),
    ({"audioMessage": {"ptt": True}}, IgnoreReason.MEDIA),
    ({"documentMessage": {"fileName": "a.pdf"}}, IgnoreReason.MEDIA),
    ({"documentWithCaptionMessage": {"message": {"documentMessage": {"caption": "c"}}}}, IgnoreReason.MEDIA),
    ({"stickerMessage": {}}, IgnoreReason.MEDIA),
    ({"ptvMessage": {}}, IgnoreReason.MEDIA),
    ({"viewOnceMessageV2": {"message": {"imageMessage": {}}}}, IgnoreReason.MEDIA),
    ({"ephemeralMessage": {"message": {"audioMessage": {}}}}, IgnoreReason.MEDIA),
    ({"locationMessage": {"degreesLatitude": 52.5}}, IgnoreReason.LOCATION),
    ({"liveLocationMessage": {}}, IgnoreReason.LOCATION),
    ({"contactMessage": {"vcard": "BEGIN:VCARD"}}, IgnoreReason.CONTACT),
    ({"contactsArrayMessage": {"contacts": []}}, IgnoreReason.CONTACT),
    ({"reactionMessage": {"text": "👍", "key": {}}}, IgnoreReason.REACTION),
    ({"encReactionMessage": {}}, IgnoreReason.REACTION),
    ({"pollCreationMessage": {"name": "lunch?"}}, IgnoreReason.POLL),
    ({"pollCreationMessageV3": {"name": "lunch?"}}, IgnoreReason.POLL),
    ({"pollUpdateMessage": {}}, IgnoreReason.POLL),
    ({"protocolMessage": {"type": "REVOKE", "key": {}}}, IgnoreReason.PROTOCOL),
    ({"protocolMessage": {"type": "MESSAGE_EDIT", "editedMessage": {"conversation": "x"}}}, IgnoreReason.PROTOCOL),
    ({"protocolMessage": {"type": "HISTORY_SYNC_NOTIFICATION"}}, IgnoreReason.PROTOCOL),
    ({"editedMessage": {"message": {"conversation": "fixed"}}}, IgnoreReason.EDIT),
    ({"groupStatusMessageV2": {"message": {"conversation": "x"}}}, IgnoreReason.GROUP_STATUS),
    ({"buttonsResponseMessage": {}}, IgnoreReason.UNSUPPORTED_KIND),
    ({"someFutureMessage": {"text": "x"}}, IgnoreReason.UNSUPPORTED_KIND),
    ({"conversation": ""}, IgnoreReason.EMPTY_TEXT),
    ({"conversation": " \n\t "}, IgnoreReason.EMPTY_TEXT),
    ({"extendedTextMessage": {"text": ""}}, IgnoreReason.EMPTY_TEXT),
    ({"extendedTextMessage": {"contextInfo": {}}}, IgnoreReason.EMPTY_TEXT),
    ({"extendedTextMessage": {"text": 42}}, IgnoreReason.EMPTY_TEXT),
    ({"ephemeralMessage": {"message": {"conversation": "   "}}}, IgnoreReason.EMPTY_TEXT),
    ({}, IgnoreReason.NO_CONTENT),
    ({"messageContextInfo": {}}, IgnoreReason.NO_CONTENT),
    ({"senderKeyDistributionMessage": {"groupId": "g"}}, IgnoreReason.NO_CONTENT),
    ({"ephemeralMessage": {"message": None}}, IgnoreReason.NO_CONTENT),
    ({"viewOnceMessage": {}}, IgnoreReason.NO_CONTENT),
]


@pytest.mark.parametrize(("content", "reason"), NON_TEXT)
def test_non_text_is_ignored(content: dict[str, Any], reason: IgnoreReason) -> None:
    result = classify(msg(content), "notify")
    assert reason_of(result) is reason
    assert isinstance(result, Ignored) and result.sentence.endswith(".")


def test_no_message_at_all_is_ignored() -> None:
    raw = msg()
    raw["message"] = None
    assert reason_of(classify(raw, "notify")) is IgnoreReason.NO_CONTENT


@pytest.mark.parametrize(
    ("stub", "reason"),
    [(2, IgnoreReason.UNDECRYPTABLE), ("CIPHERTEXT", IgnoreReason.UNDECRYPTABLE), (20, IgnoreReason.STUB)],
)
def test_stubs_are_ignored(stub: object, reason: IgnoreReason) -> None:
    raw = msg()
    raw["message"] = None
    raw["messageStubType"] = stub
    raw["messageStubParameters"] = ["Invalid PreKey ID"]
    assert reason_of(classify(raw, "notify")) is reason


def test_stub_with_content_is_still_a_stub() -> None:
    raw = msg()
    raw["messageStubType"] = 2
    assert reason_of(classify(raw, "append")) is IgnoreReason.UNDECRYPTABLE


@pytest.mark.parametrize("upsert_type", ["notify", "append"])
def test_status_broadcast_is_always_ignored(upsert_type: str) -> None:
    raw = msg(chat="status@broadcast", participant=PN)
    assert reason_of(classify(raw, upsert_type, answer_groups=True)) is IgnoreReason.STATUS_BROADCAST


@pytest.mark.parametrize("upsert_type", ["notify", "append"])
@pytest.mark.parametrize("chat", [PN, LID, GROUP])
def test_from_me_is_always_ignored(upsert_type: str, chat: str) -> None:
    raw = msg(chat=chat, from_me=True, participant=PN)
    assert reason_of(classify(raw, upsert_type, answer_groups=True)) is IgnoreReason.FROM_ME


@pytest.mark.parametrize("upsert_type", ["history", "", "set", "NOTIFY"])
def test_other_upsert_types_are_ignored(upsert_type: str) -> None:
    assert reason_of(classify(msg(), upsert_type)) is IgnoreReason.UPSERT_TYPE


@pytest.mark.parametrize(
    ("chat", "reason"),
    [
        ("1234567890@broadcast", IgnoreReason.BROADCAST),
        ("120363025246125486@newsletter", IgnoreReason.NEWSLETTER),
        ("13135550002@bot", IgnoreReason.UNSUPPORTED_CHAT),
        ("server@call", IgnoreReason.UNSUPPORTED_CHAT),
        ("no-server-at-all", IgnoreReason.UNSUPPORTED_CHAT),
    ],
)
def test_other_chat_kinds_are_ignored(chat: str, reason: IgnoreReason) -> None:
    assert reason_of(classify(msg(chat=chat, participant=PN), "notify")) is reason


@pytest.mark.parametrize(
    "raw",
    [
        {},
        {"key": None},
        {"key": {"remoteJid": PN}},
        {"key": {"id": "X"}},
        {"key": {"remoteJid": "", "id": "X"}},
        {"key": {"remoteJid": 12, "id": "X"}},
        {"key": "nope"},
    ],
)
def test_malformed_events_are_ignored(raw: dict[str, Any]) -> None:
    assert reason_of(classify(raw, "notify")) is IgnoreReason.MALFORMED


def test_ignored_carries_ids_for_logs() -> None:
    result = classify(msg({"imageMessage": {}}, msg_id="ABC"), "notify")
    assert result == Ignored(IgnoreReason.MEDIA, "ABC", PN)


# --- groups ----------------------------------------------------------------------------------


def test_groups_are_ignored_by_default() -> None:
    raw = msg(chat=GROUP, participant=PN)
    assert reason_of(classify(raw, "notify")) is IgnoreReason.GROUP


def test_group_sender_is_the_participant() -> None:
    raw = msg(chat=GROUP, participant="4915123456789:3@s.whatsapp.net", participantAlt=LID)
    result = text_of(classify(raw, "notify", answer_groups=True))
    assert result.is_group
    assert result.chat_jid == GROUP
    assert (result.sender_jid, result.sender_phone, result.sender_lid) == (PN, PHONE, LID)


def test_group_sender_prefers_the_phone_form_of_a_lid_participant() -> None:
    raw = msg(chat=GROUP, participant="123456789012345:2@lid", participantAlt=PN, addressingMode="lid")
    result = text_of(classify(raw, "notify", answer_groups=True))
    assert (result.sender_jid, result.sender_phone, result.sender_lid) == (PN, PHONE, LID)


def test_group_lid_participant_via_mapping() -> None:
    raw = msg(chat=GROUP, participant=LID, addressingMode="lid")
    result = text_of(classify(raw, "notify", answer_groups=True, lid_to_phone={LID: PN}.get))
    assert result.sender_phone == PHONE


def test_group_message_without_participant_is_malformed() -> None:
    assert reason_of(classify(msg(chat=GROUP), "notify", answer_groups=True)) is IgnoreReason.MALFORMED


# --- LID-addressed 1:1 chats -----------------------------------------------------------------


def test_lid_chat_resolved_via_remote_jid_alt() -> None:
    raw = msg(chat=LID, remoteJidAlt=PN, addressingMode="lid")
    result = text_of(classify(raw, "notify"))
    assert result.chat_jid == LID  # reply to the JID the message came from
    assert (result.sender_jid, result.sender_phone, result.sender_lid) == (PN, PHONE, LID)


@pytest.mark.parametrize("mapped", [PN, "4915123456789:5@s.whatsapp.net", PHONE], ids=["pn-jid", "device-jid", "e164"])
def test_lid_chat_resolved_via_mapping(mapped: str) -> None:
    asked: list[str] = []

    def lookup(lid: str) -> str | None:
        asked.append(lid)
        return mapped

    raw = msg(chat="123456789012345:7@lid", addressingMode="lid")
    result = text_of(classify(raw, "notify", lid_to_phone=lookup))
    assert asked == [LID]  # asked with the device stripped
    assert (result.sender_jid, result.sender_phone, result.sender_lid) == (PN, PHONE, LID)


def test_alt_wins_over_mapping_and_mapping_is_not_consulted() -> None:
    def lookup(lid: str) -> str | None:
        raise AssertionError("not needed")

    raw = msg(chat=LID, remoteJidAlt=PN)
    assert text_of(classify(raw, "notify", lid_to_phone=lookup)).sender_phone == PHONE


@pytest.mark.parametrize("mapped", [None, "", "4915123456789", "999@lid", "garbage"])
def test_unresolved_lid_has_no_phone_and_is_never_guessed(mapped: str | None) -> None:
    raw = msg(chat=LID, addressingMode="lid")
    result = text_of(classify(raw, "notify", lid_to_phone=lambda _lid: mapped))
    assert result.sender_phone is None
    assert (result.sender_jid, result.sender_lid) == (LID, LID)


def test_unresolved_lid_without_mapping() -> None:
    result = text_of(classify(msg(chat=LID), "notify"))
    assert result.sender_phone is None  # "123456789012345" is not read as +123456789012345


def test_pn_chat_records_the_lid_alt() -> None:
    result = text_of(classify(msg(chat=PN, remoteJidAlt=LID, addressingMode="pn"), "notify"))
    assert (result.sender_phone, result.sender_lid) == (PHONE, LID)


def test_legacy_c_us_chat() -> None:
    result = text_of(classify(msg(chat="4915123456789@c.us"), "notify"))
    assert result.sender_phone == PHONE
    assert result.sender_jid == PN


# --- timestamps and age ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1_700_000_000, 1_700_000_000),
        (1_700_000_000.7, 1_700_000_000),
        ("1700000000", 1_700_000_000),
        ({"low": 1_700_000_000, "high": 0, "unsigned": True}, 1_700_000_000),
        (0, None),
        (None, None),
        (True, None),
        ("soon", None),
        (float("nan"), None),
    ],
)
def test_timestamp_forms(value: object, expected: int | None) -> None:
    raw = msg()
    raw["messageTimestamp"] = value
    assert text_of(classify(raw, "notify")).timestamp == expected


def test_max_age_ignores_stale_messages() -> None:
    now = 1_700_000_000 + 900
    assert reason_of(classify(msg(), "append", now=now, max_age=600)) is IgnoreReason.STALE
    assert text_of(classify(msg(), "append", now=now, max_age=1200)).offline
    assert text_of(classify(msg(), "append", now=now)).offline  # no limit unless configured


# --- the whole upsert ------------------------------------------------------------------------


def test_classify_upsert() -> None:
    event = {
        "event": "messages",
        "type": "append",
        "messages": [msg(), msg({"imageMessage": {}}), "junk", msg(from_me=True)],
    }
    results = classify_upsert(event)
    assert isinstance(results[0], InboundText) and results[0].offline
    assert [r.reason for r in results[1:] if isinstance(r, Ignored)] == [
        IgnoreReason.MEDIA,
        IgnoreReason.MALFORMED,
        IgnoreReason.FROM_ME,
    ]
    assert classify_upsert({"event": "messages", "type": "notify"}) == []


# --- helpers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("jid", "expected"),
    [
        ("4915123456789:12@s.whatsapp.net", PN),
        ("4915123456789@c.us", PN),
        ("123456789012345:3@lid", LID),
        (GROUP, GROUP),
        ("nothing", "nothing"),
    ],
)
def test_normalize_jid(jid: str, expected: str) -> None:
    assert normalize_jid(jid) == expected


def test_is_lid() -> None:
    assert is_lid(LID) and is_lid("1@hosted.lid")
    assert not is_lid(PN) and not is_lid(None) and not is_lid("lid")


# --- never crash ------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
keys = st.sampled_from(["remoteJid", "remoteJidAlt", "fromMe", "id", "participant", "participantAlt", "addressingMode"])
jids = st.sampled_from([PN, LID, GROUP, "status@broadcast", "x@newsletter", "", "@", "a:b_c@s.whatsapp.net"])
content_keys = st.sampled_from(
    ["conversation", "extendedTextMessage", "ephemeralMessage", "imageMessage", "protocolMessage", "text"]
)


@settings(max_examples=200)
@given(
    key=st.dictionaries(keys, jids | json_values, max_size=7),
    message=json_values | st.dictionaries(content_keys, json_values, max_size=3),
    extra=st.dictionaries(
        st.sampled_from(["pushName", "messageTimestamp", "messageStubType"]), json_values, max_size=3
    ),
    upsert_type=st.sampled_from(["notify", "append", "history"]),
    answer_groups=st.booleans(),
)
def test_classify_never_raises(
    key: dict[str, Any], message: Any, extra: dict[str, Any], upsert_type: str, answer_groups: bool
) -> None:
    raw = {"key": key, "message": message, **extra}
    result = classify(raw, upsert_type, answer_groups=answer_groups, lid_to_phone=lambda _lid: None)
    assert isinstance(result, InboundText | Ignored)
    if isinstance(result, InboundText):
        assert result.text.strip()
        assert result.sender_phone is None or result.sender_phone.startswith("+")
