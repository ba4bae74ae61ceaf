"""Running the gateway: refuse an unsafe bind, serve with uvicorn, say where, clean up after."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from cortask.channels.whatsapp.authstore import AuthStoreError
from cortask.gateway.app import create_app
from cortask.gateway.security import InsecureBind, check_bind
from cortask.service import CortaskService


async def run_gateway(
    service: CortaskService, host: str, port: int, token: str | None, *, announce: str = "", home: Path | None = None
) -> int:
    """Serve until interrupted. `home` is where `gateway.json` tells the CLI how to reach us."""
    try:
        check_bind(host, token)
    except InsecureBind as exc:
        print(f"cortask: {exc}", file=sys.stderr)
        return 2
    if service.store is None:
        try:
            await service.start()
        except AuthStoreError as exc:  # e.g. `cortask whatsapp link` holds the link right now
            print(f"cortask: {exc}", file=sys.stderr)
            await service.close()
            return 1
    app = create_app(service, bind_host=host, token=token)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    server = _Server(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Ctrl-C / SIGTERM: a graceful shutdown that keeps the WhatsApp link, then exit 0.
        loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            await serving
            await service.close()  # the lifespan that would have closed it never ran
            print(f"cortask: could not listen on {host}:{port} (is the port in use?)", file=sys.stderr)
            return 1
        await asyncio.sleep(0.02)
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{port}/"
    info = (home or service.home) / "gateway.json"
    info.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(info, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"url": url, "token": token, "pid": os.getpid()}, f)
    suffix = f"?token={token}" if token else ""
    print(f"Cortask is ready: {url}{suffix}{announce}", flush=True)
    try:
        await serving
    finally:
        info.unlink(missing_ok=True)
    return 0


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn would re-raise the signal after shutting down (exit status -15); we handle it.
        yield


def new_token() -> str:
    return secrets.token_urlsafe(24)
