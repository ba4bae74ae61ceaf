"""Signal sessions as libsignal-node 6 builds and ratchets them (session_builder.js, session_cipher.js).

libsignal-node's key schedule differs from the Signal specification in two ways both sides must
share: X3DH keeps only the first 32 bytes of HKDF("WhisperText") (the root key), and both parties
derive their first chains by a DH ratchet step from it (the initiator against the responder's signed
pre-key at once; the responder on the first message it receives). Message counters start at 0 and
`previousCounter` is the *index* of the last message sent on the previous sending chain.

A `SessionRecord` holds every session with one remote device: at most one open (used to encrypt)
plus closed ones that still decrypt late messages. All state is kept as plain values and converts to
and from JSON-able dicts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes, hmac, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import DuplicateMessage, InvalidMessage, NoSession
from .keys import KeyPair, KeyStore, PreKey, PreKeyBundle, SignedPreKey, agree, signal_key
from .wire import PreKeyWhisperMessage, WhisperMessage

ROOT_INFO = b"WhisperText"
RATCHET_INFO = b"WhisperRatchet"
MESSAGE_KEYS_INFO = b"WhisperMessageKeys"

# libsignal-node refuses to derive more than 2000 keys ahead ("Over 2000 messages into the future!").
MAX_FORWARD_JUMP = 2000
# libsignal-node keeps every old receiving chain and skipped key forever; we bound both.
MAX_RECEIVING_CHAINS = 5
MAX_SKIPPED_KEYS = 2000
# libsignal-node's previousCounter for a sending chain it never used: -1 as a uint32.
UNUSED_CHAIN = 0xFFFFFFFF
# libsignal-node's CLOSED_SESSIONS_MAX: entries kept per record.
MAX_SESSIONS = 40

RECORD_FORMAT = 1


def _hkdf(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    return HKDF(hashes.SHA256(), length, salt, info).derive(ikm)


def _hmac(key: bytes, data: bytes) -> bytes:
    mac = hmac.HMAC(key, hashes.SHA256())
    mac.update(data)
    return mac.finalize()


def _root_key(agreements: list[bytes]) -> bytes:
    # 32 bytes of 0xFF mark the Curve25519 key type (the "discontinuity bytes" of X3DH).
    return _hkdf(b"\xff" * 32 + b"".join(agreements), b"\x00" * 32, ROOT_INFO, 32)


def _message_keys(message_key: bytes) -> tuple[bytes, bytes, bytes]:
    """(AES-256 key, HMAC key, CBC IV) for one message."""
    derived = _hkdf(message_key, b"\x00" * 32, MESSAGE_KEYS_INFO, 80)
    return derived[:32], derived[32:64], derived[64:80]


def _aes_cbc_encrypt(key: bytes, iv: bytes, plaintext: bytes) -> bytes:
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return encryptor.update(padded) + encryptor.finalize()


def _aes_cbc_decrypt(key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    if len(ciphertext) % 16:
        raise InvalidMessage("ciphertext is not a whole number of AES blocks")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError as exc:
        raise InvalidMessage("bad PKCS#7 padding after a valid MAC") from exc


@dataclass(slots=True)
class Chain:
    """A symmetric KDF chain: message key n = HMAC(CK_n, 0x01), CK_{n+1} = HMAC(CK_n, 0x02)."""

    key: bytes | None  # None once closed: no further keys can be derived
    next_index: int = 0
    skipped: dict[int, bytes] = field(default_factory=dict)  # derived, not yet used

    def copy(self) -> Chain:
        return Chain(self.key, self.next_index, dict(self.skipped))

    def _derive(self) -> bytes:
        if self.key is None:
            raise InvalidMessage("message for a closed chain")
        message_key = _hmac(self.key, b"\x01")
        self.key = _hmac(self.key, b"\x02")
        self.next_index += 1
        return message_key

    def next_sending_key(self) -> tuple[int, bytes]:
        index = self.next_index
        return index, self._derive()

    def _check_jump(self, counter: int) -> None:
        # Same bound as libsignal's fillMessageKeys: at most 2000 keys derived ahead.
        if counter - self.next_index >= MAX_FORWARD_JUMP:
            raise InvalidMessage(f"counter {counter} is more than {MAX_FORWARD_JUMP} messages ahead")

    def fill_through(self, counter: int) -> None:
        """Keep the keys up to and including `counter`, for late messages of a chain being closed."""
        self._check_jump(counter)
        while self.next_index <= counter:
            index = self.next_index
            self.skipped[index] = self._derive()

    def receiving_key(self, counter: int) -> bytes:
        """The key for message `counter`, used up: a second call for the same counter fails."""
        if counter < self.next_index:
            key = self.skipped.pop(counter, None)
            if key is None:
                raise DuplicateMessage(f"message key {counter} was already used")
            return key
        self._check_jump(counter)
        self.fill_through(counter - 1)
        return self._derive()

    def to_json(self) -> dict[str, Any]:
        return {
            "key": None if self.key is None else self.key.hex(),
            "next_index": self.next_index,
            "skipped": [[i, k.hex()] for i, k in self.skipped.items()],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Chain:
        key = data["key"]
        return cls(
            None if key is None else bytes.fromhex(key),
            int(data["next_index"]),
            {int(i): bytes.fromhex(k) for i, k in data["skipped"]},
        )


@dataclass(frozen=True, slots=True)
class PendingPreKey:
    """What the initiator repeats in every pkmsg until it has received a reply on the session."""

    base_key: bytes
    signed_pre_key_id: int
    pre_key_id: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "base_key": self.base_key.hex(),
            "signed_pre_key_id": self.signed_pre_key_id,
            "pre_key_id": self.pre_key_id,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PendingPreKey:
        pre_key_id = data["pre_key_id"]
        return cls(
            bytes.fromhex(data["base_key"]),
            int(data["signed_pre_key_id"]),
            None if pre_key_id is None else int(pre_key_id),
        )


@dataclass(slots=True, eq=False)  # sessions are compared by identity
class SessionState:
    """One X3DH-established session with its double ratchet."""

    base_key: bytes  # the initiator's ephemeral key: identifies the session in both records
    initiated_by_us: bool
    remote_identity: bytes
    remote_registration_id: int
    root_key: bytes
    ratchet_key: KeyPair  # our current ratchet pair (the responder starts with its signed pre-key)
    remote_ratchet_key: bytes  # the peer's ratchet key we last stepped with
    previous_counter: int
    sending_chain: Chain | None
    receiving_chains: dict[bytes, Chain]  # by the peer's ratchet key, oldest first
    pending_pre_key: PendingPreKey | None = None
    closed: bool = False

    # -- establishing -------------------------------------------------------------------------

    @classmethod
    def initiate(cls, keys: KeyStore, bundle: PreKeyBundle) -> SessionState:
        """X3DH as initiator from a fetched bundle; the first chain is ready for sending."""
        base = KeyPair.generate()
        base_key = signal_key(base.public)
        agreements = [
            agree(keys.identity, bundle.signed_pre_key),
            agree(base, bundle.identity_key),
            agree(base, bundle.signed_pre_key),
        ]
        if bundle.pre_key is not None:
            agreements.append(agree(base, bundle.pre_key))
        state = cls(
            base_key=base_key,
            initiated_by_us=True,
            remote_identity=bundle.identity_key,
            remote_registration_id=bundle.registration_id,
            root_key=_root_key(agreements),
            ratchet_key=KeyPair.generate(),
            remote_ratchet_key=bundle.signed_pre_key,
            previous_counter=0,
            sending_chain=None,
            receiving_chains={},
            pending_pre_key=PendingPreKey(base_key, bundle.signed_pre_key_id, bundle.pre_key_id),
        )
        state.sending_chain = Chain(state._ratchet_root(bundle.signed_pre_key))
        return state

    @classmethod
    def respond(
        cls,
        keys: KeyStore,
        signed_pre_key: SignedPreKey,
        pre_key: PreKey | None,
        message: PreKeyWhisperMessage,
    ) -> SessionState:
        """X3DH as responder to a pkmsg; chains appear when its WhisperMessage is decrypted."""
        agreements = [
            agree(signed_pre_key.key_pair, message.identity_key),
            agree(keys.identity, message.base_key),
            agree(signed_pre_key.key_pair, message.base_key),
        ]
        if pre_key is not None:
            agreements.append(agree(pre_key.key_pair, message.base_key))
        return cls(
            base_key=message.base_key,
            initiated_by_us=False,
            remote_identity=message.identity_key,
            remote_registration_id=message.registration_id,
            root_key=_root_key(agreements),
            ratchet_key=signed_pre_key.key_pair,
            remote_ratchet_key=message.base_key,
            previous_counter=0,
            sending_chain=None,
            receiving_chains={},
        )

    # -- ratchet ------------------------------------------------------------------------------

    def _ratchet_root(self, their_key: bytes) -> bytes:
        """Mix DH(our ratchet key, theirs) into the root key; return the new chain key."""
        derived = _hkdf(agree(self.ratchet_key, their_key), self.root_key, RATCHET_INFO, 64)
        self.root_key = derived[:32]
        return derived[32:]

    def _step(self, their_key: bytes, previous_counter: int) -> None:
        current = self.receiving_chains.get(self.remote_ratchet_key)
        if current is not None:
            # Keep keys for the peer's unreceived messages on the old chain, then close it.
            # libsignal-node sends -1 as 0xFFFFFFFF for a chain it never used (or, after a lost
            # session update, thinks it never used): nothing to keep. A phone's libsignal does not
            # use previousCounter to decrypt, so it must not make the message fail here either.
            if previous_counter != UNUSED_CHAIN:
                current.fill_through(previous_counter)
            current.key = None
        self.receiving_chains[their_key] = Chain(self._ratchet_root(their_key))
        if self.sending_chain is not None:
            # libsignal sends the index of the last message of the old chain, not a count.
            # (It would send -1 as 0xFFFFFFFF for an unused chain; we send 0, which is harmless.)
            self.previous_counter = max(self.sending_chain.next_index - 1, 0)
        self.ratchet_key = KeyPair.generate()
        self.sending_chain = Chain(self._ratchet_root(their_key))
        self.remote_ratchet_key = their_key
        while len(self.receiving_chains) > MAX_RECEIVING_CHAINS:
            del self.receiving_chains[next(iter(self.receiving_chains))]

    def _trim_skipped(self) -> None:
        excess = sum(len(c.skipped) for c in self.receiving_chains.values()) - MAX_SKIPPED_KEYS
        for chain in self.receiving_chains.values():
            if excess <= 0:
                return
            for index in sorted(chain.skipped)[:excess]:
                del chain.skipped[index]
                excess -= 1

    def encrypt(self, our_identity: bytes, plaintext: bytes) -> WhisperMessage:
        if self.sending_chain is None:
            raise NoSession("session has no sending chain yet")
        counter, message_key = self.sending_chain.next_sending_key()
        cipher_key, mac_key, iv = _message_keys(message_key)
        return WhisperMessage.build(
            mac_key=mac_key,
            sender_identity=our_identity,
            receiver_identity=self.remote_identity,
            ratchet_key=signal_key(self.ratchet_key.public),
            counter=counter,
            previous_counter=self.previous_counter,
            ciphertext=_aes_cbc_encrypt(cipher_key, iv, plaintext),
        )

    def decrypt(self, our_identity: bytes, message: WhisperMessage) -> bytes:
        """Decrypt and advance; on any error the state is left exactly as it was."""
        work = self.copy()
        plaintext = work._decrypt_in_place(our_identity, message)
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(work, f.name))
        return plaintext

    def _decrypt_in_place(self, our_identity: bytes, message: WhisperMessage) -> bytes:
        if message.ratchet_key == signal_key(self.ratchet_key.public):
            raise InvalidMessage("message uses our own ratchet key")
        if message.ratchet_key not in self.receiving_chains:
            self._step(message.ratchet_key, message.previous_counter)
        message_key = self.receiving_chains[message.ratchet_key].receiving_key(message.counter)
        cipher_key, mac_key, iv = _message_keys(message_key)
        message.verify_mac(mac_key, self.remote_identity, our_identity)
        plaintext = _aes_cbc_decrypt(cipher_key, iv, message.ciphertext)
        # The peer has the session now: stop wrapping our messages in pkmsgs.
        self.pending_pre_key = None
        self._trim_skipped()
        return plaintext

    def copy(self) -> SessionState:
        return dataclasses.replace(
            self,
            sending_chain=None if self.sending_chain is None else self.sending_chain.copy(),
            receiving_chains={k: c.copy() for k, c in self.receiving_chains.items()},
        )

    # -- persistence --------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "base_key": self.base_key.hex(),
            "initiated_by_us": self.initiated_by_us,
            "remote_identity": self.remote_identity.hex(),
            "remote_registration_id": self.remote_registration_id,
            "root_key": self.root_key.hex(),
            "ratchet_key": self.ratchet_key.to_json(),
            "remote_ratchet_key": self.remote_ratchet_key.hex(),
            "previous_counter": self.previous_counter,
            "sending_chain": None if self.sending_chain is None else self.sending_chain.to_json(),
            "receiving_chains": [{"ratchet_key": k.hex(), **c.to_json()} for k, c in self.receiving_chains.items()],
            "pending_pre_key": None if self.pending_pre_key is None else self.pending_pre_key.to_json(),
            "closed": self.closed,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SessionState:
        sending, pending = data["sending_chain"], data["pending_pre_key"]
        return cls(
            base_key=bytes.fromhex(data["base_key"]),
            initiated_by_us=bool(data["initiated_by_us"]),
            remote_identity=bytes.fromhex(data["remote_identity"]),
            remote_registration_id=int(data["remote_registration_id"]),
            root_key=bytes.fromhex(data["root_key"]),
            ratchet_key=KeyPair.from_json(data["ratchet_key"]),
            remote_ratchet_key=bytes.fromhex(data["remote_ratchet_key"]),
            previous_counter=int(data["previous_counter"]),
            sending_chain=None if sending is None else Chain.from_json(sending),
            receiving_chains={bytes.fromhex(c["ratchet_key"]): Chain.from_json(c) for c in data["receiving_chains"]},
            pending_pre_key=None if pending is None else PendingPreKey.from_json(pending),
            closed=bool(data["closed"]),
        )


@dataclass(slots=True)
class SessionRecord:
    """All sessions with one remote device, most recently used first; at most one is open."""

    sessions: list[SessionState] = field(default_factory=list)

    @property
    def open_session(self) -> SessionState | None:
        return next((s for s in self.sessions if not s.closed), None)

    def find_by_base_key(self, base_key: bytes) -> SessionState | None:
        """The session a pkmsg with this base key belongs to (only sessions the peer started)."""
        return next((s for s in self.sessions if s.base_key == base_key and not s.initiated_by_us), None)

    def install(self, state: SessionState, *, make_open: bool = True) -> None:
        """Add `state`; by default it becomes the open session and the previous one is closed
        (kept for late messages). With `make_open=False` it is added closed, unless none is open."""
        current = self.open_session
        if current is not None:
            if make_open:
                current.closed = True
            else:
                state.closed = True
        self.sessions.insert(0, state)
        while len(self.sessions) > MAX_SESSIONS:
            oldest_closed = max(i for i, s in enumerate(self.sessions) if s.closed)
            del self.sessions[oldest_closed]

    def mark_used(self, state: SessionState) -> None:
        self.sessions.remove(state)
        self.sessions.insert(0, state)

    def candidates(self, ratchet_key: bytes) -> list[SessionState]:
        """Sessions to try for a msg: one that knows its ratchet key, then the open one, then the rest."""
        owners = [s for s in self.sessions if ratchet_key in s.receiving_chains]
        open_session = [s for s in self.sessions if not s.closed and s not in owners]
        rest = [s for s in self.sessions if s not in owners and s not in open_session]
        return owners + open_session + rest

    def to_json(self) -> dict[str, Any]:
        return {"format": RECORD_FORMAT, "sessions": [s.to_json() for s in self.sessions]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SessionRecord:
        if data.get("format") != RECORD_FORMAT:
            raise ValueError(f"unsupported session record format {data.get('format')!r}")
        return cls([SessionState.from_json(s) for s in data["sessions"]])
