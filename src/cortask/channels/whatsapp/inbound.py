"""Which inbound WhatsApp messages are text for the agent, and who sent them.

Pure: `classify` takes one message from the sidecar's ``messages`` event (Baileys' WAMessage as
JSON: ``key``, ``message``, ``pushName``, ``messageTimestamp``, ``messageStubType``) and the
upsert type, and returns either an `InboundText` or an `Ignored` with a reason code. It never
raises on odd input: anything it cannot read is `Ignored(MALFORMED)`.

Rules, in the order they are checked:

* ``status@broadcast`` is always ignored, and so is anything we sent ourselves (``fromMe``),
  except, with the self-chat setting on (`SelfChat`), what the owner writes in their own chat
  ("Message yourself") from the phone or another linked device: that is accepted as the owner's
  (`from_owner`), unless its id is one we reserved for a reply of ours (no loops). The owner's
  messages in any other chat stay ignored.
* ``notify`` (live) and ``append`` (queued while we were offline) take the same path, flagged
  ``offline``; any other upsert type (e.g. ``history``, should the sidecar forward history sync)
  is ignored. Optionally, messages older than ``max_age`` seconds are ignored as stale.
* 1:1 chats with a phone number or LID are accepted. Groups (``@g.us``) only when the
  ``answer_groups`` setting is on (default off); their sender is the participant. Other broadcast
  lists, newsletters, bots and unknown servers are ignored.
* Stubs (``messageStubType`` set, e.g. 2 = an undecryptable ciphertext) and messages without
  content are ignored.
* Text is ``message.conversation`` or ``message.extendedTextMessage.text``, after unwrapping the
  containers Baileys' own ``normalizeMessageContent`` unwraps that can carry a text:
  ``ephemeralMessage`` (chats with disappearing messages on: without this every message in such
  a chat would be dropped), ``viewOnceMessage``/``V2``/``V2Extension``,
  ``documentWithCaptionMessage``, ``associatedChildMessage``, and ``deviceSentMessage`` (our own
  devices; already fromMe). Edits (``editedMessage``, ``protocolMessage``) are not new messages
  and are ignored, as are group statuses. Media, location, contacts, reactions, polls and
  anything else are ignored with a reason naming the kind. Empty or whitespace-only text is
  ignored; other text is passed on unchanged.

Sender number: from the phone-number JID itself, else (LID-addressed) from ``remoteJidAlt`` /
``participantAlt``, else from the injected ``lid_to_phone`` lookup, else None. It is never
guessed from a LID's digits.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cortask.channels.whatsapp.jid import phone_from_jid
from cortask.contacts.phone import is_e164

__all__ = [
    "IgnoreReason",
    "Ignored",
    "InboundText",
    "LidResolver",
    "SelfChat",
    "classify",
    "classify_upsert",
    "is_lid",
    "normalize_jid",
]

STATUS_BROADCAST = "status@broadcast"
CIPHERTEXT_STUB = 2  # WAMessageStubType.CIPHERTEXT: a message we could not decrypt

# Given a LID JID without device ("123456789012345@lid"), return the phone number it belongs to
# as a PN JID (what Baileys' lidMapping.getPNForLID returns, device suffix allowed) or as E.164,
# or None when unknown. Exceptions propagate: a broken lookup is a bug to see, not a stranger.
LidResolver = Callable[[str], str | None]

_PN_SERVERS = frozenset({"s.whatsapp.net", "c.us", "hosted"})
_LID_SERVERS = frozenset({"lid", "hosted.lid"})

# Containers whose `.message` holds the real content (Baileys' normalizeMessageContent, minus
# edits and group statuses, which we ignore rather than answer).
_CONTAINERS = (
    "ephemeralMessage",
    "viewOnceMessage",
    "viewOnceMessageV2",
    "viewOnceMessageV2Extension",
    "documentWithCaptionMessage",
    "associatedChildMessage",
    "deviceSentMessage",
)
_MAX_UNWRAP = 5  # same bound as Baileys, against self-nested junk


class IgnoreReason(StrEnum):
    MALFORMED = "malformed"
    STATUS_BROADCAST = "status_broadcast"
    FROM_ME = "from_me"
    UPSERT_TYPE = "upsert_type"
    STALE = "stale"
    GROUP = "group"
    BROADCAST = "broadcast"
    NEWSLETTER = "newsletter"
    UNSUPPORTED_CHAT = "unsupported_chat"
    UNDECRYPTABLE = "undecryptable"
    STUB = "stub"
    NO_CONTENT = "no_content"
    MEDIA = "media"
    LOCATION = "location"
    CONTACT = "contact"
    REACTION = "reaction"
    POLL = "poll"
    PROTOCOL = "protocol"
    EDIT = "edit"
    GROUP_STATUS = "group_status"
    EMPTY_TEXT = "empty_text"
    UNSUPPORTED_KIND = "unsupported_kind"


_SENTENCES: Mapping[IgnoreReason, str] = {
    IgnoreReason.MALFORMED: "The message event is missing its chat or id.",
    IgnoreReason.STATUS_BROADCAST: "Status updates are never answered.",
    IgnoreReason.FROM_ME: "Messages sent from this account are never answered.",
    IgnoreReason.UPSERT_TYPE: "Only new and offline-queued messages are answered, not history.",
    IgnoreReason.STALE: "The message is older than the configured maximum age.",
    IgnoreReason.GROUP: "Group messages are not answered (the answer-groups setting is off).",
    IgnoreReason.BROADCAST: "Broadcast-list messages are not answered.",
    IgnoreReason.NEWSLETTER: "Channel (newsletter) posts are not answered.",
    IgnoreReason.UNSUPPORTED_CHAT: "Messages from this kind of chat are not answered.",
    IgnoreReason.UNDECRYPTABLE: "The message could not be decrypted.",
    IgnoreReason.STUB: "The message is a notification stub, not a message.",
    IgnoreReason.NO_CONTENT: "The message has no content.",
    IgnoreReason.MEDIA: "Only text messages are answered; this is media.",
    IgnoreReason.LOCATION: "Only text messages are answered; this is a location.",
    IgnoreReason.CONTACT: "Only text messages are answered; this is a contact card.",
    IgnoreReason.REACTION: "Reactions are not answered.",
    IgnoreReason.POLL: "Polls are not answered.",
    IgnoreReason.PROTOCOL: "Protocol messages (edits, deletions, sync) are not answered.",
    IgnoreReason.EDIT: "Edits of earlier messages are not answered.",
    IgnoreReason.GROUP_STATUS: "Group status updates are not answered.",
    IgnoreReason.EMPTY_TEXT: "The message text is empty.",
    IgnoreReason.UNSUPPORTED_KIND: "Only text messages are answered.",
}

# Content keys → reason. Anything with a key not listed here is UNSUPPORTED_KIND.
_KINDS: Mapping[str, IgnoreReason] = {
    **dict.fromkeys(
        (
            "imageMessage",
            "videoMessage",
            "audioMessage",
            "documentMessage",
            "stickerMessage",
            "ptvMessage",
            "lottieStickerMessage",
            "stickerPackMessage",
        ),
        IgnoreReason.MEDIA,
    ),
    "locationMessage": IgnoreReason.LOCATION,
    "liveLocationMessage": IgnoreReason.LOCATION,
    "contactMessage": IgnoreReason.CONTACT,
    "contactsArrayMessage": IgnoreReason.CONTACT,
    "reactionMessage": IgnoreReason.REACTION,
    "encReactionMessage": IgnoreReason.REACTION,
    **dict.fromkeys(
        (
            "pollCreationMessage",
            "pollCreationMessageV2",
            "pollCreationMessageV3",
            "pollCreationMessageV5",
            "pollUpdateMessage",
            "pollResultSnapshotMessage",
        ),
        IgnoreReason.POLL,
    ),
    # A container whose inner message is missing is an empty message, not a new kind.
    **dict.fromkeys(_CONTAINERS, IgnoreReason.NO_CONTENT),
    "protocolMessage": IgnoreReason.PROTOCOL,
    "editedMessage": IgnoreReason.EDIT,
    "groupStatusMessage": IgnoreReason.GROUP_STATUS,
    "groupStatusMessageV2": IgnoreReason.GROUP_STATUS,
}

# Keys that ride along with real content and say nothing about its kind.
_SIDECAR_KEYS = frozenset({"messageContextInfo", "senderKeyDistributionMessage"})


@dataclass(frozen=True, slots=True)
class InboundText:
    """A text message for the agent. Reply to `chat_jid`, exactly as it came (PN or LID)."""

    chat_jid: str
    message_id: str
    sender_jid: str  # normalised (no device); the phone-number form when known
    sender_phone: str | None  # E.164, or None when the LID could not be resolved
    sender_lid: str | None  # "…@lid" when known
    push_name: str | None
    text: str
    timestamp: int | None  # seconds since the epoch, as WhatsApp stamped it
    is_group: bool
    offline: bool  # delivered from the offline queue (upsert type "append")
    from_owner: bool = False  # the account's owner, in their own chat (self-chat)
    # In groups: whom the text @-mentions (JIDs, as sent), and the message it replies to, if any.
    mentions: tuple[str, ...] = ()
    quoted_id: str | None = None
    quoted_participant: str | None = None


@dataclass(frozen=True, slots=True)
class SelfChat:
    """The self-chat setting, switched on: the account's own addresses (user parts of its phone
    JID and LID), and `ours`, which says whether a message id is one we reserved for a reply."""

    own: frozenset[str]
    ours: Callable[[str], bool]

    def is_own_chat(self, chat: str) -> bool:
        server = _server(chat)
        user = chat.partition("@")[0].partition(":")[0]
        return (server in _PN_SERVERS or server in _LID_SERVERS) and user in self.own


@dataclass(frozen=True, slots=True)
class Ignored:
    reason: IgnoreReason
    message_id: str | None = None
    chat_jid: str | None = None

    @property
    def sentence(self) -> str:
        return _SENTENCES[self.reason]


def too_old(timestamp: float | None, now: float, max_age: float) -> bool:
    """A message sent more than `max_age` seconds ago (one without a time is never too old)."""
    return timestamp is not None and now - timestamp > max_age


def classify(
    raw: Mapping[str, Any],
    upsert_type: str,
    *,
    answer_groups: bool = False,
    lid_to_phone: LidResolver | None = None,
    now: float | None = None,
    max_age: float | None = None,
    self_chat: SelfChat | None = None,
) -> InboundText | Ignored:
    """Classify one message of a ``messages.upsert`` (see the module docstring for the rules)."""
    key = raw.get("key") if isinstance(raw, Mapping) else None
    if not isinstance(key, Mapping):
        return Ignored(IgnoreReason.MALFORMED)
    chat = _str_or_none(key.get("remoteJid"))
    message_id = _str_or_none(key.get("id"))
    if chat is None or message_id is None:
        return Ignored(IgnoreReason.MALFORMED, message_id, chat)

    # The rules in their documented order: the envelope, the chat and sender, stubs, the content.
    timestamp = _timestamp(raw.get("messageTimestamp"))
    from_owner = key.get("fromMe") is True and _owner_writes(self_chat, chat, message_id)
    envelope = {**key, "fromMe": False} if from_owner else key
    reason = _envelope_reason(chat, envelope, upsert_type, timestamp, now, max_age)
    if reason is not None:
        return Ignored(reason, message_id, chat)
    sender = _chat_sender(chat, key, answer_groups, lid_to_phone)
    if isinstance(sender, IgnoreReason):
        return Ignored(sender, message_id, chat)
    reason = _stub_reason(raw.get("messageStubType"))
    if reason is not None:
        return Ignored(reason, message_id, chat)
    text_or_reason = _text(raw.get("message"))
    if isinstance(text_or_reason, IgnoreReason):
        return Ignored(text_or_reason, message_id, chat)

    sender_jid, sender_phone, sender_lid = sender
    in_group = _server(chat) == "g.us"
    mentions, quoted_id, quoted_participant = _context(raw.get("message")) if in_group else ((), None, None)
    return InboundText(
        chat_jid=chat,
        message_id=message_id,
        sender_jid=sender_jid,
        sender_phone=sender_phone,
        sender_lid=sender_lid,
        push_name=_str_or_none(raw.get("pushName")),
        text=text_or_reason,
        timestamp=timestamp,
        is_group=_server(chat) == "g.us",
        offline=upsert_type == "append",
        from_owner=from_owner,
        mentions=mentions,
        quoted_id=quoted_id,
        quoted_participant=quoted_participant,
    )


def classify_upsert(
    event: Mapping[str, Any],
    *,
    answer_groups: bool = False,
    lid_to_phone: LidResolver | None = None,
    now: float | None = None,
    max_age: float | None = None,
    self_chat: SelfChat | None = None,
) -> list[InboundText | Ignored]:
    """Classify every message of a sidecar ``{"event": "messages", "type", "messages"}`` line."""
    upsert_type = event.get("type")
    messages = event.get("messages")
    if not isinstance(messages, list):
        return []
    kind = upsert_type if isinstance(upsert_type, str) else ""
    return [
        classify(
            m if isinstance(m, Mapping) else {},
            kind,
            answer_groups=answer_groups,
            lid_to_phone=lid_to_phone,
            now=now,
            max_age=max_age,
            self_chat=self_chat,
        )
        for m in messages
    ]


def normalize_jid(jid: str) -> str:
    """Strip the device and agent from a user JID, like Baileys' jidNormalizedUser.

    ``491…:12@s.whatsapp.net`` → ``491…@s.whatsapp.net``; ``c.us`` becomes ``s.whatsapp.net``.
    """
    user, sep, server = jid.partition("@")
    if not sep:
        return jid
    user = user.partition(":")[0].partition("_")[0]
    return f"{user}@{'s.whatsapp.net' if server == 'c.us' else server}"


def is_lid(jid: object) -> bool:
    return isinstance(jid, str) and _server(jid) in _LID_SERVERS


# --- internals -----------------------------------------------------------------------------


def _owner_writes(self_chat: SelfChat | None, chat: str, message_id: str) -> bool:
    """A message of ours that the owner wrote in their own chat, not a reply we sent there."""
    return self_chat is not None and self_chat.is_own_chat(chat) and not self_chat.ours(message_id)


def _envelope_reason(
    chat: str,
    key: Mapping[str, Any],
    upsert_type: str,
    timestamp: int | None,
    now: float | None,
    max_age: float | None,
) -> IgnoreReason | None:
    """Why a message is ignored before its chat is looked at: status, our own, history, stale."""
    if chat == STATUS_BROADCAST:
        return IgnoreReason.STATUS_BROADCAST
    if key.get("fromMe") is True:
        return IgnoreReason.FROM_ME
    if upsert_type not in ("notify", "append"):
        return IgnoreReason.UPSERT_TYPE
    if max_age is not None and now is not None and too_old(timestamp, now, max_age):
        return IgnoreReason.STALE
    return None


def _chat_sender(
    chat: str, key: Mapping[str, Any], answer_groups: bool, lid_to_phone: LidResolver | None
) -> tuple[str, str | None, str | None] | IgnoreReason:
    """The sender of a message in a chat we answer (a group's participant), or why we don't."""
    server = _server(chat)
    if server == "g.us":
        if not answer_groups:
            return IgnoreReason.GROUP
        sender = _sender(key.get("participant"), key.get("participantAlt"), lid_to_phone)
    elif server in _PN_SERVERS or server in _LID_SERVERS:
        sender = _sender(chat, key.get("remoteJidAlt"), lid_to_phone)
    elif server == "broadcast":
        return IgnoreReason.BROADCAST
    elif server == "newsletter":
        return IgnoreReason.NEWSLETTER
    else:
        return IgnoreReason.UNSUPPORTED_CHAT
    return IgnoreReason.MALFORMED if sender is None else sender


def _stub_reason(stub: object) -> IgnoreReason | None:
    """A notification stub is not a message; an undecryptable one gets its own reason."""
    if stub in (None, 0, "", "UNKNOWN"):
        return None
    return IgnoreReason.UNDECRYPTABLE if stub in (CIPHERTEXT_STUB, "CIPHERTEXT") else IgnoreReason.STUB


def _sender(jid: object, alt: object, lid_to_phone: LidResolver | None) -> tuple[str, str | None, str | None] | None:
    """(sender_jid, phone, lid) from a JID and its alternate form; None if there is no sender."""
    primary = _str_or_none(jid)
    if primary is None or "@" not in primary:
        return None
    pn_jid: str | None = None
    lid: str | None = None
    for candidate in (primary, _str_or_none(alt)):
        if candidate is None or "@" not in candidate:
            continue
        server = _server(candidate)
        if server in _PN_SERVERS and pn_jid is None and phone_from_jid(candidate) is not None:
            pn_jid = normalize_jid(candidate)
        elif server in _LID_SERVERS and lid is None:
            lid = normalize_jid(candidate)
    phone = phone_from_jid(pn_jid)
    if phone is None and lid is not None and lid_to_phone is not None:
        phone = _resolved_phone(lid_to_phone(lid))
        if phone is not None:
            pn_jid = f"{phone[1:]}@s.whatsapp.net"
    sender_jid = pn_jid or lid or normalize_jid(primary)
    return sender_jid, phone, lid


def _resolved_phone(value: object) -> str | None:
    """Accept what a LID lookup may return: a PN JID (device allowed) or an E.164 string."""
    if not isinstance(value, str):
        return None
    if "@" in value:
        return phone_from_jid(value)
    return value if is_e164(value) else None


def _text(message: object) -> str | IgnoreReason:
    """The text of a message's content, or why there is none."""
    content = message
    for _ in range(_MAX_UNWRAP):
        if not isinstance(content, Mapping):
            break
        inner = next(
            (content[k].get("message") for k in _CONTAINERS if isinstance(content.get(k), Mapping)),
            None,
        )
        if not isinstance(inner, Mapping):
            break
        content = inner
    if not isinstance(content, Mapping):
        return IgnoreReason.NO_CONTENT

    text: object = content.get("conversation")
    if text is None:
        extended = content.get("extendedTextMessage")
        text = extended.get("text") if isinstance(extended, Mapping) else None
    if isinstance(text, str):
        return text if text.strip() else IgnoreReason.EMPTY_TEXT

    present = [k for k, v in content.items() if v is not None and k not in _SIDECAR_KEYS]
    if not present:
        return IgnoreReason.NO_CONTENT
    if "extendedTextMessage" in present or "conversation" in present:
        return IgnoreReason.EMPTY_TEXT  # a text message whose text is missing or not a string
    for k in present:
        if k in _KINDS:
            return _KINDS[k]
    return IgnoreReason.UNSUPPORTED_KIND


def _context(message: object) -> tuple[tuple[str, ...], str | None, str | None]:
    """(mentioned JIDs, quoted message id, quoted author) of a text, from its ``contextInfo``."""
    content = message
    for _ in range(_MAX_UNWRAP):
        if not isinstance(content, Mapping):
            return (), None, None
        inner = next(
            (content[k].get("message") for k in _CONTAINERS if isinstance(content.get(k), Mapping)),
            None,
        )
        if not isinstance(inner, Mapping):
            break
        content = inner
    extended = content.get("extendedTextMessage") if isinstance(content, Mapping) else None
    context = extended.get("contextInfo") if isinstance(extended, Mapping) else None
    if not isinstance(context, Mapping):
        return (), None, None
    mentioned = context.get("mentionedJid")
    mentions = tuple(m for m in mentioned if isinstance(m, str)) if isinstance(mentioned, list) else ()
    return mentions, _str_or_none(context.get("stanzaId")), _str_or_none(context.get("participant"))


def _timestamp(value: object) -> int | None:
    """Seconds since the epoch from a number, a numeric string, or a protobuf Long as JSON."""
    if isinstance(value, Mapping):  # {"low": …, "high": …, "unsigned": …}
        low, high = _int(value.get("low")), _int(value.get("high"))
        value = None if low is None or high is None else (high & 0xFFFFFFFF) << 32 | (low & 0xFFFFFFFF)
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    elif isinstance(value, float) and math.isfinite(value):
        value = int(value)
    seconds = _int(value)
    return seconds if seconds is not None and seconds > 0 else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _server(jid: str) -> str:
    return jid.rpartition("@")[2] if "@" in jid else ""


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
