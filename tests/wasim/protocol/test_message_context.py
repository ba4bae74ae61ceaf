"""Mentions and replies in what a contact sends, and the quote read back from what the account
sends (issue #14): the `contextInfo` fields at WhatsApp's field numbers."""

from __future__ import annotations

from wasim.protocol import wa_pb2
from wasim.protocol.messages import Quote, build_message, read_message


def test_a_mention_and_a_reply_are_an_extended_text_with_context() -> None:
    data = build_message(
        "text", "@15550001111 see above", mentions=["15550001111@s.whatsapp.net"],
        quote=Quote("3EB0OURS", "15550001111@s.whatsapp.net", "the answer"),
    )  # fmt: skip
    msg = wa_pb2.Message.FromString(data)
    context = msg.extended_text_message.context_info
    assert msg.extended_text_message.text == "@15550001111 see above"
    assert list(context.mentioned_jid) == ["15550001111@s.whatsapp.net"]
    assert (context.stanza_id, context.participant) == ("3EB0OURS", "15550001111@s.whatsapp.net")
    assert context.quoted_message.conversation == "the answer"
    # WhatsApp's numbers: extendedTextMessage 6, contextInfo 17, stanzaId 1, mentionedJid 15.
    assert data.startswith(b"\x32")  # field 6, length-delimited
    assert b"\x8a\x01" in data  # field 17, length-delimited


def test_a_plain_text_stays_a_conversation_and_the_quote_is_read_back() -> None:
    assert wa_pb2.Message.FromString(build_message("text", "hi")).conversation == "hi"
    read = read_message(build_message("text", "Echo: hi", quote=Quote("3A0X", "491@s.whatsapp.net", "hi")))
    assert (read.kind, read.text, read.quoted) == ("extended_text", "Echo: hi", "3A0X")
    assert read_message(build_message("text", "plain")).quoted is None
