"""WhatsApp JIDs: the phone number a JID carries, if it carries one.

Only the WhatsApp channel deals in JIDs; the phone-number rules themselves live in
`cortask.contacts.phone`.
"""

from __future__ import annotations

from cortask.contacts.phone import is_e164

__all__ = ["phone_from_jid"]

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
