"""The gateway's ASGI app: the REST API the UI uses, live events (SSE) and the static UI.

Routes are thin: each calls one action of `cortask.app.CortaskApp` and answers with its model.
What an action refuses (`AppError`, or an error of the layers below it) is answered as
{"error": "<a sentence>"} with the status its kind names.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.base import BaseHTTPMiddleware

from cortask.app.actions import CortaskApp
from cortask.app.errors import EXPECTED, classify
from cortask.gateway.errors import document_errors, http_error_response
from cortask.gateway.routes import agent, approvals, contacts, events, metrics, whatsapp
from cortask.gateway.security import Guard
from cortask.service import CortaskService

STATIC = Path(__file__).parent / "static"


class _FreshStaticFiles(StaticFiles):
    """The UI's files, revalidated on every load so a browser never runs an old app.js against a
    newer API."""

    def file_response(self, *args: Any, **kwargs: Any) -> Any:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response


def create_app(
    service: CortaskService, *, token: str, bind_host: str = "127.0.0.1", allowed_hosts: Iterable[str] = ()
) -> FastAPI:
    """`token` is required of every /api request (but /api/health) and of /openapi.json."""
    cortask = CortaskApp(service, serving=True)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await cortask.open()
        yield
        await cortask.close()

    # No /docs or /redoc: they load scripts from a CDN, which the page's policy (and this promise) forbid.
    app = FastAPI(title="Cortask WhatsApp gateway", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.cortask = cortask
    app.add_middleware(BaseHTTPMiddleware, dispatch=Guard(bind_host, token, allowed_hosts))
    document_errors(app)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        if first.get("type") == "json_invalid":
            return JSONResponse({"error": "the request body is not valid JSON"}, status_code=400)
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "body"
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid value')}"}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return http_error_response(request, exc)

    async def refused(request: Request, exc: Exception) -> JSONResponse:
        error = classify(exc)
        return JSONResponse({"error": str(error)}, status_code=int(error.kind))

    for kind in EXPECTED:
        app.add_exception_handler(kind, refused)

    for router in (whatsapp.router, contacts.router, agent.router, events.router, approvals.router, metrics.router):
        app.include_router(router)
    if STATIC.exists():
        app.mount("/", _FreshStaticFiles(directory=STATIC, html=True), name="ui")
    return app
