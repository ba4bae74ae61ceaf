"""Phone numbers: parse what people type into E.164 (reading WhatsApp JIDs is the channel's `jid`).

Pure functions, no I/O. Everything that decides who may talk to the agent compares E.164 strings
exactly ("+4915123456789" == "+4915123456789"); nothing here or elsewhere matches by suffix or
substring, so "+1 212 555 0100" can never stand in for "+44 20 …" that happens to end alike.

How `normalize_phone` reads a spelling, after dropping spaces, dashes, dots, slashes and
parentheses:

* ``+49…``    international: the digits after the + start with the country code.
* ``0049…``   international too: a leading 00 is the international prefix in most of the world.
* ``0151…``   national (trunk prefix 0, or a region's own international prefix such as the US
              011): needs the configured default region, otherwise it is refused with a
              sentence asking for the country code.
* ``4915…``   bare digits: read as international first, which is how the legacy allowedUsers
              list and WhatsApp JIDs write numbers. With a default region the national reading
              is tried too; if both are valid and differ the number is ambiguous and refused,
              unless the digits start with the default region's own country code (then the
              international reading wins: "49…" under DE means +49…).

A number must be *valid* for its country according to phonenumbers' metadata, not merely of a
plausible length, so typos are caught when a contact is entered rather than when nobody answers.

Some spellings people (and WhatsApp) still use are not valid to phonenumbers but name one valid
number exactly; `_repaired` rewrites them, and only when the rewrite is valid: Mexico's mobile
``1`` after +52 (``+52 1 55 1234 5678``, ``5215512345678``) and its old ``044``/``045`` prefixes
are dropped; a Brazilian mobile written with eight digits after the area code, as before the
ninth digit was added (``+55 11 8765-4321``), gets its ``9``. Argentina's ``9`` and ``15`` are
phonenumbers' own. Which WhatsApp addresses a number can have is `cortask.contacts.addresses`.
"""

from __future__ import annotations

import unicodedata
from enum import StrEnum

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber, PhoneNumberFormat, ValidationResult

__all__ = [
    "InvalidPhoneNumber",
    "PhoneProblem",
    "is_e164",
    "normalize_phone",
    "normalize_region",
]

# E.164 allows at most 15 digits; input is capped well above that (room for 00, (0) and
# separators) so that nothing pathological reaches phonenumbers.
MAX_INPUT_LENGTH = 64
MAX_E164_DIGITS = 15
EXAMPLE = "+49 151 23456789"

# Separators people put between digit groups. Unicode dashes and spaces come from copy-paste.
_SEPARATORS = frozenset(" \t-./()\u00a0\u2007\u202f\u2009\u200a\u2010\u2011\u2012\u2013\u2014\u2015\u2212")


class PhoneProblem(StrEnum):
    """Why a spelling was refused; the exception's message says it in a sentence."""

    EMPTY = "empty"
    BAD_CHARACTER = "bad_character"
    NO_COUNTRY_CODE = "no_country_code"
    UNKNOWN_COUNTRY_CODE = "unknown_country_code"
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    INVALID = "invalid"
    AMBIGUOUS = "ambiguous"


class InvalidPhoneNumber(ValueError):
    """What was typed is not a phone number we can use; the message says why and what to do."""

    def __init__(self, text: str, problem: PhoneProblem, message: str) -> None:
        super().__init__(message)
        self.text = text
        self.problem = problem


def normalize_region(region: str) -> str:
    """Check a default region (ISO 3166 code such as "DE") and return it upper-cased.

    Raises plain ValueError: a bad region is a configuration mistake, not a bad number.
    """
    code = region.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(
            f"{region!r} is not a region phonenumbers knows: use a two-letter country code such as DE or US."
        )
    return code


def is_e164(text: str) -> bool:
    """True when `text` is already in the canonical form `normalize_phone` returns."""
    digits = text[1:]
    return (
        text.startswith("+")
        and digits.isascii()
        and digits.isdigit()
        and 1 <= len(digits) <= MAX_E164_DIGITS
        and not digits.startswith("0")
    )


def normalize_phone(text: str, default_region: str | None = None) -> str:
    """Parse a phone number as a person would type it and return it in E.164 (``+4915123456789``).

    Raises InvalidPhoneNumber (a ValueError) with a sentence saying why and what to do.
    """
    region = normalize_region(default_region) if default_region is not None else None
    shown = text.strip()
    plus, digits = _clean(shown)

    if plus:
        return _finish(shown, _parse_international(shown, digits))
    if digits.startswith("00"):
        return _finish(shown, _parse_international(shown, digits[2:]))
    if digits.startswith("0"):
        if region is None:
            raise InvalidPhoneNumber(
                shown,
                PhoneProblem.NO_COUNTRY_CODE,
                f"“{shown}” has no country code and no default region is configured: "
                f"add the country code, e.g. {EXAMPLE}.",
            )
        return _finish(shown, _parse_national(shown, digits, region))
    return _bare_digits(shown, digits, region)


