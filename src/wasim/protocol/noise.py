"""WhatsApp Web's transport, server side, sans-I/O: intro header, 3-byte framing, the
Noise_XX_25519_AESGCM_SHA256 handshake as responder, then AES-GCM transport frames.

Feed it the bytes of each WebSocket message with `receive()`; it returns events (bytes to send,
the authenticated client payload, decrypted node frames). `encrypt_frame()` wraps an outgoing
node payload once the handshake is done.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from wasim.protocol import wa_pb2
from wasim.protocol.binary import LIST_8, LIST_16
from wasim.protocol.crypto import (
    KeyPair,
    aes_gcm_decrypt,
    aes_gcm_encrypt,
    hkdf,
    sha256,
)

NOISE_MODE = b"Noise_XX_25519_AESGCM_SHA256\x00\x00\x00\x00"
WA_MAGIC = b"WA"
WA_VERSION = 6
DICT_VERSION = 3
INTRO_HEADER = bytes([*WA_MAGIC, WA_VERSION, DICT_VERSION])
ROUTING_MAGIC = b"ED"
MAX_FRAME = (1 << 24) - 1


class TransportError(Exception):
    """The peer broke the transport protocol; the connection must be closed with this reason."""


@dataclass(frozen=True, slots=True)
class Send:
    data: bytes


@dataclass(frozen=True, slots=True)
class ClientAuthenticated:
    payload: wa_pb2.ClientPayload
    client_static: bytes


@dataclass(frozen=True, slots=True)
class Frame:
    payload: bytes


Event = Send | ClientAuthenticated | Frame


def frame(data: bytes) -> bytes:
    if len(data) > MAX_FRAME:
        raise TransportError(f"frame of {len(data)} bytes exceeds the 16 MiB limit")
    return len(data).to_bytes(3, "big") + data


class _Phase(enum.Enum):
    INTRO = "intro"
    HELLO = "hello"
    FINISH = "finish"
    TRANSPORT = "transport"


class SymmetricState:
    """Noise's hash + chaining key + cipher key, with WhatsApp's single shared handshake counter."""

    def __init__(self) -> None:
        self.h = NOISE_MODE  # exactly 32 bytes, so used as is (no hashing)
        self.ck = NOISE_MODE
        self.key = NOISE_MODE
        self.counter = 0

    def mix_hash(self, data: bytes) -> None:
        self.h = sha256(self.h + data)

    def mix_key(self, ikm: bytes) -> None:
        out = hkdf(ikm, 64, salt=self.ck)
        self.ck, self.key, self.counter = out[:32], out[32:], 0

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        ct = aes_gcm_encrypt(self.key, self.counter, plaintext, self.h)
        self.counter += 1
        self.mix_hash(ct)
        return ct

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        pt = aes_gcm_decrypt(self.key, self.counter, ciphertext, self.h)
        self.counter += 1
        self.mix_hash(ciphertext)
        return pt

    def split(self) -> tuple[bytes, bytes]:
        out = hkdf(b"", 64, salt=self.ck)
        return out[:32], out[32:]  # (client -> server, server -> client)


class NoiseServer:
    def __init__(self, static: KeyPair, cert_chain: bytes, max_frame: int = MAX_FRAME) -> None:
        self._static = static
        self._cert_chain = cert_chain
        self._max_frame = max_frame
        self._buffer = bytearray()
        self._phase = _Phase.INTRO
        self._state = SymmetricState()
        self._ephemeral = KeyPair.generate()
        self._read_key = b""
        self._write_key = b""
        self._read_counter = 0
        self._write_counter = 0

    @property
    def established(self) -> bool:
        return self._phase is _Phase.TRANSPORT

    def receive(self, data: bytes) -> list[Event]:
        self._buffer += data
        events: list[Event] = []
        if self._phase is _Phase.INTRO and not self._read_intro():
            return events
        while (payload := self._next_frame()) is not None:
            events.extend(self._handle(payload))
        return events

    def encrypt_frame(self, payload: bytes) -> bytes:
        if self._phase is not _Phase.TRANSPORT:
            raise TransportError("cannot send a node before the handshake completes")
        ct = aes_gcm_encrypt(self._write_key, self._write_counter, payload, b"")
        self._write_counter += 1
        return frame(ct)

    # -- framing -------------------------------------------------------------------------------

    def _read_intro(self) -> bool:
        buf = self._buffer
        start = 0
        if bytes(buf) == ROUTING_MAGIC[:1]:
            return False  # 'E' alone: the routing prefix, cut after its first byte
        if buf[:2] == ROUTING_MAGIC:
            # 'ED' 0x00 0x01, 3-byte routing-info length, routing info, then the WA header.
            if len(buf) < 7:
                return False
            if buf[2:4] != b"\x00\x01":
                raise TransportError("malformed ED routing header")
            start = 7 + int.from_bytes(buf[4:7], "big")
        if len(buf) < start + 4:
            if not INTRO_HEADER.startswith(bytes(buf[start : start + 4])):
                raise TransportError(f"bad intro header {bytes(buf[start : start + 4]).hex()}")
            return False
        header = bytes(buf[start : start + 4])
        if header[:2] != WA_MAGIC:
            raise TransportError(f"bad intro header {header.hex()} (expected 'WA')")
        if header[2] != WA_VERSION or header[3] != DICT_VERSION:
            raise TransportError(
                f"unsupported protocol version {header[2]}.{header[3]} (wasim speaks {WA_VERSION}.{DICT_VERSION})"
            )
        # The prologue is the WA header alone, also after an ED routing prefix.
        self._state.mix_hash(INTRO_HEADER)
        del buf[: start + 4]
        self._phase = _Phase.HELLO
        return True

    def _next_frame(self) -> bytes | None:
        if len(self._buffer) < 3:
            return None
        size = int.from_bytes(self._buffer[:3], "big")
        if size > self._max_frame:
            raise TransportError(f"frame of {size} bytes exceeds the limit of {self._max_frame}")
        if len(self._buffer) < 3 + size:
            return None
        payload = bytes(self._buffer[3 : 3 + size])
        del self._buffer[: 3 + size]
        return payload

    # -- handshake -----------------------------------------------------------------------------

    def _handle(self, payload: bytes) -> list[Event]:
        if self._phase is _Phase.HELLO:
            return [self._on_client_hello(payload)]
        if self._phase is _Phase.FINISH:
            return [self._on_client_finish(payload)]
        try:
            plain = aes_gcm_decrypt(self._read_key, self._read_counter, payload, b"")
        except Exception as exc:  # cryptography raises InvalidTag
            raise TransportError("a transport frame failed authentication") from exc
        self._read_counter += 1
        return [Frame(plain)]

    def _on_client_hello(self, payload: bytes) -> Send:
        msg = _parse_handshake(payload)
        hello = msg.client_hello
        if not msg.HasField("client_hello") or len(hello.ephemeral) != 32:
            raise TransportError("first frame is not a ClientHello with a 32-byte ephemeral key")
        st = self._state
        st.mix_hash(hello.ephemeral)
        st.mix_hash(self._ephemeral.public)
        st.mix_key(self._ephemeral.dh(hello.ephemeral))
        static_ct = st.encrypt_and_hash(self._static.public)
        st.mix_key(self._static.dh(hello.ephemeral))
        cert_ct = st.encrypt_and_hash(self._cert_chain)
        self._client_ephemeral = hello.ephemeral
        reply = wa_pb2.HandshakeMessage(
            server_hello=wa_pb2.HandshakeMessage.ServerHello(
                ephemeral=self._ephemeral.public, static=static_ct, payload=cert_ct
            )
        )
        self._phase = _Phase.FINISH
        return Send(frame(reply.SerializeToString()))

    def _on_client_finish(self, payload: bytes) -> ClientAuthenticated:
        msg = _parse_handshake(payload)
        if not msg.HasField("client_finish"):
            raise TransportError("second frame is not a ClientFinish")
        st = self._state
        try:
            client_static = st.decrypt_and_hash(msg.client_finish.static)
            st.mix_key(self._ephemeral.dh(client_static))
            raw_payload = st.decrypt_and_hash(msg.client_finish.payload)
        except TransportError:
            raise
        except Exception as exc:
            raise TransportError("handshake failed: ClientFinish did not decrypt") from exc
        client_payload = wa_pb2.ClientPayload()
        try:
            client_payload.ParseFromString(raw_payload)
        except DecodeError as exc:
            raise TransportError("handshake failed: ClientPayload is not valid protobuf") from exc
        self._read_key, self._write_key = st.split()
        self._phase = _Phase.TRANSPORT
        return ClientAuthenticated(client_payload, client_static)


def _looks_like_a_node(payload: bytes) -> bool:
    """A binary stanza as a client frames it once the handshake is done: a flags byte (0, or 2
    when compressed) then a list tag."""
    return len(payload) >= 2 and payload[0] in (0, 2) and payload[1] in (LIST_8, LIST_16)


def _parse_handshake(payload: bytes) -> wa_pb2.HandshakeMessage:
    # A client that writes a stanza before its handshake is done sends it unencrypted, where the
    # ClientFinish belongs (Baileys does, when asked to send while connecting: issue #13).
    if _looks_like_a_node(payload):
        raise TransportError(
            f"a stanza arrived before the handshake was done ({len(payload)} bytes: {payload[:16].hex()}…): "
            "the client sent a node before its ClientFinish"
        )
    msg = wa_pb2.HandshakeMessage()
    try:
        msg.ParseFromString(payload)
    except DecodeError as exc:
        # the length and first bytes, to tell a truncated frame from a misaligned one
        raise TransportError(
            f"handshake frame is not a valid HandshakeMessage ({len(payload)} bytes: {payload[:16].hex()}…)"
        ) from exc
    return msg
