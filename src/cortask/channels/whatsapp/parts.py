"""A reply too long for one WhatsApp message, cut into parts: pure, no I/O.

WhatsApp takes at most 65,536 characters in a text message (counted as JavaScript counts them,
in UTF-16 code units, so an emoji outside the Basic Multilingual Plane counts two). A longer
reply goes out as several messages, cut where a reader expects a break: between paragraphs
first, then between sentences, then between words; only a single "word" longer than a part
(a URL, a line of base64) is cut between characters, and never inside one character as the
reader sees it (a grapheme: an emoji with its skin tone, a flag, a letter with its accents).
"""

from __future__ import annotations

from collections.abc import Callable

import regex

__all__ = ["split_reply", "utf16_length"]

# Each piece ends with its separator, so the pieces of a text concatenate back to it; a cut is
# never followed by a mark that belongs to the character before it (_WHOLE).
_WHOLE = r"(?![\p{GCB=Extend}\p{GCB=ZWJ}\p{GCB=SpacingMark}])"
_PARAGRAPHS = regex.compile(r".*?(?:\n[^\S\n]*\n\s*" + _WHOLE + r"|\Z)", regex.DOTALL)
# A sentence ends with . ! ? … (and closing quotes or brackets) and white space, or with the
# full-width marks of Chinese and Japanese, which need no space after them.
_SENTENCES = regex.compile(
    r".*?(?:[.!?…]+[\"'”’»)\]]*\s+" + _WHOLE + r"|[。！？]+[」』）]*\s*" + _WHOLE + r"|\Z)", regex.DOTALL
)
_WORDS = regex.compile(r".*?(?:\s+" + _WHOLE + r"|\Z)", regex.DOTALL)
_GRAPHEMES = regex.compile(r"\X", regex.DOTALL)
_LEADING_SPACE = regex.compile(r"^(?:\s" + _WHOLE + r")+")


def _trim(text: str) -> str:
    """White space off both ends, but not a space that carries a combining mark."""
    return _LEADING_SPACE.sub("", text).rstrip()


def utf16_length(text: str) -> int:
    """The length WhatsApp (JavaScript) counts: UTF-16 code units."""
    return len(text) + sum(1 for c in text if ord(c) > 0xFFFF)


def _pieces(pattern: regex.Pattern[str]) -> Callable[[str], list[str]]:
    return lambda text: [piece for piece in pattern.findall(text) if piece]


_LEVELS = (_pieces(_PARAGRAPHS), _pieces(_SENTENCES), _pieces(_WORDS), _pieces(_GRAPHEMES))


def split_reply(text: str, limit: int) -> list[str]:
    """`text` in parts of at most `limit` UTF-16 code units, in order, white space at the cuts
    dropped. A text that fits is returned whole and unchanged."""
    if limit < 1:
        raise ValueError("a part must hold at least one character")
    if utf16_length(text) <= limit:
        return [text]
    return _pack(text, limit, 0)


def _pack(text: str, limit: int, level: int) -> list[str]:
    parts: list[str] = []
    current = ""

    def flush() -> None:
        nonlocal current
        if _trim(current):
            parts.append(_trim(current))
        current = ""

    for piece in _LEVELS[level](text):
        if utf16_length(_trim(piece)) > limit and level + 1 < len(_LEVELS):
            flush()
            parts.extend(_pack(piece, limit, level + 1))
        elif utf16_length(_trim(current + piece)) > limit:
            # (a lone grapheme longer than a part, which nothing can cut, goes out whole)
            flush()
            current = piece
        else:
            current += piece
    flush()
    return parts
