"""A bare WhatsApp Web client for bad-input tests: it can stop after any step of the handshake
and send crafted bytes, which Baileys never would. Not a Baileys substitute for anything else."""

from __future__ import annotations

from websockets.asyncio.client import ClientConnection, connect

from wasim.protocol import wa_pb2
from wasim.protocol.crypto import KeyPair, aes_gcm_decrypt, aes_gcm_encrypt
from wasim.protocol.noise import INTRO_HEADER, SymmetricState, frame


class RawClient:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._state = SymmetricState()  # the same Noise mechanism the server uses, client side
        self._write_key = self._read_key = b""
        self._write_n = self._read_n = 0

    @classmethod
    async def open(cls, url: str) -> RawClient:
        return cls(await connect(url, max_size=None, compression=None))

    async def handshake(self, payload: bytes = b"\x08\x01", routing_info: bytes | None = None) -> None:
        """Complete the Noise handshake, sending `payload` as the ClientPayload; with
        `routing_info`, open with the 'ED' edge-routing header as a client that was given one."""
        eph, static = KeyPair.generate(), KeyPair.generate()
        self._state.mix_hash(INTRO_HEADER)
        self._state.mix_hash(eph.public)
        hello = wa_pb2.HandshakeMessage(client_hello=wa_pb2.HandshakeMessage.ClientHello(ephemeral=eph.public))
        intro = INTRO_HEADER
        if routing_info is not None:
            intro = b"ED\x00\x01" + len(routing_info).to_bytes(3, "big") + routing_info + INTRO_HEADER
        await self.ws.send(intro + frame(hello.SerializeToString()))
        reply = await self.ws.recv()
        assert isinstance(reply, bytes)
        server = wa_pb2.HandshakeMessage.FromString(reply[3:]).server_hello
        self._state.mix_hash(server.ephemeral)
        self._state.mix_key(eph.dh(server.ephemeral))
        server_static = self._state.decrypt_and_hash(server.static)
        self._state.mix_key(eph.dh(server_static))
        self._state.decrypt_and_hash(server.payload)
        static_ct = self._state.encrypt_and_hash(static.public)
        self._state.mix_key(static.dh(server.ephemeral))
        payload_ct = self._state.encrypt_and_hash(payload)
        finish = wa_pb2.HandshakeMessage(
            client_finish=wa_pb2.HandshakeMessage.ClientFinish(static=static_ct, payload=payload_ct)
        )
        await self.ws.send(frame(finish.SerializeToString()))
        self._write_key, self._read_key = self._state.split()  # (client -> server, server -> client)

    async def send_encrypted(self, plaintext: bytes) -> None:
        ct = aes_gcm_encrypt(self._write_key, self._write_n, plaintext, b"")
        self._write_n += 1
        await self.ws.send(frame(ct))

    async def recv_node(self) -> bytes:
        data = await self.ws.recv()
        assert isinstance(data, bytes)
        return self.decrypt(data)

    def decrypt(self, data: bytes) -> bytes:
        pt = aes_gcm_decrypt(self._read_key, self._read_n, data[3:], b"")
        self._read_n += 1
        return pt
