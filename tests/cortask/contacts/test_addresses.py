"""The forms people write for Mexico, Brazil and Argentina, and which WhatsApp addresses a number
can be (both directions): tables of real-looking numbers, several countries, never a suffix."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cortask.contacts.access import AccessPolicy, Permission, Registration, TrustedContact, Verdict, WhatsAppState
from cortask.contacts.addresses import format_address, numbers_for_address, whatsapp_addresses
from cortask.contacts.phone import InvalidPhoneNumber, normalize_phone

# (what a person types, default region, the E.164 number it is)
WRITTEN = [
    # Mexico: the number as written today, the mobile "1" WhatsApp uses, the old 044/045 and 01.
    ("+52 55 1234 5678", None, "+525512345678"),
    ("+52 1 55 1234 5678", None, "+525512345678"),
    ("5215512345678", None, "+525512345678"),
    ("+521 (55) 1234-5678", None, "+525512345678"),
    ("525512345678", None, "+525512345678"),
    ("55 1234 5678", "MX", "+525512345678"),
    ("044 55 1234 5678", "MX", "+525512345678"),
    ("045 33 1234 5678", "MX", "+523312345678"),
    ("01 55 1234 5678", "MX", "+525512345678"),
    # Brazil: nine-digit mobiles, eight-digit legacy ones (the 9 is added), trunk and carrier codes.
    ("+55 11 98765-4321", None, "+5511987654321"),
    ("+55 11 8765-4321", None, "+5511987654321"),
    ("551187654321", None, "+5511987654321"),
    ("(11) 98765-4321", "BR", "+5511987654321"),
    ("(11) 8765-4321", "BR", "+5511987654321"),
    ("0 15 11 98765-4321", "BR", "+5511987654321"),
    ("0 21 21 8765-4321", "BR", "+5521987654321"),
    ("+55 11 3456-7890", None, "+551134567890"),  # a landline keeps its eight digits
    # Argentina: with the 9, without it (a fixed-line reading), with the old 15.
    ("+54 9 11 1234-5678", None, "+5491112345678"),
    ("5491112345678", None, "+5491112345678"),
    ("+54 11 15 1234-5678", None, "+5491112345678"),
    ("011 15-1234-5678", "AR", "+5491112345678"),
    ("11 15 1234 5678", "AR", "+5491112345678"),
    ("+54 11 1234-5678", None, "+541112345678"),
    # Everyone else as before.
    ("+49 151 23456789", None, "+4915123456789"),
    ("0151 23456789", "DE", "+4915123456789"),
    ("+1 (212) 555-0100", None, "+12125550100"),
    ("(212) 555-0100", "US", "+12125550100"),
    ("+44 7400 123456", None, "+447400123456"),
]


@pytest.mark.parametrize(("text", "region", "expected"), WRITTEN)
def test_every_form_people_write_is_one_number(text: str, region: str | None, expected: str) -> None:
    assert normalize_phone(text, region) == expected


@pytest.mark.parametrize(
    ("text", "region"),
    [
        ("+52 2 55 1234 5678", None),  # only a 1 may follow +52
        ("+52 1 55 1234 567", None),  # one digit short after the 1
        ("+55 11 1234-5678", None),  # eight digits starting 1: neither landline nor legacy mobile
        ("+55 11 98765-43210", None),  # one digit too many
        ("+49 151 2345678901234", None),
    ],
)
def test_near_misses_are_still_refused(text: str, region: str | None) -> None:
    with pytest.raises(InvalidPhoneNumber):
        normalize_phone(text, region)


# (E.164 number, the WhatsApp addresses it can be, most likely first)
ADDRESSES = [
    ("+525512345678", ("5215512345678", "525512345678")),
    ("+523312345678", ("5213312345678", "523312345678")),
    ("+5511987654321", ("5511987654321", "551187654321")),
    ("+5521987654321", ("5521987654321", "552187654321")),
    ("+551134567890", ("551134567890",)),  # landline: no ninth digit to drop
    ("+5511912345678", ("5511912345678",)),  # 9 then 1: never had eight digits
    ("+5491112345678", ("5491112345678", "541112345678")),
    ("+541112345678", ("5491112345678", "541112345678")),
    ("+4915123456789", ("4915123456789",)),
    ("+12125550100", ("12125550100",)),
    ("+447400123456", ("447400123456",)),
    ("+33612345678", ("33612345678",)),
]


@pytest.mark.parametrize(("e164", "addresses"), ADDRESSES)
def test_which_addresses_a_number_can_be(e164: str, addresses: tuple[str, ...]) -> None:
    assert whatsapp_addresses(e164) == addresses


@pytest.mark.parametrize(("e164", "addresses"), ADDRESSES)
def test_and_back_each_address_names_the_number(e164: str, addresses: tuple[str, ...]) -> None:
    for address in addresses:
        assert e164 in numbers_for_address(address)
        assert e164 in numbers_for_address(address + "@s.whatsapp.net")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("+525512345678", "5215512345699"),  # same start, other person
        ("+525512345678", "15512345678"),  # a suffix of the Mexican address
        ("+5511987654321", "5511987654322"),
        ("+5511987654321", "87654321"),
        ("+5511987654321", "551287654321"),  # another area code
        ("+5491112345678", "5491112345679"),
        ("+4915123456789", "15123456789"),
        ("+12125550100", "4412125550100"),  # ends alike, another country
    ],
)
def test_numbers_that_merely_end_alike_are_not_the_same(a: str, b: str) -> None:
    assert b not in whatsapp_addresses(a)
    assert a not in numbers_for_address(b)


def test_garbage_has_no_addresses() -> None:
    assert whatsapp_addresses("") == ()
    assert whatsapp_addresses("+0123") == ()
    assert numbers_for_address("abc@lid") == ()


@pytest.mark.parametrize(
    ("address", "shown"),
    [
        ("5215512345678", "+52 1 55 1234 5678"),
        ("551187654321", "+55 11 8765-4321"),
        ("5491112345678", "+54 9 11 1234-5678"),
        ("4915123456789", "+49 1512 3456789"),
    ],
)
def test_an_address_is_shown_as_people_write_numbers(address: str, shown: str) -> None:
    assert format_address(address) == shown


# --- who a sender is ------------------------------------------------------------------------

NOW = datetime(2026, 12, 3, tzinfo=UTC)


def contact(phone: str, reg: Registration | None = None) -> TrustedContact:
    return TrustedContact(phone, Permission.WRITE, "X", whatsapp=reg or Registration())


@pytest.mark.parametrize(
    ("contact_phone", "sender"),
    [
        ("+525512345678", "+5215512345678"),
        ("+525512345678", "+525512345678"),
        ("+5511987654321", "+551187654321"),
        ("+5511987654321", "+5511987654321"),
        ("+5491112345678", "+541112345678"),
        ("+541112345678", "+5491112345678"),
        ("+4915123456789", "+4915123456789"),
    ],
)
def test_before_any_check_the_equivalence_rules_decide(contact_phone: str, sender: str) -> None:
    policy = AccessPolicy([contact(contact_phone)])
    decision = policy.decide(sender)
    assert decision.verdict is Verdict.AGENT and decision.contact is not None
    assert decision.contact.phone == contact_phone


def test_the_registered_address_wins_over_the_rules() -> None:
    reg = Registration(WhatsAppState.REGISTERED, "5215512345678", "88001122", NOW)
    policy = AccessPolicy([contact("+525512345678", reg)])
    assert policy.decide("+5215512345678").verdict is Verdict.AGENT
    assert policy.decide("+525512345678").verdict is Verdict.AGENT  # its own number still counts
    assert policy.decide(None, "88001122@lid").verdict is Verdict.AGENT  # by its LID alone
    assert policy.decide(None, "88001123@lid").verdict is Verdict.IGNORE


def test_a_known_address_turns_the_rules_off_for_that_contact() -> None:
    # WhatsApp said the Brazilian number is the nine-digit account: the eight-digit address is
    # someone else now, not this contact.
    reg = Registration(WhatsAppState.REGISTERED, "5511987654321", None, NOW)
    policy = AccessPolicy([contact("+5511987654321", reg)])
    assert policy.decide("+5511987654321").verdict is Verdict.AGENT
    assert policy.decide("+551187654321").verdict is Verdict.IGNORE


def test_not_on_whatsapp_still_matches_by_the_rules() -> None:
    # They may register later; the rules stand in until the next check.
    reg = Registration(WhatsAppState.NOT_ON_WHATSAPP, None, None, NOW)
    assert AccessPolicy([contact("+525512345678", reg)]).decide("+5215512345678").verdict is Verdict.AGENT


def test_the_legacy_list_uses_the_rules_too() -> None:
    policy = AccessPolicy(allowed_users=["+52 55 1234 5678"])
    assert policy.decide("+5215512345678").verdict is Verdict.AGENT
    assert policy.decide("+5215512345679").verdict is Verdict.IGNORE


def test_parse_keeps_the_number_as_written() -> None:
    parsed = TrustedContact.parse("  +52 1 55 1234 5678 ", "write", "Lupita")
    assert (parsed.phone, parsed.written) == ("+525512345678", "+52 1 55 1234 5678")
    assert parsed == TrustedContact("+525512345678", Permission.WRITE, "Lupita")  # written is not identity


def test_two_contacts_that_are_one_account_get_the_safer_permission() -> None:
    # +54 11 … and +54 9 11 … entered as two contacts: WhatsApp addresses both as 549…
    fixed = TrustedContact("+541112345678", Permission.WRITE)
    mobile = TrustedContact("+5491112345678", Permission.READ)
    for contacts in ([fixed, mobile], [mobile, fixed]):
        policy = AccessPolicy(contacts)
        assert policy.decide("+5491112345678").verdict is Verdict.READ_ONLY  # exact number first
        assert policy.decide("+541112345678").verdict is Verdict.AGENT
        reg = Registration(WhatsAppState.REGISTERED, "5491112345678", None, NOW)
        both = AccessPolicy([TrustedContact(c.phone, c.permission, whatsapp=reg) for c in contacts]).decide(
            "+5491112345678"
        )
        assert both.verdict is Verdict.READ_ONLY
