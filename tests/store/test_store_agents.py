"""Agent settings per workspace, and showing them without their secrets."""

from __future__ import annotations

import math

import pytest

from cortask.store import MASK, InvalidInput, JSONValue, NotFound, Store, is_secret_key, mask_secrets
from cortask.store.masking import restore_masked


@pytest.fixture
def ws(store: Store) -> int:
    return store.default_workspace().id


SETTINGS: dict[str, JSONValue] = {
    "model": "gpt-4o-mini",
    "base_url": "http://localhost:11434/v1",
    "api_key": "sk-live-123456",
    "max_tokens": 1024,
    "headers": {"Authorization": "Bearer x", "X-Api-Key": "hdr-secret"},
    "webhook": {"secret": "whsec", "url": "https://example.test/hook", "retries": 3},
    "fallback_tokens": ["t1", "t2"],
    "password": "",
    "temperature": 0.2,
    "stream": True,
    "extra": None,
}


def test_none_until_configured(store: Store, ws: int) -> None:
    assert store.agent_settings(ws) is None
    assert store.agent_settings_for_display(ws) is None
    assert store.clear_agent_settings(ws) is False


def test_set_and_read_back(store: Store, ws: int) -> None:
    saved = store.set_agent_settings(ws, " openai ", SETTINGS)
    assert saved.provider == "openai"
    assert dict(saved.settings) == SETTINGS
    assert store.agent_settings(ws) == saved
    assert saved.updated_at.tzinfo is not None
    with pytest.raises(TypeError):
        saved.settings["model"] = "changed"  # type: ignore[index]


def test_replace_and_clear(store: Store, ws: int) -> None:
    store.set_agent_settings(ws, "openai", SETTINGS)
    replaced = store.set_agent_settings(ws, "echo", {"prefix": "echo: "})
    assert (replaced.provider, dict(replaced.settings)) == ("echo", {"prefix": "echo: "})
    assert store.clear_agent_settings(ws) is True
    assert store.agent_settings(ws) is None


def test_display_masks_secrets_only(store: Store, ws: int) -> None:
    store.set_agent_settings(ws, "openai", SETTINGS)
    shown = store.agent_settings_for_display(ws)
    assert shown is not None
    assert dict(shown.settings) == {
        "model": "gpt-4o-mini",
        "base_url": "http://localhost:11434/v1",
        "api_key": MASK,
        "max_tokens": 1024,  # a number is never a secret
        "headers": {"Authorization": "Bearer x", "X-Api-Key": MASK},
        "webhook": {"secret": MASK, "url": "https://example.test/hook", "retries": 3},
        "fallback_tokens": [MASK, MASK],
        "password": "",  # empty stays empty, so the UI can say "not set"
        "temperature": 0.2,
        "stream": True,
        "extra": None,
    }
    agent_view = store.agent_settings(ws)
    assert agent_view is not None
    assert agent_view.settings["api_key"] == "sk-live-123456"  # stored unmasked


def test_sending_the_mask_back_keeps_the_secret(store: Store, ws: int) -> None:
    store.set_agent_settings(ws, "openai", SETTINGS)
    shown = store.agent_settings_for_display(ws)
    assert shown is not None
    edited = {**shown.settings, "model": "gpt-4o"}
    saved = store.set_agent_settings(ws, "openai", edited)
    assert saved.settings == {**SETTINGS, "model": "gpt-4o"}
    new_key = store.set_agent_settings(ws, "openai", {**edited, "api_key": "sk-new"})
    assert new_key.settings["api_key"] == "sk-new"
    literal = store.set_agent_settings(ws, "openai", {"api_key": MASK}, keep_masked=False)
    assert literal.settings == {"api_key": MASK}


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("api_key", True),
        ("apiKey", True),
        ("OPENAI_API_KEY", True),
        ("access_token", True),
        ("client_secret", True),
        ("Password", True),
        ("model", False),
        ("base_url", False),
        ("temperature", False),
    ],
)
def test_secret_keys(key: str, secret: bool) -> None:
    assert is_secret_key(key) is secret
    assert mask_secrets({key: "value"}) == {key: MASK if secret else "value"}


def test_restore_masked_walks_nested_values() -> None:
    old: dict[str, JSONValue] = {"auth": {"token": "abc"}, "keys": ["k1", "k2"]}
    new: dict[str, JSONValue] = {"auth": {"token": MASK}, "keys": [MASK, "k3", MASK]}
    assert restore_masked(new, old) == {"auth": {"token": "abc"}, "keys": ["k1", "k3", MASK]}


def test_bad_settings_are_refused(store: Store, ws: int) -> None:
    with pytest.raises(InvalidInput, match="provider name is empty"):
        store.set_agent_settings(ws, "  ", {})
    with pytest.raises(InvalidInput, match="plain JSON"):
        store.set_agent_settings(ws, "x", {"when": object()})  # type: ignore[dict-item]
    with pytest.raises(InvalidInput, match="plain JSON"):
        store.set_agent_settings(ws, "x", {"temperature": math.nan})
    with pytest.raises(InvalidInput, match="keys are strings"):
        store.set_agent_settings(ws, "x", {1: "a"})  # type: ignore[dict-item]
    with pytest.raises(NotFound):
        store.set_agent_settings(99, "x", {})
    with pytest.raises(NotFound):
        store.agent_settings(99)
    assert store.agent_settings(ws) is None


def test_settings_are_per_workspace(store: Store, ws: int) -> None:
    work = store.create_workspace("Work").id
    store.set_agent_settings(ws, "echo", {})
    store.set_agent_settings(work, "anthropic", {"api_key": "a"})
    personal, job = store.agent_settings(ws), store.agent_settings(work)
    assert personal is not None and job is not None
    assert (personal.provider, job.provider) == ("echo", "anthropic")
