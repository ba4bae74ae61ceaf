"""wasim's sender keys (group messages) against Baileys' own group cipher (through group-oracle.mjs).

The oracle is one linked Baileys device: its signal repository (which drives Signal/Group) over an
in-memory key store. Python plays group members posting to it and reading what it posts.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from testkit.oracle import NodeOracle, OracleError, b64, pre_key_bundle, unb64
from testkit.paths import NODE_DIR

from wasim.protocol import wa_pb2
from wasim.protocol.crypto import hmac_sha256
from wasim.signal import (
    DuplicateMessage,
    InvalidMessage,
    KeyPair,
    KeyStore,
    NoSession,
    PreKeyBundle,
    SessionCipher,
    SessionRecord,
    SignalError,
    pad,
    unpad,
)
from wasim.signal.group import (
    MAX_FORWARD_JUMP,
    MAX_MESSAGE_KEYS,
    MAX_STATES,
    GroupSender,
    InvalidSignature,
    NoSenderKey,
    SenderKeyDistributionMessage,
    SenderKeyMessage,
    SenderKeyRecord,
    sender_key_name,
)

pytestmark = pytest.mark.timeout(60)

ORACLE = NODE_DIR / "group-oracle.mjs"
AUTHOR = "15551230001@s.whatsapp.net"
CIPHERTEXT_STUB = 2  # proto.WebMessageInfo.StubType.CIPHERTEXT: Baileys could not decrypt

_groups = itertools.count(1)


def new_group() -> str:
    return f"1203630000000{next(_groups):05d}@g.us"


class Oracle(NodeOracle):
    def __init__(self, stderr_path: Path) -> None:
        super().__init__(ORACLE, stderr_path)

    # Baileys' repository calls, as messages-recv.js / messages-send.js make them.

    def process(self, group: str, author: str, skdm: bytes) -> None:
        self.call("process", group=group, author=author, skdm=b64(skdm))

    def decrypt(self, group: str, author: str, body: bytes) -> bytes:
        return unb64(self.call("decrypt", group=group, author=author, body=b64(body))["plaintext"])

    def encrypt(self, group: str, plaintext: bytes) -> tuple[bytes, bytes]:
        """(skmsg body, the sender key distribution message Baileys would send with it)."""
        r = self.call("encrypt", group=group, plaintext=b64(plaintext))
        return unb64(r["body"]), unb64(r["skdm"])

    def records(self) -> dict[str, list[dict[str, int]]]:
        records: dict[str, list[dict[str, int]]] = self.call("senderKeys")["records"]
        return records


@pytest.fixture(scope="module")
def oracle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Oracle]:
    o = Oracle(tmp_path_factory.mktemp("group-oracle") / "stderr.log")
    yield o
    o.close()


def restored_sender(sender: GroupSender) -> GroupSender:
    return GroupSender.from_json(json.loads(json.dumps(sender.to_json())))


def restored_record(record: SenderKeyRecord) -> SenderKeyRecord:
    return SenderKeyRecord.from_json(json.loads(json.dumps(record.to_json())))


# -- Python sender -> Baileys ------------------------------------------------------------------------


def test_python_sender_baileys_receiver(oracle: Oracle) -> None:
    group, sender = new_group(), GroupSender.generate()
    skdm = sender.distribution_message()
    parsed = SenderKeyDistributionMessage.parse(skdm)
    assert (parsed.key_id, parsed.iteration, parsed.chain_key) == (sender.key_id, 0, sender.chain_key)
    assert parsed.signing_key == sender.signing_public and len(parsed.signing_key) == 33
    oracle.process(group, AUTHOR, skdm)

    texts = [f"group message {i}".encode() for i in range(8)]
    bodies = [sender.encrypt(pad(t)) for t in texts]
    assert [SenderKeyMessage.parse(b).iteration for b in bodies] == list(range(8))
    assert {SenderKeyMessage.parse(b).key_id for b in bodies} == {sender.key_id}
    # Baileys' group cipher itself: in order, then out of order (skipped keys are kept), each
    # message decrypting exactly once.
    oracle.call("cipherProcess", group=group, skdm=b64(skdm))
    for i in (0, 1, 4, 2, 7, 3, 6, 5):
        plaintext = unb64(oracle.call("cipherDecrypt", group=group, body=b64(bodies[i]))["plaintext"])
        assert unpad(plaintext) == texts[i]
    for i in (4, 0):
        with pytest.raises(OracleError, match="old counter"):
            oracle.call("cipherDecrypt", group=group, body=b64(bodies[i]))

    # Baileys' repository (what a linked device runs): gaps are fine, but the key of a skipped
    # iteration is stored with its Buffer turned into a plain object, so a late message fails. A
    # server must deliver each sender's skmsgs in iteration order.
    for i in (0, 1, 4, 7):
        assert unpad(oracle.decrypt(group, AUTHOR, bodies[i])) == texts[i]
    with pytest.raises(OracleError, match="Expected Buffer"):
        oracle.decrypt(group, AUTHOR, bodies[2])
    for i in (4, 0):
        with pytest.raises(OracleError, match="old counter"):
            oracle.decrypt(group, AUTHOR, bodies[i])
    [state] = oracle.records()[sender_key_name(group, AUTHOR)]
    assert state == {"keyId": sender.key_id, "iteration": 8, "messageKeys": 4}

    # A device that joins now gets the current chain: later messages only.
    late = "15551230001:4@s.whatsapp.net"
    late_skdm = SenderKeyDistributionMessage.parse(sender.distribution_message())
    assert late_skdm.iteration == 8 and late_skdm.chain_key == sender.chain_key
    oracle.process(group, late, sender.distribution_message())
    with pytest.raises(OracleError, match="old counter"):
        oracle.decrypt(group, late, bodies[7])
    body = sender.encrypt(pad(b"after join"))
    assert unpad(oracle.decrypt(group, late, body)) == b"after join"
    assert unpad(oracle.decrypt(group, AUTHOR, body)) == b"after join"


def test_baileys_checks_our_signatures(oracle: Oracle) -> None:
    group, sender = new_group(), GroupSender.generate()
    oracle.process(group, AUTHOR, sender.distribution_message())
    forged = SenderKeyMessage.build(
        signing_key=KeyPair.generate(), key_id=sender.key_id, iteration=0, ciphertext=bytes(16)
    )
    with pytest.raises(OracleError, match="Invalid signature"):
        oracle.decrypt(group, AUTHOR, forged.serialize())
    assert unpad(oracle.decrypt(group, AUTHOR, sender.encrypt(pad(b"genuine")))) == b"genuine"


# -- Baileys sender -> Python ------------------------------------------------------------------------


def test_baileys_sender_python_receiver(oracle: Oracle) -> None:
    group, record = new_group(), SenderKeyRecord()
    sent = [oracle.encrypt(group, pad(f"from baileys {i}".encode())) for i in range(6)]
    first_skdm = sent[0][1]
    # Our encoders reproduce protobufjs' bytes exactly.
    assert SenderKeyDistributionMessage.parse(first_skdm).serialize() == first_skdm
    for body, _ in sent:
        message = SenderKeyMessage.parse(body)
        assert message.serialize() == body
        assert (
            SenderKeyMessage.build(
                signing_key=KeyPair.generate(),
                key_id=message.key_id,
                iteration=message.iteration,
                ciphertext=message.ciphertext,
            ).signed
            == message.signed
        )
    # Baileys' sender uses every other iteration (0, 2, 4, ...): receivers must cope with gaps.
    iterations = [SenderKeyMessage.parse(body).iteration for body, _ in sent]
    assert iterations == [0, 2, 4, 6, 8, 10]

    distribution = record.process(first_skdm)
    assert distribution.iteration == 0
    for i in (0, 3, 1, 5, 4, 2):
        assert unpad(record.decrypt(sent[i][0])) == f"from baileys {i}".encode()
    for i in (0, 5, 2):
        with pytest.raises(DuplicateMessage):
            record.decrypt(sent[i][0])
    # The skipped odd iterations are the only keys left.
    [state] = record.states
    assert sorted(state.message_keys) == [1, 3, 5, 7, 9] and state.iteration == 11

    # Processing the same distribution again must not reopen used iterations.
    record.process(first_skdm)
    with pytest.raises(DuplicateMessage):
        record.decrypt(sent[1][0])
    body, _ = oracle.encrypt(group, pad(b"still going"))
    assert unpad(record.decrypt(body)) == b"still going"


def test_sender_key_names_match_baileys(oracle: Oracle) -> None:
    group = new_group()
    authors = [
        "15551230002@s.whatsapp.net",
        "15551230002:3@s.whatsapp.net",
        "4455667788@lid",
        "4455667788:12@lid",
    ]
    for author in authors:
        oracle.process(group, author, GroupSender.generate().distribution_message())
    oracle.encrypt(group, pad(b"own key"))
    me = oracle.call("me")["jid"]
    names = {name for name in oracle.records() if name.startswith(group)}
    assert names == {sender_key_name(group, jid) for jid in [*authors, me]}
    assert sender_key_name(group, "4455667788:12@lid") == f"{group}::4455667788_1::12"
    assert sender_key_name(group, "15551230002@s.whatsapp.net") == f"{group}::15551230002::0"
    with pytest.raises(ValueError):
        sender_key_name(group, "not-a-jid")


# -- persistence ---------------------------------------------------------------------------------


def test_serialization_round_trip_mid_stream(oracle: Oracle) -> None:
    group, sender = new_group(), GroupSender.generate()
    oracle.process(group, AUTHOR, sender.distribution_message())
    oracle.call("cipherProcess", group=group, skdm=b64(sender.distribution_message()))
    early = [sender.encrypt(pad(f"early {i}".encode())) for i in range(3)]
    assert unpad(oracle.decrypt(group, AUTHOR, early[0])) == b"early 0"
    sender = restored_sender(sender)
    assert restored_sender(sender) == sender
    late = [sender.encrypt(pad(f"late {i}".encode())) for i in range(3)]
    assert [SenderKeyMessage.parse(b).iteration for b in late] == [3, 4, 5]
    # The repository in order (with a gap), the group cipher out of order across the restore.
    for body, text in ((early[2], b"early 2"), (late[0], b"late 0"), (late[2], b"late 2")):
        assert unpad(oracle.decrypt(group, AUTHOR, body)) == text
    for body, text in zip(
        [late[0], *early, late[2], late[1]],
        [b"late 0", b"early 0", b"early 1", b"early 2", b"late 2", b"late 1"],
        strict=True,
    ):
        assert unpad(unb64(oracle.call("cipherDecrypt", group=group, body=b64(body))["plaintext"])) == text

    # Receiving: restore with skipped keys pending, then finish the stream and reject replays.
    group = new_group()
    sent = [oracle.encrypt(group, pad(f"b{i}".encode())) for i in range(5)]
    record = SenderKeyRecord()
    record.process(sent[0][1])
    assert unpad(record.decrypt(sent[0][0])) == b"b0"
    assert unpad(record.decrypt(sent[3][0])) == b"b3"
    record = restored_record(record)
    assert restored_record(record) == record
    for i in (1, 4, 2):
        assert unpad(record.decrypt(sent[i][0])) == f"b{i}".encode()
    record = restored_record(record)
    for body, _ in sent:
        with pytest.raises(DuplicateMessage):
            record.decrypt(body)

    # A distribution fetched now starts after everything already sent.
    fresh = SenderKeyRecord()
    fresh.process(unb64(oracle.call("skdm", group=group)["skdm"]))
    with pytest.raises(DuplicateMessage):
        fresh.decrypt(sent[4][0])
    body, _ = oracle.encrypt(group, pad(b"new"))
    assert unpad(fresh.decrypt(body)) == unpad(record.decrypt(body)) == b"new"

    with pytest.raises(ValueError):
        SenderKeyRecord.from_json({"format": 99, "states": []})
    with pytest.raises(ValueError):
        GroupSender.from_json({**sender.to_json(), "format": None})
    with pytest.raises(ValueError):
        GroupSender.from_json({**sender.to_json(), "chain_key": "00"})


# -- bad input -------------------------------------------------------------------------------------


def member() -> tuple[GroupSender, SenderKeyRecord]:
    """A Python sender and a Python record that has processed its distribution message."""
    sender, record = GroupSender.generate(), SenderKeyRecord()
    record.process(sender.distribution_message())
    return sender, record


def signed(sender: GroupSender, iteration: int, ciphertext: bytes) -> bytes:
    """A message with a valid signature but arbitrary iteration and ciphertext."""
    return SenderKeyMessage.build(
        signing_key=sender.signing_key, key_id=sender.key_id, iteration=iteration, ciphertext=ciphertext
    ).serialize()


def test_every_bit_flip_and_truncation_is_rejected_without_damage() -> None:
    sender, record = member()
    body = sender.encrypt(pad(b"bit flips"))
    ciphertext = SenderKeyMessage.parse(body).ciphertext
    authenticated_from = body.index(ciphertext)  # ciphertext and signature: only the signature fails
    before = record.to_json()
    for bit in range(len(body) * 8):
        corrupt = bytearray(body)
        corrupt[bit // 8] ^= 1 << (bit % 8)
        expected = InvalidSignature if bit // 8 >= authenticated_from else SignalError
        with pytest.raises(expected):
            record.decrypt(bytes(corrupt))
    for length in range(len(body)):
        with pytest.raises(SignalError):
            record.decrypt(body[:length])
    with pytest.raises(SignalError):  # the signature is taken from the end: the protobuf breaks
        record.decrypt(body + b"\x00")
    assert record.to_json() == before, "failed decryptions must not touch the record"
    assert unpad(record.decrypt(body)) == b"bit flips"


def test_specific_failures() -> None:
    sender, record = member()
    other = GroupSender.generate()

    with pytest.raises(NoSenderKey, match="none received") as no_key:
        SenderKeyRecord().decrypt(sender.encrypt(pad(b"x")))
    assert no_key.value.key_id == sender.key_id
    with pytest.raises(NoSession):  # NoSenderKey is a NoSession, which servers already handle
        record.decrypt(other.encrypt(pad(b"unknown key id")))

    forged = SenderKeyMessage.build(
        signing_key=other.signing_key, key_id=sender.key_id, iteration=sender.iteration, ciphertext=bytes(16)
    )
    with pytest.raises(InvalidSignature):
        record.decrypt(forged.serialize())

    # Validly signed but undecryptable: an error, and the iteration stays usable.
    genuine = SenderKeyMessage.parse(sender.encrypt(pad(b"A" * 40)))
    for bad in (genuine.ciphertext[:15], genuine.ciphertext[:16]):  # partial block; bad PKCS#7
        with pytest.raises(InvalidMessage) as info:
            record.decrypt(signed(sender, genuine.iteration, bad))
        assert not isinstance(info.value, InvalidSignature)
    assert unpad(record.decrypt(genuine.serialize())) == b"A" * 40

    with pytest.raises(InvalidMessage, match="ahead"):
        record.decrypt(signed(sender, sender.iteration + MAX_FORWARD_JUMP + 1, bytes(16)))
    with pytest.raises(InvalidMessage, match="version"):
        record.decrypt(b"\x23" + sender.encrypt(pad(b"old version"))[1:])
    with pytest.raises(InvalidMessage, match="ciphertext"):
        record.decrypt(signed(sender, 5, b""))

    skdm = sender.distribution_message()
    for bad_skdm in (
        b"",
        b"\x23" + skdm[1:],
        b"\x33\xff",
        SenderKeyDistributionMessage(1, 0, bytes(31), sender.signing_public).serialize(),
        SenderKeyDistributionMessage(1, 0, bytes(32), b"\x06" + bytes(32)).serialize(),
        SenderKeyDistributionMessage(1, 0, bytes(32), bytes(20)).serialize(),
        *(skdm[:n] for n in range(len(skdm))),
    ):
        with pytest.raises(InvalidMessage):
            SenderKeyRecord().process(bad_skdm)

    # Random junk never escapes as anything but a SignalError.
    rng = random.Random(1234)
    for _ in range(300):
        junk = bytes([0x33]) + rng.randbytes(rng.randrange(0, 120))
        with pytest.raises(SignalError):
            record.decrypt(junk)
        try:
            SenderKeyRecord().process(junk)
        except SignalError:
            pass


def test_bounds_on_states_and_skipped_keys() -> None:
    senders = [GroupSender.generate() for _ in range(MAX_STATES + 1)]
    record = SenderKeyRecord()
    for s in senders:
        record.process(s.distribution_message())
    assert [state.key_id for state in record.states] == [s.key_id for s in senders[1:]]
    with pytest.raises(NoSenderKey):
        record.decrypt(senders[0].encrypt(pad(b"evicted")))
    assert unpad(record.decrypt(senders[1].encrypt(pad(b"kept")))) == b"kept"

    # A different key reusing a known id replaces the old one.
    reused = GroupSender.generate(key_id=senders[2].key_id)
    record.process(reused.distribution_message())
    with pytest.raises(InvalidSignature):
        record.decrypt(senders[2].encrypt(pad(b"old key")))
    assert unpad(record.decrypt(reused.encrypt(pad(b"new key")))) == b"new key"

    # Exactly MAX_FORWARD_JUMP ahead is fine; skipped keys stay bounded, oldest dropped first.
    sender, record = member()
    ahead = GroupSender.from_json(sender.to_json())
    for _ in range(MAX_FORWARD_JUMP):
        ahead.chain_key = hmac_sha256(ahead.chain_key, b"\x02")
        ahead.iteration += 1
    first_skipped = sender.encrypt(pad(b"zero"))
    assert unpad(record.decrypt(ahead.encrypt(pad(b"far")))) == b"far"
    [state] = record.states
    assert len(state.message_keys) == MAX_FORWARD_JUMP
    assert unpad(record.decrypt(sender.encrypt(pad(b"one")))) == b"one"  # late, from the window
    assert unpad(record.decrypt(first_skipped)) == b"zero"
    for _ in range(MAX_FORWARD_JUMP):
        ahead.chain_key = hmac_sha256(ahead.chain_key, b"\x02")
        ahead.iteration += 1
    assert unpad(record.decrypt(ahead.encrypt(pad(b"farther")))) == b"farther"
    assert len(state.message_keys) <= MAX_MESSAGE_KEYS
    with pytest.raises(DuplicateMessage):  # iteration 2 fell out of the window
        record.decrypt(sender.encrypt(pad(b"two")))


# -- the stanza a server delivers ------------------------------------------------------------------


def oracle_bundle(oracle: Oracle) -> PreKeyBundle:
    bundle = pre_key_bundle(oracle.call("bundle")["bundle"])
    assert bundle.pre_key is not None  # the group oracle always hands out a one-time pre-key
    return bundle


def group_stanza(group: str, attrs: dict[str, str], encs: list[tuple[str, bytes]]) -> dict[str, Any]:
    return {
        "tag": "message",
        "attrs": {"from": group, "id": f"3EB0{next(_groups):016X}", "t": "1760000000", "type": "text"} | attrs,
        "content": [
            {"tag": "enc", "attrs": {"v": "2", "type": enc_type}, "content": b64(body)} for enc_type, body in encs
        ],
    }


def distribution_wrapper(group: str, sender: GroupSender) -> bytes:
    """The 1:1 `Message` that hands a sender key to one device."""
    message = wa_pb2.Message()
    message.sender_key_distribution_message.group_id = group
    message.sender_key_distribution_message.axolotl_sender_key_distribution_message = sender.distribution_message()
    return pad(message.SerializeToString())


@pytest.mark.parametrize("addressing", ["lid", "pn"])
def test_group_stanza_through_baileys_decode(oracle: Oracle, addressing: str) -> None:
    pn, lid = "15557770001@s.whatsapp.net", "77001230001@lid"
    participant, attrs = (
        (lid, {"participant": lid, "participant_pn": pn, "addressing_mode": "lid"})
        if addressing == "lid"
        else (pn, {"participant": pn, "participant_lid": lid, "addressing_mode": "pn"})
    )
    attrs["notify"] = "Carol"
    contact = SessionCipher(KeyStore.generate(pre_keys=1), SessionRecord())
    contact.process_bundle(oracle_bundle(oracle))

    # First post: the 1:1 enc carrying the sender key, then the skmsg, in one stanza.
    group, sender = new_group(), GroupSender.generate()
    one_to_one = contact.encrypt(distribution_wrapper(group, sender))
    assert one_to_one.type == "pkmsg"
    post = wa_pb2.Message(conversation="hello group")
    stanza = group_stanza(
        group,
        attrs,
        [(one_to_one.type, one_to_one.body), ("skmsg", sender.encrypt(pad(post.SerializeToString())))],
    )
    r = oracle.call("decryptStanza", node=stanza)
    assert r["stub"] is None, r["stubParameters"]
    message = wa_pb2.Message.FromString(unb64(r["message"]))
    assert message.conversation == "hello group"
    assert message.sender_key_distribution_message.group_id == group
    assert r["key"]["remoteJid"] == group and r["key"]["participant"] == participant
    assert r["key"]["participantAlt"] == (pn if addressing == "lid" else lid)
    assert sender_key_name(group, participant) in oracle.records()

    # Later posts: the skmsg alone.
    post = wa_pb2.Message(conversation="second post")
    r = oracle.call(
        "decryptStanza",
        node=group_stanza(group, attrs, [("skmsg", sender.encrypt(pad(post.SerializeToString())))]),
    )
    assert r["stub"] is None, r["stubParameters"]
    assert wa_pb2.Message.FromString(unb64(r["message"])).conversation == "second post"

    # Baileys reads the encs in order: an skmsg before the enc carrying its key fails (and is
    # retried), although the key is stored for the next post.
    group, sender = new_group(), GroupSender.generate()
    one_to_one = contact.encrypt(distribution_wrapper(group, sender))
    post = wa_pb2.Message(conversation="too early")
    r = oracle.call(
        "decryptStanza",
        node=group_stanza(
            group,
            attrs,
            [("skmsg", sender.encrypt(pad(post.SerializeToString()))), (one_to_one.type, one_to_one.body)],
        ),
    )
    assert r["stub"] == CIPHERTEXT_STUB and "No session" in r["stubParameters"][0]
    post = wa_pb2.Message(conversation="in time")
    r = oracle.call(
        "decryptStanza",
        node=group_stanza(group, attrs, [("skmsg", sender.encrypt(pad(post.SerializeToString())))]),
    )
    assert r["stub"] is None and wa_pb2.Message.FromString(unb64(r["message"])).conversation == "in time"
