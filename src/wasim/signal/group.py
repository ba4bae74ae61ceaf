"""Group messaging with Signal sender keys, wire-compatible with Baileys' Signal/Group code.

Every member of a group has its own *sender key* per group: a key id, a symmetric chain and a
Curve25519 signing pair. The sender hands the chain's current state to each recipient device once,
inside an ordinary 1:1 message (`SenderKeyDistributionMessage`), then posts one `SenderKeyMessage`
that every member decrypts (`<enc type="skmsg">`).

    SenderKeyDistributionMessage = 0x33 || protobuf{1 id, 2 iteration, 3 chainKey, 4 signingKey(33)}
    SenderKeyMessage             = 0x33 || protobuf{1 id, 2 iteration, 3 ciphertext} || signature(64)

The signature is XEdDSA by the signing key over everything before it. Message key for iteration n:
seed_n = HMAC-SHA256(chain_n, 0x01), chain_{n+1} = HMAC-SHA256(chain_n, 0x02);
HKDF-SHA256(seed_n, salt = 32 zero bytes, info = "WhisperGroup", 48 bytes) = IV(16) || AES key(32);
the padded plaintext is AES-256-CBC/PKCS#7 encrypted. As with 1:1 messages, callers pad (`pad`)
before encrypting and unpad after decrypting: the WhatsApp padding is not part of this layer.

Sans-I/O: a `GroupSender` (our own key in one group) and a `SenderKeyRecord` (what we received
from one sender in one group) are plain objects that convert to and from JSON-able dicts. Baileys
stores a record under `sender_key_name(group_jid, sender_jid)`; a server keeps the same pairs.

    sender = GroupSender.generate()                  # persist with sender.to_json()
    skdm = sender.distribution_message()             # into Message.senderKeyDistributionMessage
    body = sender.encrypt(pad(message_proto_bytes))  # <enc type="skmsg">

    record = SenderKeyRecord()                       # per (group, sender device)
    record.process(skdm)
    message_proto_bytes = unpad(record.decrypt(body))
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from wasim.protocol.crypto import KeyPair, hkdf, hmac_sha256

from .errors import DuplicateMessage, InvalidKey, InvalidMessage, NoSession
from .keys import signal_key, xeddsa_sign, xeddsa_verify
from .wire import _bytes_field, _parse, _uint32, _uint_field

__all__ = [
    "GroupSender",
    "InvalidSignature",
    "NoSenderKey",
    "SenderKeyDistributionMessage",
    "SenderKeyMessage",
    "SenderKeyRecord",
    "SenderKeyState",
    "sender_key_name",
]

VERSION = 3
VERSION_BYTE = (VERSION << 4) | VERSION
SIGNATURE_LENGTH = 64
CHAIN_KEY_LENGTH = 32
GROUP_INFO = b"WhisperGroup"
_MESSAGE_KEY_SEED = b"\x01"
_CHAIN_KEY_SEED = b"\x02"
_UINT32_MAX = 0xFFFFFFFF

# Baileys' keyhelper draws key ids below 2^31 - 1 (crypto.randomInt(2147483647)).
MAX_KEY_ID = 0x7FFFFFFE
# Baileys refuses iterations more than 2000 ahead and keeps at most 2000 skipped message keys
# per state (oldest dropped first) and 5 states (key ids) per sender; we use the same bounds.
MAX_FORWARD_JUMP = 2000
MAX_MESSAGE_KEYS = 2000
MAX_STATES = 5

RECORD_FORMAT = 1


class NoSenderKey(NoSession):
    """No sender key with this id from this sender: its distribution message never arrived (or the
    state was evicted). WhatsApp clients answer with a retry receipt."""

    def __init__(self, key_id: int, *, any_known: bool = True) -> None:
        detail = "" if any_known else " (none received from this sender yet)"
        super().__init__(f"no sender key with id {key_id}{detail}")
        self.key_id = key_id


class InvalidSignature(InvalidMessage):
    """The SenderKeyMessage's XEdDSA signature does not verify with the sender's signing key."""


# -- JIDs -> Baileys' record names ----------------------------------------------------------------

# Baileys' WAJIDDomains: the Signal address of a non-PN user carries its domain as "user_N".
_DOMAINS = {"lid": 1, "hosted": 128, "hosted.lid": 129}


def sender_key_name(group_jid: str, sender_jid: str) -> str:
    """The key Baileys stores a sender's record under, "<group jid>::<signal user>::<device>".

    The signal user is the JID's user for phone-number JIDs and "<user>_1" for LIDs, so a sender
    seen as `123@s.whatsapp.net` and as `456@lid` has two unrelated records: Baileys uses the
    `participant` attribute of the <message> stanza exactly as received.
    """
    user_part, at, server = sender_jid.partition("@")
    user_agent, _, device = user_part.partition(":")
    user, _, agent = user_agent.partition("_")
    if not at or not user:
        raise ValueError(f"not a user JID: {sender_jid!r}")
    domain = _DOMAINS.get(server, int(agent) if agent.isdigit() else 0)
    signal_user = user if domain == 0 else f"{user}_{domain}"
    return f"{group_jid}::{signal_user}::{int(device) if device else 0}"


# -- wire -----------------------------------------------------------------------------------------


def _check_version(data: bytes, what: str) -> None:
    if not data:
        raise InvalidMessage(f"empty {what}")
    # Baileys never looks at this byte; libsignal-java insists on a high nibble of 3, and so do we.
    if data[0] >> 4 != VERSION:
        raise InvalidMessage(f"unsupported {what} version byte 0x{data[0]:02x}")


@dataclass(frozen=True, slots=True)
class SenderKeyDistributionMessage:
    """A sender key as handed to one recipient: it decrypts iterations >= `iteration`."""

    key_id: int
    iteration: int
    chain_key: bytes
    signing_key: bytes  # 33-byte 0x05-prefixed public key

    def serialize(self) -> bytes:
        # protobufjs' field order; every field is written, zeros included.
        return bytes([VERSION_BYTE]) + (
            _uint_field(1, self.key_id)
            + _uint_field(2, self.iteration)
            + _bytes_field(3, self.chain_key)
            + _bytes_field(4, self.signing_key)
        )

    @classmethod
    def parse(cls, data: bytes) -> SenderKeyDistributionMessage:
        _check_version(data, "SenderKeyDistributionMessage")
        values = _parse(data[1:], {1: int, 2: int, 3: bytes, 4: bytes})
        chain_key, signing_key = values.get(3), values.get(4)
        if not isinstance(chain_key, bytes) or len(chain_key) != CHAIN_KEY_LENGTH:
            raise InvalidMessage("SenderKeyDistributionMessage needs a 32-byte chain key")
        if not isinstance(signing_key, bytes):
            raise InvalidMessage("SenderKeyDistributionMessage without a signing key")
        try:
            signing_key = signal_key(signing_key)
        except InvalidKey as exc:
            raise InvalidMessage(f"signing key: {exc}") from exc
        return cls(_uint32(values, 1), _uint32(values, 2), chain_key, signing_key)


@dataclass(frozen=True, slots=True)
class SenderKeyMessage:
    key_id: int
    iteration: int
    ciphertext: bytes
    signed: bytes  # version byte + protobuf exactly as received: the signature covers these bytes
    signature: bytes

    @classmethod
    def build(cls, *, signing_key: KeyPair, key_id: int, iteration: int, ciphertext: bytes) -> SenderKeyMessage:
        signed = bytes([VERSION_BYTE]) + (
            _uint_field(1, key_id) + _uint_field(2, iteration) + _bytes_field(3, ciphertext)
        )
        return cls(key_id, iteration, ciphertext, signed, xeddsa_sign(signing_key, signed))

    @classmethod
    def parse(cls, data: bytes) -> SenderKeyMessage:
        _check_version(data, "SenderKeyMessage")
        if len(data) < 1 + SIGNATURE_LENGTH:
            raise InvalidMessage("SenderKeyMessage too short")
        signed, signature = data[:-SIGNATURE_LENGTH], data[-SIGNATURE_LENGTH:]
        values = _parse(signed[1:], {1: int, 2: int, 3: bytes})
        ciphertext = values.get(3)
        if not isinstance(ciphertext, bytes) or not ciphertext:
            raise InvalidMessage("SenderKeyMessage without ciphertext")
        return cls(_uint32(values, 1), _uint32(values, 2), ciphertext, signed, signature)

    def serialize(self) -> bytes:
        return self.signed + self.signature

    def verify_signature(self, signing_key: bytes) -> None:
        if not xeddsa_verify(signing_key, self.signed, self.signature):
            raise InvalidSignature("bad SenderKeyMessage signature")


# -- crypto ---------------------------------------------------------------------------------------


def _message_seed(chain_key: bytes) -> bytes:
    return hmac_sha256(chain_key, _MESSAGE_KEY_SEED)


def _next_chain_key(chain_key: bytes) -> bytes:
    return hmac_sha256(chain_key, _CHAIN_KEY_SEED)


def _cipher(seed: bytes) -> Cipher[modes.CBC]:
    derived = hkdf(seed, 48, b"\x00" * 32, GROUP_INFO)
    return Cipher(algorithms.AES(derived[16:]), modes.CBC(derived[:16]))


def _encrypt(seed: bytes, plaintext: bytes) -> bytes:
    padder = padding.PKCS7(128).padder()
    encryptor = _cipher(seed).encryptor()
    return encryptor.update(padder.update(plaintext) + padder.finalize()) + encryptor.finalize()


def _decrypt(seed: bytes, ciphertext: bytes) -> bytes:
    if len(ciphertext) % 16:
        raise InvalidMessage("ciphertext is not a whole number of AES blocks")
    decryptor = _cipher(seed).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError as exc:
        raise InvalidMessage("bad PKCS#7 padding under a valid signature") from exc


def _check_key_id(key_id: int) -> int:
    if not 0 <= key_id <= _UINT32_MAX:
        raise ValueError(f"a sender key id is a uint32, got {key_id}")
    return key_id


def _chain_key(data: str) -> bytes:
    key = bytes.fromhex(data)
    if len(key) != CHAIN_KEY_LENGTH:
        raise ValueError("stored chain key is not 32 bytes")
    return key


# -- sending --------------------------------------------------------------------------------------


@dataclass(slots=True)
class GroupSender:
    """Our own sender key in one group: encrypts what we post and describes itself to recipients.

    Iterations are used consecutively from 0 (Baileys' own sender skips every other one; receivers
    cope with both). Persist after every `encrypt`: reusing an iteration would reuse a key.
    """

    key_id: int
    signing_key: KeyPair
    chain_key: bytes
    iteration: int = 0  # the next message's iteration

    @classmethod
    def generate(cls, key_id: int | None = None) -> GroupSender:
        # Never 0: protobufjs writes it, but some readers treat an id of 0 like an absent one.
        return cls(
            key_id=secrets.randbelow(MAX_KEY_ID) + 1 if key_id is None else _check_key_id(key_id),
            signing_key=KeyPair.generate(),
            chain_key=secrets.token_bytes(CHAIN_KEY_LENGTH),
        )

    @property
    def signing_public(self) -> bytes:
        return signal_key(self.signing_key.public)

    def distribution(self) -> SenderKeyDistributionMessage:
        """The current chain state: recipients given it can read this message and later ones."""
        return SenderKeyDistributionMessage(self.key_id, self.iteration, self.chain_key, self.signing_public)

    def distribution_message(self) -> bytes:
        """`axolotlSenderKeyDistributionMessage` bytes for a `Message.senderKeyDistributionMessage`."""
        return self.distribution().serialize()

    def encrypt(self, plaintext: bytes) -> bytes:
        """A serialized SenderKeyMessage (the content of <enc type="skmsg">) for padded plaintext."""
        message = SenderKeyMessage.build(
            signing_key=self.signing_key,
            key_id=self.key_id,
            iteration=self.iteration,
            ciphertext=_encrypt(_message_seed(self.chain_key), plaintext),
        )
        self.chain_key = _next_chain_key(self.chain_key)
        self.iteration += 1
        return message.serialize()

    def to_json(self) -> dict[str, Any]:
        return {
            "format": RECORD_FORMAT,
            "key_id": self.key_id,
            "signing_key": self.signing_key.to_json(),
            "chain_key": self.chain_key.hex(),
            "iteration": self.iteration,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GroupSender:
        if data.get("format") != RECORD_FORMAT:
            raise ValueError(f"unsupported sender key format {data.get('format')!r}")
        return cls(
            key_id=_check_key_id(int(data["key_id"])),
            signing_key=KeyPair.from_json(data["signing_key"]),
            chain_key=_chain_key(data["chain_key"]),
            iteration=int(data["iteration"]),
        )


# -- receiving ------------------------------------------------------------------------------------


@dataclass(slots=True)
class SenderKeyState:
    """One sender key received from a sender: its chain and the keys of iterations skipped so far."""

    key_id: int
    signing_key: bytes  # 33-byte public key
    chain_key: bytes
    iteration: int  # the chain key's iteration: the lowest not yet derived
    message_keys: dict[int, bytes] = field(default_factory=dict)  # iteration -> seed, ascending

    @classmethod
    def from_distribution(cls, message: SenderKeyDistributionMessage) -> SenderKeyState:
        return cls(message.key_id, message.signing_key, message.chain_key, message.iteration)

    def copy(self) -> SenderKeyState:
        return SenderKeyState(self.key_id, self.signing_key, self.chain_key, self.iteration, dict(self.message_keys))

    def take_message_key(self, iteration: int) -> bytes:
        """The seed for `iteration`, used up; skipped iterations keep theirs for late messages."""
        if iteration < self.iteration:
            seed = self.message_keys.pop(iteration, None)
            if seed is None:
                raise DuplicateMessage(
                    f"iteration {iteration} was already decrypted or precedes the sender key we hold"
                )
            return seed
        if iteration - self.iteration > MAX_FORWARD_JUMP:
            raise InvalidMessage(f"iteration {iteration} is more than {MAX_FORWARD_JUMP} messages ahead")
        while self.iteration < iteration:
            self.message_keys[self.iteration] = _message_seed(self.chain_key)
            self._advance()
        seed = _message_seed(self.chain_key)
        self._advance()
        # Like Baileys, forget the oldest skipped keys beyond the bound.
        for old in list(self.message_keys)[: max(len(self.message_keys) - MAX_MESSAGE_KEYS, 0)]:
            del self.message_keys[old]
        return seed

    def _advance(self) -> None:
        self.chain_key = _next_chain_key(self.chain_key)
        self.iteration += 1

    def to_json(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "signing_key": self.signing_key.hex(),
            "chain_key": self.chain_key.hex(),
            "iteration": self.iteration,
            "message_keys": [[i, seed.hex()] for i, seed in self.message_keys.items()],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SenderKeyState:
        return cls(
            key_id=_check_key_id(int(data["key_id"])),
            signing_key=signal_key(bytes.fromhex(data["signing_key"])),
            chain_key=_chain_key(data["chain_key"]),
            iteration=int(data["iteration"]),
            message_keys={int(i): bytes.fromhex(seed) for i, seed in sorted(data["message_keys"])},
        )


@dataclass(slots=True)
class SenderKeyRecord:
    """Everything received from one sender device in one group: its sender keys, oldest first.

    A failed `decrypt` changes nothing, so a forged or replayed message cannot damage the record.
    Persist after `process` and after every successful `decrypt`.
    """

    states: list[SenderKeyState] = field(default_factory=list)

    def state(self, key_id: int) -> SenderKeyState | None:
        return next((s for s in self.states if s.key_id == key_id), None)

    def process(self, data: bytes) -> SenderKeyDistributionMessage:
        """Take in a distribution message (what a 1:1 message's `senderKeyDistributionMessage`
        carries). A repeat of a key we hold keeps our state, so it cannot reopen used iterations;
        a different key under a known id replaces it. At most `MAX_STATES` ids are kept."""
        message = SenderKeyDistributionMessage.parse(data)
        known = self.state(message.key_id)
        if known is not None:
            if known.signing_key == message.signing_key:
                return message
            self.states.remove(known)
        self.states.append(SenderKeyState.from_distribution(message))
        del self.states[:-MAX_STATES]
        return message

    def decrypt(self, data: bytes) -> bytes:
        """Decrypt a SenderKeyMessage (the content of <enc type="skmsg">); returns the padded
        plaintext. Out-of-order iterations within `MAX_FORWARD_JUMP` are fine; each decrypts once."""
        message = SenderKeyMessage.parse(data)
        state = self.state(message.key_id)
        if state is None:
            raise NoSenderKey(message.key_id, any_known=bool(self.states))
        message.verify_signature(state.signing_key)
        work = state.copy()
        plaintext = _decrypt(work.take_message_key(message.iteration), message.ciphertext)
        self.states[self.states.index(state)] = work
        return plaintext

    def to_json(self) -> dict[str, Any]:
        return {"format": RECORD_FORMAT, "states": [s.to_json() for s in self.states]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SenderKeyRecord:
        if data.get("format") != RECORD_FORMAT:
            raise ValueError(f"unsupported sender key record format {data.get('format')!r}")
        return cls([SenderKeyState.from_json(s) for s in data["states"]])
