"""Which numbers to ask WhatsApp about for a contact, and what its answers mean. Pure.

A contact's E.164 number may be registered under another address (see
`cortask.contacts.addresses`), so every address it can have is asked for; the answer for the
number itself wins, then the first account found in the order asked. No account for any of them
means the number is not on WhatsApp.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from cortask.contacts.access import Registration, WhatsAppState
from cortask.contacts.addresses import whatsapp_addresses

if TYPE_CHECKING:  # a type only: the sidecar protocol loads with the channel (issue #18)
    from cortask.channels.whatsapp.wire import NumberFound

__all__ = ["numbers_to_ask", "registration_of"]


def numbers_to_ask(e164: str) -> tuple[str, ...]:
    """Every address the number can have, each as ``+`` and digits, the number's own first."""
    own = e164[1:]
    addresses = whatsapp_addresses(e164)
    return tuple("+" + a for a in (own, *(a for a in addresses if a != own)))


def registration_of(e164: str, answers: Sequence[NumberFound], now: datetime) -> Registration:
    """What WhatsApp's answers for `numbers_to_ask(e164)` say about the contact."""
    found = [a for a in answers if a.exists and a.jid]
    if not found:
        return Registration(WhatsAppState.NOT_ON_WHATSAPP, None, None, now)
    best = next((a for a in found if a.number == e164), found[0])
    assert best.jid is not None
    return Registration(WhatsAppState.REGISTERED, _user(best.jid), _user(best.lid) if best.lid else None, now)


def _user(jid: str) -> str:
    return jid.partition("@")[0].partition(":")[0]
