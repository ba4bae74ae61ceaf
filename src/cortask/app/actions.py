"""Every action a person can take on Cortask, once, over `CortaskService`.

Two situations, one code path per action:

- `serving=True`: inside the running service (the gateway). The channel is connected as its
  settings say, and every change is applied to it at once.
- `serving=False`: in a CLI command while no gateway runs. Only the store is open; what needs
  WhatsApp (link, stop, logout) builds the channel for as long as it takes, holding the link's
  lock meanwhile, so a second process never opens a second socket on one link and is told who
  holds it. Start and pause are saved for the next `cortask serve`.

Changes are published on `events` (status, QR codes, the end of a linking session, activity,
contacts): the gateway streams them, the CLI follows them while it links or logs out.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from cortask.agents import AgentConfig
from cortask.app import activity as describe
from cortask.app.display import human_number, humanize_jids
from cortask.app.errors import AppError, Kind
from cortask.app.models import (
    AccessSummary,
    Account,
    ActivityEntry,
    ActivityEvent,
    Agent,
    AgentIn,
    ApprovalIn,
    ApprovalRequest,
    ApprovalsEvent,
    CodeEvent,
    CodeIn,
    CodeLinkStep,
    Contact,
    ContactIn,
    ContactPatch,
    ContactsEvent,
    Event,
    HistoryEntry,
    LinkEvent,
    LinkResult,
    Origin,
    Overview,
    PairingCode,
    PhoneCheck,
    PhoneIn,
    QrCode,
    QrEvent,
    SessionInfo,
    Settings,
    SettingsPatch,
    Status,
    StatusEvent,
    code_link_steps,
    link_steps,
)
from cortask.app.status import channel_status, link_outcome, stored_status
from cortask.app.storage import describe_storage
from cortask.broadcast import Broadcast
from cortask.channels.whatsapp.authpeek import LinkInfo, lock_holder, peek_link
from cortask.channels.whatsapp.authstore import AuthStore
from cortask.channels.whatsapp.errors import ChannelError
from cortask.channels.whatsapp.inbound import InboundText
from cortask.channels.whatsapp.state import ChannelStatus, ConnectionState
from cortask.contacts.access import TrustedContact, WhatsAppState
from cortask.contacts.addresses import format_address, whatsapp_addresses
from cortask.contacts.phone import InvalidPhoneNumber, normalize_phone
from cortask.service import CortaskService
from cortask.store import AsyncStore, WhatsAppSettings
from cortask.store.db import utcnow
from cortask.store.errors import Duplicate, StoreError
from cortask.store.models import Approval, session_id_for_chat
from cortask.store.prune import footprint

if TYPE_CHECKING:  # the channel and its QR library load when a channel is built (issue #18)
    from cortask.channels.whatsapp.channel import WhatsAppChannel
    from cortask.channels.whatsapp.qr import QrCode as ChannelQr

log = logging.getLogger("cortask.app")

# How long `whatsapp stop` (no gateway) waits for the connection it needs to log out on the server.
CONNECT_TIMEOUT_SECONDS = 45.0
FIRST_QR_TIMEOUT_SECONDS = 30.0


def machine_only_sentence(what: list[str]) -> str:
    return (
        f"{', '.join(what)} can be set only on the machine Cortask runs on, not through the web API: "
        "the command agent and settings that name a program, a directory or an environment variable run "
        "things as you. In a terminal there, run for example `cortask agent set command --set "
        "command='python3 /path/to/agent.py'` (it writes the settings directly, in-process; a running "
        "Cortask uses them from the next message)."
    )


def _value(config: object, what: str) -> object:
    from cortask.agents import AgentConfig

    if not isinstance(config, AgentConfig):
        return None
    return config.provider if what == "provider" else config.settings.get(what.removeprefix("settings."))


async def check_agent(config: AgentConfig, environ: Mapping[str, str]) -> None:
    """Validate an agent configuration the one way (`agent set` and `serve`/`demo --agent` alike):
    building it says what is unknown or missing (a ValueError); it is not kept."""
    from cortask.agents import build_agent

    await build_agent(config, environ).aclose()


class CortaskApp:
    def __init__(self, service: CortaskService, *, serving: bool) -> None:
        self.service = service
        self.serving = serving
        self.events: Broadcast[Event] = Broadcast()
        self._qr: QrCode | None = None
        self._code: PairingCode | None = None
        self._qr_session: asyncio.Task[None] | None = None
        self._followers: list[asyncio.Task[None]] = []
        # Serving with WhatsApp not added, the gateway may say ready before the channel is built
        # (issue #18): set by the gateway; actions that use the channel wait for `build_channel`.
        self.defer_channel = False
        self._building: asyncio.Future[None] | None = None
        service.on_contacts_checked = self._contacts_checked
        service.on_command = self._whatsapp_command
        service.on_approvals_changed = self._approvals_changed

    async def _whatsapp_command(self, message: InboundText) -> str:
        """An admin's `/command` in WhatsApp, run through this class's own actions (issue #14)."""
        from cortask.app.admin import run_command

        return await run_command(self, message)

    # -- lifecycle -------------------------------------------------------------------------------

    async def open(self) -> None:
        """Serving: start the service (connecting as its settings say) and follow its channel.
        Otherwise: open the store only."""
        if not self.serving:
            await self.service.open()
            return
        if self.service.channel is None:
            if self.defer_channel:
                self._building = asyncio.get_running_loop().create_future()
                return
            await self.service.start()
        assert self.service.channel is not None
        self._follow(self.service.channel)

    async def build_channel(self) -> None:
        """Serving with `defer_channel`: build the channel now (after the gateway said ready)
        and release the actions waiting for it. Raises what starting raises (e.g. the link held
        by another process), as `open` would have."""
        building = self._building
        assert building is not None, "build_channel follows open() with defer_channel"
        try:
            await self.service.start()
            assert self.service.channel is not None
            self._follow(self.service.channel)
        except BaseException as exc:
            building.set_exception(exc)
            building.exception()  # retrieved: the gateway reports it, an action that waits re-raises it
            raise
        building.set_result(None)

    async def channel_built(self) -> None:
        """Wait until the channel is built, when the gateway said ready before building it."""
        if self._building is not None:
            await asyncio.shield(self._building)

    async def close(self) -> None:
        if self._qr_session is not None:
            self._qr_session.cancel()
        await self._unfollow()
        self.events.end()
        await self.service.close()

    @property
    def current_qr(self) -> QrCode | None:
        """The code of the QR session running now, if any."""
        return self._qr

    # -- status ----------------------------------------------------------------------------------

    async def status(self) -> Status:
        await self.channel_built()
        settings = await self._settings()
        info = await self._peek(settings)
        if self.service.channel is not None:
            status = channel_status(self.service.channel.status, info, settings, running=self.serving)
        else:
            status = stored_status(info, settings, sandbox=self.service.sandbox is not None)
        return await self._with_storage(await self._with_stored_traffic(status))

    async def _with_stored_traffic(self, status: Status) -> Status:
        """Our JIDs in words, and "last message in/out" from the kept activity when this process has seen none, so
        a restart does not blank them (issue #17)."""
        status = status.model_copy(update={"sentence": humanize_jids(status.sentence)})
        if status.last_inbound_at is not None and status.last_outbound_at is not None:
            return status
        store, ws = self._ws()
        inbound = status.last_inbound_at or await store.activity.last_at(ws, ("received",))
        outbound = status.last_outbound_at or await store.activity.last_at(ws, ("replied", "failed"))
        return status.model_copy(update={"last_inbound_at": inbound, "last_outbound_at": outbound})

    async def _with_storage(self, status: Status) -> Status:
        """The status with the database's size, its oldest record and the retention period."""
        store, _ = self._ws()
        found = await store.read(footprint)
        storage = describe_storage(found.bytes, found.oldest, self.service.retention.days, utcnow())
        return status.model_copy(update={"storage": storage})

    async def overview(self) -> Overview:
        settings = await self._settings()
        policy = settings.access_policy()
        status = await self.status()
        channel = self.service.channel
        account = None
        if channel is not None and channel.account and channel.account.get("id"):
            account = Account(id=str(channel.account["id"]), name=channel.account.get("name"))
        elif status.account:
            account = Account(id=status.account)
        return Overview(
            enabled=settings.enabled,
            paused=settings.paused,
            status=status,
            settings=_settings_out(settings),
            contacts=[_contact(c) for c in settings.trusted_contacts],
            allowed_users=list(settings.allowed_users),
            access=AccessSummary(sentence=policy.status, problems=list(policy.problems)),
            account=account,
            qr=self._qr,
            code=self._code,
            phone_url=self.service.phone_url if status.sandbox else None,
            account_number=human_number(account.id) if account else None,
        )

    # -- the channel: settings kept for `serve`, applied at once when serving ---------------------

    async def add_channel(self) -> Overview:
        store, ws = self._ws()
        await store.whatsapp.set_enabled(ws, True)
        return await self.overview()

    async def remove_channel(self) -> Overview:
        # Serving: the device is logged out on WhatsApp too (stop); otherwise forgotten here.
        await (self.stop() if self.serving else self.logout())
        store, ws = self._ws()
        await store.whatsapp.set_enabled(ws, False)
        return await self.overview()

    async def start(self) -> Status:
        """Connect with the stored link (adding the channel if needed); saved, so the next
        `cortask serve` connects too."""
        await self.channel_built()
        info = await self._peek(await self._settings())
        if info.problem:
            raise AppError(info.problem + ". Restore that folder, or `cortask whatsapp logout` and link again.")
        if not info.linked:
            raise AppError("WhatsApp is not linked: link it first (`cortask whatsapp link`, or scan a QR code).")
        if self.serving and not self._live().status.state.running:  # connected already: nothing to redo
            await self._live().start()
        store, ws = self._ws()
        await store.whatsapp.set_enabled(ws, True)
        await store.whatsapp.set_paused(ws, False)
        return await self.status()

    async def pause(self) -> Status:
        """Disconnect but keep the link; saved, so the next `cortask serve` stays paused. With no
        link there is nothing to pause, and nothing is changed."""
        await self.channel_built()
        info = await self._peek(await self._settings())
        if not info.linked and not info.problem:
            return await self.status()
        if self.serving:
            await self._live().pause()
        store, ws = self._ws()
        await store.whatsapp.set_paused(ws, True)
        return await self.status()

    async def stop(self) -> Status:
        """Log this device out on WhatsApp's servers and remove the link. With no gateway running
        this connects first, since only a connection can log out."""
        async with self._channel() as channel:
            if not self.serving:
                await self._connect_to_log_out(channel)
            await channel.stop()  # logs out on the server when open; removes the link
        return await self.status()

    async def logout(self) -> Status:
        """Remove the stored link (logging out on the server too when connected)."""
        auth_dir = self.service.auth_dir(await self._settings())
        if self.serving or peek_link(auth_dir).problem is None:
            async with self._channel() as channel:
                await channel.logout()
            return await self.status()
        # Unreadable credentials are exactly what logout is for: the channel cannot open them to
        # take the lock, so make sure nobody else holds it before removing them.
        holder = lock_holder(auth_dir)
        if holder is not None:
            raise AppError(f"the WhatsApp link in {auth_dir} is in use by {holder}: stop that first.")
        AuthStore.remove(auth_dir)
        return await self.status()

    # -- linking ---------------------------------------------------------------------------------

    async def begin_link(self) -> QrCode:
        """Start a QR session (or join the one running) and return its current code; later codes
        and the session's end come as events. Adds the channel and unpauses it: the person wants
        it to run once linked."""
        await self.channel_built()
        if self._qr is not None and self._qr_session is not None and not self._qr_session.done():
            if self._code is not None:  # back from the code to the QR, in the same session
                self._code = None
                self._live().back_to_qr()
            return self._qr
        channel = self._live()
        info = await self._peek(await self._settings())
        if info.linked:
            raise AppError(
                f"WhatsApp is already linked (as {info.account or 'a phone'}): Cortask uses that link. "
                "To link another phone, log out first (`cortask whatsapp logout`)."
            )
        store, ws = self._ws()
        await store.whatsapp.set_enabled(ws, True)
        await store.whatsapp.set_paused(ws, False)
        first: asyncio.Future[QrCode] = asyncio.get_running_loop().create_future()
        self._qr_session = asyncio.create_task(self._run_qr_session(channel, first))
        try:
            async with asyncio.timeout(FIRST_QR_TIMEOUT_SECONDS):
                return await asyncio.shield(first)
        except TimeoutError:
            first.cancel()  # a code that comes later still reaches the page as an event
            raise AppError(
                f"no QR code came within {FIRST_QR_TIMEOUT_SECONDS:.0f} s: {channel.status.sentence}"
            ) from None

    async def link(self) -> AsyncIterator[StatusEvent | QrEvent | LinkEvent]:
        """The whole linking session as events: QR codes, state changes, and last its result.
        With no gateway running, the channel runs here until then, and closes keeping the link."""
        async with self._channel():
            with self.events.subscribe() as events:
                async for step in link_steps(await self.begin_link(), events):
                    yield step

    async def request_code(self, body: CodeIn) -> PairingCode:
        """Link by phone number instead of a QR: a code for the account `body.phone` to type on the
        phone, in the linking session (started, or joined). Asking again gives a new code."""
        await self.channel_built()
        region = (await self._settings()).default_region
        try:
            e164 = normalize_phone(body.phone, region)
        except InvalidPhoneNumber as exc:
            raise AppError(f"{exc} Give the number of the phone that has WhatsApp.") from None
        custom = body.code.replace("-", "").strip().upper() if body.code else None
        if custom is not None and (len(custom) != 8 or not custom.isalnum() or not custom.isascii()):
            raise AppError("a code of your own has 8 letters and digits, like CORT-ASK1.")
        if self._qr_session is None or self._qr_session.done():
            await self.begin_link()  # (joining a live session is not a switch back to its QR)
        try:
            issued = await self._live().request_pairing_code(e164.lstrip("+"), custom)
        except ChannelError as exc:
            raise AppError(str(exc)) from None
        self._code = PairingCode(code=issued.code, grouped=issued.grouped, phone=e164, expires_at=issued.expires_at)
        self.events.publish(CodeEvent(data=self._code))
        return self._code

    async def link_by_code(self, body: CodeIn) -> AsyncIterator[CodeLinkStep]:
        """The whole linking session by code as events: the code, state changes, and last the
        result. With no gateway running, the channel runs here until then, keeping the link."""
        async with self._channel():
            with self.events.subscribe() as events:
                async for step in code_link_steps(await self.request_code(body), events):
                    yield step

    async def _run_qr_session(self, channel: WhatsAppChannel, first: asyncio.Future[QrCode]) -> None:
        problems: list[ChannelStatus] = []  # why no link came, if none does

        async def watch() -> None:
            async for status in channel.subscribe():
                if status.state is ConnectionState.RECONNECTING or status.state.terminal:
                    problems.append(status)

        watcher = asyncio.create_task(watch())
        shown = False
        try:
            async for qr in channel.generate_qr():
                self._qr, shown = _qr_out(qr), True
                self.events.publish(QrEvent(data=self._qr))
                if not first.done():
                    first.set_result(self._qr)
        except Exception as exc:  # e.g. the sidecar could not start: say so to whoever waits
            log.warning("the QR session failed: %s", exc)
            if not first.done():
                first.set_exception(AppError(f"could not start linking: {exc}"))
        finally:
            self._qr = self._code = None
            watcher.cancel()
        final = channel.status
        if not first.done():  # the session ended before any code (it failed, or was already over)
            first.set_exception(AppError(f"no QR code came: {final.sentence}"))
        outcome, reason = link_outcome(final, shown, problems)
        status = await self._status_of(final)
        self.events.publish(LinkEvent(data=LinkResult(outcome=outcome, status=status, reason=reason)))

    async def _connect_to_log_out(self, channel: WhatsAppChannel) -> None:
        if not channel.is_linked():
            raise AppError("WhatsApp is not linked: there is no device to log out.")
        await channel.start()
        reached = channel.status
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
                async for reached in channel.subscribe():
                    if reached.state is ConnectionState.OPEN or reached.state.terminal:
                        break
        if reached.state is not ConnectionState.OPEN and not reached.state.needs_relink:
            raise AppError(
                f"could not connect to WhatsApp to log this device out: {reached.sentence} The link is kept. "
                "Try again later, or `cortask whatsapp logout` to remove it from this computer only."
            )

    # -- access ----------------------------------------------------------------------------------

    async def contacts(self) -> list[Contact]:
        store, ws = self._ws()
        return [_contact(c) for c in await store.whatsapp.contacts(ws)]

    async def add_contact(self, body: ContactIn) -> Contact:
        store, ws = self._ws()
        contact = await store.whatsapp.add_contact(ws, body.phone, body.permission, body.name)
        await self._access_changed()
        return _contact(await self._checked(contact))

    async def update_contact(self, phone: str, body: ContactPatch) -> Contact:
        store, ws = self._ws()
        contact = await store.whatsapp.update_contact(ws, phone, **body.model_dump(exclude_unset=True))
        await self._access_changed()
        return _contact(await self._checked(contact))

    async def _checked(self, contact: TrustedContact) -> TrustedContact:
        """While linked, ask WhatsApp which account the number is before answering; otherwise the
        check waits for the next link."""
        if not await self.service.check_contacts([contact.phone]):
            return contact
        store, ws = self._ws()
        return next((c for c in await store.whatsapp.contacts(ws) if c.phone == contact.phone), contact)

    async def _contacts_checked(self) -> None:
        self.events.publish(ContactsEvent(data=await self.contacts()))

    async def remove_contact(self, phone: str) -> None:
        store, ws = self._ws()
        if not await store.whatsapp.remove_contact(ws, phone):
            raise AppError(f"{phone} is not a trusted contact", Kind.NOT_FOUND)
        await self._access_changed()

    async def set_allowed_users(self, entries: list[str]) -> Overview:
        store, ws = self._ws()
        await store.whatsapp.set_allowed_users(ws, entries)
        await self._access_changed(contacts=False)
        return await self.overview()

    async def update_settings(self, patch: SettingsPatch) -> Overview:
        store, ws = self._ws()
        await store.whatsapp.update_settings(ws, **patch.model_dump(exclude_unset=True))
        await self._access_changed(contacts=False)
        return await self.overview()

    # -- strangers waiting for approval (issue #14) --------------------------------------------------

    async def approvals(self) -> list[ApprovalRequest]:
        store, ws = self._ws()
        return [_approval_out(a) for a in await store.approvals.pending(ws, time.time())]

    async def approve(self, code: str, body: ApprovalIn) -> Contact:
        """Let a waiting stranger in (read or write) and answer their held message, once."""
        if body.permission not in ("read", "write"):
            raise AppError(f"{body.permission!r} cannot be given on approval: use read or write.", Kind.INVALID)
        await self.channel_built()
        if self.service.channel is None:  # the code would be spent and their message never answered
            raise AppError(
                "Approving answers their message, which needs Cortask running: start `cortask serve`, "
                "then approve (here, on the page, or with /approve in WhatsApp)."
            )
        store, ws = self._ws()
        approval = await store.approvals.resolve(ws, code, "approved", time.time())
        try:
            contact = await self.add_contact(
                ContactIn(phone=approval.phone, permission=body.permission, name=approval.push_name)
            )
        except Duplicate:  # added meanwhile: their permission stays as it is
            contact = next(c for c in await self.contacts() if c.phone == approval.phone)
        if self.service.channel is not None:
            await self.service.channel.answer_held(_held_message(approval))
        await self._approvals_changed()
        return contact

    async def reject(self, code: str) -> None:
        """Drop a waiting stranger's message and mute that number: nothing is ever sent to them."""
        store, ws = self._ws()
        await store.approvals.resolve(ws, code, "rejected", time.time())
        await self._approvals_changed()

    async def _approvals_changed(self) -> None:
        self.events.publish(ApprovalsEvent(data=await self.approvals()))

    async def forget_chat(self, chat_jid: str) -> int:
        """Forget one chat's conversation history (`/reset`): the agent starts it afresh."""
        store, _ = self._ws()
        return await store.sessions.forget(session_id_for_chat(chat_jid))

    async def validate_phone(self, body: PhoneIn) -> PhoneCheck:
        region = (await self._settings()).default_region
        try:
            return PhoneCheck(ok=True, e164=normalize_phone(body.phone, region))
        except InvalidPhoneNumber as exc:
            return PhoneCheck(ok=False, error=str(exc))

    async def _access_changed(self, *, contacts: bool = True) -> None:
        """Apply access changes to the running channel at once, and tell the listeners."""
        await self.channel_built()
        if self.service.channel is not None:
            await self.service.reload_policy()
        if contacts:
            self.events.publish(ContactsEvent(data=await self.contacts()))

    # -- the agent -------------------------------------------------------------------------------

    async def agent(self) -> Agent:
        store, ws = self._ws()
        shown = await store.agents.for_display(ws)
        active = await self.service.agent_config()
        return Agent(
            provider=shown.provider if shown else "echo",
            settings=dict(shown.settings) if shown else {},
            active=active.provider,
            override=self.service.agent_override is not None,
        )

    async def set_agent(self, body: AgentIn, *, origin: Origin) -> Agent:
        """Choose the agent. From `Origin.NETWORK` (the HTTP API), what runs a program or reads the
        environment (`machine_only`) is refused unless it is unchanged: only the machine sets it."""
        from cortask.agents import AgentConfig
        from cortask.agents.factory import machine_only
        from cortask.store.masking import merge_masked

        store, ws = self._ws()
        stored = await store.agents.get(ws)
        before = AgentConfig(stored.provider, dict(stored.settings)) if stored else None
        # What the store will keep (masked values restored, or dropped for a new endpoint) is what is checked.
        kept = merge_masked(
            body.provider.strip(), dict(body.settings), stored.provider if stored else None,
            dict(stored.settings) if stored else {},
        )  # fmt: skip
        config = AgentConfig(body.provider, dict(kept))
        if origin is Origin.NETWORK:
            changed = [what for what in machine_only(config) if _value(config, what) != _value(before, what)]
            if changed:
                raise AppError(machine_only_sentence(changed), Kind.FORBIDDEN)
        await check_agent(config, self.service.environ)
        await store.agents.set(ws, body.provider, dict(body.settings))
        return await self.agent()

    # -- what happened ---------------------------------------------------------------------------

    async def activity(self) -> list[ActivityEntry]:
        """The newest entries, kept in the store: the same after a restart (issue #17)."""
        store, ws = self._ws()
        names, own = await self._contact_names(), await self._own_users()
        return [_entry(e, names, own) for e in await store.activity.recent(ws)]

    async def sessions(self) -> list[SessionInfo]:
        store, _ = self._ws()
        return [SessionInfo(id=s.id, created_at=str(s.created_at)) for s in await store.sessions.recent()]

    async def history(self, session_id: str, limit: int = 50) -> list[HistoryEntry]:
        store, _ = self._ws()
        return [
            HistoryEntry(role=str(m.role), text=m.text, at=str(m.at))
            for m in await store.sessions.history(session_id, limit)
        ]

    # -- internals -------------------------------------------------------------------------------

    def _ws(self) -> tuple[AsyncStore, int]:
        assert self.service.store is not None and self.service.workspace is not None, "open() first"
        return self.service.store, self.service.workspace.id

    async def _settings(self) -> WhatsAppSettings:
        store, ws = self._ws()
        return await store.whatsapp.settings(ws)

    async def _peek(self, settings: WhatsAppSettings) -> LinkInfo:
        return await asyncio.to_thread(peek_link, self.service.auth_dir(settings))

    async def _status_of(self, channel: ChannelStatus) -> Status:
        settings = await self._settings()
        status = channel_status(channel, await self._peek(settings), settings, running=self.serving)
        return await self._with_storage(await self._with_stored_traffic(status))

    async def _own_users(self) -> frozenset[str]:
        """Our account's addresses (user parts): the running channel's, else the stored link's."""
        channel = self.service.channel
        me = channel.account if channel is not None and channel.account else None
        if me is not None:
            return describe.own_users((me.get("id"), me.get("lid")))
        return describe.own_users([(await self._peek(await self._settings())).account])

    async def _contact_names(self) -> Mapping[str, str]:
        store, ws = self._ws()
        names: dict[str, str] = {}
        for c in await store.whatsapp.contacts(ws):
            if c.name:
                names[c.phone] = c.name
                # A sender is shown by the address WhatsApp uses for them, too (+521… for +52…).
                for address in (c.whatsapp.address, *whatsapp_addresses(c.phone)):
                    if address:
                        names.setdefault("+" + address, c.name)
        return names

    def _live(self) -> WhatsAppChannel:
        if self.service.channel is None:
            raise AppError("the WhatsApp channel is not running here", Kind.CONFLICT)
        return self.service.channel

    @contextlib.asynccontextmanager
    async def _channel(self) -> AsyncIterator[WhatsAppChannel]:
        """The channel: the running one when serving; otherwise one built for this action, which
        holds the link's lock until the action is done and then closes, keeping the link."""
        if self.serving:
            await self.channel_built()
            yield self._live()
            return
        await self.service.start(connect=False)  # AuthDirInUse names the holder
        channel = self._live()
        self._follow(channel)
        try:
            yield channel
        finally:
            if self._qr_session is not None:
                self._qr_session.cancel()
            await self._unfollow()
            await self.service.close_channel()

    def _follow(self, channel: WhatsAppChannel) -> None:
        async def statuses() -> None:
            async for status in channel.subscribe():
                self.events.publish(StatusEvent(data=await self._status_of(status)))

        async def activities() -> None:
            store, ws = self._ws()
            failing = False  # while the database cannot be written, keeping entries would only wait
            async for entry in channel.activities():
                failing = entry.get("kind") == "store_failing" or (failing and entry.get("kind") != "store_recovered")
                try:
                    if not failing:
                        await store.activity.add(ws, entry)
                except StoreError as exc:
                    # The entry still reaches the page live; only its copy for after a restart is lost.
                    log.warning("an activity entry was not kept across restarts: %s", exc)
                names, own = await self._contact_names(), await self._own_users()
                self.events.publish(ActivityEvent(data=_entry(entry, names, own)))

        self._followers = [asyncio.create_task(_logged(statuses())), asyncio.create_task(_logged(activities()))]

    async def _unfollow(self) -> None:
        for task in self._followers:
            task.cancel()
        for task in self._followers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._followers = []


async def _logged(follow: Any) -> None:
    try:
        await follow
    except asyncio.CancelledError:
        raise
    except Exception:  # a follower that dies would silence the page: say why in the log
        log.exception("following the channel failed")


def _contact(contact: TrustedContact) -> Contact:
    reg = contact.whatsapp
    shown = format_address(reg.address) if reg.address else None
    note = None
    if reg.state is WhatsAppState.NOT_ON_WHATSAPP:
        note = "Not on WhatsApp: check the number, or ask them which number they use on WhatsApp."
    elif shown is not None and reg.address != contact.phone[1:]:
        note = f"WhatsApp knows this number as {shown}."
    return Contact(
        phone=contact.phone,
        name=contact.name,
        permission=contact.permission.value,
        written=contact.written,
        whatsapp=reg.state.value,
        whatsapp_address=shown,
        whatsapp_checked_at=reg.checked_at.timestamp() if reg.checked_at is not None else None,
        note=note,
    )


def _settings_out(settings: WhatsAppSettings) -> Settings:
    return Settings(
        answer_groups=settings.answer_groups,
        open_to_everyone=settings.open_to_everyone,
        default_region=settings.default_region,
        self_chat=settings.self_chat,
        self_chat_prefix=settings.self_chat_prefix,
        answers_paused=settings.answers_paused,
        group_mode=settings.group_mode,
        groups_allowed=list(settings.groups_allowed),
        approvals=settings.approvals,
        approval_hours=settings.approval_hours,
    )


def _approval_out(approval: Approval) -> ApprovalRequest:
    text = approval.text.strip()
    return ApprovalRequest(
        code=approval.code,
        phone=approval.phone,
        name=approval.push_name,
        first_line=text.splitlines()[0] if text else "",
        at=approval.created_at,
        expires_at=approval.expires_at,
    )


def _held_message(approval: Approval) -> InboundText:
    """The stranger's held message, as it arrived, to be answered now."""
    return InboundText(
        chat_jid=approval.chat_jid,
        message_id=approval.message_id,
        sender_jid=approval.sender_jid,
        sender_phone=approval.phone,
        sender_lid=None,
        push_name=approval.push_name,
        text=approval.text,
        timestamp=approval.message_ts,
        is_group=False,
        offline=False,
    )


def _qr_out(qr: ChannelQr) -> QrCode:
    png = "data:image/png;base64," + base64.b64encode(qr.png()).decode()
    return QrCode(qr=qr.data, png=png, expires_at=qr.expires_at)


def _entry(entry: Any, names: Mapping[str, str], own: frozenset[str] = frozenset()) -> ActivityEntry:
    """An activity entry as the channel recorded it (a mapping of codes), described; `own` are
    our account's addresses, whose chat is the owner's own."""
    data: Mapping[str, Any] = entry if isinstance(entry, Mapping) else dataclasses.asdict(entry)
    sentence, tone, quiet = describe.describe(data, names.get)
    chat_title, chat_sub = describe.chat_words(str(data.get("chat") or ""), own) or (None, None)

    def text(key: str) -> str | None:
        value = data.get(key)
        return None if value is None else str(value)

    chars = data.get("chars")
    return ActivityEntry(
        at=float(data.get("at") or 0.0),
        kind=str(data.get("kind", "")),
        chat=text("chat"),
        message_id=text("message_id"),
        sender=text("sender"),
        verdict=text("verdict"),
        reason=text("reason"),
        chars=chars if isinstance(chars, int) else None,
        error=text("error"),
        label=describe.label(str(data.get("kind", ""))),
        sentence=sentence,
        tone=tone,
        quiet=quiet,
        chat_title=chat_title,
        chat_sub=chat_sub,
    )
