"""Signal protocol (X3DH + Double Ratchet), wire-compatible with libsignal-node 6 as used by Baileys.

Sans-I/O: keys and sessions are plain objects that convert to and from JSON-able dicts; nothing
here reads files, sockets or clocks. Typical use for one simulated contact talking to one device:

    keys = KeyStore.generate()                       # persisted with keys.to_json()
    record = SessionRecord()                          # one per remote device address
    cipher = SessionCipher(keys, record)
    cipher.process_bundle(bundle_from_key_fetch)      # or decrypt an incoming pkmsg first
    enc_type, body = cipher.encrypt(pad(message_proto_bytes))
    message_proto_bytes = unpad(cipher.decrypt(enc_type, body))
"""

from .cipher import Ciphertext, MessageType, SessionCipher
from .errors import (
    DuplicateMessage,
    InvalidKey,
    InvalidMac,
    InvalidMessage,
    InvalidPadding,
    InvalidPreKeyId,
    NoSession,
    SignalError,
    UntrustedIdentity,
)
from .keys import (
    IdentityKeyPair,
    KeyPair,
    KeyStore,
    PreKey,
    PreKeyBundle,
    SignedPreKey,
    generate_registration_id,
    raw_key,
    signal_key,
    xeddsa_sign,
    xeddsa_verify,
)
from .padding import pad, unpad
from .session import SessionRecord, SessionState
from .wire import PreKeyWhisperMessage, WhisperMessage

__all__ = [
    "Ciphertext",
    "DuplicateMessage",
    "IdentityKeyPair",
    "InvalidKey",
    "InvalidMac",
    "InvalidMessage",
    "InvalidPadding",
    "InvalidPreKeyId",
    "KeyPair",
    "KeyStore",
    "MessageType",
    "NoSession",
    "PreKey",
    "PreKeyBundle",
    "PreKeyWhisperMessage",
    "SessionCipher",
    "SessionRecord",
    "SessionState",
    "SignalError",
    "SignedPreKey",
    "UntrustedIdentity",
    "WhisperMessage",
    "generate_registration_id",
    "pad",
    "raw_key",
    "signal_key",
    "unpad",
    "xeddsa_sign",
    "xeddsa_verify",
]
