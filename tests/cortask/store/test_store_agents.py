"""Agent settings per workspace, and showing them without their secrets."""

from __future__ import annotations

import math

import pytest
from store_support import clear_agent_settings, create_workspace, default_workspace

from cortask.store import MASK, InvalidInput, JSONValue, NotFound, Store, is_secret_key, mask_secrets
from cortask.store.masking import restore_masked


@pytest.fixture
def ws(store: Store) -> int:
    return default_workspace(store).id


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
    assert store.agents.get(ws) is None
    assert store.agents.for_display(ws) is None
    assert clear_agent_settings(store, ws) is False


def test_set_and_read_back(store: Store, ws: int) -> None:
    saved = store.agents.set(ws, " openai ", SETTINGS)
    assert saved.provider == "openai"
    assert dict(saved.settings) == SETTINGS
    assert store.agents.get(ws) == saved
    assert saved.updated_at.tzinfo is not None
    with pytest.raises(TypeError):
        saved.settings["model"] = "changed"  # type: ignore[index]


def test_replace_and_clear(store: Store, ws: int) -> None:
    store.agents.set(ws, "openai", SETTINGS)
    replaced = store.agents.set(ws, "echo", {"prefix": "echo: "})
    assert (replaced.provider, dict(replaced.settings)) == ("echo", {"prefix": "echo: "})
    assert clear_agent_settings(store, ws) is True
    assert store.agents.get(ws) is None


def test_display_masks_secrets_only(store: Store, ws: int) -> None:
    store.agents.set(ws, "openai", SETTINGS)
    shown = store.agents.for_display(ws)
    assert shown is not None
    assert dict(shown.settings) == {
        "model": "gpt-4o-mini",
        "base_url": "http://localhost:11434/v1",
        "api_key": MASK,
        "max_tokens": 1024,  # a number is never a secret
        "headers": {"Authorization": MASK, "X-Api-Key": MASK},  # every header value (issue #12)
        "webhook": {"secret": MASK, "url": "https://example.test/hook", "retries": 3},
        "fallback_tokens": [MASK, MASK],
        "password": "",  # empty stays empty, so the UI can say "not set"
        "temperature": 0.2,
        "stream": True,
        "extra": None,
    }
    agent_view = store.agents.get(ws)
    assert agent_view is not None
    assert agent_view.settings["api_key"] == "sk-live-123456"  # stored unmasked


def test_sending_the_mask_back_keeps_the_secret(store: Store, ws: int) -> None:
    store.agents.set(ws, "openai", SETTINGS)
    shown = store.agents.for_display(ws)
    assert shown is not None
    edited = {**shown.settings, "model": "gpt-4o"}
    saved = store.agents.set(ws, "openai", edited)
    assert saved.settings == {**SETTINGS, "model": "gpt-4o"}
    new_key = store.agents.set(ws, "openai", {**edited, "api_key": "sk-new"})
    assert new_key.settings["api_key"] == "sk-new"
    literal = store.agents.set(ws, "openai", {"api_key": MASK}, keep_masked=False)
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
        store.agents.set(ws, "  ", {})
    with pytest.raises(InvalidInput, match="plain JSON"):
        store.agents.set(ws, "x", {"when": object()})  # type: ignore[dict-item]
    with pytest.raises(InvalidInput, match="plain JSON"):
        store.agents.set(ws, "x", {"temperature": math.nan})
    with pytest.raises(InvalidInput, match="keys are strings"):
        store.agents.set(ws, "x", {1: "a"})  # type: ignore[dict-item]
    with pytest.raises(NotFound):
        store.agents.set(99, "x", {})
    with pytest.raises(NotFound):
        store.agents.get(99)
    assert store.agents.get(ws) is None


def test_settings_are_per_workspace(store: Store, ws: int) -> None:
    work = create_workspace(store, "Work").id
    store.agents.set(ws, "echo", {})
    store.agents.set(work, "anthropic", {"api_key": "a"})
    personal, job = store.agents.get(ws), store.agents.get(work)
    assert personal is not None and job is not None
    assert (personal.provider, job.provider) == ("echo", "anthropic")
