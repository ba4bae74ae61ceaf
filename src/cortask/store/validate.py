"""Checking and normalising what callers pass in, before anything is written.

Each function returns the value as it will be stored, or raises InvalidInput (InvalidPhone for a
phone number) with a sentence saying what to fix.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from cortask.contacts.access import Permission
from cortask.contacts.phone import InvalidPhoneNumber, normalize_phone, normalize_region
from cortask.store.db import encode_time
from cortask.store.errors import InvalidInput, InvalidPhone

__all__ = [
    "MAX_NAME_LENGTH",
    "approval_hours",
    "auth_dir",
    "aware",
    "boolean",
    "contact_name",
    "group_jids",
    "group_mode",
    "journal_key",
    "normalize_account",
    "permission",
    "phone",
    "region",
    "reply_prefix",
    "required",
    "timestamp",
    "workspace_name",
]

MAX_NAME_LENGTH = 200


def normalize_account(jid: str) -> str:
    """Our own JID without its device and agent parts: ``49151…:12@s.whatsapp.net`` → ``49151…@s.whatsapp.net``.

    The journal is keyed by account; Baileys reports the account with the device number of this
    link, which changes when the phone is linked again. The same decomposition as Baileys' jidDecode.
    """
    user, sep, server = jid.strip().partition("@")
    if not sep or not user or not server:
        raise InvalidInput(
            f"{jid!r} is not a WhatsApp JID: pass the account's own JID, such as 4915123456789@s.whatsapp.net."
        )
    user = user.partition(":")[0].partition("_")[0]
    return f"{user}@{server}"


def workspace_name(name: str) -> str:
    clean = name.strip() if isinstance(name, str) else ""
    if not clean:
        raise InvalidInput("A workspace needs a name: enter one, such as “Personal” or “Work”.")
    if len(clean) > MAX_NAME_LENGTH:
        raise InvalidInput(f"That workspace name is too long: use at most {MAX_NAME_LENGTH} characters.")
    return clean


def permission(value: Permission | str) -> Permission:
    if isinstance(value, Permission):
        return value
    if not isinstance(value, str):
        raise InvalidInput(f"{value!r} is not a permission: use read, write or admin.")
    try:
        return Permission.parse(value)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


def phone(text: str, region: str | None) -> str:
    if not isinstance(text, str):
        raise InvalidInput(f"{text!r} is not a phone number: enter it as text, such as +49 151 23456789.")
    try:
        return normalize_phone(text, region)
    except InvalidPhoneNumber as exc:
        raise InvalidPhone(exc.text, exc.problem, str(exc)) from None


def contact_name(name: str | None) -> str | None:
    if name is None:
        return None
    if not isinstance(name, str):
        raise InvalidInput("A contact's name must be text.")
    clean = name.strip()
    if len(clean) > MAX_NAME_LENGTH:
        raise InvalidInput(f"That contact name is too long: use at most {MAX_NAME_LENGTH} characters.")
    return clean or None


def region(value: str | None) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{value!r} is not a region: use a two-letter country code such as DE or US.")
    try:
        return normalize_region(value)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


def auth_dir(value: Path | str | None) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    path = Path(value).expanduser()
    if not path.is_absolute():
        raise InvalidInput(
            f"The auth directory {str(value)!r} is relative: give an absolute path, such as {Path.home()}/wa."
        )
    return str(path)


MAX_PREFIX_LENGTH = 40


def reply_prefix(value: str | None) -> str | None:
    """A reply prefix as typed ("🤖 " keeps its space); blank means none."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise InvalidInput("The reply prefix must be text, such as 🤖 or [agent].")
    if len(value) > MAX_PREFIX_LENGTH or "\n" in value:
        raise InvalidInput(f"The reply prefix must be one line of at most {MAX_PREFIX_LENGTH} characters.")
    return value


def approval_hours(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 24 * 30:
        raise InvalidInput(
            f"{value!r} hours cannot be how long approval codes last: use more than 0, up to 720 (30 days)."
        )
    return float(value)


def group_mode(value: object) -> str:
    if value not in ("mention", "always"):
        raise InvalidInput(
            f"{value!r} is not a group mode: use mention (answer when mentioned or replied to) or always."
        )
    return str(value)


def group_jids(values: object) -> list[str]:
    """Group JIDs as WhatsApp writes them (120363…@g.us), blank entries dropped."""
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise InvalidInput("The allowed groups must be a list of group ids such as 120363025246125486@g.us.")
    clean = [str(v).strip() for v in values if str(v).strip()]
    for jid in clean:
        if not re.fullmatch(r"[0-9]+(-[0-9]+)?@g\.us", jid):
            raise InvalidInput(f"{jid!r} is not a group id: use the form 120363025246125486@g.us.")
    return clean


def boolean(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{name} must be true or false, not {value!r}.")
    return value


def required(what: str, value: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"The {what} is empty: pass the {what} as WhatsApp reports it.")
    return value


def aware(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidInput(f"{name} must be a timezone-aware datetime, e.g. datetime.now(UTC).")
    return value


def timestamp(value: datetime | float | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return encode_time(aware(value, "message_timestamp"))
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"message_timestamp must be a datetime or Unix seconds, not {value!r}.")
    return encode_time(datetime.fromtimestamp(value, UTC))


def journal_key(account: str, chat_jid: str, message_id: str) -> tuple[str, str, str]:
    return (normalize_account(account), required("chat JID", chat_jid), required("message id", message_id))