# --- internals -----------------------------------------------------------------------------


def _clean(shown: str) -> tuple[bool, str]:
    """Split into (had a leading +, ASCII digits), refusing anything that is not a number."""
    if not shown:
        raise InvalidPhoneNumber(
            shown, PhoneProblem.EMPTY, f"Enter a phone number with its country code, e.g. {EXAMPLE}."
        )
    if len(shown) > MAX_INPUT_LENGTH:
        raise InvalidPhoneNumber(
            shown[:MAX_INPUT_LENGTH] + "…",
            PhoneProblem.TOO_LONG,
            f"That is too long to be a phone number (E.164 numbers have at most {MAX_E164_DIGITS} digits).",
        )
    plus = False
    digits: list[str] = []
    for index, char in enumerate(shown):
        if char in _SEPARATORS:
            continue
        if char in "+\uff0b" and not plus and not digits:
            plus = True
            continue
        # Any script's decimal digits (Arabic-Indic, full-width…) mean the same digit.
        value = unicodedata.decimal(char, None)
        if value is not None:
            digits.append(str(value))
            continue
        what = "a second +" if char in "+\uff0b" else f"“{char}”"
        where = "" if char in "+\uff0b" else f" (position {index + 1})"
        raise InvalidPhoneNumber(
            shown,
            PhoneProblem.BAD_CHARACTER,
            f"“{shown}” contains {what}{where}, which is not part of a phone number: use digits, "
            f"spaces, dashes, dots or parentheses and a leading +, e.g. {EXAMPLE}.",
        )
    if not digits:
        raise InvalidPhoneNumber(
            shown, PhoneProblem.EMPTY, f"“{shown}” contains no digits: enter a number such as {EXAMPLE}."
        )
    return plus, "".join(digits)


def _parse_international(shown: str, digits: str) -> PhoneNumber:
    return _parse(shown, digits, "+" + digits, None)


def _parse_national(shown: str, digits: str, region: str) -> PhoneNumber:
    return _parse(shown, digits, digits, region)


def _parse(shown: str, digits: str, text: str, region: str | None) -> PhoneNumber:
    try:
        return phonenumbers.parse(text, region)
    except NumberParseException as exc:
        raise _from_parse_error(shown, digits, exc) from None


def _bare_digits(shown: str, digits: str, region: str | None) -> str:
    if region is None:
        try:
            return _finish(shown, _parse_international(shown, digits))
        except InvalidPhoneNumber as exc:
            # Without a +, naming the country its first digits happen to spell ("12345" → the
            # United States) misleads: say what is missing instead (issue #17).
            what = {PhoneProblem.TOO_SHORT: "is too short for a phone number", PhoneProblem.TOO_LONG: "is too long "
                    "for a phone number"}.get(exc.problem, "is not a phone number we can read")  # fmt: skip
            raise InvalidPhoneNumber(
                shown, exc.problem, f"“{shown}” {what}: write it with a + and the country code, for example {EXAMPLE}."
            ) from None
    readings: list[PhoneNumber] = []
    for text, reading_region in (("+" + digits, None), (digits, region)):
        try:
            readings.append(_repaired(phonenumbers.parse(text, reading_region)))
        except NumberParseException:
            continue
    valid = {_e164(n): n for n in readings if phonenumbers.is_valid_number(n) and _fits_e164(n)}
    if len(valid) == 1:
        return next(iter(valid))
    if len(valid) == 2:
        international, national = valid.values()
        # "49…" under DE: the person wrote the country code without its +.
        if digits.startswith(str(phonenumbers.country_code_for_region(region))):
            return _e164(international)
        raise InvalidPhoneNumber(
            shown,
            PhoneProblem.AMBIGUOUS,
            f"“{shown}” is ambiguous: it could be {_label(international)} or {_label(national)}. "
            "Write it with a + and the country code.",
        )
    # Neither reading is valid: explain the national one, since a region was configured for it.
    return _finish(shown, _parse_national(shown, digits, region))


def _fits_e164(number: PhoneNumber) -> bool:
    # phonenumbers accepts some German numbers with 16 digits; E.164 (and WhatsApp) stop at 15.
    return len(_e164(number)) - 1 <= MAX_E164_DIGITS


