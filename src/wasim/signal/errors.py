"""Exceptions raised by wasim's Signal implementation.

Every failure caused by input (a malformed, forged, replayed or unexpected message, a bad bundle)
is a `SignalError`, so the server can catch one class and answer the way WhatsApp would.
"""

from __future__ import annotations


class SignalError(Exception):
    """Base class of everything this package raises on bad input or missing state."""


class InvalidMessage(SignalError):
    """The message cannot be parsed, has an unsupported version or does not decrypt."""


class InvalidMac(InvalidMessage):
    """The 8-byte MAC does not match: forged, corrupted or encrypted for another session."""


class InvalidKey(SignalError):
    """A public key has the wrong length or type byte, or a bundle's signature does not verify."""


class InvalidPadding(SignalError):
    """WhatsApp's random padding after the decrypted plaintext is missing or inconsistent."""


class DuplicateMessage(SignalError):
    """The message key for this counter was already used (the message was decrypted before)."""


class NoSession(SignalError):
    """There is no (open) session to encrypt or decrypt with."""


class InvalidPreKeyId(SignalError):
    """A pkmsg names a one-time or signed pre-key that we do not hold (unknown or already used)."""

    def __init__(self, kind: str, key_id: int) -> None:
        super().__init__(f"unknown {kind} id {key_id}")
        self.kind = kind
        self.key_id = key_id


class UntrustedIdentity(SignalError):
    """The peer's identity key differs from the one we were told to trust."""

    def __init__(self, identity_key: bytes) -> None:
        super().__init__(f"untrusted identity key {identity_key.hex()}")
        self.identity_key = identity_key
