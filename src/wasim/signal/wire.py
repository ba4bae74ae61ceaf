"""Signal v3 wire messages as libsignal-node 6 writes them (WhisperTextProtocol.js).

WhisperMessage   = 0x33 || protobuf{1 ratchetKey, 2 counter, 3 previousCounter, 4 ciphertext} || MAC[0:8]
PreKeyWhisperMessage = 0x33 || protobuf{1 preKeyId, 2 baseKey, 3 identityKey, 4 WhisperMessage,
                                        5 registrationId, 6 signedPreKeyId}
The MAC is HMAC-SHA256(macKey, senderIdentity(33) || receiverIdentity(33) || 0x33 || protobuf)
truncated to 8 bytes. The protobufs are small enough to encode by hand.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from dataclasses import dataclass

from .errors import InvalidKey, InvalidMac, InvalidMessage
from .keys import signal_key

CURRENT_VERSION = 3
VERSION_BYTE = (CURRENT_VERSION << 4) | CURRENT_VERSION
MAC_LENGTH = 8
_UINT32_MAX = 0xFFFFFFFF

_VARINT = 0
_I64 = 1
_LEN = 2
_I32 = 5


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = 0
    for shift in range(0, 70, 7):
        if pos >= len(data):
            raise InvalidMessage("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
    raise InvalidMessage("varint too long")


def _uint_field(number: int, value: int) -> bytes:
    return _varint(number << 3 | _VARINT) + _varint(value)


def _bytes_field(number: int, value: bytes) -> bytes:
    return _varint(number << 3 | _LEN) + _varint(len(value)) + value


def _fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """Yield (field number, value) pairs; fixed-width fields are skipped like unknown ones."""
    pos = 0
    while pos < len(data):
        tag, pos = _read_varint(data, pos)
        number, wire_type = tag >> 3, tag & 7
        if number == 0:
            raise InvalidMessage("protobuf field number 0")
        if wire_type == _VARINT:
            value, pos = _read_varint(data, pos)
            yield number, value
        elif wire_type == _LEN:
            length, pos = _read_varint(data, pos)
            if pos + length > len(data):
                raise InvalidMessage("truncated protobuf field")
            yield number, data[pos : pos + length]
            pos += length
        elif wire_type in (_I64, _I32):
            pos += 8 if wire_type == _I64 else 4
            if pos > len(data):
                raise InvalidMessage("truncated protobuf field")
        else:
            raise InvalidMessage(f"unsupported protobuf wire type {wire_type}")


def _parse(data: bytes, schema: dict[int, type]) -> dict[int, int | bytes]:
    """Decode the known fields (last occurrence wins, as in protobuf), checking their wire types."""
    values: dict[int, int | bytes] = {}
    for number, value in _fields(data):
        expected = schema.get(number)
        if expected is None:
            continue
        if not isinstance(value, expected):
            raise InvalidMessage(f"protobuf field {number} has the wrong wire type")
        values[number] = value
    return values


def _uint32(values: dict[int, int | bytes], number: int) -> int:
    """An unsigned field; absent reads as 0, as protobufjs' defaults do."""
    value = values.get(number, 0)
    if not isinstance(value, int) or value > _UINT32_MAX:
        raise InvalidMessage(f"protobuf field {number} is not a uint32")
    return value


def _key(values: dict[int, int | bytes], number: int, name: str) -> bytes:
    value = values.get(number)
    if not isinstance(value, bytes):
        raise InvalidMessage(f"missing {name}")
    # The MAC layout assumes 33-byte keys, so anything else cannot be a valid message.
    if len(value) != 33:
        raise InvalidMessage(f"{name} must be a 33-byte Signal key, got {len(value)} bytes")
    try:
        return signal_key(value)
    except InvalidKey as exc:
        raise InvalidMessage(f"{name}: {exc}") from exc


def _check_version(data: bytes, what: str) -> None:
    if not data:
        raise InvalidMessage(f"empty {what}")
    high, low = data[0] >> 4, data[0] & 0x0F
    # libsignal-node accepts any version byte whose range includes 3.
    if high < CURRENT_VERSION or low > CURRENT_VERSION:
        raise InvalidMessage(f"unsupported {what} version byte 0x{data[0]:02x}")


