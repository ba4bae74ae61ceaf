"""The Noise certificate chain wasim presents: root -> intermediate -> leaf (the server's static key).

Baileys checks the intermediate against `WA_CERT_DETAILS.PUBLIC_KEY` (which a sandboxed client sets
to wasim's root public key) and requires the intermediate's issuer serial to equal its root serial
(0), explicitly present on the wire.
"""

from __future__ import annotations

import time

from wasim.protocol import wa_pb2
from wasim.protocol.crypto import KeyPair

ROOT_SERIAL = 0
INTERMEDIATE_SERIAL = 1
LEAF_SERIAL = 2
_VALIDITY_SECONDS = 10 * 365 * 24 * 3600


def _certificate(
    signer: KeyPair, serial: int, issuer_serial: int, key: bytes, now: int
) -> wa_pb2.CertChain.NoiseCertificate:
    details = wa_pb2.CertChain.NoiseCertificate.Details(
        serial=serial,
        issuer_serial=issuer_serial,  # proto2: serialized even when 0, as Baileys requires
        key=key,
        not_before=now - 3600,
        not_after=now + _VALIDITY_SECONDS,
    )
    raw = details.SerializeToString()
    return wa_pb2.CertChain.NoiseCertificate(details=raw, signature=signer.sign(raw))


def build_cert_chain(
    root: KeyPair, intermediate: KeyPair, server_static_public: bytes, now: int | None = None
) -> bytes:
    t = int(time.time()) if now is None else now
    chain = wa_pb2.CertChain(
        intermediate=_certificate(root, INTERMEDIATE_SERIAL, ROOT_SERIAL, intermediate.public, t),
        leaf=_certificate(intermediate, LEAF_SERIAL, INTERMEDIATE_SERIAL, server_static_public, t),
    )
    return bytes(chain.SerializeToString())
