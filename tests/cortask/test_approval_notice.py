"""The notice the owner gets in their own chat when a stranger writes (issue #14): who, the first
line, the code, how long it lasts, and where to answer when self-chat is off."""

from __future__ import annotations

from dataclasses import replace

from cortask.service import approval_notice
from cortask.store.models import Approval

HELD = Approval(
    code="K7Q2M9", phone="+4915100000666", chat_jid="4915100000666@s.whatsapp.net", message_id="3A0X",
    sender_jid="4915100000666@s.whatsapp.net", push_name="Eve", text="  hello there\nsecond line",
    message_ts=None, created_at=0.0, expires_at=86400.0, state="pending",
)  # fmt: skip


def test_the_notice_says_who_what_and_how_to_answer() -> None:
    assert approval_notice(HELD, 24).splitlines() == [
        "Someone new wrote: +4915100000666 (Eve): “hello there”",
        "Send /approve K7Q2M9 to let them in and answer it (or /approve K7Q2M9 read), "
        "or /reject K7Q2M9 to drop it and mute them. The code is valid for 24 h.",
    ]


def test_without_self_chat_it_says_where_to_answer() -> None:
    assert approval_notice(HELD, 0.5, self_chat=False).splitlines()[-1] == (
        "(Turn on “Talk to the agent in your own chat” to answer here, or use the page.)"
    )


def test_a_long_first_line_is_cut() -> None:
    long = replace(HELD, text="x" * 500)
    assert "“" + "x" * 119 + "…”" in approval_notice(long, 24)
