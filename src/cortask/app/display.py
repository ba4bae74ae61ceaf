"""How the application layer writes things for people: our own account's number (issue #17).

Pure. A contact's number is shown as the person wrote it elsewhere; this is only for the linked
account, which WhatsApp names by a JID such as `15550001111:2@s.whatsapp.net`.
"""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat


def human_number(jid_or_phone: str) -> str:
    """`15550001111:2@s.whatsapp.net` → `+1 555-000-1111`; what cannot be read as a phone number
    is returned with its device and server parts dropped (a LID, say)."""
    user = jid_or_phone.split("@", 1)[0].split(":", 1)[0]
    digits = "".join(c for c in user if c.isdigit())
    if not digits or jid_or_phone.endswith("@lid"):
        return user
    try:
        number = phonenumbers.parse("+" + digits, None)
    except NumberParseException:
        return "+" + digits
    if not phonenumbers.is_possible_number(number):
        return "+" + digits
    return phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)


_JID = re.compile(r"\b\d{5,20}(?::\d+)?@s\.whatsapp\.net\b")


def humanize_jids(text: str) -> str:
    """Every phone JID in a sentence written as a number for people, kept on one line (no-break
    spaces between its groups)."""
    return _JID.sub(lambda m: human_number(m.group(0)).replace(" ", "\u00a0"), text)
