"""Which agent answers, and the conversations it had."""

from __future__ import annotations

from fastapi import APIRouter

from cortask.app.models import ActivityEntry, Agent, AgentIn, HistoryEntry, Origin, SessionInfo
from cortask.gateway.routes import App

router = APIRouter(prefix="/api")


@router.get("/agent", response_model=Agent)
async def agent(app: App) -> Agent:
    return await app.agent()


@router.put("/agent", response_model=Agent)
async def set_agent(body: AgentIn, app: App) -> Agent:
    return await app.set_agent(body, origin=Origin.NETWORK)


@router.get("/activity", response_model=list[ActivityEntry])
async def activity(app: App) -> list[ActivityEntry]:
    return await app.activity()


@router.get("/sessions", response_model=list[SessionInfo])
async def sessions(app: App) -> list[SessionInfo]:
    return await app.sessions()


@router.get("/sessions/{session_id}/history", response_model=list[HistoryEntry])
async def history(session_id: str, app: App, limit: int = 50) -> list[HistoryEntry]:
    return await app.history(session_id, limit)
