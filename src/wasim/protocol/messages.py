"""WhatsApp `Message` protobufs with minimal valid content for every kind a contact can send,
and a reader for what a companion sends back. Pure functions, no I/O."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError

from wasim.protocol import wa_pb2

M = wa_pb2.Message

# The `type` attribute of the <message> stanza for each kind, as WhatsApp sets it.
STANZA_TYPE = {
    "text": "text",
    "extended_text": "text",
    "image": "media",
    "video": "media",
    "audio": "media",
    "document": "media",
    "sticker": "media",
    "location": "media",
    "contact": "media",
    "reaction": "reaction",
    "poll": "poll",
    "revoke": "text",
}
KINDS = tuple(STANZA_TYPE)


def _media(kind: str) -> dict[str, Any]:
    body = os.urandom(64)
    return {
        "url": f"https://mmg.whatsapp.net/wasim/{kind}/{body[:6].hex()}",
        "mimetype": {
            "image": "image/jpeg",
            "video": "video/mp4",
            "audio": "audio/ogg; codecs=opus",
            "document": "application/pdf",
            "sticker": "image/webp",
        }[kind],
        "file_sha256": hashlib.sha256(body).digest(),
        "file_length": len(body),
        "media_key": os.urandom(32),
    }


@dataclass(frozen=True, slots=True)
class _Target:
    """The message a reaction or a revoke points at."""

    chat_jid: str
    message_id: str

    def key(self, *, from_me: bool) -> wa_pb2.MessageKey:
        return wa_pb2.MessageKey(
            remote_jid=self.chat_jid, from_me=from_me, id=self.message_id or "3EB0000000000000000000"
        )


def _document(text: str, _: _Target) -> wa_pb2.Message:
    name = text or "file.pdf"
    return M(document_message=M.DocumentMessage(title=name, file_name=name, **_media("document")))


def _contact(text: str, _: _Target) -> wa_pb2.Message:
    name = text or "Grace Hopper"
    vcard = f"BEGIN:VCARD\nVERSION:3.0\nFN:{name}\nTEL;type=CELL:+15550009999\nEND:VCARD"
    return M(contact_message=M.ContactMessage(display_name=name, vcard=vcard))


def _reaction(text: str, target: _Target) -> wa_pb2.Message:
    key = target.key(from_me=True)
    return M(reaction_message=M.ReactionMessage(key=key, text=text or "👍", sender_timestamp_ms=1))


def _poll(text: str, _: _Target) -> wa_pb2.Message:
    options = [M.PollCreationMessage.Option(option_name=o) for o in ("yes", "no")]
    poll = M.PollCreationMessage(name=text or "Lunch?", options=options, selectable_options_count=1)
    return M(poll_creation_message_v3=poll)


def _revoke(_: str, target: _Target) -> wa_pb2.Message:
    return M(protocol_message=M.ProtocolMessage(key=target.key(from_me=False), type=0))  # 0 = REVOKE


# Each kind's minimal valid content, from the text (or caption, or name) and the target.
_BUILDERS: dict[str, Callable[[str, _Target], wa_pb2.Message]] = {
    "text": lambda text, _: M(conversation=text),
    "extended_text": lambda text, _: M(extended_text_message=M.ExtendedTextMessage(text=text)),
    "image": lambda text, _: M(image_message=M.ImageMessage(caption=text, height=1, width=1, **_media("image"))),
    "video": lambda text, _: M(video_message=M.VideoMessage(caption=text, seconds=1, **_media("video"))),
    "audio": lambda _, __: M(audio_message=M.AudioMessage(seconds=1, ptt=True, **_media("audio"))),
    "document": _document,
    "sticker": lambda _, __: M(sticker_message=M.StickerMessage(height=64, width=64, **_media("sticker"))),
    "location": lambda text, _: M(
        location_message=M.LocationMessage(degrees_latitude=52.52, degrees_longitude=13.405, name=text)
    ),
    "contact": _contact,
    "reaction": _reaction,
    "poll": _poll,
    "revoke": _revoke,
}


@dataclass(frozen=True, slots=True)
class Quote:
    """The message a reply quotes: its id, who wrote it (a JID) and its text."""

    stanza_id: str
    participant: str
    text: str = ""


def build_message(
    kind: str,
    text: str = "",
    *,
    target_id: str = "",
    chat_jid: str = "",
    mentions: Sequence[str] = (),
    quote: Quote | None = None,
) -> bytes:
    """Serialized `Message` of `kind`; `text` is the text, caption or name where the kind has one.
    Reactions and revokes point at `target_id` in `chat_jid`. A text that mentions someone
    (`mentions`, JIDs) or replies to a message (`quote`) is an extended text with a context, as
    WhatsApp sends it."""
    builder = _BUILDERS.get(kind)
    if builder is None:
        raise ValueError(f"unknown message kind {kind!r}; choose one of {', '.join(KINDS)}")
    if (mentions or quote is not None) and kind in ("text", "extended_text"):
        context = M.ContextInfo(mentioned_jid=list(mentions))
        if quote is not None:
            context.stanza_id, context.participant = quote.stanza_id, quote.participant
            context.quoted_message.CopyFrom(M(conversation=quote.text))
        extended = M.ExtendedTextMessage(text=text, context_info=context)
        return bytes(M(extended_text_message=extended).SerializeToString())
    return bytes(builder(text, _Target(chat_jid, target_id)).SerializeToString())


def wrap_device_sent(message: bytes, destination_jid: str) -> bytes:
    """What the account's own phone sends its companions about a message it sent elsewhere."""
    inner = M.FromString(message)
    return bytes(
        M(device_sent_message=M.DeviceSentMessage(destination_jid=destination_jid, message=inner)).SerializeToString()
    )


@dataclass(frozen=True, slots=True)
class ReadMessage:
    kind: str
    text: str | None
    quoted: str | None = None  # the id of the message it replies to, if it quotes one


def read_message(data: bytes) -> ReadMessage:
    """The kind and text of a Message a companion sent (unwrapping deviceSentMessage)."""
    try:
        msg = M.FromString(data)
    except DecodeError:
        return ReadMessage("undecodable", None)
    if msg.HasField("device_sent_message"):
        msg = msg.device_sent_message.message
    if msg.HasField("conversation"):
        return ReadMessage("text", msg.conversation)
    if msg.HasField("extended_text_message"):
        extended = msg.extended_text_message
        quoted = extended.context_info.stanza_id if extended.HasField("context_info") else ""
        return ReadMessage("extended_text", extended.text, quoted or None)
    for field, _ in msg.ListFields():
        if field.name not in ("message_context_info",):
            return ReadMessage(field.name.removesuffix("_message"), None)
    return ReadMessage("empty", None)
