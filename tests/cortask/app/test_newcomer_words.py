"""What people read (issue #17): our own number, an agent's failure, Baileys' routine 515. Pure."""

from __future__ import annotations

import logging

from cortask.app.activity import describe, label
from cortask.app.display import human_number, humanize_jids
from cortask.channels.whatsapp.baileys_log import classify


def test_our_own_number_is_written_for_people() -> None:
    assert human_number("15550001111:2@s.whatsapp.net") == "+1 555-000-1111"
    assert human_number("4915123456789@s.whatsapp.net") == "+49 1512 3456789"  # as phonenumbers groups it
    assert humanize_jids("Connected to WhatsApp as 15550001111:2@s.whatsapp.net.") == (
        "Connected to WhatsApp as +1\u00a0555-000-1111."
    )


def test_an_agent_failure_is_said_as_such_never_as_a_reply() -> None:
    entry = {"kind": "failed", "chat": "4915123456789@s.whatsapp.net", "chars": 24, "agent_error": "timed out."}
    sentence, tone, quiet = describe(entry, lambda _: None)
    assert label("failed") == "Agent failed"
    assert sentence == "The agent failed: timed out. The sender got “Sorry, an error occurred.”"
    assert (tone.value, quiet) == ("error", False)


def test_the_restart_after_pairing_is_info_and_other_stream_errors_stay_loud() -> None:
    node = {"tag": "stream:error", "attrs": {"code": "515"}}
    routine = {"level": 50, "msg": "stream errored out", "fullErrorNode": node}
    level, text = classify(routine)
    assert level == logging.INFO and "usual restart after pairing" in text
    other = {**routine, "fullErrorNode": {"tag": "stream:error", "attrs": {"code": "503"}}}
    assert classify(other)[0] == logging.WARNING
    assert classify({"level": 30, "msg": "connected"})[0] == logging.DEBUG
