"""The WhatsApp channel: its state, linking, start/pause/stop/logout and its settings."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from cortask.app.models import (
    CodeIn,
    EntriesIn,
    Overview,
    PairingCode,
    PhoneCheck,
    PhoneIn,
    QrCode,
    SettingsPatch,
    Status,
)
from cortask.gateway.routes import App

router = APIRouter(prefix="/api")


class Alive(BaseModel):
    ok: bool


@router.get("/health", response_model=Alive)
async def health() -> Alive:
    """Open without the token, so it says only that the gateway answers: no state."""
    return Alive(ok=True)


@router.get("/whatsapp", response_model=Overview)
async def overview(app: App) -> Overview:
    return await app.overview()


@router.post("/whatsapp", response_model=Overview)
async def add_channel(app: App) -> Overview:
    return await app.add_channel()


@router.delete("/whatsapp", response_model=Overview)
async def remove_channel(app: App) -> Overview:
    return await app.remove_channel()


@router.get("/whatsapp/status", response_model=Status)
async def status(app: App) -> Status:
    return await app.status()


@router.post("/whatsapp/qr", response_model=QrCode)
async def generate_qr(app: App) -> QrCode:
    return await app.begin_link()


@router.post("/whatsapp/code", response_model=PairingCode)
async def request_code(body: CodeIn, app: App) -> PairingCode:
    """Link by phone number instead of a QR: a code to type on the phone (a new one each time)."""
    return await app.request_code(body)


@router.post("/whatsapp/start", response_model=Status)
async def start(app: App) -> Status:
    return await app.start()


@router.post("/whatsapp/pause", response_model=Status)
async def pause(app: App) -> Status:
    return await app.pause()


@router.post("/whatsapp/stop", response_model=Status)
async def stop(app: App) -> Status:
    return await app.stop()


@router.post("/whatsapp/logout", response_model=Status)
async def logout(app: App) -> Status:
    return await app.logout()


@router.put("/whatsapp/allowed-users", response_model=Overview)
async def allowed_users(body: EntriesIn, app: App) -> Overview:
    return await app.set_allowed_users(body.entries)


@router.put("/whatsapp/settings", response_model=Overview)
async def settings(body: SettingsPatch, app: App) -> Overview:
    return await app.update_settings(body)


# Either {"ok": true, "e164": …} or {"ok": false, "error": …}: the other field is left out.
@router.post("/whatsapp/validate-phone", response_model=PhoneCheck, response_model_exclude_none=True)
async def validate_phone(body: PhoneIn, app: App) -> PhoneCheck:
    return await app.validate_phone(body)
