"""How loud a line of Baileys' log is for us (pure).

Baileys logs every stream error at its error level, including code 515: WhatsApp's request to
reconnect right after a phone pairs, which happens at every link. That one is routine, so it is
logged as info with words that say so (issue #17); other errors keep their weight.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

RESTART_AFTER_PAIRING = "WhatsApp asked for the usual restart after pairing (stream error 515): reconnecting."


def stream_error_code(record: Mapping[str, Any]) -> str | None:
    """The code of a `stream errored out` record (`fullErrorNode.attrs.code`), if it is one."""
    if record.get("msg") != "stream errored out":
        return None
    node = record.get("fullErrorNode")
    attrs = node.get("attrs") if isinstance(node, Mapping) else None
    code = attrs.get("code") if isinstance(attrs, Mapping) else None
    return str(code) if code is not None else None


def classify(record: Mapping[str, Any]) -> tuple[int, str]:
    """The Python log level and message for one of Baileys' pino records."""
    if stream_error_code(record) == "515":
        return logging.INFO, RESTART_AFTER_PAIRING
    level = int(record.get("level", 30))
    return (logging.WARNING if level >= 50 else logging.DEBUG), str(record.get("msg", ""))
