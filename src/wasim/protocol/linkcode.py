"""Pairing by code ("Link with phone number instead"), the phone's half, sans-I/O.

The companion shows an eight-character code and sends the server its ephemeral public key
wrapped under a key derived from that code (PBKDF2-SHA256, 2<<16 rounds, a random salt; then
AES-256-CTR). The person types the code on the phone, which unwraps the companion's key with what
was typed, wraps its own ephemeral key the same way, and sends it with the account's identity
key. The companion answers with a key bundle sealed (AES-GCM) under a key both sides derive from
the ephemeral Diffie-Hellman; only when the typed code was right can the phone open it. Both then
derive the ADV secret that keys the `pair-success` HMAC, as the QR carries it in the QR flow.

CTR carries no integrity check: a wrong code is noticed only when the bundle does not open.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from wasim.protocol.crypto import KeyPair, hkdf

CODE_LENGTH = 8
# WhatsApp's companions draw codes from Crockford-like base32 without 0, I, O, U; a custom code
# only has to be eight characters, but the phone's keypad offers letters and digits.
CODE_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTVWXYZ"
PBKDF2_ROUNDS = 2 << 16
BUNDLE_INFO = b"link_code_pairing_key_bundle_encryption_key"
ADV_SECRET_INFO = b"adv_secret"
_SALT, _CTR_IV, _GCM_IV, _KEY = 32, 16, 12, 32


class LinkCodeError(Exception):
    """What the phone says when a code cannot link a device."""


def normalize_code(typed: str) -> str:
    """The code as typed on the phone: case, spaces and the dash between its halves don't count."""
    code = "".join(typed.split()).replace("-", "").upper()
    if len(code) != CODE_LENGTH or not code.isalnum() or not code.isascii():
        raise LinkCodeError(f"a linking code has {CODE_LENGTH} letters and digits, like ABCD-EFGH")
    return code


def random_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def code_key(code: str, salt: bytes) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", code.encode(), salt, PBKDF2_ROUNDS, _KEY)


def _ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    ctx = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return ctx.update(data) + ctx.finalize()


def wrap_key(code: str, public: bytes, salt: bytes | None = None, iv: bytes | None = None) -> bytes:
    """salt (32) || iv (16) || AES-256-CTR(PBKDF2(code, salt), public)."""
    salt = salt if salt is not None else secrets.token_bytes(_SALT)
    iv = iv if iv is not None else secrets.token_bytes(_CTR_IV)
    return salt + iv + _ctr(code_key(code, salt), iv, public)


def unwrap_key(code: str, wrapped: bytes) -> bytes:
    """The 32-byte key inside `wrapped`; with a wrong code, 32 bytes of nonsense (no check)."""
    if len(wrapped) != _SALT + _CTR_IV + _KEY:
        raise LinkCodeError(f"a wrapped key has {_SALT + _CTR_IV + _KEY} bytes, got {len(wrapped)}")
    salt, iv, body = wrapped[:_SALT], wrapped[_SALT : _SALT + _CTR_IV], wrapped[_SALT + _CTR_IV :]
    return _ctr(code_key(code, salt), iv, body)


@dataclass(frozen=True, slots=True)
class KeyBundle:
    companion_identity: bytes
    primary_identity: bytes
    random: bytes


def _bundle_key(shared: bytes, salt: bytes) -> bytes:
    return hkdf(shared, _KEY, salt, BUNDLE_INFO)


def seal_bundle(shared: bytes, bundle: KeyBundle) -> bytes:
    """What the companion sends in `companion_finish` (for tests of the phone's side)."""
    salt, iv = secrets.token_bytes(_SALT), secrets.token_bytes(_GCM_IV)
    plain = bundle.companion_identity + bundle.primary_identity + bundle.random
    return salt + iv + AESGCM(_bundle_key(shared, salt)).encrypt(iv, plain, None)


def open_bundle(shared: bytes, sealed: bytes) -> KeyBundle:
    """The companion's key bundle, or LinkCodeError when it does not open: the code was wrong."""
    if len(sealed) < _SALT + _GCM_IV + 16:
        raise LinkCodeError("the companion's key bundle is too short")
    salt, iv, body = sealed[:_SALT], sealed[_SALT : _SALT + _GCM_IV], sealed[_SALT + _GCM_IV :]
    try:
        plain = AESGCM(_bundle_key(shared, salt)).decrypt(iv, body, None)
    except InvalidTag as exc:
        raise LinkCodeError("the key bundle does not open: the code typed on the phone is not the code shown") from exc
    if len(plain) != 3 * _KEY:
        raise LinkCodeError(f"the key bundle has {len(plain)} bytes, expected {3 * _KEY}")
    return KeyBundle(plain[:_KEY], plain[_KEY : 2 * _KEY], plain[2 * _KEY :])


def adv_secret(ephemeral_shared: bytes, identity_shared: bytes, random: bytes) -> bytes:
    """The secret that keys pair-success's HMAC (HKDF with no salt, info "adv_secret")."""
    return hkdf(ephemeral_shared + identity_shared + random, _KEY, b"", ADV_SECRET_INFO)


@dataclass(frozen=True, slots=True)
class PrimaryHello:
    """The phone's answer to a typed code: its wrapped ephemeral key, and what it keeps."""

    ephemeral: KeyPair
    companion_ephemeral: bytes  # as unwrapped with the typed code (nonsense when it was wrong)
    wrapped_primary_ephemeral: bytes


def primary_hello(typed_code: str, wrapped_companion_ephemeral: bytes) -> PrimaryHello:
    code = normalize_code(typed_code)
    ephemeral = KeyPair.generate()
    return PrimaryHello(
        ephemeral=ephemeral,
        companion_ephemeral=unwrap_key(code, wrapped_companion_ephemeral),
        wrapped_primary_ephemeral=wrap_key(code, ephemeral.public),
    )


def finish(hello: PrimaryHello, account_identity: KeyPair, sealed_bundle: bytes, companion_identity: bytes) -> bytes:
    """Check the companion's finish against the hello and return the ADV secret.

    Raises LinkCodeError when the bundle does not open (a wrong code) or names other keys.
    """
    shared = hello.ephemeral.dh(hello.companion_ephemeral)
    bundle = open_bundle(shared, sealed_bundle)
    if bundle.companion_identity != companion_identity:
        raise LinkCodeError("the key bundle names another companion identity than the companion sent")
    if bundle.primary_identity != account_identity.public:
        raise LinkCodeError("the key bundle names another account identity than the phone's")
    return adv_secret(shared, account_identity.dh(companion_identity), bundle.random)
