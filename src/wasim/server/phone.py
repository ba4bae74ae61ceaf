"""The simulated phone: it scans a companion's QR code and links it to its account, as the
WhatsApp app's Linked Devices screen does; it can also refuse, or simply not scan (expiry)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from wasim.protocol.binary import Node
from wasim.protocol.pairing import PairingError, build_device_identity, check_device_signature, parse_qr
from wasim.server.nodes import SERVER_JID, new_id, now_s, stream_error
from wasim.server.ports import EventSink, Kind, Peer, Spawn
from wasim.server.registry import Connections
from wasim.state import Device, SignedPreKey, WasimState, new_account

log = logging.getLogger("wasim.phone")

PLATFORM_NAME = "android"
RESTART_REQUIRED = 515


@dataclass(frozen=True, slots=True)
class PairResult:
    phone: str
    device_jid: str
    lid_jid: str


class SimulatedPhone:
    def __init__(
        self, state: WasimState, events: EventSink, connections: Connections, spawn: Spawn, default_phone: str
    ) -> None:
        self._state = state
        self._events = events
        self._connections = connections
        self._spawn = spawn
        self._default_phone = default_phone
        self._refused: set[str] = set()

    async def scan(self, qr: str, phone: str | None = None, name: str = "Sim User") -> PairResult:
        """Scan `qr` with the phone of account `phone` (created on first use) and link the device.

        Raises PairingError with the sentence the phone would show when it cannot link.
        """
        data = parse_qr(qr)
        if data.ref in self._refused:
            raise PairingError("this QR code was refused on the phone; generate a new one")
        conn = self._connections.for_ref(data.ref)
        if conn is None or conn.kind is not Kind.REGISTRATION or conn.payload is None:
            self._events.emit("pairing.failed", why="unknown or expired ref")
            raise PairingError("couldn't link device: the QR code is unknown or expired; generate a new one")
        if data.noise_public != conn.client_static:
            raise PairingError("couldn't link device: the QR code's key does not match its connection")
        reg = conn.payload.device_pairing_data
        if data.identity_public != reg.e_ident:
            raise PairingError("couldn't link device: the QR code's identity key does not match")
        self._connections.forget_refs(conn)  # a ref links at most one device
        return await self.link(conn, data.identity_public, data.adv_secret, data.platform, phone, name)

    async def link(
        self,
        conn: Peer,
        companion_identity: bytes,
        adv_secret: bytes,
        platform: str,
        phone: str | None = None,
        name: str = "Sim User",
    ) -> PairResult:
        """Link the companion on `conn` to account `phone`: pair-success keyed by `adv_secret` (from
        the QR, or agreed through a typed code), its signature checked, then 515 as after a scan."""
        if conn.payload is None:
            raise PairingError("couldn't link device: the companion's connection is not registering")
        reg = conn.payload.device_pairing_data
        account = self._state.account(phone or self._default_phone)
        if account is None:
            account = self._state.add_account(new_account(phone or self._default_phone, name))
        device_id = account.next_device_id
        identity = build_device_identity(
            account.identity,
            account.raw_id,
            account.key_index,
            companion_identity,
            adv_secret,
            int(time.time()),
        )
        pair_success = Node(
            "iq",
            {"type": "set", "id": new_id(), "xmlns": "md", "from": SERVER_JID, "t": now_s()},
            [
                Node(
                    "pair-success",
                    {},
                    [
                        Node("device-identity", {"key-index": str(identity.key_index)}, identity.hmac_container),
                        Node("platform", {"name": PLATFORM_NAME}),
                        Node(
                            "device",
                            {
                                "jid": f"{account.phone}:{device_id}@s.whatsapp.net",
                                "lid": f"{account.lid}:{device_id}@lid",
                            },
                        ),
                        Node("biz", {"name": account.name}),
                    ],
                )
            ],
        )
        try:
            reply = await conn.query(pair_success, timeout=15.0)
        except (TimeoutError, ConnectionError) as exc:
            self._events.emit("pairing.failed", why="companion did not answer pair-success")
            raise PairingError("couldn't link device: the companion did not confirm the pairing") from exc
        sign = reply.child("pair-device-sign")
        signed = sign.child("device-identity") if sign else None
        if reply.attrs.get("type") != "result" or signed is None:
            self._events.emit("pairing.failed", why="companion rejected pair-success", reply=str(reply))
            raise PairingError(f"couldn't link device: the companion rejected the pairing ({reply})")
        check_device_signature(signed.content_bytes(), identity, account.identity.public, companion_identity)
        account.next_device_id += 1
        account.devices[device_id] = Device(
            device_id=device_id,
            noise_public=conn.client_static,
            identity_public=bytes(reg.e_ident),
            registration_id=int.from_bytes(reg.e_regid, "big"),
            signed_prekey=SignedPreKey(
                int.from_bytes(reg.e_skey_id, "big"), bytes(reg.e_skey_val), bytes(reg.e_skey_sig)
            ),
            platform=platform,
            linked_at=time.time(),
        )
        self._state.save()
        result = PairResult(
            phone="+" + account.phone,
            device_jid=f"{account.phone}:{device_id}@s.whatsapp.net",
            lid_jid=f"{account.lid}:{device_id}@lid",
        )
        self._events.emit("paired", phone=result.phone, device=device_id, conn=conn.id)
        # As WhatsApp does: the companion must reconnect and log in with its new credentials.
        self._spawn(conn.end_with(stream_error(RESTART_REQUIRED)), "restart after pairing")
        return result

    def refuse(self, qr: str) -> None:
        """The person declines on the phone: this QR never links; the companion's QR runs out."""
        data = parse_qr(qr)
        self._refused.add(data.ref)
        self._events.emit("pairing.refused", ref=data.ref)

    async def unlink(self, phone: str, device_id: int) -> None:
        """Remove a linked device from the phone's Linked Devices list (the companion gets 401)."""
        found = self._state.find_device_owner(phone, device_id)
        if found is None:
            raise ValueError(f"no device {device_id} linked to {phone}")
        found[1].removed = True
        found[1].prekeys.clear()
        self._state.save()
        for conn in self._connections.logged_in(phone):
            if conn.device is found[1]:
                await conn.end_with(stream_error(401, conflict="device_removed"))
        self._events.emit("device.unlinked", reason="phone", phone=phone, device=device_id)
