"""How the gateway answers what it cannot do: always JSON, {"error": "<a sentence>"}, and the
OpenAPI schema says so (instead of FastAPI's default 422 body, which this API never sends)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException


class ErrorOut(BaseModel):
    error: str


# Every /api operation may answer with these (the Guard's 401/403/421 apply to all of them).
ERROR_STATUSES = {
    "400": "The request is not valid: the sentence says what to fix.",
    "401": "The gateway's token is required (a bearer header, or the cookie the page got for it).",
    "403": "The request came from another web site.",
    "404": "No such contact, session or resource.",
    "409": "Not possible in the channel's current state (not added, not linked, …).",
    "421": "The Host header is not one this gateway answers to.",
    "429": "Too many wrong tokens from this address: wait a minute.",
}


def http_error_response(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Errors raised by the routing itself (no such path, wrong method) and by our handlers."""
    detail = str(exc.detail)
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"there is nothing at {request.url.path}: /openapi.json lists the API's paths"
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("allow", "")
        detail = f"{request.method} is not supported on {request.url.path}" + (f": use {allowed}" if allowed else "")
    return JSONResponse({"error": detail}, status_code=exc.status_code, headers=exc.headers)


def document_errors(app: FastAPI) -> None:
    """Make /openapi.json describe the error answers this API really gives."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = ErrorOut.model_json_schema()
            for path, operations in schema.get("paths", {}).items():
                if not path.startswith("/api/"):
                    continue
                for operation in operations.values():
                    responses = operation.setdefault("responses", {})
                    responses.pop("422", None)  # validation errors are answered as 400
                    for status, description in ERROR_STATUSES.items():
                        responses[status] = {
                            "description": description,
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                        }
            for unused in ("HTTPValidationError", "ValidationError"):
                schema["components"]["schemas"].pop(unused, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
