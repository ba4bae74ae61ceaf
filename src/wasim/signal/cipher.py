"""Encrypt to and decrypt from one remote device: the sans-I/O counterpart of libsignal's
SessionBuilder + SessionCipher.

A `SessionCipher` works on a `KeyStore` (ours) and the `SessionRecord` for one remote address and
mutates them in place; the caller persists both afterwards (`to_json()`). A failed decryption
changes nothing, so a bad or replayed message cannot damage a session.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from .errors import InvalidKey, InvalidMessage, InvalidPreKeyId, NoSession, SignalError, UntrustedIdentity
from .keys import KeyStore, PreKeyBundle, signal_key
from .session import SessionRecord, SessionState
from .wire import PreKeyWhisperMessage, WhisperMessage

MessageType = Literal["pkmsg", "msg"]


class Ciphertext(NamedTuple):
    type: MessageType  # the `type` attribute of WhatsApp's <enc> node
    body: bytes


class SessionCipher:
    def __init__(self, keys: KeyStore, record: SessionRecord, *, trusted_identity: bytes | None = None) -> None:
        """`trusted_identity`, when given, is the only identity key accepted for the peer
        (Baileys trusts any; a server that knows the device's uploaded key can be stricter)."""
        self.keys = keys
        self.record = record
        self.trusted_identity = None if trusted_identity is None else signal_key(trusted_identity)

    def _check_trust(self, identity_key: bytes) -> None:
        if self.trusted_identity is not None and identity_key != self.trusted_identity:
            raise UntrustedIdentity(identity_key)

    @property
    def has_open_session(self) -> bool:
        return self.record.open_session is not None

    def process_bundle(self, bundle: PreKeyBundle, *, verify_signature: bool = True) -> None:
        """Start a new session as X3DH initiator; it replaces the open one, if any.

        libsignal-node skips the signature check here; we check by default because every real
        bundle (Baileys' uploaded keys included) carries a valid XEdDSA signature.
        """
        self._check_trust(bundle.identity_key)
        if verify_signature and not bundle.signature_valid():
            raise InvalidKey("the signed pre-key signature does not verify")
        self.record.install(SessionState.initiate(self.keys, bundle))

    def encrypt(self, plaintext: bytes) -> Ciphertext:
        """Encrypt on the open session: a pkmsg until the peer has answered on it, then a msg."""
        state = self.record.open_session
        if state is None:
            raise NoSession("no open session")
        self._check_trust(state.remote_identity)
        message = state.encrypt(self.keys.identity_key, plaintext)
        pending = state.pending_pre_key
        if pending is None:
            return Ciphertext("msg", message.serialize())
        wrapped = PreKeyWhisperMessage(
            registration_id=self.keys.registration_id,
            pre_key_id=pending.pre_key_id,
            signed_pre_key_id=pending.signed_pre_key_id,
            base_key=pending.base_key,
            identity_key=self.keys.identity_key,
            message=message,
        )
        return Ciphertext("pkmsg", wrapped.serialize())

    def decrypt(self, type_: str, body: bytes, *, replace_open_session: bool = True) -> bytes:
        """Dispatch on the <enc type=…> attribute."""
        if type_ == "pkmsg":
            return self.decrypt_pkmsg(body, replace_open_session=replace_open_session)
        if type_ == "msg":
            return self.decrypt_msg(body)
        raise InvalidMessage(f"unsupported message type {type_!r}")

    def decrypt_pkmsg(self, data: bytes, *, replace_open_session: bool = True) -> bytes:
        """Decrypt a PreKeyWhisperMessage, starting a session if its base key is new.

        Like libsignal, the new session replaces the open one. Pass `replace_open_session=False`
        when the peer's pkmsg crossed one of ours (it fetched our bundle before it could have
        processed our pkmsg): libsignal will switch to our session once it processes our pkmsg,
        so we must stay on it; the new session is kept closed, for decrypting only.
        A one-time pre-key it consumes is removed from the key store.
        """
        message = PreKeyWhisperMessage.parse(data)
        self._check_trust(message.identity_key)
        our_identity = self.keys.identity_key
        known = self.record.find_by_base_key(message.base_key)
        if known is not None:
            # The peer keeps sending pkmsgs until it hears from us: same session, nothing to build.
            plaintext = known.decrypt(our_identity, message.message)
            self.record.mark_used(known)
            return plaintext
        signed_pre_key = self.keys.find_signed_pre_key(message.signed_pre_key_id)
        if signed_pre_key is None:
            raise InvalidPreKeyId("signed pre-key", message.signed_pre_key_id)
        pre_key = None
        if message.pre_key_id is not None:
            pre_key = self.keys.pre_keys.get(message.pre_key_id)
            if pre_key is None:
                raise InvalidPreKeyId("pre-key", message.pre_key_id)
        state = SessionState.respond(self.keys, signed_pre_key, pre_key, message)
        plaintext = state.decrypt(our_identity, message.message)
        # Only a message that decrypted may replace the session or use up the pre-key.
        self.record.install(state, make_open=replace_open_session)
        if pre_key is not None:
            self.keys.remove_pre_key(pre_key.key_id)
        return plaintext

    def decrypt_msg(self, data: bytes) -> bytes:
        """Decrypt a WhisperMessage with whichever session it belongs to (closed ones included,
        for messages the peer sent before a session was replaced)."""
        message = WhisperMessage.parse(data)
        candidates = self.record.candidates(message.ratchet_key)
        if not candidates:
            raise NoSession("no session with this peer")
        errors: list[SignalError] = []
        for state in candidates:
            try:
                self._check_trust(state.remote_identity)
                plaintext = state.decrypt(self.keys.identity_key, message)
            except SignalError as exc:
                errors.append(exc)
                continue
            self.record.mark_used(state)
            return plaintext
        # The first candidate is the session the message most likely belongs to.
        raise errors[0]
