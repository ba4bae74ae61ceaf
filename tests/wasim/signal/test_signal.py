"""wasim's Signal implementation against the real libsignal-node 6 (through signal-oracle.mjs).

Node plays the Baileys side (its storage behaves like Baileys'); Python plays a simulated contact.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from testkit.oracle import NodeOracle, b64, pre_key_bundle, unb64
from testkit.paths import NODE_DIR

from wasim.signal import (
    Ciphertext,
    DuplicateMessage,
    InvalidKey,
    InvalidMac,
    InvalidMessage,
    InvalidPadding,
    InvalidPreKeyId,
    KeyPair,
    KeyStore,
    NoSession,
    PreKeyBundle,
    PreKeyWhisperMessage,
    SessionCipher,
    SessionRecord,
    SignalError,
    UntrustedIdentity,
    WhisperMessage,
    pad,
    signal_key,
    unpad,
    xeddsa_sign,
    xeddsa_verify,
)

pytestmark = pytest.mark.timeout(60)

ORACLE = NODE_DIR / "signal-oracle.mjs"


class Oracle(NodeOracle):
    def __init__(self, stderr_path: Path) -> None:
        super().__init__(ORACLE, stderr_path)
        self._names = itertools.count(1)

    def party(self, pre_keys: int = 5) -> NodeParty:
        name = f"node{next(self._names)}"
        created = self.call("create", name=name, preKeys=pre_keys)
        return NodeParty(self, name, unb64(created["identityKey"]), created["registrationId"])


class NodeParty:
    """A libsignal-node party (the Baileys side); it talks to the Python contact as peer "contact"."""

    def __init__(self, oracle: Oracle, name: str, identity_key: bytes, registration_id: int) -> None:
        self.oracle, self.name = oracle, name
        self.identity_key, self.registration_id = identity_key, registration_id

    def bundle(self, with_pre_key: bool = True) -> PreKeyBundle:
        return pre_key_bundle(self.oracle.call("bundle", name=self.name, withPreKey=with_pre_key)["bundle"])

    def process_bundle(self, bundle: PreKeyBundle) -> None:
        node_bundle: dict[str, Any] = {
            "registrationId": bundle.registration_id,
            "identityKey": b64(bundle.identity_key),
            "signedPreKey": {
                "keyId": bundle.signed_pre_key_id,
                "publicKey": b64(bundle.signed_pre_key),
                "signature": b64(bundle.signed_pre_key_signature),
            },
        }
        if bundle.pre_key is not None:
            node_bundle["preKey"] = {"keyId": bundle.pre_key_id, "publicKey": b64(bundle.pre_key)}
        self.oracle.call("processBundle", name=self.name, peer="contact", bundle=node_bundle)

    def encrypt(self, plaintext: bytes) -> Ciphertext:
        r = self.oracle.call("encrypt", name=self.name, peer="contact", plaintext=b64(plaintext))
        return Ciphertext(r["type"], unb64(r["body"]))

    def decrypt(self, message: Ciphertext) -> bytes:
        r = self.oracle.call("decrypt", name=self.name, peer="contact", type=message.type, body=b64(message.body))
        return unb64(r["plaintext"])

    def session(self) -> dict[str, Any]:
        return self.oracle.call("session", name=self.name, peer="contact")

    def has_pre_key(self, key_id: int) -> bool:
        return bool(self.oracle.call("hasPreKey", name=self.name, keyId=key_id)["present"])


class Contact:
    """A Python-side simulated contact talking to one Node device."""

    def __init__(self, keys: KeyStore | None = None, record: SessionRecord | None = None) -> None:
        self.keys = KeyStore.generate(pre_keys=3) if keys is None else keys
        self.record = SessionRecord() if record is None else record
        self.cipher = SessionCipher(self.keys, self.record)

    def restored(self) -> Contact:
        """A copy that went through JSON, as after a wasim restart."""
        keys = KeyStore.from_json(json.loads(json.dumps(self.keys.to_json())))
        record = SessionRecord.from_json(json.loads(json.dumps(self.record.to_json())))
        return Contact(keys, record)


@pytest.fixture(scope="module")
def oracle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Oracle]:
    o = Oracle(tmp_path_factory.mktemp("oracle") / "stderr.log")
    yield o
    o.close()


def converse(contact: Contact, node: NodeParty, rounds: int = 3) -> None:
    """Alternate directions, several messages in a row each way, checking every plaintext."""
    for r in range(rounds):
        for i in range(1 + r % 3):
            text = f"contact round {r} msg {i}".encode()
            assert node.decrypt(contact.cipher.encrypt(text)) == text
        for i in range(1 + (r + 1) % 3):
            text = f"node round {r} msg {i}".encode()
            assert contact.cipher.decrypt_msg(node.encrypt(text).body) == text


def establish_from_node_bundle(oracle: Oracle, with_pre_key: bool = True) -> tuple[Contact, NodeParty]:
    node, contact = oracle.party(), Contact()
    contact.cipher.process_bundle(node.bundle(with_pre_key))
    first = contact.cipher.encrypt(b"hello")
    assert first.type == "pkmsg"
    assert node.decrypt(first) == b"hello"
    reply = node.encrypt(b"hi")
    assert reply.type == "msg"
    assert contact.cipher.decrypt_msg(reply.body) == b"hi"
    return contact, node


# -- 1. Python contact as X3DH initiator ----------------------------------------------------------


@pytest.mark.parametrize("with_pre_key", [True, False], ids=["one-time-prekey", "signed-prekey-only"])
def test_python_initiator_long_conversation(oracle: Oracle, with_pre_key: bool) -> None:
    node, contact = oracle.party(), Contact()
    bundle = node.bundle(with_pre_key)
    contact.cipher.process_bundle(bundle)

    # pkmsgs (same base key) until the contact has heard back.
    first, second = contact.cipher.encrypt(b"hello"), contact.cipher.encrypt(b"are you there?")
    assert first.type == second.type == "pkmsg"
    pk1, pk2 = PreKeyWhisperMessage.parse(first.body), PreKeyWhisperMessage.parse(second.body)
    assert pk1.base_key == pk2.base_key
    assert pk1.pre_key_id == bundle.pre_key_id
    assert pk1.identity_key == contact.keys.identity_key
    assert pk1.registration_id == contact.keys.registration_id
    assert (pk1.message.counter, pk2.message.counter) == (0, 1)
    assert node.decrypt(first) == b"hello"
    assert node.decrypt(second) == b"are you there?"
    if bundle.pre_key_id is not None:
        assert not node.has_pre_key(bundle.pre_key_id), "libsignal consumes the one-time pre-key"

    reply = node.encrypt(b"yes")
    assert reply.type == "msg"
    # Our protobuf encoder writes exactly what protobufjs writes.
    assert WhisperMessage.parse(reply.body).serialize() == reply.body
    assert contact.cipher.decrypt_msg(reply.body) == b"yes"
    assert contact.cipher.encrypt(b"now a plain msg").type == "msg"
    node_session = node.session()
    assert node_session["open"] and not node_session["pending"]

    converse(contact, node, rounds=6)

    # Out of order within one chain, both directions.
    from_node = [node.encrypt(f"n{i}".encode()) for i in range(4)]
    for i in (2, 0, 3, 1):
        assert contact.cipher.decrypt_msg(from_node[i].body) == f"n{i}".encode()
    from_contact = [contact.cipher.encrypt(f"c{i}".encode()) for i in range(3)]
    for i in (1, 2, 0):
        assert node.decrypt(from_contact[i]) == f"c{i}".encode()

    # Out of order across a ratchet step: two node messages are overtaken by a newer chain.
    old_chain = [node.encrypt(f"old{i}".encode()) for i in range(3)]
    assert contact.cipher.decrypt_msg(old_chain[0].body) == b"old0"
    assert node.decrypt(contact.cipher.encrypt(b"step")) == b"step"
    new_chain = node.encrypt(b"new0")
    last_old_counter = WhisperMessage.parse(old_chain[2].body).counter
    assert WhisperMessage.parse(new_chain.body).previous_counter == last_old_counter
    assert contact.cipher.decrypt_msg(new_chain.body) == b"new0"
    assert contact.cipher.decrypt_msg(old_chain[2].body) == b"old2"
    assert contact.cipher.decrypt_msg(old_chain[1].body) == b"old1"

    # The same across a step in the other direction; previousCounter is the last index sent.
    old_from_contact = [contact.cipher.encrypt(f"old{i}".encode()) for i in range(3)]
    assert node.decrypt(old_from_contact[0]) == b"old0"
    assert contact.cipher.decrypt_msg(node.encrypt(b"step").body) == b"step"
    new_from_contact = contact.cipher.encrypt(b"new0")
    last_old_counter = WhisperMessage.parse(old_from_contact[2].body).counter
    assert WhisperMessage.parse(new_from_contact.body).previous_counter == last_old_counter
    assert node.decrypt(new_from_contact) == b"new0"
    assert node.decrypt(old_from_contact[2]) == b"old2"
    assert node.decrypt(old_from_contact[1]) == b"old1"

    # A duplicate is rejected and leaves the session working.
    for replay in (old_chain[1], new_chain, from_node[3]):
        with pytest.raises(DuplicateMessage):
            contact.cipher.decrypt_msg(replay.body)
    converse(contact, node, rounds=2)


def test_signatures_interoperate(oracle: Oracle) -> None:
    node = oracle.party()
    message = b"\x05" + bytes(range(32))
    node_sig = unb64(oracle.call("sign", name=node.name, message=b64(message))["signature"])
    assert xeddsa_verify(node.identity_key, message, node_sig)
    assert not xeddsa_verify(node.identity_key, message + b"x", node_sig)

    pair = KeyPair.generate()
    sig = xeddsa_sign(pair, message)
    public = b64(signal_key(pair.public))
    assert oracle.call("verify", publicKey=public, message=b64(message), signature=b64(sig))["valid"]
    forged = oracle.call("verify", publicKey=public, message=b64(message + b"x"), signature=b64(sig))
    assert not forged["valid"]
    assert node.bundle().signature_valid()
    assert KeyStore.generate(pre_keys=1).bundle().signature_valid()


# -- 2. libsignal as initiator, Python as responder -----------------------------------------------


@pytest.mark.parametrize("one_time", [True, False], ids=["one-time-prekey", "signed-prekey-only"])
def test_node_initiator_python_responder(oracle: Oracle, one_time: bool) -> None:
    node, contact = oracle.party(), Contact()
    bundle = contact.keys.bundle(one_time=one_time)
    assert oracle.call(
        "verify",
        publicKey=b64(bundle.identity_key),
        message=b64(bundle.signed_pre_key),
        signature=b64(bundle.signed_pre_key_signature),
    )["valid"], "libsignal must accept our signed pre-key signature"
    node.process_bundle(bundle)

    first, second = node.encrypt(b"hello contact"), node.encrypt(b"second before reply")
    assert first.type == second.type == "pkmsg"
    assert contact.cipher.decrypt_pkmsg(first.body) == b"hello contact"
    if bundle.pre_key_id is not None:
        assert bundle.pre_key_id not in contact.keys.pre_keys, "a used one-time pre-key is deleted"
    assert contact.cipher.decrypt("pkmsg", second.body) == b"second before reply"
    assert len(contact.record.sessions) == 1
    with pytest.raises(DuplicateMessage):
        contact.cipher.decrypt_pkmsg(first.body)

    # The responder never sends pkmsgs.
    reply = contact.cipher.encrypt(b"hi node")
    assert reply.type == "msg"
    assert node.decrypt(reply) == b"hi node"
    assert node.session()["pending"] is False
    assert node.encrypt(b"plain now").type == "msg"
    converse(contact, node, rounds=5)


def test_node_initiator_without_any_reply_keeps_pkmsgs(oracle: Oracle) -> None:
    node, contact = oracle.party(), Contact()
    node.process_bundle(contact.keys.bundle())
    for i in range(3):
        message = node.encrypt(f"m{i}".encode())
        assert message.type == "pkmsg"
        assert contact.cipher.decrypt(message.type, message.body) == f"m{i}".encode()


# -- 3. Session replacement -------------------------------------------------------------------------


def test_node_replaces_session_with_new_pkmsg(oracle: Oracle) -> None:
    contact, node = establish_from_node_bundle(oracle)
    converse(contact, node, rounds=3)
    late = node.encrypt(b"sent on the old session")
    old_base_key = contact.record.sessions[0].base_key

    # Baileys refetches the contact's bundle (e.g. reason="identity") and starts over.
    node.process_bundle(contact.keys.bundle())
    fresh = node.encrypt(b"new session")
    assert fresh.type == "pkmsg"
    new_base_key = PreKeyWhisperMessage.parse(fresh.body).base_key
    assert new_base_key != old_base_key
    assert contact.cipher.decrypt_pkmsg(fresh.body) == b"new session"

    open_session = contact.record.open_session
    assert open_session is not None and open_session.base_key == new_base_key
    assert [s.closed for s in contact.record.sessions] == [False, True]
    reply = contact.cipher.encrypt(b"on the new session")
    assert reply.type == "msg"
    assert node.decrypt(reply) == b"on the new session"
    assert node.encrypt(b"after").type == "msg"
    converse(contact, node, rounds=3)

    # A message sent before the replacement still decrypts (closed sessions are kept).
    assert contact.cipher.decrypt_msg(late.body) == b"sent on the old session"
    assert contact.record.open_session is not None
    assert contact.record.open_session.base_key == new_base_key
    converse(contact, node, rounds=1)


def test_repeated_replacements_in_both_directions(oracle: Oracle) -> None:
    contact, node = establish_from_node_bundle(oracle)
    for _ in range(3):
        node.process_bundle(contact.keys.bundle())
        assert contact.cipher.decrypt_pkmsg(node.encrypt(b"node restarts").body) == b"node restarts"
        converse(contact, node, rounds=2)
        contact.cipher.process_bundle(node.bundle())
        message = contact.cipher.encrypt(b"contact restarts")
        assert message.type == "pkmsg"
        assert node.decrypt(message) == b"contact restarts"
        converse(contact, node, rounds=2)
    assert node.session()["count"] == 7


@pytest.mark.parametrize("earlier_session", [False, True], ids=["first-contact", "after-a-session"])
def test_crossed_pkmsgs_converge_on_our_session(oracle: Oracle, earlier_session: bool) -> None:
    if earlier_session:
        contact, node = establish_from_node_bundle(oracle)
    else:
        node, contact = oracle.party(), Contact()
    # Both sides start a session at the same time and their pkmsgs cross: libsignal ends up on
    # ours (it processes our pkmsg last), so the contact must not switch to the peer's.
    node.process_bundle(contact.keys.bundle())
    contact.cipher.process_bundle(node.bundle())
    from_node = [node.encrypt(b"node first"), node.encrypt(b"node second")]
    from_contact = contact.cipher.encrypt(b"contact first")
    ours = contact.record.open_session
    for message in from_node:
        assert contact.cipher.decrypt(*message, replace_open_session=False).startswith(b"node")
    assert contact.record.open_session is ours
    assert node.decrypt(from_contact) == b"contact first"
    assert node.decrypt(contact.cipher.encrypt(b"still pkmsg")) == b"still pkmsg"
    reply = node.encrypt(b"on your session")
    assert reply.type == "msg"
    assert contact.cipher.decrypt_msg(reply.body) == b"on your session"
    assert contact.cipher.encrypt(b"converged").type == "msg"
    converse(contact, node, rounds=4)


# -- 4. Padding ---------------------------------------------------------------------------------------


def test_padding_round_trip_and_interop(oracle: Oracle) -> None:
    message = b"\x0a\x05hello"
    for n in range(1, 17):
        padded = pad(message, n)
        assert padded == message + bytes([n]) * n
        assert unpad(padded) == message
    lengths = {len(pad(message)) - len(message) for _ in range(400)}
    assert lengths == set(range(1, 17))

    assert unb64(oracle.call("unpad", data=b64(pad(message)))["data"]) == message
    for _ in range(5):
        assert unpad(unb64(oracle.call("pad", data=b64(message))["data"])) == message

    # Through a session, as wasim sends and receives message protos.
    contact, node = establish_from_node_bundle(oracle)
    delivered = node.decrypt(contact.cipher.encrypt(pad(message)))
    assert unb64(oracle.call("unpad", data=b64(delivered))["data"]) == message
    node_padded = unb64(oracle.call("pad", data=b64(message))["data"])
    assert unpad(contact.cipher.decrypt_msg(node.encrypt(node_padded).body)) == message


@pytest.mark.parametrize(
    "data",
    [b"", b"abc\x00", b"abc\x11", b"\x05\x05\x05", b"abc\x01\x02\x02\x03\x03", b"abcd\x03\x03\x02\x03"],
    ids=["empty", "zero", "over-16", "longer-than-data", "mixed", "inconsistent"],
)
def test_unpad_rejects_bad_padding(data: bytes) -> None:
    with pytest.raises(InvalidPadding):
        unpad(data)


def test_pad_rejects_bad_length() -> None:
    for n in (0, 17):
        with pytest.raises(ValueError):
            pad(b"x", n)


# -- 5. Serialization ----------------------------------------------------------------------------------


def test_serialized_initiator_session_continues(oracle: Oracle) -> None:
    contact, node = establish_from_node_bundle(oracle)
    converse(contact, node, rounds=2)
    # Leave skipped keys and an unreceived chain in the saved state.
    pending = [node.encrypt(f"p{i}".encode()) for i in range(3)]
    assert contact.cipher.decrypt_msg(pending[2].body) == b"p2"

    contact = contact.restored()
    assert contact.cipher.decrypt_msg(pending[0].body) == b"p0"
    assert node.decrypt(contact.cipher.encrypt(b"after restart")) == b"after restart"
    contact = contact.restored()
    assert contact.cipher.decrypt_msg(pending[1].body) == b"p1"
    converse(contact, node, rounds=3)
    with pytest.raises(DuplicateMessage):
        contact.cipher.decrypt_msg(pending[1].body)


def test_serialized_keys_and_pending_pkmsg_state(oracle: Oracle) -> None:
    # Responder: the pre-keys survive a restart between the bundle fetch and the pkmsg.
    node, contact = oracle.party(), Contact()
    bundle = contact.keys.bundle()
    node.process_bundle(bundle)
    contact = contact.restored()
    assert contact.cipher.decrypt_pkmsg(node.encrypt(b"hello").body) == b"hello"
    contact = contact.restored()
    assert bundle.pre_key_id not in contact.keys.pre_keys
    assert node.decrypt(contact.cipher.encrypt(b"hi")) == b"hi"

    # Initiator: a restart before any reply still sends pkmsgs with the same base key.
    node, contact = oracle.party(), Contact()
    contact.cipher.process_bundle(node.bundle())
    first = contact.cipher.encrypt(b"one")
    contact = contact.restored()
    second = contact.cipher.encrypt(b"two")
    assert second.type == "pkmsg"
    assert PreKeyWhisperMessage.parse(first.body).base_key == PreKeyWhisperMessage.parse(second.body).base_key
    assert node.decrypt(second) == b"two"
    assert node.decrypt(first) == b"one"
    converse(contact, node, rounds=2)


def test_json_is_plain_and_rejects_unknown_format() -> None:
    keys = KeyStore.generate(pre_keys=2)
    keys.bundle()
    assert KeyStore.from_json(json.loads(json.dumps(keys.to_json()))).to_json() == keys.to_json()
    bundle = keys.bundle(one_time=False)
    assert PreKeyBundle.from_json(json.loads(json.dumps(bundle.to_json()))) == bundle
    with pytest.raises(ValueError):
        SessionRecord.from_json({"format": 99, "sessions": []})


# -- 6. Bad input ---------------------------------------------------------------------------------------


def _flip(data: bytes, index: int, mask: int = 0x01) -> bytes:
    return data[:index] + bytes([data[index] ^ mask]) + data[index + 1 :]


def test_bad_msg_raises_specific_errors_and_leaves_session_intact(oracle: Oracle) -> None:
    contact, node = establish_from_node_bundle(oracle)
    converse(contact, node, rounds=1)
    good = node.encrypt(b"the real one").body
    before = json.dumps(contact.record.to_json())

    for cut in (0, 1, 5, len(good) - 9, len(good) - 1):
        with pytest.raises(InvalidMessage):
            contact.cipher.decrypt_msg(good[:cut])
    with pytest.raises(InvalidMac):
        contact.cipher.decrypt_msg(_flip(good, len(good) - 12))  # inside the ciphertext
    with pytest.raises(InvalidMac):
        contact.cipher.decrypt_msg(_flip(good, len(good) - 1))  # inside the MAC
    with pytest.raises(InvalidMessage, match="version"):
        contact.cipher.decrypt_msg(b"\x23" + good[1:])
    with pytest.raises(InvalidMessage):
        contact.cipher.decrypt("skmsg", good)
    # Every single-bit error is a SignalError, never a crash of another type. (The version byte
    # is not authenticated and libsignal accepts any byte whose range includes 3, e.g. 0x32.)
    for index in range(1, len(good)):
        for mask in (0x01, 0x80):
            with pytest.raises(SignalError):
                contact.cipher.decrypt_msg(_flip(good, index, mask))

    assert json.dumps(contact.record.to_json()) == before, "failed decryptions must not change the session"
    assert contact.cipher.decrypt_msg(good) == b"the real one"
    converse(contact, node, rounds=1)


def test_bad_pkmsg_does_not_consume_pre_key_or_install_session(oracle: Oracle) -> None:
    node, contact = oracle.party(), Contact()
    bundle = contact.keys.bundle()
    node.process_bundle(bundle)
    good = node.encrypt(b"hello").body
    for cut in (0, 1, 10, len(good) - 1):
        with pytest.raises(InvalidMessage):
            contact.cipher.decrypt_pkmsg(good[:cut])
    with pytest.raises(InvalidMac):
        contact.cipher.decrypt_pkmsg(_flip(good, len(good) - 20))
    original = PreKeyWhisperMessage.parse(good)
    assert original.serialize() == good, "our encoder writes what protobufjs writes"
    saved_keys = contact.keys.to_json()
    version_bytes = {0, good.index(original.message.serialize())}  # outer and inner
    for index in range(len(good)):
        for mask in (0x01, 0x40):
            flipped = _flip(good, index, mask)
            try:
                plaintext = Contact(KeyStore.from_json(saved_keys)).cipher.decrypt_pkmsg(flipped)
            except SignalError:
                continue
            # Only unauthenticated fields may be corrupted unnoticed, as in libsignal.
            assert plaintext == b"hello"
            registration_id = PreKeyWhisperMessage.parse(flipped).registration_id
            assert index in version_bytes or registration_id != original.registration_id
    assert contact.record.sessions == []
    assert bundle.pre_key_id in contact.keys.pre_keys
    assert contact.cipher.decrypt_pkmsg(good) == b"hello"


def test_unknown_pre_key_ids(oracle: Oracle) -> None:
    contact = Contact()
    real = contact.keys.bundle()

    # A one-time pre-key we never had.
    node = oracle.party()
    fake_pre_key = KeyPair.generate()
    node.process_bundle(
        PreKeyBundle(
            registration_id=real.registration_id,
            identity_key=real.identity_key,
            signed_pre_key_id=real.signed_pre_key_id,
            signed_pre_key=real.signed_pre_key,
            signed_pre_key_signature=real.signed_pre_key_signature,
            pre_key_id=999,
            pre_key=fake_pre_key.public,
        )
    )
    with pytest.raises(InvalidPreKeyId) as excinfo:
        contact.cipher.decrypt_pkmsg(node.encrypt(b"x").body)
    assert (excinfo.value.kind, excinfo.value.key_id) == ("pre-key", 999)

    # A one-time pre-key that was already used (the same bundle served twice).
    node1, node2 = oracle.party(), oracle.party()
    node1.process_bundle(real)
    node2.process_bundle(real)
    assert contact.cipher.decrypt_pkmsg(node1.encrypt(b"first").body) == b"first"
    other = Contact(contact.keys)  # same keys, another remote device's record
    with pytest.raises(InvalidPreKeyId):
        other.cipher.decrypt_pkmsg(node2.encrypt(b"second").body)

    # A signed pre-key id we do not hold.
    node3 = oracle.party()
    node3.process_bundle(
        PreKeyBundle(
            registration_id=real.registration_id,
            identity_key=real.identity_key,
            signed_pre_key_id=real.signed_pre_key_id + 7,
            signed_pre_key=real.signed_pre_key,
            signed_pre_key_signature=real.signed_pre_key_signature,
        )
    )
    with pytest.raises(InvalidPreKeyId) as excinfo:
        Contact(contact.keys).cipher.decrypt_pkmsg(node3.encrypt(b"x").body)
    assert excinfo.value.kind == "signed pre-key"


def test_rotated_signed_pre_key_still_accepted(oracle: Oracle) -> None:
    node, contact = oracle.party(), Contact()
    node.process_bundle(contact.keys.bundle())
    contact.keys.rotate_signed_pre_key()
    assert contact.cipher.decrypt_pkmsg(node.encrypt(b"old bundle").body) == b"old bundle"


def test_no_session_untrusted_identity_and_bad_bundle(oracle: Oracle) -> None:
    contact, node = establish_from_node_bundle(oracle)
    message = node.encrypt(b"x")
    with pytest.raises(NoSession):
        Contact().cipher.decrypt_msg(message.body)
    with pytest.raises(NoSession):
        Contact().cipher.encrypt(b"x")

    stranger = KeyPair.generate().public
    suspicious = SessionCipher(contact.keys, contact.record, trusted_identity=stranger)
    with pytest.raises(UntrustedIdentity):
        suspicious.decrypt_msg(message.body)
    with pytest.raises(UntrustedIdentity):
        suspicious.encrypt(b"x")
    with pytest.raises(UntrustedIdentity):
        suspicious.process_bundle(node.bundle())
    trusting = SessionCipher(contact.keys, contact.record, trusted_identity=node.identity_key)
    assert trusting.decrypt_msg(message.body) == b"x"

    responder = Contact()
    node2 = oracle.party()
    node2.process_bundle(responder.keys.bundle())
    with pytest.raises(UntrustedIdentity):
        SessionCipher(responder.keys, responder.record, trusted_identity=stranger).decrypt_pkmsg(
            node2.encrypt(b"x").body
        )

    bundle = node.bundle()
    forged = PreKeyBundle(
        registration_id=bundle.registration_id,
        identity_key=bundle.identity_key,
        signed_pre_key_id=bundle.signed_pre_key_id,
        signed_pre_key=KeyPair.generate().public,
        signed_pre_key_signature=bundle.signed_pre_key_signature,
    )
    with pytest.raises(InvalidKey):
        Contact().cipher.process_bundle(forged)
    with pytest.raises(InvalidKey):
        PreKeyBundle(1, b"\x07" * 33, 1, bundle.signed_pre_key, bundle.signed_pre_key_signature)


def test_too_far_ahead_is_rejected() -> None:
    alice, bob = Contact(), Contact()
    alice.cipher.process_bundle(bob.keys.bundle())
    assert bob.cipher.decrypt_pkmsg(alice.cipher.encrypt(b"start").body) == b"start"
    assert alice.cipher.decrypt_msg(bob.cipher.encrypt(b"ok").body) == b"ok"
    # Like libsignal: at most 2000 message keys derived at once (counters 0..1999 on a new chain).
    burst = [alice.cipher.encrypt(b"%d" % i) for i in range(2001)]
    with pytest.raises(InvalidMessage, match="ahead"):
        bob.cipher.decrypt_msg(burst[2000].body)
    assert bob.cipher.decrypt_msg(burst[1999].body) == b"1999"
    assert bob.cipher.decrypt_msg(burst[1].body) == b"1"
    assert bob.cipher.decrypt_msg(burst[2000].body) == b"2000"
    assert bob.cipher.decrypt_msg(burst[0].body) == b"0"


def test_previous_counter_of_an_unused_chain_is_accepted() -> None:
    """libsignal-node announces an unused previous chain as previousCounter 0xFFFFFFFF (its -1);
    the message decrypts, as on a phone, instead of counting as 4 billion messages ahead."""
    alice, bob = Contact(), Contact()
    alice.cipher.process_bundle(bob.keys.bundle())
    assert bob.cipher.decrypt_pkmsg(alice.cipher.encrypt(b"a0").body) == b"a0"
    assert alice.cipher.decrypt_msg(bob.cipher.encrypt(b"b0").body) == b"b0"
    state = alice.record.open_session
    assert state is not None
    state.previous_counter = 0xFFFFFFFF  # what libsignal-node would send here had it not used a0's chain
    message = alice.cipher.encrypt(b"a1 on a new chain")
    assert WhisperMessage.parse(message.body).previous_counter == 0xFFFFFFFF
    assert bob.cipher.decrypt_msg(message.body) == b"a1 on a new chain"


def test_closed_chain_and_state_bounds() -> None:
    alice, bob = Contact(), Contact()
    alice.cipher.process_bundle(bob.keys.bundle())
    assert bob.cipher.decrypt_pkmsg(alice.cipher.encrypt(b"a0").body) == b"a0"
    stale_alice = alice.restored()  # still on the first sending chain
    assert alice.cipher.decrypt_msg(bob.cipher.encrypt(b"b0").body) == b"b0"
    assert bob.cipher.decrypt_msg(alice.cipher.encrypt(b"a1 on a new chain").body) == b"a1 on a new chain"
    # Bob closed Alice's first chain after message 0 (its previousCounter): later keys are refused.
    with pytest.raises(InvalidMessage, match="closed chain"):
        bob.cipher.decrypt(*stale_alice.cipher.encrypt(b"too late"))

    # Skipped keys and old receiving chains are bounded however the peer behaves.
    for _ in range(8):
        for _ in range(600):
            alice.cipher.encrypt(b"never delivered")
        assert bob.cipher.decrypt_msg(alice.cipher.encrypt(b"x").body) == b"x"
        assert alice.cipher.decrypt_msg(bob.cipher.encrypt(b"y").body) == b"y"
    state = bob.record.open_session
    assert state is not None
    assert len(state.receiving_chains) <= 5
    assert sum(len(c.skipped) for c in state.receiving_chains.values()) <= 2000
