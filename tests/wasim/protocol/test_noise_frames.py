"""wasim's transport, sans-I/O, fed the frame shapes a client can produce after a restart (issue #13):
the intro and frames split across WebSocket messages at every byte, the 'ED' routing prefix, one
message carrying two frames, and the shape behind the rare handshake failure after a SIGKILL: a
plain stanza where the ClientFinish belongs (the sidecar test reproduces how Baileys came to send
it; this one pins what wasim says about it)."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from wasim.protocol import wa_pb2
from wasim.protocol.binary import Node, decode_node, encode_node
from wasim.protocol.certs import build_cert_chain
from wasim.protocol.crypto import KeyPair, aes_gcm_encrypt
from wasim.protocol.noise import (
    INTRO_HEADER,
    ClientAuthenticated,
    Event,
    Frame,
    NoiseServer,
    Send,
    SymmetricState,
    TransportError,
    frame,
)

PAYLOAD = wa_pb2.ClientPayload(username=4915100000000, passive=True).SerializeToString()
NODE = encode_node(Node("iq", {"id": "1", "type": "get", "xmlns": "w:p"}))


class Client:
    """The client side of the handshake as bytes, like Baileys' noise handler."""

    def __init__(self, routing: bytes | None = None) -> None:
        self.state = SymmetricState()
        self.eph, self.static = KeyPair.generate(), KeyPair.generate()
        self.routing = routing
        self.n = 0

    def hello(self) -> bytes:
        self.state.mix_hash(INTRO_HEADER)
        self.state.mix_hash(self.eph.public)
        intro = INTRO_HEADER
        if self.routing is not None:
            intro = b"ED\x00\x01" + len(self.routing).to_bytes(3, "big") + self.routing + INTRO_HEADER
        hello = wa_pb2.HandshakeMessage(client_hello=wa_pb2.HandshakeMessage.ClientHello(ephemeral=self.eph.public))
        return intro + frame(hello.SerializeToString())

    def finish(self, server_hello: bytes) -> bytes:
        server = wa_pb2.HandshakeMessage.FromString(server_hello[3:]).server_hello
        st = self.state
        st.mix_hash(server.ephemeral)
        st.mix_key(self.eph.dh(server.ephemeral))
        st.mix_key(self.eph.dh(st.decrypt_and_hash(server.static)))
        st.decrypt_and_hash(server.payload)
        static_ct = st.encrypt_and_hash(self.static.public)
        st.mix_key(self.static.dh(server.ephemeral))
        payload_ct = st.encrypt_and_hash(PAYLOAD)
        self.write_key, _ = st.split()
        finish = wa_pb2.HandshakeMessage(
            client_finish=wa_pb2.HandshakeMessage.ClientFinish(static=static_ct, payload=payload_ct)
        )
        return frame(finish.SerializeToString())

    def node(self) -> bytes:
        ct = aes_gcm_encrypt(self.write_key, self.n, NODE, b"")
        self.n += 1
        return frame(ct)


def server() -> NoiseServer:
    root, inter, static = KeyPair.generate(), KeyPair.generate(), KeyPair.generate()
    return NoiseServer(static, build_cert_chain(root, inter, static.public))


def feed(noise: NoiseServer, messages: Iterable[bytes]) -> list[Event]:
    events: list[Event] = []
    for message in messages:
        events.extend(noise.receive(message))
    return events


def one_byte_at_a_time(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


@pytest.mark.parametrize("routing", [None, b"\x08\x02\x08\x05"], ids=["plain", "ED routing prefix"])
@pytest.mark.parametrize("split", [False, True], ids=["whole messages", "one byte per message"])
def test_the_handshake_and_a_node_arrive_however_the_bytes_are_cut(routing: bytes | None, split: bool) -> None:
    noise, client = server(), Client(routing)
    cut = one_byte_at_a_time if split else (lambda data: [data])
    sent = feed(noise, cut(client.hello()))
    assert len(sent) == 1 and isinstance(sent[0], Send)
    # the ClientFinish and the first stanza in one WebSocket message (or cut anywhere)
    events = feed(noise, cut(client.finish(sent[0].data) + client.node()))
    assert isinstance(events[0], ClientAuthenticated) and events[0].client_static == client.static.public
    assert isinstance(events[1], Frame) and decode_node(events[1].payload).tag == "iq"


def test_half_a_frame_waits_for_the_rest() -> None:
    noise, client = server(), Client()
    hello = client.hello()
    assert feed(noise, [hello[:-5]]) == []
    assert isinstance(feed(noise, [hello[-5:]])[0], Send)


def test_a_stanza_sent_before_the_handshake_is_done_is_named_as_such() -> None:
    # What Baileys wrote when a command reached a sidecar still connecting: its noise handler frames
    # a node unencrypted until the handshake is done. These are the bytes the sidecar test caught.
    noise, client = server(), Client()
    feed(noise, [client.hello()])
    with pytest.raises(TransportError, match=r"a stanza arrived before the handshake was done \(27 bytes: 00f8"):
        noise.receive(frame(bytes.fromhex("00f80a1916e211fa00030429") + bytes(15)))


def test_a_frame_that_is_neither_says_its_length_and_first_bytes() -> None:
    noise, client = server(), Client()
    feed(noise, [client.hello()])
    with pytest.raises(TransportError, match=r"not a valid HandshakeMessage \(3 bytes: ffffff"):
        noise.receive(frame(b"\xff\xff\xff"))
