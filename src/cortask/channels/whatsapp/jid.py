"""WhatsApp JIDs: the phone number a JID carries, if it carries one.

Only the WhatsApp channel deals in JIDs; the phone-number rules themselves live in
`cortask.contacts.phone`.
"""

from __future__ import annotations

from collections.abc import Callable

from cortask.contacts.phone import is_e164

__all__ = ["phone_from_jid", "same_chat"]

# JID servers whose user part is a phone number (c.us is the legacy spelling of s.whatsapp.net,
# hosted is a phone number on a hosted/business device).
_PHONE_SERVERS = frozenset({"s.whatsapp.net", "c.us", "hosted"})


def phone_from_jid(jid: str | None) -> str | None:
    """The E.164 number of a phone-number JID, or None when the JID does not carry one.

    ``4915123456789@s.whatsapp.net`` and ``4915123456789:12@s.whatsapp.net`` (a device of that
    user) give ``+4915123456789``. LIDs (``@lid``), groups (``@g.us``), broadcasts, newsletters and
    anything malformed give None: a LID's digits are not a phone number and must never be read as
    one. The number is taken as WhatsApp states it (no phonenumbers validation), because
    WhatsApp, not our metadata, is the authority on which numbers exist.
    """
    if not isinstance(jid, str):
        return None
    user, sep, server = jid.partition("@")
    if not sep or server not in _PHONE_SERVERS:
        return None
    # Same decomposition as Baileys' jidDecode: user[_agent][:device]@server.
    user = user.partition(":")[0].partition("_")[0]
    candidate = "+" + user
    return candidate if is_e164(candidate) else None


def _bare(jid: str) -> str:
    """A JID without its device and agent parts, phone servers spelt one way."""
    user, _, server = jid.partition("@")
    user = user.partition(":")[0].partition("_")[0]
    return f"{user}@{'s.whatsapp.net' if server in _PHONE_SERVERS else server}"


def same_chat(a: str, b: str, phone_for_lid: Callable[[str], str | None]) -> bool:
    """Whether two JIDs name the same chat: equal once devices are dropped, or one a LID that
    WhatsApp told us belongs to the other's phone number (`phone_for_lid`)."""
    bare_a, bare_b = _bare(a), _bare(b)
    if bare_a == bare_b:
        return True

    def phone(bare: str) -> str | None:
        return phone_for_lid(bare) if bare.endswith("@lid") else None

    mapped_a, mapped_b = phone(bare_a) or bare_a, phone(bare_b) or bare_b
    return _bare(mapped_a) == _bare(mapped_b)
