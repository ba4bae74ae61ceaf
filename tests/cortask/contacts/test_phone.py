"""Phone-number normalisation: spellings that must and must not match, and why others are refused."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cortask.channels.whatsapp.jid import phone_from_jid
from cortask.contacts.phone import (
    InvalidPhoneNumber,
    PhoneProblem,
    is_e164,
    normalize_phone,
    normalize_region,
)

# (spelling, default region, E.164)
SPELLINGS = [
    ("+49 151 2345 6789", None, "+4915123456789"),
    ("4915123456789", None, "+4915123456789"),
    ("+4915123456789", None, "+4915123456789"),
    ("0049 151 23456789", None, "+4915123456789"),
    ("00 49 (151) 2345-6789", None, "+4915123456789"),
    ("+49-151-2345-6789", None, "+4915123456789"),
    ("+49.151.2345.6789", None, "+4915123456789"),
    ("+49 (0)151 2345 6789", None, "+4915123456789"),
    ("  +49 151 2345 6789  ", None, "+4915123456789"),
    ("+49\u00a0151\u202f2345\u20136789", None, "+4915123456789"),  # copy-pasted spaces and dash
    ("\uff0b\uff14\uff19\uff11\uff15\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19", None, "+4915123456789"),
    ("٠٠٤٩١٥١٢٣٤٥٦٧٨٩", None, "+4915123456789"),  # Arabic-Indic digits
    ("0151 23456789", "DE", "+4915123456789"),
    ("0151/23456789", "de", "+4915123456789"),
    ("4915123456789", "DE", "+4915123456789"),  # country code without + wins under its own region
    ("0049 151 23456789", "US", "+4915123456789"),  # 00 is international whatever the region
    ("011 49 151 23456789", "US", "+4915123456789"),  # the US international prefix
    ("+1 (212) 555-0100", None, "+12125550100"),
    ("1 212 555 0100", None, "+12125550100"),
    ("(212) 555-0100", "US", "+12125550100"),
    ("12125550100", "US", "+12125550100"),
    ("+44 20 7946 0958", None, "+442079460958"),
    ("020 7946 0958", "GB", "+442079460958"),
    ("+44 (0)20 7946 0958", None, "+442079460958"),
    ("+33 6 12 34 56 78", None, "+33612345678"),
]


@pytest.mark.parametrize(("text", "region", "expected"), SPELLINGS)
def test_spellings_normalise_to_e164(text: str, region: str | None, expected: str) -> None:
    assert normalize_phone(text, region) == expected


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("+49 151 2345 6789", "4915123456789"),
        ("+49 151 2345 6789", "0049-151-2345-6789"),
        ("+1 (212) 555-0100", "0012125550100"),
        ("+44 (0)20 7946 0958", "442079460958"),
    ],
)
def test_spellings_of_one_number_match(a: str, b: str) -> None:
    assert normalize_phone(a) == normalize_phone(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        # Same subscriber digits, different countries ("+1 555 0100" vs "+44 555 0100" are not
        # valid numbers, so the same point is made with valid ones).
        ("+1 212 555 0100", "+49 212 5550100"),
        ("+44 7911 123456", "+91 7911 123456"),
        # +1 512 345 6789 is a suffix of +49 151 2345 6789.
        ("+1 512 345 6789", "+49 151 2345 6789"),
    ],
)
def test_different_numbers_do_not_match(a: str, b: str) -> None:
    na, nb = normalize_phone(a), normalize_phone(b)
    assert na != nb
    assert phonenumbers.is_valid_number(phonenumbers.parse(na))
    assert phonenumbers.is_valid_number(phonenumbers.parse(nb))


def test_suffix_number_is_really_a_suffix() -> None:
    # Guards the test above: the point is that a suffix match would have matched.
    assert normalize_phone("+49 151 2345 6789").endswith(normalize_phone("+1 512 345 6789")[1:])


@pytest.mark.parametrize(
    ("text", "region", "problem", "words"),
    [
        ("", None, PhoneProblem.EMPTY, "Enter a phone number"),
        ("   ", "DE", PhoneProblem.EMPTY, "Enter a phone number"),
        ("+ - ( )", None, PhoneProblem.EMPTY, "no digits"),
        ("+1 800 FLOWERS", None, PhoneProblem.BAD_CHARACTER, "“F”"),
        ("+49 151 2345 6789 ext. 12", None, PhoneProblem.BAD_CHARACTER, "not part of a phone number"),
        ("++49 151 2345 6789", None, PhoneProblem.BAD_CHARACTER, "a second +"),
        ("49 151 +2345", None, PhoneProblem.BAD_CHARACTER, "a second +"),
        ("tel:+4915123456789", None, PhoneProblem.BAD_CHARACTER, "“t”"),
        ("0151 23456789", None, PhoneProblem.NO_COUNTRY_CODE, "add the country code, e.g. +49"),
        ("(030) 1234567", None, PhoneProblem.NO_COUNTRY_CODE, "no default region"),
        ("+999 1234 5678", None, PhoneProblem.UNKNOWN_COUNTRY_CODE, "country code"),
        ("+1", None, PhoneProblem.TOO_SHORT, "too short"),
        ("00", None, PhoneProblem.TOO_SHORT, "too short"),
        ("+33 6 12", None, PhoneProblem.TOO_SHORT, "France (+33)"),
        ("+1 555 0100", None, PhoneProblem.TOO_SHORT, "area code"),
        ("+33 6 12 34 56 78 9", None, PhoneProblem.TOO_LONG, "extra digit"),
        ("+49 151 2345678", None, PhoneProblem.INVALID, "Germany (+49)"),
        ("+44 555 0100", None, PhoneProblem.INVALID, "United Kingdom"),
        ("1" * 80, None, PhoneProblem.TOO_LONG, "too long"),
        # Valid as +47 98 57 05 23 (Norway) and as +1 479-857-0523 (US): refuse rather than guess.
        ("4798570523", "US", PhoneProblem.AMBIGUOUS, "Norway"),
    ],
)
def test_refusals_say_why(text: str, region: str | None, problem: PhoneProblem, words: str) -> None:
    with pytest.raises(InvalidPhoneNumber) as info:
        normalize_phone(text, region)
    assert info.value.problem is problem
    assert words in str(info.value)
    assert str(info.value).endswith(".")


def test_invalid_phone_number_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        normalize_phone("nope")


def test_unknown_default_region_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="two-letter country code") as info:
        normalize_phone("+4915123456789", "Germany")
    assert not isinstance(info.value, InvalidPhoneNumber)
    assert normalize_region(" gb ") == "GB"


@pytest.mark.parametrize(
    ("jid", "expected"),
    [
        ("4915123456789@s.whatsapp.net", "+4915123456789"),
        ("4915123456789:12@s.whatsapp.net", "+4915123456789"),
        ("4915123456789_1:3@s.whatsapp.net", "+4915123456789"),
        ("4915123456789@c.us", "+4915123456789"),
        ("12125550100@hosted", "+12125550100"),
        ("123456789012345@lid", None),
        ("123456789012345:4@lid", None),
        ("120363025246125486@g.us", None),
        ("status@broadcast", None),
        ("1234567890@broadcast", None),
        ("120363025246125486@newsletter", None),
        ("0@c.us", None),
        ("@s.whatsapp.net", None),
        ("abc@s.whatsapp.net", None),
        ("4915123456789", None),
        ("1234567890123456@s.whatsapp.net", None),  # 16 digits: not E.164
        ("", None),
        (None, None),
    ],
)
def test_phone_from_jid(jid: str | None, expected: str | None) -> None:
    assert phone_from_jid(jid) == expected


def test_jid_number_matches_typed_number_exactly() -> None:
    assert phone_from_jid("4915123456789:7@s.whatsapp.net") == normalize_phone("0049 151 2345 6789")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("+4915123456789", True), ("4915123456789", False), ("+49 151", False), ("+0123", False), ("+", False)],
)
def test_is_e164(text: str, expected: bool) -> None:
    assert is_e164(text) is expected


@settings(max_examples=500)
@given(text=st.text(max_size=80), region=st.sampled_from([None, "DE", "US", "GB", "IN", "BR"]))
def test_normalize_phone_only_ever_raises_invalid_phone_number(text: str, region: str | None) -> None:
    try:
        result = normalize_phone(text, region)
    except InvalidPhoneNumber as exc:
        assert str(exc)
        return
    assert is_e164(result)
    assert normalize_phone(result) == result  # idempotent


@settings(max_examples=300)
@given(
    text=st.text(alphabet="0123456789 +-().\u00a0", max_size=30),
    region=st.sampled_from([None, "DE", "US"]),
)
def test_number_like_text_only_ever_raises_invalid_phone_number(text: str, region: str | None) -> None:
    try:
        result = normalize_phone(text, region)
    except InvalidPhoneNumber:
        return
    assert phonenumbers.is_valid_number(phonenumbers.parse(result))


@given(st.text(max_size=40))
def test_phone_from_jid_never_raises(jid: str) -> None:
    result = phone_from_jid(jid)
    assert result is None or is_e164(result)
