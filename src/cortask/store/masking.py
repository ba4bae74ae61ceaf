"""Showing agent settings without their secrets, and taking masked values back unchanged.

What counts as secret is decided once, in `cortask.redact` (the one masker for the API, the CLI
and the logs): names that look secret, every header value, URL passwords and query values.

The UI shows `MASK` in place of a secret. When it sends the settings back, a value that still reads
exactly as it was shown keeps the stored value (`restore_masked`), so saving an unrelated change does
not overwrite an API key with asterisks. The repository does not restore anything when the endpoint
or the provider changed: a stored key is never replayed to a new address.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from cortask.redact import MASK, is_secret_name, mask_value
from cortask.store.models import JSONValue

__all__ = ["ENDPOINTS", "MASK", "drop_masked", "is_secret_key", "mask_secrets", "merge_masked", "restore_masked"]

ENDPOINTS = ("base_url", "url")  # where an agent sends its key


def is_secret_key(key: str) -> bool:
    return is_secret_name(key)


def mask_secrets(settings: Mapping[str, JSONValue]) -> dict[str, JSONValue]:
    """A copy of `settings` as it may be shown, every secret replaced by `MASK` (empty strings stay empty)."""
    return {key: cast(JSONValue, mask_value(key, value)) for key, value in settings.items()}


def restore_masked(new: Mapping[str, JSONValue], old: Mapping[str, JSONValue]) -> dict[str, JSONValue]:
    """`new` with each value still reading as `old`'s was shown put back to `old`'s value."""
    return {key: _restore(value, old.get(key), mask_value(key, old.get(key))) for key, value in new.items()}


def merge_masked(
    provider: str, new: Mapping[str, JSONValue], old_provider: str | None, old: Mapping[str, JSONValue]
) -> dict[str, JSONValue]:
    """The settings to keep when `new` comes back from a page that was shown `old` (masked):
    masked values restored when provider and endpoint are unchanged, else dropped."""
    if old_provider == provider and _same_endpoint(new, old):
        return restore_masked(new, old)
    return drop_masked(new)


def _same_endpoint(new: Mapping[str, JSONValue], old: Mapping[str, JSONValue]) -> bool:
    # The endpoint may come back as it was shown (its password or query masked): that is no change.
    return all(new.get(name) in (old.get(name), mask_value(name, old.get(name))) for name in ENDPOINTS)


def drop_masked(settings: Mapping[str, JSONValue]) -> dict[str, JSONValue]:
    """`settings` without the values that are (or hold) the mask: what is left when nothing may be restored."""
    return {key: value for key, value in settings.items() if not _holds_mask(value)}


def _holds_mask(value: object) -> bool:
    if isinstance(value, str):
        return MASK in value
    if isinstance(value, Mapping):
        return any(_holds_mask(item) for item in value.values())
    if isinstance(value, list):
        return any(_holds_mask(item) for item in value)
    return False


def _restore(value: JSONValue, previous: object, shown: object) -> JSONValue:
    if value == shown and value != previous and _holds_mask(value):
        return cast(JSONValue, previous)
    if isinstance(value, dict):
        before = previous if isinstance(previous, dict) else {}
        seen = shown if isinstance(shown, dict) else {}
        return {key: _restore(item, before.get(key), seen.get(key)) for key, item in value.items()}
    if isinstance(value, list):
        before_list = previous if isinstance(previous, list) else []
        seen_list = shown if isinstance(shown, list) else []
        return [
            _restore(
                item,
                before_list[index] if index < len(before_list) else None,
                seen_list[index] if index < len(seen_list) else None,
            )
            for index, item in enumerate(value)
        ]
    return value
