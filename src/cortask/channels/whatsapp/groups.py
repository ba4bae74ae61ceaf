"""Which group messages are for the agent (issue #14): pure, asked before anything is recorded.

With groups on, a message in a group is answered only when it @-mentions this account (by its
phone JID or its LID) or replies to a message of ours (mode ``mention``, the default), or always
(mode ``always``); and, when an allow-list of groups is set, only in those groups. The sender
must still be a trusted ``write``/``admin`` contact: that is the access policy's question, asked
as for any message. Membership of a group grants nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from cortask.channels.whatsapp.inbound import InboundText

__all__ = ["GROUP_MODES", "NOT_ALLOWED_GROUP", "NOT_MENTIONED", "GroupMode", "GroupRule", "group_gate"]

GroupMode = Literal["mention", "always"]
GROUP_MODES: tuple[GroupMode, ...] = ("mention", "always")
NOT_MENTIONED = "not_mentioned"  # activity reasons
NOT_ALLOWED_GROUP = "group_not_listed"


@dataclass(frozen=True, slots=True)
class GroupRule:
    mode: GroupMode = "mention"
    allowed: frozenset[str] = frozenset()  # group JIDs; empty: every group


def group_gate(item: InboundText, rule: GroupRule, own: frozenset[str], ours: Callable[[str], bool]) -> str | None:
    """None when a group message may go on to access control; otherwise the reason it is
    ignored. `own`: this account's user parts (phone and LID); `ours`: whether a message id is
    one we sent."""
    if not item.is_group:
        return None
    if rule.allowed and item.chat_jid not in rule.allowed:
        return NOT_ALLOWED_GROUP
    if rule.mode == "always":
        return None
    if any(_user(jid) in own for jid in item.mentions):
        return None
    # A reply to one of ours: its id is one we reserved (not merely a message of the owner's).
    return None if item.quoted_id is not None and ours(item.quoted_id) else NOT_MENTIONED


def _user(jid: str) -> str:
    return jid.partition("@")[0].partition(":")[0]
