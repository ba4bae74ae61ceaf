"""Unit checks of the sans-I/O pieces that Baileys only reports on as a failed handshake."""

from __future__ import annotations

import base64
import os

import pytest

from wasim.protocol import wa_pb2
from wasim.protocol.certs import build_cert_chain
from wasim.protocol.crypto import KeyPair, signal_public, verify
from wasim.protocol.pairing import PairingError, build_device_identity, check_device_signature, parse_qr


def test_xeddsa_signatures_verify_and_reject_tampering() -> None:
    for _ in range(16):
        key = KeyPair.generate()
        msg = os.urandom(40)
        sig = key.sign(msg)
        assert len(sig) == 64
        assert verify(key.public, msg, sig)
        assert verify(signal_public(key.public), msg, sig)  # 0x05-prefixed form too
        assert not verify(key.public, msg + b"x", sig)
        assert not verify(KeyPair.generate().public, msg, sig)


def test_intermediate_certificate_carries_explicit_zero_issuer_serial() -> None:
    root, inter, static = KeyPair.generate(), KeyPair.generate(), KeyPair.generate()
    chain = wa_pb2.CertChain.FromString(build_cert_chain(root, inter, static.public))
    details = chain.intermediate.details
    # Baileys decodes an absent issuerSerial as null and refuses the chain: field 2 must be on the wire.
    assert b"\x10\x00" in details
    parsed = wa_pb2.CertChain.NoiseCertificate.Details.FromString(details)
    assert parsed.issuer_serial == 0 and parsed.key == inter.public
    assert verify(root.public, details, chain.intermediate.signature)
    leaf = wa_pb2.CertChain.NoiseCertificate.Details.FromString(chain.leaf.details)
    assert leaf.key == static.public
    assert verify(inter.public, chain.leaf.details, chain.leaf.signature)


def _qr(ref: str = "2@abc", noise: bytes | None = None, ident: bytes | None = None) -> str:
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    parts = [ref, b64(noise or os.urandom(32)), b64(ident or os.urandom(32)), b64(os.urandom(32)), "1"]
    return "https://wa.me/settings/linked_devices#" + ",".join(parts)


def test_parse_qr_reads_every_field() -> None:
    noise, ident = os.urandom(32), os.urandom(32)
    data = parse_qr(_qr("2@ref", noise, ident))
    assert (data.ref, data.noise_public, data.identity_public, data.platform) == ("2@ref", noise, ident, "1")
    assert len(data.adv_secret) == 32


@pytest.mark.parametrize(
    ("qr", "why"),
    [
        ("hello", "not a WhatsApp linking QR"),
        ("https://wa.me/settings/linked_devices#,a,b,c", "empty ref"),
        ("2@r,!!!,AAAA,AAAA,1", "not base64"),
        ("2@r," + base64.b64encode(b"short").decode() + ",AAAA,AAAA,1", "expected 32"),
    ],
)
def test_parse_qr_rejects_malformed_codes_with_a_reason(qr: str, why: str) -> None:
    with pytest.raises(PairingError, match=why):
        parse_qr(qr)


def test_device_identity_round_trip_and_signature_check() -> None:
    account, companion = KeyPair.generate(), KeyPair.generate()
    secret = os.urandom(32)
    ident = build_device_identity(account, 1234, 1, companion.public, secret, 1_700_000_000)
    container = wa_pb2.ADVSignedDeviceIdentityHMAC.FromString(ident.hmac_container)
    signed = wa_pb2.ADVSignedDeviceIdentity.FromString(container.details)
    assert verify(account.public, b"\x06\x00" + signed.details + companion.public, signed.account_signature)
    # What a companion sends back: the same details with its device signature.
    reply = wa_pb2.ADVSignedDeviceIdentity(
        details=signed.details,
        account_signature=signed.account_signature,
        device_signature=companion.sign(b"\x06\x01" + signed.details + companion.public + account.public),
    ).SerializeToString()
    check_device_signature(reply, ident, account.public, companion.public)
    forged = wa_pb2.ADVSignedDeviceIdentity(details=signed.details, device_signature=os.urandom(64))
    with pytest.raises(PairingError, match="does not verify"):
        check_device_signature(forged.SerializeToString(), ident, account.public, companion.public)
