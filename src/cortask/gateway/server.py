"""Running the gateway: its token, refuse an unsafe bind, serve with uvicorn, say where, clean up after."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import uvicorn

from cortask.app.actions import CortaskApp
from cortask.channels.whatsapp.authstore import AuthStoreError
from cortask.gateway.app import create_app
from cortask.gateway.security import InsecureBind, check_bind, check_token
from cortask.home import gateway_token_file
from cortask.service import CortaskService


async def run_gateway(
    service: CortaskService,
    host: str,
    port: int,
    supplied_token: str | None = None,
    *,
    allowed_hosts: Iterable[str] = (),
    announce: str = "",
    home: Path | None = None,
) -> int:
    """Serve until interrupted. `home` is where `gateway.json` tells the CLI how to reach us and
    `gateway-token` holds the token (`supplied_token`, or the one kept there, or a new one)."""
    home = home or service.home
    allowed_hosts = list(allowed_hosts)
    try:
        check_bind(host, allowed_hosts)
        token = gateway_token(home, supplied_token)
    except InsecureBind as exc:
        print(f"cortask: {exc}", file=sys.stderr)
        return 2
    busy = port_in_use(host, port)
    if busy is not None:  # said before anything starts, so nothing is opened or written for nothing
        print(f"cortask: {busy}", file=sys.stderr)
        await service.close()
        return 1
    # With WhatsApp not added the channel is built just after "ready": importing it costs a
    # quarter of the start-up (issue #18). Otherwise as before, so a held link stops us first.
    fresh = service.store is None  # (a caller may have started it already)
    defer = fresh and await service.channel_can_wait()
    if fresh and not defer:
        try:
            await service.start()
        except AuthStoreError as exc:  # e.g. `cortask whatsapp link` holds the link right now
            print(f"cortask: {exc}", file=sys.stderr)
            await service.close()
            return 1
    app = create_app(service, bind_host=host, token=token, allowed_hosts=allowed_hosts)
    app.state.cortask.defer_channel = defer
    # The backstop for a client that keeps a connection open past the event streams' end.
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=SHUTDOWN_SECONDS,
        ws="none",  # no WebSocket routes (events are SSE): uvicorn need not import its WebSocket stack at start-up
    )
    server = _Server(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Ctrl-C / SIGTERM: a graceful shutdown that keeps the WhatsApp link, then exit 0.
        loop.add_signal_handler(sig, _stopper(server, app.state.cortask))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            await serving
            await service.close()  # the lifespan that would have closed it never ran
            print(f"cortask: could not listen on {host}:{port}: {PORT_HINT}", file=sys.stderr)
            return 1
        await asyncio.sleep(0.02)
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{port}/"
    info = home / "gateway.json"
    _write_private(info, json.dumps({"url": url, "pid": os.getpid()}))
    # The only place the token is shown: the browser trades it for a cookie and drops it from the URL.
    print(f"Cortask is ready: {url}?token={token}{announce}", flush=True)
    try:
        if defer:
            try:
                await app.state.cortask.build_channel()
            except AuthStoreError as exc:  # taken in the moment since we looked: stop, as before ready
                print(f"cortask: {exc}", file=sys.stderr)
                server.should_exit = True
                await serving
                return 1
        await serving
    finally:
        info.unlink(missing_ok=True)
    return 0


SHUTDOWN_SECONDS = 3
PORT_HINT = "choose another with --port N, or stop what uses it"


def port_in_use(host: str, port: int) -> str | None:
    """A sentence when `host:port` cannot be listened on (another Cortask, another program)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            return f"could not listen on {host}:{port} ({exc.strerror or exc}): {PORT_HINT}."
    return None


def _stopper(server: uvicorn.Server, cortask: CortaskApp) -> Callable[[], None]:
    """The signal handler: the first signal stops gracefully, ending the event streams (an open
    page would otherwise hold the shutdown until its tab closes); a second one stops at once."""

    def stop() -> None:
        if server.should_exit:
            print("cortask: stopping now.", file=sys.stderr, flush=True)
            server.force_exit = True
            return
        print(
            "cortask: stopping (closing WhatsApp, keeping the link; Ctrl-C again to stop at once)…",
            file=sys.stderr,
            flush=True,
        )
        server.should_exit = True
        cortask.events.end()

    return stop


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn would re-raise the signal after shutting down (exit status -15); we handle it.
        yield


def new_token() -> str:
    return secrets.token_urlsafe(32)  # 32 random bytes, 43 characters


def read_token_source(environ: Mapping[str, str], token_file: Path | None) -> str | None:
    """A token the user supplies: from a file (--token-file) or CORTASK_TOKEN, never a command line."""
    if token_file is not None:
        try:
            return token_file.read_text().strip()
        except OSError as exc:
            raise InsecureBind(f"cannot read the token file {token_file}: {exc.strerror or exc}") from None
    return environ.get("CORTASK_TOKEN") or None


def gateway_token(home: Path, supplied: str | None) -> str:
    """The token this gateway requires, kept 0600 in `$CORTASK_HOME/gateway-token` for the CLI."""
    path = gateway_token_file(home)
    if supplied is not None:
        check_token(supplied)
        token = supplied
    else:
        try:
            token = path.read_text().strip()
            check_token(token)
        except (OSError, InsecureBind):  # none yet (or a weak one): make one
            token = new_token()
    _write_private(path, token)
    return token


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # also when the file existed with a looser mode
    with os.fdopen(fd, "w") as f:
        f.write(text)
