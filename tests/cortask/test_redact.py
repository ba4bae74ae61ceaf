"""The one masker (issue #12), fed real-looking secrets: none of them may survive, and what is not
secret (hosts, paths, names, numbers) stays readable."""

from __future__ import annotations

import pytest

from cortask.redact import MASK, is_secret_name, mask_settings, mask_text, mask_url

OPENAI = "sk-proj-4fJ9kQ2mZx7LwP0vR3tY8uB1nC6dE5aH"
ANTHROPIC = "sk-ant-api03-Zq9xW2vE7rT4yU1iO8pA3sD6fG5hJ0kL"
BEARER = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N"
HEX = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


@pytest.mark.parametrize(
    ("text", "secret", "kept"),
    [
        (f"openai said 401 for key {OPENAI}", OPENAI, "openai said 401 for key"),
        (f"anthropic key {ANTHROPIC} refused", ANTHROPIC, "refused"),
        (f"Authorization: Bearer {BEARER}", BEARER, "Authorization: Bearer"),
        ("Authorization: Basic dXNlcjpodW50ZXIyMjIy", "dXNlcjpodW50ZXIyMjIy", "Basic"),
        ("POST https://bob:hunter2pass@hooks.example.com/in failed", "hunter2pass", "bob:"),
        (
            "GET https://maps.example.com/api?key=AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY&q=x",
            "AIzaSy",
            "maps.example.com",
        ),
        ("calling http://127.0.0.1:8080/hook?token=abc123def&sig=zz", "abc123def", "127.0.0.1:8080/hook"),
        (f"python3 agent.py --api-key {OPENAI} --fast", OPENAI, "--fast"),
        ("python3 agent.py --token=s3cr3t-value-xyz", "s3cr3t-value-xyz", "--token="),
        ("OPENAI_API_KEY=abcd1234efgh5678 python3 bot.py", "abcd1234efgh5678", "python3 bot.py"),
        ('{"api_key": "plain-looking-secret"}', "plain-looking-secret", "api_key"),
        (f"sha {HEX}", HEX, "sha"),
        ("agent at http://u:pw-in-v6@[::1]:8080/v1 failed", "pw-in-v6", "[::1]:8080/v1 failed"),
        ("(model m at http://127.0.0.1:9/v1?key=k-in-parens) could not", "k-in-parens", "127.0.0.1:9/v1?key="),
        ("invalid x-api-key sk-ant-api03-Zq9xW2vE7rT4yU1iO8pA3sD6fG5hJ0kL given", "Zq9xW2vE7rT4y", "invalid x-api-key"),
        ("ghp_16C7e42F292c6912E7710c838347Ae178B4a in a log", "ghp_16C7e42F292c6912E7710c838347Ae178B4a", "in a log"),
    ],
)
def test_free_text_and_command_lines(text: str, secret: str, kept: str) -> None:
    shown = mask_text(text)
    assert secret not in shown
    assert kept in shown


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:pw-secret@e.com/h", f"https://user:{MASK}@e.com/h"),
        ("https://tok-only@e.com/h", f"https://{MASK}@e.com/h"),
        ("https://e.com/h?key=k-secret&x=1", f"https://e.com/h?key={MASK}&x={MASK}"),
        ("http://[::1]:8080/v1", "http://[::1]:8080/v1"),
        ("http://localhost:11434/v1", "http://localhost:11434/v1"),
    ],
)
def test_urls(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_settings() -> None:
    settings = {
        "model": "gpt-4o-mini",
        "api_key": OPENAI,
        "apiKey": ANTHROPIC,
        "api_key_env": "OPENAI_API_KEY",  # a variable's name, not a secret
        "max_tokens": 1024,  # a number, not a secret
        "numeric_key": 12345678901234567890,
        "base_url": "https://u:pw-secret@proxy.example/v1?key=qs-secret",
        "headers": {"Authorization": f"Bearer {BEARER}", "X-Custom": "hdr-secret"},
        "command": f"python3 agent.py --api-key {OPENAI}",
        "nested": {"client_secret": "cs-secret", "retries": 3},
        "password": "",
        "shell": True,
    }
    shown = mask_settings(settings)
    text = repr(shown)
    for secret in (
        OPENAI,
        ANTHROPIC,
        BEARER,
        "pw-secret",
        "qs-secret",
        "hdr-secret",
        "cs-secret",
        "12345678901234567890",
    ):
        assert secret not in text
    assert shown["model"] == "gpt-4o-mini" and shown["max_tokens"] == 1024 and shown["shell"] is True
    assert shown["api_key_env"] == "OPENAI_API_KEY" and shown["password"] == ""
    assert shown["headers"] == {"Authorization": MASK, "X-Custom": MASK}
    assert shown["nested"] == {"client_secret": MASK, "retries": 3}
    assert str(shown["base_url"]).startswith("https://u:") and "proxy.example/v1" in str(shown["base_url"])


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("api_key", True), ("apiKey", True), ("access_token", True), ("client_secret", True),
        ("Password", True), ("auth", True), ("api_key_env", False), ("token_env", False),
        ("max_tokens", False), ("model", False), ("base_url", False),
    ],
)  # fmt: skip
def test_secret_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_ordinary_text_is_left_alone() -> None:
    line = "command agent (python3) answering in 4915123456789@s.whatsapp.net after 1.5 s"
    assert mask_text(line) == line


def test_log_lines_go_through_the_masker() -> None:
    import logging

    from cortask.redact import MaskingFormatter

    record = logging.LogRecord(
        "cortask", logging.WARNING, __file__, 1, "agent failed at %s", ("https://u:pw@h/x?key=sk-abc",), None
    )
    line = MaskingFormatter("%(levelname)s %(message)s").format(record)
    assert line.startswith("WARNING agent failed at https://u:")
    assert "pw" not in line and "sk-abc" not in line