def _repaired(number: PhoneNumber) -> PhoneNumber:
    """The valid number an invalid legacy or WhatsApp spelling stands for, else `number` itself."""
    if phonenumbers.is_valid_number(number):
        return number
    national = str(number.national_number)
    fixed: str | None = None
    if number.country_code == 52 and len(national) == 11 and national.startswith("1"):
        fixed = national[1:]  # the mobile "1" Mexico dropped in 2019; WhatsApp still uses it
    elif number.country_code == 52 and len(national) == 12 and national[:2] in ("44", "45"):
        fixed = national[2:]  # 044/045, the old prefixes for calling a mobile from within Mexico
    elif number.country_code == 55 and len(national) == 10 and national[2] in "6789":
        fixed = national[:2] + "9" + national[2:]  # a mobile from before Brazil's ninth digit
    if fixed is None:
        return number
    candidate = PhoneNumber(country_code=number.country_code, national_number=int(fixed))
    return candidate if phonenumbers.is_valid_number(candidate) else number


def _finish(shown: str, number: PhoneNumber) -> str:
    number = _repaired(number)
    if not _fits_e164(number):
        raise InvalidPhoneNumber(
            shown,
            PhoneProblem.TOO_LONG,
            f"“{shown}” has more than {MAX_E164_DIGITS} digits with its country code, which no phone number "
            "has: check for an extra digit.",
        )
    if phonenumbers.is_valid_number(number):
        return _e164(number)
    reason = phonenumbers.is_possible_number_with_reason(number)
    country = f"+{number.country_code}"
    if reason == ValidationResult.INVALID_COUNTRY_CODE:
        raise _unknown_country(shown, country)
    where = _country_name(number)
    if reason == ValidationResult.IS_POSSIBLE_LOCAL_ONLY:
        raise InvalidPhoneNumber(
            shown,
            PhoneProblem.TOO_SHORT,
            f"“{shown}” is too short for a phone number in {where}: it looks like a local number "
            "without its area code.",
        )
    if reason == ValidationResult.TOO_SHORT:
        raise InvalidPhoneNumber(
            shown,
            PhoneProblem.TOO_SHORT,
            f"“{shown}” is too short for a phone number in {where}: check for a missing digit.",
        )
    if reason == ValidationResult.TOO_LONG:
        raise InvalidPhoneNumber(
            shown,
            PhoneProblem.TOO_LONG,
            f"“{shown}” is too long for a phone number in {where}: check for an extra digit.",
        )
    if reason == ValidationResult.INVALID_LENGTH:
        raise InvalidPhoneNumber(
            shown,
            PhoneProblem.INVALID,
            f"“{shown}” has the wrong number of digits for a phone number in {where}: check the digits.",
        )
    raise InvalidPhoneNumber(
        shown,
        PhoneProblem.INVALID,
        f"“{shown}” is not a valid phone number in {where}: check the digits and the country code.",
    )


def _from_parse_error(shown: str, digits: str, exc: NumberParseException) -> InvalidPhoneNumber:
    kind = exc.error_type
    if kind == NumberParseException.INVALID_COUNTRY_CODE:
        return _unknown_country(shown, "+" + digits[:3])
    if kind == NumberParseException.TOO_LONG:
        return InvalidPhoneNumber(
            shown,
            PhoneProblem.TOO_LONG,
            f"“{shown}” is too long to be a phone number (at most {MAX_E164_DIGITS} digits).",
        )
    # TOO_SHORT_NSN, TOO_SHORT_AFTER_IDD, and NOT_A_NUMBER (which phonenumbers raises for "+1").
    return InvalidPhoneNumber(
        shown,
        PhoneProblem.TOO_SHORT,
        f"“{shown}” is too short to be a phone number: enter the full number with its country code, e.g. {EXAMPLE}.",
    )


def _unknown_country(shown: str, prefix: str) -> InvalidPhoneNumber:
    return InvalidPhoneNumber(
        shown,
        PhoneProblem.UNKNOWN_COUNTRY_CODE,
        f"“{shown}” does not start with a known country code ({prefix}…): "
        f"check the digits after the +, e.g. {EXAMPLE}.",
    )


def _e164(number: PhoneNumber) -> str:
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def _label(number: PhoneNumber) -> str:
    formatted = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    return f"{formatted} ({_country_name(number)})"


def _country_name(number: PhoneNumber) -> str:
    """ "Germany (+49)", or just "+999" when phonenumbers has no name for it."""
    # The geocoder costs ~0.7 s to import, so only error messages pay for it.
    from phonenumbers import geocoder

    code = f"+{number.country_code}"
    # The number's own region when it is valid, else the country code's main region (+1 → US).
    region = phonenumbers.region_code_for_number(number)
    if region not in phonenumbers.SUPPORTED_REGIONS:
        region = phonenumbers.region_code_for_country_code(number.country_code or 0)
    example = phonenumbers.example_number(region) if region in phonenumbers.SUPPORTED_REGIONS else None
    name = geocoder.country_name_for_number(example, "en") if example is not None else ""
    return f"{name} ({code})" if name else code
