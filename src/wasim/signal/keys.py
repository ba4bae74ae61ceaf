"""Key material of one Signal party: identity, registration id, signed and one-time pre-keys.

Signal puts Curve25519 public keys on the wire as 33 bytes, a 0x05 type byte followed by the raw
key; WhatsApp's XMPP layer (key bundles, pre-key uploads) carries the raw 32 bytes. Everything in
this package stores and returns the 33-byte form and accepts either on input.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from wasim.protocol.crypto import KeyPair, dh, sign, verify

from .errors import InvalidKey

KEY_TYPE_DJB = 0x05
# libsignal-node draws 14 bits (keyhelper.generateRegistrationId).
MAX_REGISTRATION_ID = 0x3FFF
# Pre-key ids travel as 3 big-endian bytes in WhatsApp's bundles.
MAX_PRE_KEY_ID = 0xFFFFFF
# Old signed pre-keys stay usable for pkmsgs built from a bundle fetched before a rotation.
KEPT_SIGNED_PRE_KEYS = 3

__all__ = [
    "KEY_TYPE_DJB",
    "IdentityKeyPair",
    "KeyPair",
    "KeyStore",
    "PreKey",
    "PreKeyBundle",
    "SignedPreKey",
    "agree",
    "generate_registration_id",
    "raw_key",
    "signal_key",
    "xeddsa_sign",
    "xeddsa_verify",
]

# The identity key is an ordinary Curve25519 pair; the alias documents intent at call sites.
IdentityKeyPair = KeyPair


def signal_key(public: bytes) -> bytes:
    """The 33-byte 0x05-prefixed form of a Curve25519 public key given in either form."""
    if len(public) == 33 and public[0] == KEY_TYPE_DJB:
        return bytes(public)
    if len(public) == 32:
        return bytes([KEY_TYPE_DJB]) + public
    raise InvalidKey(f"expected a 32-byte or 0x05-prefixed 33-byte public key, got {len(public)} bytes")


def raw_key(public: bytes) -> bytes:
    """The raw 32-byte form of a Curve25519 public key given in either form."""
    return signal_key(public)[1:]


def agree(pair: KeyPair, their_public: bytes) -> bytes:
    """X25519 shared secret; a low-order peer key (all-zero secret) is rejected as an invalid key."""
    try:
        return dh(pair.private, raw_key(their_public))
    except ValueError as exc:
        raise InvalidKey(f"key agreement failed: {exc}") from exc


def xeddsa_sign(pair: KeyPair, message: bytes) -> bytes:
    """64-byte XEdDSA signature with a Curve25519 private key, as libsignal's curve produces."""
    return sign(pair.private, message)


def xeddsa_verify(public: bytes, message: bytes, signature: bytes) -> bool:
    return verify(raw_key(public), message, signature)


def generate_registration_id() -> int:
    # Never 0: libsignal-node reads a 0 protobuf field like an absent one.
    return secrets.randbelow(MAX_REGISTRATION_ID) + 1


def _check_id(key_id: int, what: str) -> int:
    # 0 is excluded because libsignal-node treats preKeyId 0 in a pkmsg as "no one-time pre-key".
    if not 1 <= key_id <= MAX_PRE_KEY_ID:
        raise ValueError(f"{what} id must be in 1..{MAX_PRE_KEY_ID}, got {key_id}")
    return key_id


@dataclass(frozen=True, slots=True)
class PreKey:
    key_id: int
    key_pair: KeyPair

    @classmethod
    def generate(cls, key_id: int) -> PreKey:
        return cls(_check_id(key_id, "pre-key"), KeyPair.generate())

    @property
    def public(self) -> bytes:
        return signal_key(self.key_pair.public)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.key_id, "key_pair": self.key_pair.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PreKey:
        return cls(int(data["id"]), KeyPair.from_json(data["key_pair"]))


@dataclass(frozen=True, slots=True)
class SignedPreKey:
    key_id: int
    key_pair: KeyPair
    signature: bytes  # XEdDSA by the identity key over the 33-byte public key

    @classmethod
    def generate(cls, identity: KeyPair, key_id: int) -> SignedPreKey:
        pair = KeyPair.generate()
        return cls(_check_id(key_id, "signed pre-key"), pair, xeddsa_sign(identity, signal_key(pair.public)))

    @property
    def public(self) -> bytes:
        return signal_key(self.key_pair.public)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.key_id, "key_pair": self.key_pair.to_json(), "signature": self.signature.hex()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SignedPreKey:
        return cls(int(data["id"]), KeyPair.from_json(data["key_pair"]), bytes.fromhex(data["signature"]))


