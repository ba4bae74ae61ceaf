"""Which WhatsApp addresses a phone number can be, and which phone numbers an address can be.

Pure, no I/O. WhatsApp does not always address an account by the number people dial:

* **Mexico** (+52): mobile accounts are ``521`` + ten digits (``5215512345678``), while the number
  is ``+52 55 1234 5678`` since the mobile ``1`` was dropped in 2019; accounts made since then may
  be addressed without it. Both are candidates, the ``1`` first.
* **Brazil** (+55): a mobile (nine digits after the two-digit area code, the first a 9) registered
  before the ninth digit was added is still addressed with the eight digits after the area code
  (``551187654321`` for ``+55 11 98765-4321``); newer ones with nine.
* **Argentina** (+54): mobiles are ``549`` + area + number; people write them without the 9 too
  (and with the old ``15``, which `cortask.contacts.phone` already turns into the 9).

Everywhere else an address is the E.164 number without its ``+``. Everything here compares whole
strings built by these rules; nothing matches by suffix or substring, so two numbers that merely
end alike are never the same person.

`whatsapp_addresses(e164)` and `numbers_for_address(user)` are the two directions; a sender and a
contact are the same number when the sender's address is among the contact's addresses.
"""

from __future__ import annotations

import phonenumbers

__all__ = ["format_address", "numbers_for_address", "whatsapp_addresses"]

_BR_MOBILE_FIRST = frozenset("6789")  # eight-digit Brazilian subscriber numbers in these are mobiles


def whatsapp_addresses(e164: str) -> tuple[str, ...]:
    """The WhatsApp user parts (no ``+``, no ``@server``) an E.164 number can be addressed as,
    the most likely first; always at least the number's own digits."""
    digits = _digits(e164)
    if digits is None:
        return ()
    return _unique((*_variants(digits), digits) if _prefers_variant(digits) else (digits, *_variants(digits)))


def numbers_for_address(user: str) -> tuple[str, ...]:
    """The E.164 numbers a WhatsApp address (``5215512345678`` or ``5215512345678@s.whatsapp.net``)
    can stand for: its own digits, and the numbers whose addresses include it."""
    digits = _digits(user.partition("@")[0].partition(":")[0])
    if digits is None:
        return ()
    found = [digits, *(v for v in _variants(digits) if digits in _all_addresses(v))]
    return tuple("+" + d for d in _unique(found))


def format_address(user: str) -> str:
    """A WhatsApp address written as people write numbers: ``+52 1 55 1234 5678`` for
    ``5215512345678``, ``+55 11 8765-4321`` for a legacy Brazilian mobile, ``+`` and the digits
    when no rule knows it."""
    digits = _digits(user)
    if digits is None:
        return user
    number = _valid("+" + digits)
    if number is not None:
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    for variant in _variants(digits):
        other = _valid("+" + variant)
        if other is None:
            continue
        shown = phonenumbers.format_number(other, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
        if digits.startswith("521"):
            return shown.replace("+52 ", "+52 1 ", 1)
        if digits.startswith("55"):
            area, subscriber = digits[2:4], digits[4:]
            return f"+55 {area} {subscriber[:4]}-{subscriber[4:]}"
    return "+" + digits


def _valid(text: str) -> phonenumbers.PhoneNumber | None:
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_valid_number(number) else None


# --- the rules, on digits without "+" ---------------------------------------------------------


def _variants(digits: str) -> tuple[str, ...]:
    """The other spellings of the same number that WhatsApp may use (never the input itself)."""
    if digits.startswith("52"):
        return _mexico(digits[2:])
    if digits.startswith("55"):
        return _brazil(digits[2:])
    if digits.startswith("54"):
        return _argentina(digits[2:])
    return ()


def _mexico(national: str) -> tuple[str, ...]:
    if len(national) == 10:
        return ("521" + national,)
    if len(national) == 11 and national.startswith("1"):
        return ("52" + national[1:],)
    return ()


def _brazil(national: str) -> tuple[str, ...]:
    # Area codes have two digits, neither a 0; mobiles are 9 + eight digits starting 6-9.
    if len(national) < 2 or "0" in national[:2]:
        return ()
    area, subscriber = national[:2], national[2:]
    if len(subscriber) == 9 and subscriber[0] == "9" and subscriber[1] in _BR_MOBILE_FIRST:
        return ("55" + area + subscriber[1:],)
    if len(subscriber) == 8 and subscriber[0] in _BR_MOBILE_FIRST:
        return ("55" + area + "9" + subscriber,)
    return ()


def _argentina(national: str) -> tuple[str, ...]:
    # Area code and number together have ten digits; a mobile puts a 9 in front of them.
    if len(national) == 11 and national.startswith("9"):
        return ("54" + national[1:],)
    if len(national) == 10 and not national.startswith("9"):
        return ("549" + national,)
    return ()


def _prefers_variant(digits: str) -> bool:
    """Mexican mobiles and Argentine numbers written without the 9 are usually addressed with
    the extra digit; everything else by its own digits first."""
    if digits.startswith("52"):
        return len(digits) == 12
    if digits.startswith("54"):
        return len(digits) == 12
    return False


def _all_addresses(digits: str) -> tuple[str, ...]:
    return (digits, *_variants(digits))


def _digits(text: str) -> str | None:
    digits = text[1:] if text.startswith("+") else text
    if not digits.isascii() or not digits.isdigit() or digits.startswith("0") or not 1 <= len(digits) <= 15:
        return None
    return digits


def _unique(items: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))
