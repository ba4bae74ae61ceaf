"""Showing agent settings without their secrets, and taking masked values back unchanged.

A setting is secret when its key contains "key", "token", "secret" or "password" (any case, so
``apiKey``, ``api_key``, ``access_token``, ``client_secret``, ``password``) and its value is a
string. Numbers and booleans are never secrets, so ``max_tokens: 1024`` is still shown. Nested
objects and lists are walked; a list under a secret key has each string masked.

The UI shows `MASK` in place of a secret. When it sends the settings back, a secret whose value
is still `MASK` keeps the stored value (`restore_masked`), so saving an unrelated change does not
overwrite an API key with asterisks.
"""

from __future__ import annotations

from collections.abc import Mapping

from cortask.store.models import JSONValue

__all__ = ["MASK", "SECRET_WORDS", "is_secret_key", "mask_secrets", "restore_masked"]

MASK = "********"
SECRET_WORDS = ("key", "token", "secret", "password")


def is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in SECRET_WORDS)


def mask_secrets(settings: Mapping[str, JSONValue]) -> dict[str, JSONValue]:
    """A copy of `settings` with every secret string replaced by `MASK` (empty strings stay empty)."""
    return {key: _mask(value, is_secret_key(key)) for key, value in settings.items()}


def restore_masked(new: Mapping[str, JSONValue], old: Mapping[str, JSONValue]) -> dict[str, JSONValue]:
    """`new` with each secret still reading `MASK` put back to its value in `old`."""
    result: dict[str, JSONValue] = {}
    for key, value in new.items():
        previous = old.get(key)
        result[key] = _restore(value, previous, is_secret_key(key))
    return result


def _mask(value: JSONValue, secret: bool) -> JSONValue:
    if isinstance(value, str):
        return MASK if secret and value else value
    if isinstance(value, dict):
        return {key: _mask(item, secret or is_secret_key(key)) for key, item in value.items()}
    if isinstance(value, list):
        return [_mask(item, secret) for item in value]
    return value


def _restore(value: JSONValue, previous: JSONValue, secret: bool) -> JSONValue:
    if isinstance(value, str):
        return previous if secret and value == MASK and isinstance(previous, str) else value
    if isinstance(value, dict):
        before = previous if isinstance(previous, dict) else {}
        return {key: _restore(item, before.get(key), secret or is_secret_key(key)) for key, item in value.items()}
    if isinstance(value, list):
        before_list = previous if isinstance(previous, list) else []
        return [
            _restore(item, before_list[index] if index < len(before_list) else None, secret)
            for index, item in enumerate(value)
        ]
    return value
