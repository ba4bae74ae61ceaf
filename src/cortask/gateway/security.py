"""Who may talk to the gateway: loopback by default; anything else needs a token. The Host header
is checked against DNS rebinding and state-changing requests from a foreign Origin are refused."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1", "[::1]"}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


class InsecureBind(Exception):
    """Listening beyond this machine without a token would let anyone on the network in."""


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    if not is_loopback(host) and not token:
        raise InsecureBind(
            f"refusing to listen on {host} without a token: anyone who can reach this address could read your "
            "chats and control your WhatsApp. Set CORTASK_TOKEN (or --token), or listen on 127.0.0.1."
        )


def _host_only(value: str) -> str:
    if value.startswith("["):
        return value.split("]", 1)[0] + "]"
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class Guard:
    """An ASGI-level check run before every request."""

    def __init__(self, bind_host: str, token: str | None, extra_hosts: set[str] | None = None) -> None:
        self.token = token
        self.hosts = {h.lower() for h in LOOPBACK_NAMES | {bind_host} | (extra_hosts or set())}

    def allowed_host(self, host_header: str) -> bool:
        return _host_only(host_header.lower()) in self.hosts

    def authorized(self, request: Request) -> bool:
        if not self.token:
            return True
        header = request.headers.get("authorization", "")
        given = header[7:] if header.lower().startswith("bearer ") else request.query_params.get("token", "")
        return hmac.compare_digest(given.encode(), self.token.encode())  # constant time

    async def __call__(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if not self.allowed_host(request.headers.get("host", "")):
            return JSONResponse({"error": "this gateway does not answer to that host name"}, status_code=421)
        origin = request.headers.get("origin")
        if request.method not in SAFE_METHODS and origin is not None:
            origin_host = urlsplit(origin).netloc
            if origin_host.lower() != request.headers.get("host", "").lower():
                return JSONResponse({"error": "requests from other web sites are refused"}, status_code=403)
        if request.url.path.startswith("/api/") and request.url.path != "/api/health" and not self.authorized(request):
            return JSONResponse(
                {"error": "a valid token is required: send 'Authorization: Bearer <token>'"}, status_code=401
            )
        return await call_next(request)
