"""QR pairing, the phone's half, sans-I/O: read the QR a companion shows, build the signed device
identity the phone sends in `pair-success`, and check the companion's `pair-device-sign` reply.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from wasim.protocol import wa_pb2
from wasim.protocol.crypto import KeyPair, hmac_sha256, verify

QR_PREFIX = "https://wa.me/settings/linked_devices#"
# Signature prefixes for ADV identities (E2EE accounts): account signs with 06 00, device with 06 01.
ACCOUNT_SIGNATURE_PREFIX = b"\x06\x00"
DEVICE_SIGNATURE_PREFIX = b"\x06\x01"


class PairingError(Exception):
    """A QR or a pairing reply is not what a phone would accept; the message says why."""


@dataclass(frozen=True, slots=True)
class QrData:
    ref: str
    noise_public: bytes
    identity_public: bytes
    adv_secret: bytes
    platform: str


def _b64(field: str, value: str, size: int | None) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PairingError(f"QR field {field} is not base64") from exc
    if size is not None and len(raw) != size:
        raise PairingError(f"QR field {field} has {len(raw)} bytes, expected {size}")
    return raw


def parse_qr(qr: str) -> QrData:
    """Parse `ref,noiseKey,identityKey,advSecret,platform` (optionally behind the wa.me prefix)."""
    text = qr.strip()
    if "#" in text:
        text = text.split("#", 1)[1]
    parts = text.split(",")
    if len(parts) < 4:
        raise PairingError("not a WhatsApp linking QR code: expected ref,noise key,identity key,secret")
    ref = parts[0]
    if not ref:
        raise PairingError("the QR code has an empty ref")
    return QrData(
        ref=ref,
        noise_public=_b64("noise key", parts[1], 32),
        identity_public=_b64("identity key", parts[2], 32),
        adv_secret=_b64("adv secret", parts[3], None),
        platform=parts[4] if len(parts) > 4 else "",
    )


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """What the phone sends (`hmac_container`) and what it later expects signed back (`details`)."""

    details: bytes
    hmac_container: bytes
    key_index: int


def build_device_identity(
    account: KeyPair,
    raw_id: int,
    key_index: int,
    companion_identity: bytes,
    adv_secret: bytes,
    timestamp: int,
) -> DeviceIdentity:
    details = wa_pb2.ADVDeviceIdentity(
        raw_id=raw_id, timestamp=timestamp, key_index=key_index, account_type=0, device_type=0
    ).SerializeToString()
    account_signature = account.sign(ACCOUNT_SIGNATURE_PREFIX + details + companion_identity)
    signed = wa_pb2.ADVSignedDeviceIdentity(
        details=details, account_signature_key=account.public, account_signature=account_signature
    ).SerializeToString()
    container = wa_pb2.ADVSignedDeviceIdentityHMAC(
        details=signed, hmac=hmac_sha256(adv_secret, signed)
    ).SerializeToString()
    return DeviceIdentity(details=bytes(details), hmac_container=bytes(container), key_index=key_index)


def check_device_signature(
    reply: bytes, expected: DeviceIdentity, account_public: bytes, companion_identity: bytes
) -> None:
    """Verify the companion's `pair-device-sign` identity: same details, valid device signature."""
    signed = wa_pb2.ADVSignedDeviceIdentity()
    try:
        signed.ParseFromString(reply)
    except DecodeError as exc:
        raise PairingError("pair-device-sign carries no valid ADVSignedDeviceIdentity") from exc
    if signed.details != expected.details:
        raise PairingError("the companion signed different device details than the phone sent")
    message = DEVICE_SIGNATURE_PREFIX + signed.details + companion_identity + account_public
    if not verify(companion_identity, message, signed.device_signature):
        raise PairingError("the companion's device signature does not verify")
