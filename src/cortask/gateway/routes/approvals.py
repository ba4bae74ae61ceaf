"""Strangers waiting for the owner's approval (issue #14): the page's Approve / Reject buttons do
what `/approve CODE` and `/reject CODE` do in WhatsApp, through the same actions."""

from __future__ import annotations

from fastapi import APIRouter

from cortask.app.models import ApprovalIn, ApprovalRequest, Contact, Done
from cortask.gateway.routes import App

router = APIRouter(prefix="/api")


@router.get("/whatsapp/approvals", response_model=list[ApprovalRequest])
async def approvals(app: App) -> list[ApprovalRequest]:
    return await app.approvals()


@router.post("/whatsapp/approvals/{code}/approve", response_model=Contact)
async def approve(code: str, body: ApprovalIn, app: App) -> Contact:
    return await app.approve(code, body)


@router.post("/whatsapp/approvals/{code}/reject", response_model=Done)
async def reject(code: str, app: App) -> Done:
    await app.reject(code)
    return Done(ok=True)
