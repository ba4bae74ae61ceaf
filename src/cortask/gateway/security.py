"""Who may talk to the gateway: whoever holds its token, on loopback too (Jupyter's rule). The
browser trades the printed URL's token for an HttpOnly, SameSite=Strict cookie; the CLI sends it as
a bearer header. The Host header is checked against DNS rebinding, requests from other web sites
are refused, failed authentications are rate limited per address, and every answer carries headers
that keep the page from being framed or fed."""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1"}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
OPEN_PATHS = {"/api/health"}  # says nothing that matters: liveness only
PROTECTED_PATHS = {"/openapi.json", "/metrics"}  # beside /api/: the schema and Prometheus' scrape
MIN_TOKEN_LENGTH = 32
FAILURES_ALLOWED = 10  # wrong tokens per address per window, then 429
FAILURE_WINDOW_S = 60.0

SECURITY_HEADERS = {
    # No inline script or style, nothing from another origin, never inside a frame.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


class InsecureBind(Exception):
    """Listening where no client could name us (or with a weak token) would be broken or unsafe."""


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _is_unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def check_token(token: str) -> None:
    if len(token) < MIN_TOKEN_LENGTH:
        raise InsecureBind(
            f"the token given is {len(token)} characters long: use at least {MIN_TOKEN_LENGTH} random characters "
            "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`), or give none and Cortask "
            "generates one"
        )


def check_bind(host: str, allowed_hosts: Iterable[str]) -> None:
    if _is_unspecified(host) and not list(allowed_hosts):
        raise InsecureBind(
            f"listening on {host} (every address), the gateway answers only to the names given with --allowed-host: "
            "pass --allowed-host with the name or address clients use (repeatable), or listen on 127.0.0.1"
        )


def normalize_host(value: str) -> str:
    """A Host header or a name given by the user, without port and brackets: `[::1]:8484` -> `::1`."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value  # a name, or a bare IPv6 address


class FailureLimiter:
    """Wrong tokens per client address in a sliding window; pure (time is passed in)."""

    def __init__(self, allowed: int = FAILURES_ALLOWED, window_s: float = FAILURE_WINDOW_S) -> None:
        self.allowed, self.window_s = allowed, window_s
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, address: str, now: float) -> deque[float]:
        times = self._failures.setdefault(address, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[address]  # bounded: only addresses failing right now are kept
            return deque()
        return times

    def blocked(self, address: str, now: float) -> bool:
        return len(self._recent(address, now)) >= self.allowed

    def fail(self, address: str, now: float) -> None:
        self._recent(address, now)
        self._failures.setdefault(address, deque()).append(now)


def cookie_name(request: Request) -> str:
    # Cookies ignore ports: two gateways on one host must not overwrite each other's.
    return f"cortask-token-{request.url.port or 80}"


class Guard:
    """An ASGI-level check run before every request."""

    def __init__(self, bind_host: str, token: str, extra_hosts: Iterable[str] = ()) -> None:
        self.token = token
        named = {bind_host} if not _is_unspecified(bind_host) else set()
        self.hosts = {normalize_host(h) for h in LOOPBACK_NAMES | named | set(extra_hosts)}
        self.limiter = FailureLimiter()

    def allowed_host(self, host_header: str) -> bool:
        return normalize_host(host_header) in self.hosts

    def _given(self, request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            return header[7:]
        return request.cookies.get(cookie_name(request))

    def _matches(self, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self.token.encode())  # constant time

    async def __call__(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        refused = self._refusal(request)
        response = refused if refused is not None else await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    def _refusal(self, request: Request) -> Response | None:
        if not self.allowed_host(request.headers.get("host", "")):
            return _error("this gateway does not answer to that host name (see --allowed-host)", 421)
        if _cross_site(request):
            return _error("requests from other web sites are refused", 403)
        path = request.url.path
        login = "token" in request.query_params and request.method == "GET" and not path.startswith("/api/")
        protected = (path.startswith("/api/") or path in PROTECTED_PATHS) and path not in OPEN_PATHS
        if not (login or protected):
            return None
        address = request.client.host if request.client else "?"
        given = request.query_params["token"] if login else self._given(request)
        if given is None:
            return _error(
                "this gateway needs its token: open the address Cortask printed when it started, or send "
                "'Authorization: Bearer <the token in $CORTASK_HOME/gateway-token>'",
                401,
            )
        now = time.monotonic()
        if self.limiter.blocked(address, now):
            return _error("too many wrong tokens from this address: wait a minute, then try again", 429)
        if not self._matches(given):
            self.limiter.fail(address, now)
            return _error("the token is not this gateway's: open the address Cortask printed when it started", 401)
        return self._set_cookie(request) if login else None

    def _set_cookie(self, request: Request) -> Response:
        """The printed URL's token becomes a cookie, and the address bar loses it (a redirect)."""
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            cookie_name(request), self.token, httponly=True, samesite="strict", secure=request.url.scheme == "https"
        )
        return response


def _cross_site(request: Request) -> bool:
    """A state change sent by another origin (another port counts) is refused, and a browser's
    cross-origin request to the API is refused before it reaches a handler."""
    site = request.headers.get("sec-fetch-site")
    if request.url.path.startswith("/api/") and site in ("cross-site", "same-site"):
        return True
    origin = request.headers.get("origin")
    if request.method in SAFE_METHODS or origin is None:
        return False
    return urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower()


def _error(sentence: str, status: int) -> JSONResponse:
    return JSONResponse({"error": sentence}, status_code=status)
