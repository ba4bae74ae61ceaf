"""What the CLI does when no gateway runs: the same actions, straight on the store and the channel.

Settings (start, pause, contacts, agent) go to the store, where the next `cortask serve` reads
them. Actions that need WhatsApp (link, stop) run the real channel through `CortaskService` for as
long as they take; the channel holds the auth directory's lock meanwhile, so a second process can
never open a second socket on the same link, and is told which command holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from cortask.channels.whatsapp.authpeek import LinkInfo, lock_holder, peek_link
from cortask.channels.whatsapp.authstore import AuthStore, AuthStoreError
from cortask.channels.whatsapp.channel import ChannelError, WhatsAppChannel
from cortask.channels.whatsapp.config import ConfigError, WhatsAppConfig
from cortask.channels.whatsapp.qr import QrCode
from cortask.channels.whatsapp.sidecar import SidecarError
from cortask.channels.whatsapp.state import SANDBOX_NOTE, ChannelStatus, ConnectionState
from cortask.home import cortask_home
from cortask.service import CortaskService
from cortask.store import Store, StoreError, WhatsAppSettings

# How long `whatsapp stop` waits for the connection it needs to log out on the server.
CONNECT_TIMEOUT_SECONDS = 45.0
SERVE_HINT = "start it with `cortask serve`"


class ActionFailed(Exception):
    """What went wrong and what to do, for the person at the terminal (exit code 1)."""


class Direct:
    """The CLI's actions on one Cortask home, with no gateway running."""

    def __init__(self, home: Path | None = None, environ: Mapping[str, str] = os.environ) -> None:
        self.environ = environ
        self.home = home or cortask_home(environ)

    # -- the store ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _store(self) -> Iterator[tuple[Store, int]]:
        try:
            with Store.open(self.home / "cortask.db", environ=self.environ) as store:
                yield store, store.workspaces.ensure_default().id
        except (StoreError, ValueError) as exc:  # invalid phone, unknown permission, not found…
            raise ActionFailed(str(exc)) from None

    def _sandbox(self) -> bool:
        try:
            return WhatsAppConfig.from_env(self.environ).sandbox is not None
        except ConfigError as exc:
            raise ActionFailed(str(exc)) from None

    def _auth_dir(self, settings: WhatsAppSettings) -> Path:
        return settings.auth_dir or self.home / "whatsapp-auth"  # as CortaskService does

    # -- whatsapp: settings only -------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        sandbox = self._sandbox()
        with self._store() as (store, ws):
            settings = store.whatsapp.settings(ws)
        return offline_status(peek_link(self._auth_dir(settings)), settings, sandbox=sandbox)

    def start(self) -> dict[str, Any]:
        """Enable and resume: the next `cortask serve` connects with the stored link."""
        with self._store() as (store, ws):
            info = peek_link(self._auth_dir(store.whatsapp.settings(ws)))
            if info.problem:
                raise ActionFailed(info.problem + ". Restore that folder, or `cortask whatsapp logout` and link again.")
            if not info.linked:
                raise ActionFailed("WhatsApp is not linked: run `cortask whatsapp link` and scan the QR code first.")
            store.whatsapp.set_enabled(ws, True)
            store.whatsapp.set_paused(ws, False)
        return self.status()

    def pause(self) -> dict[str, Any]:
        """Keep the link; the next `cortask serve` does not connect until started again."""
        with self._store() as (store, ws):
            store.whatsapp.set_paused(ws, True)
        return self.status()

    # -- whatsapp: with the channel ----------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _service(self) -> AsyncIterator[tuple[CortaskService, WhatsAppChannel]]:
        """The service with its channel built but not connected; it holds the link until closed."""
        try:
            service = CortaskService(self.home, environ=self.environ)
        except ConfigError as exc:
            raise ActionFailed(str(exc)) from None
        try:
            await service.start(connect=False)
            assert service.channel is not None
            yield service, service.channel
        except (AuthStoreError, StoreError, ChannelError, SidecarError) as exc:
            raise ActionFailed(str(exc)) from None
        finally:
            await service.close()

    async def link(self, show: Callable[[QrCode], None], note: Callable[[ChannelStatus], None]) -> ChannelStatus:
        """Run the linking session: `show` each QR code, `note` each state change. Returns the
        final state: open (linked, then closed keeping the link) or unlinked (expired)."""
        async with self._service() as (service, channel):
            if channel.is_linked():
                account = peek_link(channel.config.auth_dir).account or "a phone"
                raise ActionFailed(
                    f"WhatsApp is already linked (as {account}): `cortask serve` uses that link. "
                    "To link another phone, run `cortask whatsapp logout` first."
                )
            assert service.store is not None and service.workspace is not None
            await service.store.whatsapp.set_enabled(service.workspace.id, True)
            await service.store.whatsapp.set_paused(service.workspace.id, False)
            async with _following(channel, note):
                async for qr in channel.generate_qr():
                    show(qr)
            return channel.status

    async def stop(self, note: Callable[[ChannelStatus], None]) -> dict[str, Any]:
        """Connect, log this device out on the server, remove the link."""
        async with self._service() as (_, channel):
            if not channel.is_linked():
                raise ActionFailed("WhatsApp is not linked: there is no device to log out.")
            async with _following(channel, note):
                await channel.start()
                reached = await _settled(channel, CONNECT_TIMEOUT_SECONDS)
            if reached.state is not ConnectionState.OPEN and not reached.state.needs_relink:
                raise ActionFailed(
                    f"could not connect to WhatsApp to log this device out: {reached.sentence} The link is kept. "
                    "Try again later, or `cortask whatsapp logout` to remove it from this computer only."
                )
            await channel.stop()  # logs out on the server when open; removes the auth directory
        return self.status()

    async def logout(self) -> dict[str, Any]:
        """Remove the stored link, connected or not (nothing is sent to WhatsApp)."""
        with self._store() as (store, ws):
            auth_dir = self._auth_dir(store.whatsapp.settings(ws))
        if peek_link(auth_dir).problem is None:
            async with self._service() as (_, channel):
                await channel.logout()  # not connected: only the auth directory goes
            return self.status()
        # Unreadable credentials are exactly what logout is for: the channel cannot open them to
        # take the lock, so make sure nobody else holds it before removing them.
        holder = lock_holder(auth_dir)
        if holder is not None:
            raise ActionFailed(f"the WhatsApp link in {auth_dir} is in use by {holder}: stop that first.")
        AuthStore.remove(auth_dir)
        return self.status()

    # -- contacts and agent ------------------------------------------------------------------

    def update_contact(self, phone: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        with self._store() as (store, ws):
            contact = store.whatsapp.update_contact(ws, phone, **changes)
        return {"phone": contact.phone, "name": contact.name, "permission": contact.permission.value}

    def remove_contact(self, phone: str) -> None:
        with self._store() as (store, ws):
            if not store.whatsapp.remove_contact(ws, phone):
                raise ActionFailed(f"{phone} is not a trusted contact")  # the API's words

    def agent(self) -> dict[str, Any]:
        with self._store() as (store, ws):
            shown = store.agents.for_display(ws)
        provider = shown.provider if shown else "echo"
        return {
            "provider": provider,
            "settings": dict(shown.settings) if shown else {},
            "active": provider,
            "override": False,
        }

    async def set_agent(self, provider: str, settings: Mapping[str, Any]) -> dict[str, Any]:
        from cortask.agents import AgentConfig, build_agent

        try:  # building it validates the settings and says what is missing; it is not kept
            await build_agent(AgentConfig(provider, dict(settings)), self.environ).aclose()
        except ValueError as exc:
            raise ActionFailed(str(exc)) from None
        with self._store() as (store, ws):
            store.agents.set(ws, provider, dict(settings))
        return self.agent()


def offline_status(info: LinkInfo, settings: WhatsAppSettings, *, sandbox: bool) -> dict[str, Any]:
    """What `whatsapp status` says when no service runs: the stored link and settings."""
    who = f" as {info.account}" if info.account else ""
    if info.problem:
        state, sentence = "credentials_unreadable", info.problem + "."
        action = "Restore that folder from a backup, or `cortask whatsapp logout` and link again."
    elif not info.linked:
        state, sentence = "unlinked", "WhatsApp is not linked; Cortask is not running."
        action = "Link it with `cortask whatsapp link`, then start Cortask with `cortask serve`."
    elif settings.paused:
        state, sentence = "paused", f"WhatsApp is linked{who} and paused; Cortask is not running."
        action = f"`cortask whatsapp start` to resume, then {SERVE_HINT}."
    elif not settings.enabled:
        state, sentence = "linked", f"WhatsApp is linked{who} but the channel is not added; Cortask is not running."
        action = f"`cortask whatsapp start` to add it, then {SERVE_HINT}."
    else:
        state, sentence = "linked", f"WhatsApp is linked{who}; Cortask is not running, so it is not connected."
        action = f"To connect, {SERVE_HINT}."
    if info.in_use_by:
        sentence += f" The link is in use by {info.in_use_by}."
    if sandbox:
        sentence += f" {SANDBOX_NOTE}"
    return {
        "state": state,
        "sentence": sentence,
        "action": action,
        "running": False,
        "linked": info.linked,
        "account": info.account,
        "enabled": settings.enabled,
        "paused": settings.paused,
        "sandbox": sandbox,
        "in_use_by": info.in_use_by,
    }


@contextlib.asynccontextmanager
async def _following(channel: WhatsAppChannel, note: Callable[[ChannelStatus], None]) -> AsyncIterator[None]:
    """Pass every state change to `note` while the block runs."""

    async def follow() -> None:
        async for status in channel.subscribe():
            note(status)

    task = asyncio.create_task(follow())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _settled(channel: WhatsAppChannel, timeout: float) -> ChannelStatus:
    """Wait until the channel is open or has given up for good (or `timeout` passed): the state."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            async for status in channel.subscribe():
                if status.state is ConnectionState.OPEN or status.state.terminal:
                    return status
    return channel.status
