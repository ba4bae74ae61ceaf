"""The trusted contacts."""

from __future__ import annotations

from fastapi import APIRouter

from cortask.app.models import Contact, ContactIn, ContactPatch, Done
from cortask.gateway.routes import App

router = APIRouter(prefix="/api/whatsapp/contacts")


@router.get("", response_model=list[Contact])
async def contacts(app: App) -> list[Contact]:
    return await app.contacts()


@router.post("", response_model=Contact, status_code=201)
async def add_contact(body: ContactIn, app: App) -> Contact:
    return await app.add_contact(body)


@router.put("/{phone}", response_model=Contact)
async def update_contact(phone: str, body: ContactPatch, app: App) -> Contact:
    return await app.update_contact(phone, body)


@router.delete("/{phone}", response_model=Done)
async def remove_contact(phone: str, app: App) -> Done:
    await app.remove_contact(phone)
    return Done(ok=True)
