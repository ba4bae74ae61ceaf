"""How much of an agent's answer is read: a bound, so a runaway program, a huge (or decompressed
bomb of a) webhook body or an endless model answer costs at most that much memory. Over the bound
the reply is cut, with a note saying so, and Cortask goes on. Pure, plus one bounded stream read.
"""

from __future__ import annotations

import json
import re
from typing import Protocol

__all__ = ["MAX_REPLY_BYTES", "cut_note", "cut_reply", "read_bounded", "reply_prefix_from_json"]

# 1 MiB of text: 16 WhatsApp messages of the longest kind, far more than anyone reads in a chat.
MAX_REPLY_BYTES = 1024 * 1024


def cut_note(why: str) -> str:
    return f"\n\n[The answer was cut here: {why}.]"


def cut_reply(data: bytes, limit: int = MAX_REPLY_BYTES) -> str:
    """The first `limit` bytes as text (a character cut in two at the end is dropped), with the note."""
    text = data[:limit].decode("utf-8", errors="ignore")
    return text.rstrip() + cut_note(f"it was longer than the {_size(limit)} an agent's reply may be")


class _Readable(Protocol):
    async def read(self, n: int = ...) -> bytes: ...


async def read_bounded(stream: _Readable, limit: int, chunk: int = 64 * 1024) -> tuple[bytes, bool]:
    """Up to `limit` bytes of `stream`; True when there was more (left unread)."""
    data = bytearray()
    while len(data) <= limit:
        piece = await stream.read(min(chunk, limit + 1 - len(data)))
        if not piece:
            return bytes(data), False
        data += piece
    return bytes(data[:limit]), True


_REPLY_START = re.compile(rb'"(?:reply|text)"\s*:\s*"')


def reply_prefix_from_json(data: bytes) -> str | None:
    """The start of the reply string in a JSON body cut short ({"reply": "…), or None when the
    cut body shows none. The string is decoded as JSON (escapes and all) as far as it is whole."""
    found = _REPLY_START.search(data)
    if found is None:
        return None
    body = data[found.end() :].decode("utf-8", errors="ignore")
    try:
        return str(json.JSONDecoder().raw_decode('"' + body)[0])  # the whole string is there
    except ValueError:
        pass
    for trim in range(7):  # cut inside it: drop an escape cut in two at the end (\ or \uXXX)
        try:
            return str(json.loads('"' + body[: len(body) - trim] + '"'))
        except ValueError:
            continue
    return None


def _size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MB" if limit >= 1024 * 1024 and limit % (1024 * 1024) == 0 else f"{limit} bytes"