@dataclass(frozen=True, slots=True)
class PreKeyBundle:
    """What a key fetch returns for one device; keys are normalised to the 33-byte form."""

    registration_id: int
    identity_key: bytes
    signed_pre_key_id: int
    signed_pre_key: bytes
    signed_pre_key_signature: bytes
    pre_key_id: int | None = None
    pre_key: bytes | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "identity_key", signal_key(self.identity_key))
        object.__setattr__(self, "signed_pre_key", signal_key(self.signed_pre_key))
        if self.pre_key is not None:
            object.__setattr__(self, "pre_key", signal_key(self.pre_key))
        if len(self.signed_pre_key_signature) != 64:
            raise InvalidKey("a signed pre-key signature is 64 bytes")
        if (self.pre_key is None) != (self.pre_key_id is None):
            raise InvalidKey("a one-time pre-key needs both an id and a key")
        if self.pre_key_id is not None:
            _check_id(self.pre_key_id, "pre-key")

    def signature_valid(self) -> bool:
        return xeddsa_verify(self.identity_key, self.signed_pre_key, self.signed_pre_key_signature)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "registration_id": self.registration_id,
            "identity_key": self.identity_key.hex(),
            "signed_pre_key_id": self.signed_pre_key_id,
            "signed_pre_key": self.signed_pre_key.hex(),
            "signed_pre_key_signature": self.signed_pre_key_signature.hex(),
        }
        if self.pre_key is not None:
            data["pre_key_id"] = self.pre_key_id
            data["pre_key"] = self.pre_key.hex()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PreKeyBundle:
        pre_key = data.get("pre_key")
        return cls(
            registration_id=int(data["registration_id"]),
            identity_key=bytes.fromhex(data["identity_key"]),
            signed_pre_key_id=int(data["signed_pre_key_id"]),
            signed_pre_key=bytes.fromhex(data["signed_pre_key"]),
            signed_pre_key_signature=bytes.fromhex(data["signed_pre_key_signature"]),
            pre_key_id=None if pre_key is None else int(data["pre_key_id"]),
            pre_key=None if pre_key is None else bytes.fromhex(pre_key),
        )


@dataclass(slots=True)
class KeyStore:
    """Our own long-term and pre-key material (the libsignal "storage" minus sessions).

    One-time pre-keys are handed out once each by `bundle()` (as WhatsApp's server does) and
    deleted when a pkmsg consumes them. Persist the store after `bundle()` and after decrypting a
    pkmsg.
    """

    identity: KeyPair
    registration_id: int
    signed_pre_key: SignedPreKey
    old_signed_pre_keys: list[SignedPreKey] = field(default_factory=list)
    pre_keys: dict[int, PreKey] = field(default_factory=dict)
    handed_out: set[int] = field(default_factory=set)
    next_pre_key_id: int = 1

    @classmethod
    def generate(cls, *, pre_keys: int = 10, registration_id: int | None = None) -> KeyStore:
        identity = KeyPair.generate()
        store = cls(
            identity=identity,
            registration_id=generate_registration_id() if registration_id is None else registration_id,
            signed_pre_key=SignedPreKey.generate(identity, 1),
        )
        store.add_pre_keys(pre_keys)
        return store

    @property
    def identity_key(self) -> bytes:
        return signal_key(self.identity.public)

    def add_pre_keys(self, count: int) -> list[PreKey]:
        added = []
        for _ in range(count):
            key = PreKey.generate(self.next_pre_key_id)
            self.next_pre_key_id = self.next_pre_key_id % MAX_PRE_KEY_ID + 1
            self.pre_keys[key.key_id] = key
            added.append(key)
        return added

    def rotate_signed_pre_key(self) -> SignedPreKey:
        self.old_signed_pre_keys = [self.signed_pre_key, *self.old_signed_pre_keys][:KEPT_SIGNED_PRE_KEYS]
        new_id = self.signed_pre_key.key_id % MAX_PRE_KEY_ID + 1
        self.signed_pre_key = SignedPreKey.generate(self.identity, new_id)
        return self.signed_pre_key

    def find_signed_pre_key(self, key_id: int) -> SignedPreKey | None:
        for key in (self.signed_pre_key, *self.old_signed_pre_keys):
            if key.key_id == key_id:
                return key
        return None

    def bundle(self, *, one_time: bool = True) -> PreKeyBundle:
        """A bundle for a key fetch, with a fresh one-time pre-key unless `one_time` is False."""
        pre_key = None
        if one_time:
            pre_key = next((k for i, k in self.pre_keys.items() if i not in self.handed_out), None)
            if pre_key is None:
                pre_key = self.add_pre_keys(1)[0]
            self.handed_out.add(pre_key.key_id)
        return PreKeyBundle(
            registration_id=self.registration_id,
            identity_key=self.identity_key,
            signed_pre_key_id=self.signed_pre_key.key_id,
            signed_pre_key=self.signed_pre_key.public,
            signed_pre_key_signature=self.signed_pre_key.signature,
            pre_key_id=None if pre_key is None else pre_key.key_id,
            pre_key=None if pre_key is None else pre_key.public,
        )

    def remove_pre_key(self, key_id: int) -> None:
        self.pre_keys.pop(key_id, None)
        self.handed_out.discard(key_id)

    def to_json(self) -> dict[str, Any]:
        return {
            "identity": self.identity.to_json(),
            "registration_id": self.registration_id,
            "signed_pre_key": self.signed_pre_key.to_json(),
            "old_signed_pre_keys": [k.to_json() for k in self.old_signed_pre_keys],
            "pre_keys": [k.to_json() for k in self.pre_keys.values()],
            "handed_out": sorted(self.handed_out),
            "next_pre_key_id": self.next_pre_key_id,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KeyStore:
        pre_keys = [PreKey.from_json(k) for k in data["pre_keys"]]
        return cls(
            identity=KeyPair.from_json(data["identity"]),
            registration_id=int(data["registration_id"]),
            signed_pre_key=SignedPreKey.from_json(data["signed_pre_key"]),
            old_signed_pre_keys=[SignedPreKey.from_json(k) for k in data["old_signed_pre_keys"]],
            pre_keys={k.key_id: k for k in pre_keys},
            handed_out={int(i) for i in data["handed_out"]},
            next_pre_key_id=int(data["next_pre_key_id"]),
        )
