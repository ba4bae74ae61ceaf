"""The wasim server: listens on loopback, owns the state, the connections and the simulated phone.

async with Wasim(state_dir=path) as sim:
    ...  # point Baileys at sim.url with WA_CERT_DETAILS.PUBLIC_KEY = sim.root_public_key

`Wasim` is the composition root: it builds each part from the narrow things it needs (the
state, the event log, the registry of connections, a way to spawn work; see `ports.py`) and
keeps the listener. Nothing imports this module but those who start a wasim.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from wasim.protocol.certs import build_cert_chain
from wasim.protocol.crypto import KeyPair
from wasim.protocol.noise import MAX_FRAME
from wasim.server.connection import ServerKeys
from wasim.server.control import ControlParts, Snapshot
from wasim.server.directory import Directory
from wasim.server.events import EventLog
from wasim.server.faults import Fault, Faults
from wasim.server.iq import IqRouter
from wasim.server.linkcode import CODE_SECONDS, CodeLinking
from wasim.server.linkcode import TAG as LINK_CODE_TAG
from wasim.server.messaging import Messaging
from wasim.server.phone import PairResult, SimulatedPhone
from wasim.server.ports import Peer
from wasim.server.registry import Connections
from wasim.server.sessions import Sessions
from wasim.server.stanzas import StanzaRouter
from wasim.state import Contact, Group, WasimState

log = logging.getLogger("wasim")

WS_PATH = "/ws/chat"
DEFAULT_PHONE = "15550001111"


class Wasim:
    def __init__(
        self,
        state_dir: Path | str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_frame: int = 8 * 1024 * 1024,
        default_phone: str = DEFAULT_PHONE,
        link_code_seconds: float = CODE_SECONDS,
    ) -> None:
        self.state = WasimState.load(Path(state_dir) if state_dir is not None else None)
        self.host = host
        self.port = port
        self.max_frame = min(max_frame, MAX_FRAME)
        self.default_phone = default_phone
        self.static_key = KeyPair.generate()
        self._intermediate = KeyPair.generate()
        self.cert_chain = build_cert_chain(self.state.root, self._intermediate, self.static_key.public)
        self._server: Server | None = None
        self._retired: list[Server] = []  # stopped listening, may still hold connections
        self._reopen_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

        # The parts, each from what it needs and nothing more.
        self.events = EventLog()
        self.connections = Connections()
        self.directory = Directory(self.state, self.events, default_phone)
        self.phone = SimulatedPhone(self.state, self.events, self.connections, self.spawn, default_phone)
        self.messaging = Messaging(self.state, self.events, self.connections, default_phone)
        self.faults = Faults(self.connections, self.events, self.refuse_connections)
        self.link_codes = CodeLinking(
            self.state, self.events, self.phone, self.connections, self.spawn, default_phone, link_code_seconds
        )
        iq = IqRouter(self.directory, self.events)
        iq.table[("md", "set", LINK_CODE_TAG)] = self.link_codes.on_companion_reg
        stanzas = StanzaRouter(self.messaging, iq, self.events)
        keys = ServerKeys(self.static_key, self.cert_chain, self.max_frame)
        self.sessions = Sessions(keys, self.state, self.events, self.connections, self.messaging, stanzas, self.spawn)
        self.control = ControlParts(
            self.events, self.directory, self.phone, self.messaging, self.faults, self.snapshot, self.link_codes
        )

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}{WS_PATH}"

    @property
    def root_public_key(self) -> str:
        return self.state.root.public.hex()

    async def start(self) -> Wasim:
        await self._listen()
        log.info("wasim listening on %s", self.url)
        self.events.emit("server.started", url=self.url)
        return self

    async def _listen(self) -> None:
        self._server = await serve(
            self.sessions.serve,
            self.host,
            self.port,
            process_request=self._check_request,
            max_size=self.max_frame + 1024,
            ping_interval=None,  # WhatsApp's server never pings; Baileys' own keep-alive does the work
            compression=None,
        )
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]

    async def stop(self) -> None:
        if self._reopen_task:
            self._reopen_task.cancel()
        servers = [*self._retired, *([self._server] if self._server else [])]
        for server in servers:
            server.close(close_connections=False)
        for conn in self.connections:
            conn.abort()
        for server in servers:
            await server.wait_closed()
        self._server = None
        self._retired.clear()
        self.state.save()
        self.events.emit("server.stopped")

    async def __aenter__(self) -> Wasim:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path.split("?", 1)[0] != WS_PATH:
            return Response(404, "Not Found", Headers(), b"wasim serves WhatsApp Web at /ws/chat\n")
        return None

    def spawn(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        """Run `coro` in the background, keeping a reference and logging its failure."""
        task = asyncio.create_task(coro, name=what)
        self._tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("background task %s failed", what, exc_info=t.exception())

        task.add_done_callback(done)

    async def refuse_connections(self, seconds: float) -> None:
        """Stop listening for `seconds` (clients get connection refused), then listen again.
        Connections already open stay open, as with a real server that stops accepting."""
        if self._server is not None:
            self._server.server.close()  # the listening socket only
            self._retired.append(self._server)
            self._server = None
        self.events.emit("server.refusing", seconds=seconds)

        async def reopen() -> None:
            await asyncio.sleep(seconds)
            await self._listen()
            self.events.emit("server.accepting")

        self._reopen_task = asyncio.create_task(reopen())

    # -- what tests and scripts call (each a part's method, kept here as the public surface) ----

    def add_contact(self, phone: str, name: str, lid: str | None = None, address: str | None = None) -> Contact:
        return self.directory.add_contact(phone, name, lid, address)

    def create_group(self, subject: str, members: list[str], account: str | None = None) -> Group:
        """A group of the account and the given contacts (phones)."""
        return self.directory.create_group(subject, members, account)

    def inbox(self, phone: str) -> list[dict[str, Any]]:
        return self.directory.inbox(phone)

    def logged_in(self, phone: str | None = None) -> list[Peer]:
        return self.connections.logged_in(phone)

    async def pair(self, code: str, phone: str | None = None) -> PairResult:
        """The person types `code` on the phone ("Link with phone number instead")."""
        return await self.link_codes.pair(code, phone)

    async def inject(self, fault: Fault, phone: str | None = None) -> list[str]:
        """Apply `fault` to every logged-in connection (of `phone`); returns the affected ids."""
        return await self.faults.inject(fault, phone)

    def snapshot(self) -> Snapshot:
        return {
            "url": self.url,
            "root_public_key": self.root_public_key,
            "accounts": self.directory.describe_accounts(self.connections.is_connected),
            "contacts": self.directory.describe_contacts(),
        }


__all__ = ["Wasim"]
