"""Live events (Server-Sent Events): `event: <status|qr|link|activity|contacts>` with the model
as JSON in `data:`. The stream opens with the current status (and the QR code being shown)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from cortask.app.models import Event, QrEvent, StatusEvent
from cortask.gateway.routes import App

HEARTBEAT_SECONDS = float(os.environ.get("CORTASK_SSE_HEARTBEAT", "15"))

router = APIRouter(prefix="/api")

_DESCRIBED = {
    200: {
        "description": "A text/event-stream of status, qr, link, activity and contacts events, each with its "
        "model (Status, QrCode, LinkResult, ActivityEntry, a list of Contact) as JSON.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


def sse(event: Event) -> str:
    return f"event: {event.event}\ndata: {json.dumps(event.model_dump(mode='json')['data'])}\n\n"


@router.get("/events", response_class=StreamingResponse, responses=_DESCRIBED)  # type: ignore[arg-type]
async def events(request: Request, app: App) -> StreamingResponse:
    subscription = app.events.subscribe()  # now: nothing published after the opening status is missed
    opening: list[Event] = [StatusEvent(data=await app.status())]
    if app.current_qr is not None:
        opening.append(QrEvent(data=app.current_qr))

    async def stream() -> AsyncIterator[str]:
        with subscription:
            for event in opening:
                yield sse(event)
            while True:
                try:
                    event = await asyncio.wait_for(subscription.__anext__(), HEARTBEAT_SECONDS)
                except StopAsyncIteration:
                    return  # the service is shutting down
                except TimeoutError:
                    # A comment line keeps proxies from closing an idle stream and lets us notice a
                    # client that went away.
                    if await request.is_disconnected():
                        return
                    yield ": ping\n\n"
                    continue
                yield sse(event)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})
