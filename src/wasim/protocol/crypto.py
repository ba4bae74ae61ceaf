"""Curve25519 keys, XEdDSA signatures and the symmetric primitives WhatsApp Web uses.

X25519 public keys travel as 32 raw bytes on the Noise and XMPP layers; Signal's wire adds a 0x05
prefix, which `raw_public` strips wherever a key may arrive in either form.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass

import xeddsa
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SIGNAL_KEY_PREFIX = 0x05


def clamp(scalar: bytes) -> bytes:
    b = bytearray(scalar)
    b[0] &= 248
    b[31] &= 127
    b[31] |= 64
    return bytes(b)


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A Curve25519 key pair; `private` is the clamped 32-byte scalar, `public` 32 raw bytes."""

    private: bytes
    public: bytes

    @classmethod
    def generate(cls) -> KeyPair:
        return cls.from_private(os.urandom(32))

    @classmethod
    def from_private(cls, private: bytes) -> KeyPair:
        if len(private) != 32:
            raise ValueError("a Curve25519 private key is 32 bytes")
        priv = clamp(private)
        return cls(priv, bytes(xeddsa.priv_to_curve25519_pub(priv)))

    def dh(self, their_public: bytes) -> bytes:
        return dh(self.private, their_public)

    def sign(self, message: bytes) -> bytes:
        return sign(self.private, message)

    def to_json(self) -> dict[str, str]:
        return {"private": self.private.hex(), "public": self.public.hex()}

    @classmethod
    def from_json(cls, data: dict[str, str]) -> KeyPair:
        pair = cls.from_private(bytes.fromhex(data["private"]))
        if pair.public.hex() != data["public"]:
            raise ValueError("stored key pair is inconsistent: public key does not match private key")
        return pair


def raw_public(key: bytes) -> bytes:
    """Accept a 32-byte key or a 33-byte 0x05-prefixed Signal key; return the raw 32 bytes."""
    if len(key) == 33 and key[0] == SIGNAL_KEY_PREFIX:
        return key[1:]
    if len(key) == 32:
        return key
    raise ValueError(f"a Curve25519 public key is 32 bytes (or 33 with a 0x05 prefix), got {len(key)}")


def signal_public(key: bytes) -> bytes:
    return bytes([SIGNAL_KEY_PREFIX]) + raw_public(key)


def dh(private: bytes, their_public: bytes) -> bytes:
    priv = X25519PrivateKey.from_private_bytes(private)
    return priv.exchange(X25519PublicKey.from_public_bytes(raw_public(their_public)))


def sign(private: bytes, message: bytes) -> bytes:
    """XEdDSA signature (64 bytes) with a Curve25519 private key, as libsignal's curve verifies."""
    # XEdDSA signs with the Edwards key whose sign bit is 0 (negating the scalar if needed), so
    # a verifier that only has the Montgomery public key can rebuild the Edwards key.
    priv = xeddsa.priv_force_sign(clamp(private), False)
    return bytes(xeddsa.ed25519_priv_sign(priv, message))


def verify(public: bytes, message: bytes, signature: bytes) -> bool:
    """Verify like libsignal's curve25519: the Edwards sign bit travels in the signature's top bit."""
    if len(signature) != 64:
        return False
    try:
        sign_bit = bool(signature[63] & 0x80)
        ed_pub = xeddsa.curve25519_pub_to_ed25519_pub(raw_public(public), sign_bit)
        sig = signature[:63] + bytes([signature[63] & 0x7F])
        return bool(xeddsa.ed25519_verify(sig, ed_pub, message))
    except (ValueError, xeddsa.XEdDSAException):
        return False


def hkdf(ikm: bytes, length: int, salt: bytes, info: bytes = b"") -> bytes:
    return HKDF(hashes.SHA256(), length, salt, info).derive(ikm)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def gcm_iv(counter: int) -> bytes:
    """WhatsApp's AES-GCM nonce: 8 zero bytes then the 32-bit big-endian counter."""
    return b"\x00" * 8 + counter.to_bytes(4, "big")


def aes_gcm_encrypt(key: bytes, counter: int, plaintext: bytes, aad: bytes) -> bytes:
    return AESGCM(key).encrypt(gcm_iv(counter), plaintext, aad or None)


def aes_gcm_decrypt(key: bytes, counter: int, ciphertext: bytes, aad: bytes) -> bytes:
    return AESGCM(key).decrypt(gcm_iv(counter), ciphertext, aad or None)
