"""Linking by code ("Link with phone number instead"), the server's and the phone's side.

1. The companion, on its registration connection, sends `link_code_companion_reg` stage
   `companion_hello`: its ephemeral key wrapped under the code it shows, for the account `jid`.
   A number with no WhatsApp account gets an error; otherwise the server keeps the request (the
   latest per account) and answers with a pairing ref.
2. The person types the code on the phone (`pair`). The phone unwraps the companion's key with
   what was typed and sends, through the server, a `primary_hello` notification: its own wrapped
   ephemeral key and the account's identity key.
3. The companion answers `companion_finish` with its sealed key bundle. Only a right code opens
   it: then the phone links the device exactly as after a QR scan (pair-success keyed by the
   agreed ADV secret, the signature back, 515). A wrong code is refused on the phone ("Couldn't
   link device"), the companion's finish is answered with an error, and the companion is told
   with a `refresh_code` notification that forces a new code: the typed one is spent.

Codes run out `code_seconds` after the request (WhatsApp's pairing window: the first QR minute
and five 20-second refs, 160 s); a code typed later is refused and the companion hears nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from wasim.protocol.binary import Node
from wasim.protocol.crypto import KeyPair
from wasim.protocol.linkcode import LinkCodeError, PrimaryHello, finish, normalize_code, primary_hello
from wasim.protocol.pairing import PairingError
from wasim.server.nodes import SERVER_JID, iq_error, iq_result, new_id, now_s
from wasim.server.phone import PairResult, SimulatedPhone
from wasim.server.ports import EventSink, Kind, Peer, Spawn
from wasim.server.registry import Connections
from wasim.state import WasimState, new_account

log = logging.getLogger("wasim.linkcode")

CODE_SECONDS = 160.0
FINISH_TIMEOUT = 15.0
TAG = "link_code_companion_reg"
WRONG_CODE = "Couldn't link device. Check the code on the other device and try again; it shows a new one."
EXPIRED_CODE = "Couldn't link device: the code has expired. Get a new code on the other device."
NO_CODE = "Couldn't link device: no device is waiting for a code for this number. Get a code on the other device first."


@dataclass(slots=True)
class CodeRequest:
    conn: Peer
    phone: str
    ref: str
    wrapped_ephemeral: bytes
    platform: str
    expires_at: float
    hello: PrimaryHello | None = None
    finished: asyncio.Future[bytes] | None = field(default=None)
    companion_identity: bytes = b""


def _child_bytes(node: Node, tag: str) -> bytes:
    child = node.child(tag)
    if child is None:
        raise LinkCodeError(f"{TAG} without {tag}")
    return child.content_bytes()


class CodeLinking:
    def __init__(
        self,
        state: WasimState,
        events: EventSink,
        phone: SimulatedPhone,
        connections: Connections,
        spawn: Spawn,
        default_phone: str,
        code_seconds: float = CODE_SECONDS,
    ) -> None:
        self._state = state
        self._events = events
        self._phone = phone
        self._connections = connections
        self._spawn = spawn
        self._default_phone = default_phone
        self.code_seconds = code_seconds
        self._requests: dict[str, CodeRequest] = {}  # account phone -> the latest request

    # -- the companion's iqs (an IqRouter handler) --------------------------------------------

    def on_companion_reg(self, conn: Peer, node: Node) -> Node:
        reg = node.children()[0]
        stage = reg.attrs.get("stage", "")
        try:
            if stage == "companion_hello":
                return self._hello(conn, node, reg)
            if stage == "companion_finish":
                return self._finish(conn, node, reg)
        except LinkCodeError as exc:
            log.warning("bad %s from %s: %s", TAG, conn.id, exc)
            return iq_error(node, 400, "bad-request")
        return iq_error(node, 400, "bad-request")

    def _on_whatsapp(self, phone: str) -> bool:
        return phone == self._default_phone or self._state.account(phone) is not None

    def _hello(self, conn: Peer, node: Node, reg: Node) -> Node:
        phone = reg.attrs.get("jid", "").split("@", 1)[0].split(":", 1)[0]
        if conn.kind is not Kind.REGISTRATION:
            return iq_error(node, 400, "bad-request")
        if not phone.isdigit() or not self._on_whatsapp(phone):
            self._events.emit("linkcode.refused", why="not on WhatsApp", phone=phone, conn=conn.id)
            return iq_error(node, 404, "not-found")
        platform = reg.child("companion_platform_id")
        ref = f"2@{new_id()}"
        self._requests[phone] = CodeRequest(
            conn=conn,
            phone=phone,
            ref=ref,
            wrapped_ephemeral=_child_bytes(reg, "link_code_pairing_wrapped_companion_ephemeral_pub"),
            platform=platform.content_bytes().decode(errors="replace") if platform is not None else "",
            expires_at=time.time() + self.code_seconds,
        )
        self._events.emit("linkcode.requested", phone="+" + phone, conn=conn.id, ref=ref)
        return iq_result(node, [Node(TAG, {}, [Node("link_code_pairing_ref", {}, ref.encode())])])

    def _finish(self, conn: Peer, node: Node, reg: Node) -> Node:
        ref = _child_bytes(reg, "link_code_pairing_ref").decode(errors="replace")
        request = next((r for r in self._requests.values() if r.ref == ref and r.conn is conn), None)
        if request is None or request.hello is None or request.finished is None or request.finished.done():
            return iq_error(node, 404, "not-found")
        identity = _child_bytes(reg, "companion_identity_public")
        try:
            if conn.payload is None or identity != conn.payload.device_pairing_data.e_ident:
                raise LinkCodeError("the companion's identity is not the one it registered with")
            secret = finish(
                request.hello,
                self._account_identity(request.phone),
                _child_bytes(reg, "link_code_pairing_wrapped_key_bundle"),
                identity,
            )
        except LinkCodeError as exc:
            request.finished.set_exception(exc)
            return iq_error(node, 400, "bad-request")
        request.companion_identity = identity
        request.finished.set_result(secret)
        return iq_result(node)

    def _account_identity(self, phone: str) -> KeyPair:
        account = self._state.account(phone)
        if account is None:
            raise LinkCodeError("the account went away while linking")
        return account.identity

    # -- the phone ------------------------------------------------------------------------------

    async def pair(self, typed: str, phone: str | None = None, name: str = "Sim User") -> PairResult:
        """The person types `typed` on the phone of account `phone`. Raises PairingError with the
        sentence the phone shows when it cannot link."""
        try:
            code = normalize_code(typed)
        except LinkCodeError as exc:
            raise PairingError(f"Couldn't link device: {exc}") from exc
        number = (phone or self._default_phone).lstrip("+")
        request = self._requests.get(number)
        if request is None:
            raise PairingError(NO_CODE)
        if time.time() > request.expires_at or request.conn not in list(self._connections):
            self._forget(request)
            self._events.emit("linkcode.expired", phone="+" + number, conn=request.conn.id)
            raise PairingError(EXPIRED_CODE)
        account = self._state.account(number) or self._state.add_account(new_account(number, name))
        request.hello = hello = primary_hello(code, request.wrapped_ephemeral)
        request.finished = asyncio.get_running_loop().create_future()
        await request.conn.send_node(self._primary_hello(request, hello, account.identity.public))
        try:
            async with asyncio.timeout(FINISH_TIMEOUT):
                secret = await request.finished
        except TimeoutError as exc:
            self._events.emit("pairing.failed", why="companion did not finish the code pairing")
            raise PairingError("Couldn't link device: the other device did not answer. Get a new code there.") from exc
        except LinkCodeError as exc:
            # The typed code is spent, as on WhatsApp: the companion must show a new one.
            self._forget(request)
            self._events.emit("linkcode.wrong", phone="+" + number, conn=request.conn.id, why=str(exc))
            self._spawn(request.conn.send_node(self._refresh()), "tell the companion its code was refused")
            raise PairingError(WRONG_CODE) from exc
        finally:
            request.hello = None
        self._forget(request)
        self._events.emit("linkcode.accepted", phone="+" + number, conn=request.conn.id)
        return await self._phone.link(request.conn, request.companion_identity, secret, request.platform, number, name)

    def _forget(self, request: CodeRequest) -> None:
        """Drop `request`, but not a newer one the companion made meanwhile."""
        if self._requests.get(request.phone) is request:
            del self._requests[request.phone]

    def _primary_hello(self, request: CodeRequest, hello: PrimaryHello, identity: bytes) -> Node:
        return self._notification(
            Node(
                TAG,
                {"stage": "primary_hello"},
                [
                    Node("link_code_pairing_ref", {}, request.ref.encode()),
                    Node("link_code_pairing_wrapped_primary_ephemeral_pub", {}, hello.wrapped_primary_ephemeral),
                    Node("primary_identity_pub", {}, identity),
                ],
            )
        )

    def _refresh(self) -> Node:
        return self._notification(Node(TAG, {"stage": "refresh_code", "force_manual_refresh": "true"}))

    @staticmethod
    def _notification(child: Node) -> Node:
        attrs = {"type": TAG, "id": new_id(), "from": SERVER_JID, "t": now_s()}
        return Node("notification", attrs, [child])