def compute_mac(mac_key: bytes, sender_identity: bytes, receiver_identity: bytes, body: bytes) -> bytes:
    mac_input = sender_identity + receiver_identity + bytes([VERSION_BYTE]) + body
    return hmac.new(mac_key, mac_input, hashlib.sha256).digest()[:MAC_LENGTH]


@dataclass(frozen=True, slots=True)
class WhisperMessage:
    ratchet_key: bytes
    counter: int
    previous_counter: int
    ciphertext: bytes
    body: bytes  # the protobuf exactly as received: the MAC covers these bytes
    mac: bytes

    @classmethod
    def build(
        cls,
        *,
        mac_key: bytes,
        sender_identity: bytes,
        receiver_identity: bytes,
        ratchet_key: bytes,
        counter: int,
        previous_counter: int,
        ciphertext: bytes,
    ) -> WhisperMessage:
        # libsignal writes all four fields, even zero counters, in field order.
        body = (
            _bytes_field(1, ratchet_key)
            + _uint_field(2, counter)
            + _uint_field(3, previous_counter)
            + _bytes_field(4, ciphertext)
        )
        mac = compute_mac(mac_key, sender_identity, receiver_identity, body)
        return cls(ratchet_key, counter, previous_counter, ciphertext, body, mac)

    @classmethod
    def parse(cls, data: bytes) -> WhisperMessage:
        _check_version(data, "WhisperMessage")
        if len(data) < 1 + MAC_LENGTH:
            raise InvalidMessage("WhisperMessage too short")
        body, mac = data[1:-MAC_LENGTH], data[-MAC_LENGTH:]
        values = _parse(body, {1: bytes, 2: int, 3: int, 4: bytes})
        ciphertext = values.get(4)
        if not isinstance(ciphertext, bytes) or not ciphertext:
            raise InvalidMessage("WhisperMessage without ciphertext")
        return cls(_key(values, 1, "ratchet key"), _uint32(values, 2), _uint32(values, 3), ciphertext, body, mac)

    def serialize(self) -> bytes:
        return bytes([VERSION_BYTE]) + self.body + self.mac

    def verify_mac(self, mac_key: bytes, sender_identity: bytes, receiver_identity: bytes) -> None:
        expected = compute_mac(mac_key, sender_identity, receiver_identity, self.body)
        if not hmac.compare_digest(expected, self.mac):
            raise InvalidMac("bad MAC")


@dataclass(frozen=True, slots=True)
class PreKeyWhisperMessage:
    registration_id: int
    pre_key_id: int | None  # None (or 0 on the wire) = no one-time pre-key was used
    signed_pre_key_id: int
    base_key: bytes
    identity_key: bytes
    message: WhisperMessage

    @classmethod
    def parse(cls, data: bytes) -> PreKeyWhisperMessage:
        _check_version(data, "PreKeyWhisperMessage")
        values = _parse(data[1:], {1: int, 2: bytes, 3: bytes, 4: bytes, 5: int, 6: int})
        inner = values.get(4)
        if not isinstance(inner, bytes):
            raise InvalidMessage("PreKeyWhisperMessage without a message")
        return cls(
            registration_id=_uint32(values, 5),
            pre_key_id=_uint32(values, 1) or None,
            signed_pre_key_id=_uint32(values, 6),
            base_key=_key(values, 2, "base key"),
            identity_key=_key(values, 3, "identity key"),
            message=WhisperMessage.parse(inner),
        )

    def serialize(self) -> bytes:
        body = b""
        if self.pre_key_id:
            body += _uint_field(1, self.pre_key_id)
        body += (
            _bytes_field(2, self.base_key)
            + _bytes_field(3, self.identity_key)
            + _bytes_field(4, self.message.serialize())
            + _uint_field(5, self.registration_id)
            + _uint_field(6, self.signed_pre_key_id)
        )
        return bytes([VERSION_BYTE]) + body
