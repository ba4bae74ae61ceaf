"""What to ask WhatsApp about a contact's number, and what its answers mean (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from cortask.channels.whatsapp.numbers import numbers_to_ask, registration_of
from cortask.channels.whatsapp.wire import NumberFound
from cortask.contacts.access import Registration, WhatsAppState

NOW = datetime(2026, 12, 3, tzinfo=UTC)


def test_every_address_the_number_can_have_is_asked_its_own_first() -> None:
    assert numbers_to_ask("+525512345678") == ("+525512345678", "+5215512345678")
    assert numbers_to_ask("+5511987654321") == ("+5511987654321", "+551187654321")
    assert numbers_to_ask("+541112345678") == ("+541112345678", "+5491112345678")
    assert numbers_to_ask("+4915123456789") == ("+4915123456789",)


def test_the_account_found_for_the_number_itself_wins() -> None:
    answers = [
        NumberFound("+541112345678", True, "541112345678@s.whatsapp.net", "11@lid"),  # a business landline
        NumberFound("+5491112345678", True, "5491112345678@s.whatsapp.net", "22@lid"),
    ]
    assert registration_of("+541112345678", answers, NOW) == Registration(
        WhatsAppState.REGISTERED, "541112345678", "11", NOW
    )


def test_else_the_first_account_found_in_the_order_asked() -> None:
    answers = [
        NumberFound("+525512345678", True, "5215512345678@s.whatsapp.net", "77@lid"),
        NumberFound("+5215512345678", True, "5215512345678:0@s.whatsapp.net"),
    ]
    assert registration_of("+5299", answers, NOW) == Registration(WhatsAppState.REGISTERED, "5215512345678", "77", NOW)


def test_no_account_for_any_address_is_not_on_whatsapp() -> None:
    answers = [NumberFound("+525512345678", False), NumberFound("+5215512345678", False)]
    assert registration_of("+525512345678", answers, NOW) == Registration(
        WhatsAppState.NOT_ON_WHATSAPP, None, None, NOW
    )
    assert registration_of("+525512345678", [], NOW).state is WhatsAppState.NOT_ON_WHATSAPP
