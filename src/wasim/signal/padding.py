"""WhatsApp's random padding of Signal plaintexts (Baileys Utils/generics.js writeRandomPadMax16).

Every plaintext inside a pkmsg/msg is a `proto.Message` followed by n bytes of value n, n in 1..16.
Baileys strips `last byte` bytes without further checks, so unpadded plaintexts get truncated.
"""

from __future__ import annotations

import secrets

from .errors import InvalidPadding

MAX_PAD = 16


def pad(message: bytes, length: int | None = None) -> bytes:
    """Append n bytes of value n; n is random in 1..16 unless given (tests pin it)."""
    n = secrets.randbelow(MAX_PAD) + 1 if length is None else length
    if not 1 <= n <= MAX_PAD:
        raise ValueError(f"pad length must be in 1..{MAX_PAD}, got {n}")
    return message + bytes([n]) * n


def unpad(data: bytes) -> bytes:
    """Strip the padding, insisting that it is well-formed (stricter than Baileys)."""
    if not data:
        raise InvalidPadding("empty plaintext")
    n = data[-1]
    if not 1 <= n <= MAX_PAD or n > len(data):
        raise InvalidPadding(f"bad pad length {n} for {len(data)} bytes")
    if data[-n:] != bytes([n]) * n:
        raise InvalidPadding("pad bytes differ from the pad length")
    return data[:-n]
