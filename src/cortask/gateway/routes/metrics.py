"""`/metrics`: Prometheus' text format, behind the gateway's token like the API.

Counters and histograms move as the channel works; the queue and outbox gauges are read now.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import Response

from cortask.app.actions import CortaskApp
from cortask.metrics import CONTENT_TYPE_LATEST
from cortask.store import OutboxItem, Store

router = APIRouter()


def _pending(store: Store) -> list[OutboxItem]:
    return store.outbox.pending()


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    cortask: CortaskApp = request.app.state.cortask
    service = cortask.service
    await cortask.channel_built()  # just after "ready" it may still be being built
    channel = service.channel
    if channel is None:
        return Response("the WhatsApp channel is not running here\n", status_code=503, media_type="text/plain")
    found = channel.metrics
    found.busy_chats.set(channel.busy_chats)
    found.queued.set(channel.queued_messages)
    if service.store is not None:
        pending = await service.store.read(_pending)
        found.outbox_pending.set(len(pending))
        oldest = min((item.created_at for item in pending), default=None)
        found.outbox_age.set((datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0)
    return Response(found.render(), media_type=CONTENT_TYPE_LATEST)
