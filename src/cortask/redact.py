"""The one masker: what the API, the CLI and the logs show in place of a secret.

Masked, wherever they appear:

- a setting whose name looks secret: it contains ``key``, ``token``, ``secret``, ``password``,
  ``passwd`` or ``auth`` (any case), except a name ending ``_env`` (that is a variable's *name*)
  and numbers/booleans (``max_tokens: 1024`` is still shown);
- every HTTP header value (``headers``), whatever the header is called;
- a URL's user-info password and the values of its query string (``?key=...``);
- in free text and command lines: anything shaped like a key (``sk-...``, ``sk-ant-...``, long
  hex/base64 tokens), ``Bearer``/``Basic`` credentials, ``--api-key VALUE`` / ``--token=VALUE``
  options, ``NAME_KEY=VALUE`` assignments, and URLs as above.

`MASK` is what a secret becomes; the store puts the stored value back when a masked value comes
back unchanged (``cortask.store.masking.restore_masked``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

__all__ = ["MASK", "MaskingFormatter", "is_secret_name", "mask_settings", "mask_text", "mask_url", "mask_value"]

MASK = "********"
_SECRET_WORDS = ("key", "token", "secret", "password", "passwd", "auth", "credential")
_HEADER_CONTAINERS = ("headers",)
_URL_NAMES = ("url", "base_url", "endpoint")


def is_secret_name(name: str) -> bool:
    """Whether a setting called `name` holds a secret (``api_key``, ``apiKey``, ``token``...)."""
    lowered = name.lower()
    if lowered.endswith("_env") or lowered.startswith("max_"):
        return False  # api_key_env names a variable; max_tokens is a number
    return any(word in lowered for word in _SECRET_WORDS)


def mask_url(url: str) -> str:
    """`url` with its password and each query value masked (the host, path and names stay)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<invalid URL>"
    if not parts.scheme or not parts.netloc:
        return mask_text(url) if "://" not in url else url
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc = f"{netloc}:{port}"
    if parts.username is not None:
        netloc = f"{parts.username}:{MASK}@{netloc}" if parts.password is not None else f"{MASK}@{netloc}"
    query = "&".join(f"{pair.split('=', 1)[0]}={MASK}" if "=" in pair else pair for pair in parts.query.split("&"))
    return urlunsplit((parts.scheme, netloc, parts.path, query if parts.query else "", ""))


# Shapes of secrets in free text, most specific first. Each keeps its label and masks the value.
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>()]*[^\s'\"<>()\].,;:!?]")
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{6,}"), rf"\1 {MASK}"),
    (
        re.compile(r"(?i)((?<![\w-])--?[a-z0-9-]*(?:key|token|secret|password|passwd|auth)[a-z0-9-]*)(=|\s+)(?!-)\S+"),
        rf"\1\2{MASK}",
    ),
    (
        re.compile(r"(?i)\b([A-Z0-9_]*(?:KEY|TOKEN|SECRET|PASSWORD|PASSWD)[A-Z0-9_]*)=(\S+)"),
        rf"\1={MASK}",
    ),
    (re.compile(r"(?i)(\"?[a-z0-9_-]*(?:key|token|secret|password)\"?\s*:\s*)\"[^\"]+\""), rf'\1"{MASK}"'),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"), MASK),
    (re.compile(r"\b(?:ghp|gho|github_pat|xox[abpr]|AIza)[A-Za-z0-9_-]{10,}"), MASK),
    (re.compile(r"\b[A-Fa-f0-9]{32,}\b"), MASK),
    (re.compile(r"\b[A-Za-z0-9_-]*[0-9][A-Za-z0-9_-]*[A-Za-z][A-Za-z0-9_-]{30,}\b"), MASK),
)


def _mask_url_in_text(match: re.Match[str]) -> str:
    shown = mask_url(match.group(0))
    return match.group(0) if shown == "<invalid URL>" else shown


def mask_text(text: str) -> str:
    """`text` (a log line, an error sentence, a command line) with everything that looks secret masked."""
    text = _URL.sub(_mask_url_in_text, text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def mask_value(name: str, value: object) -> object:
    """A setting's value as it may be shown, given its name."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return MASK if is_secret_name(name) else value  # a key may be all digits; max_tokens is not secret
    lowered = name.lower()
    if lowered in _HEADER_CONTAINERS and isinstance(value, Mapping):
        return {str(header): MASK if item else item for header, item in value.items()}
    if is_secret_name(name):
        if isinstance(value, str):
            return MASK if value else value
        if isinstance(value, list):
            return [MASK if isinstance(item, str) and item else item for item in value]
    if isinstance(value, Mapping):
        return mask_settings(value)
    if isinstance(value, list):
        return [mask_value(name, item) for item in value]
    if isinstance(value, str):
        if lowered in _URL_NAMES or lowered.endswith("_url"):
            return mask_url(value)
        return mask_text(value)
    return value


def mask_settings(settings: Mapping[str, object]) -> dict[str, object]:
    """A copy of `settings` as it may be shown: every secret replaced by `MASK` (see the module)."""
    return {str(name): mask_value(str(name), value) for name, value in settings.items()}


class MaskingFormatter(logging.Formatter):
    """Every log line through the one masker: a key in an error or a URL never reaches a log."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_text(super().format(record))


class JsonFormatter(logging.Formatter):
    """`--log-format json`: one JSON object per line (for journald, Loki, jq), masked the same way."""

    def format(self, record: logging.LogRecord) -> str:
        import json
        from datetime import UTC, datetime

        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": mask_text(record.getMessage()),
        }
        if record.exc_info:
            entry["error"] = mask_text(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)
