"""The Cortask service: the store, the WhatsApp channel and the agent, wired together.

Each inbound text is journaled before anything else happens (so a crash cannot lose it and a
redelivery cannot answer it twice), then answered by the workspace's agent with the chat's recent
history, and the exchange is kept in the chat's session.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cortask.agents import Agent, AgentConfig, Session, Turn, build_agent
from cortask.channels.whatsapp.authpeek import peek_link
from cortask.channels.whatsapp.authstore import AuthStore
from cortask.channels.whatsapp.config import Sandbox, WhatsAppConfig
from cortask.channels.whatsapp.groups import GroupMode, GroupRule
from cortask.channels.whatsapp.inbound import InboundText
from cortask.channels.whatsapp.numbers import numbers_to_ask, registration_of
from cortask.contacts.access import Permission
from cortask.home import cortask_home
from cortask.store import AsyncStore, Store, WhatsAppSettings
from cortask.store.db import utcnow
from cortask.store.models import Approval, Workspace, session_id_for_chat
from cortask.store.prune import Pruned, prune_batch
from cortask.store.retention import Retention
from cortask.store_journal import StoreJournal

if TYPE_CHECKING:  # loaded where a channel is built: `serve` with nothing added says ready sooner (#18)
    from cortask.channels.whatsapp.channel import WhatsAppChannel

log = logging.getLogger("cortask.service")

HISTORY_TURNS = 20
DEFAULT_AGENT = AgentConfig("echo", {})


def forget_unused_link(auth_dir: Path) -> None:
    """Remove a link folder this process made only to hold its lock, if nothing was linked in it:
    a folder left behind would say "linked" to `scripts/run` and to people (issue #17)."""
    info = peek_link(auth_dir)
    if not info.linked and info.problem is None and info.in_use_by is None:
        AuthStore.remove(auth_dir)


def approval_notice(approval: Approval, hours: float, self_chat: bool = True) -> str:
    """What the owner's own chat says when a stranger writes (once per stranger). Without
    self-chat the owner's commands are not read there: the notice says where to answer."""
    first = approval.text.strip().splitlines()[0] if approval.text.strip() else ""
    first = first if len(first) <= 120 else first[:119] + "…"
    who = f"{approval.phone} ({approval.push_name})" if approval.push_name else approval.phone
    valid = f"{hours:g} h"
    return (
        f"Someone new wrote: {who}: “{first}”\n"
        f"Send /approve {approval.code} to let them in and answer it (or /approve {approval.code} read), "
        f"or /reject {approval.code} to drop it and mute them. The code is valid for {valid}."
        + ("" if self_chat else "\n(Turn on “Talk to the agent in your own chat” to answer here, or use the page.)")
    )


def group_rule(settings: WhatsAppSettings) -> GroupRule:
    mode: GroupMode = "always" if settings.group_mode == "always" else "mention"
    return GroupRule(mode, frozenset(settings.groups_allowed))


class CortaskService:
    def __init__(
        self,
        home: Path | None = None,
        *,
        sandbox: Sandbox | None = None,
        agent_override: AgentConfig | None = None,
        environ: Mapping[str, str] = os.environ,
        channel_options: Mapping[str, Any] | None = None,
        retention: Retention | None = None,
    ) -> None:
        self.home = home or cortask_home(environ)
        self.environ = environ
        self.sandbox = sandbox if sandbox is not None else WhatsAppConfig.from_env(environ).sandbox
        self.agent_override = agent_override
        self.channel_options = dict(channel_options or {})
        self.store: AsyncStore | None = None
        self.workspace: Workspace | None = None
        self.channel: WhatsAppChannel | None = None
        # One agent per configuration, reused across messages (an LLM client holds a connection
        # pool); replaced and closed when the configuration changes.
        self._agent: tuple[str, Agent] | None = None
        # Told when WhatsApp's answers about contacts' numbers were stored (the app streams them).
        self.on_contacts_checked: Callable[[], Awaitable[None]] | None = None
        self._auth_dir_made = False  # this process made the link's folder (to hold its lock)
        self.phone_url: str | None = None  # the demo's simulated phone page, shown by the UI
        self.retention = retention if retention is not None else Retention.from_env(environ)
        self._pruner: asyncio.Task[None] | None = None
        # Answers an admin's `/command` (the app's WhatsApp commands, issue #14); None: no commands.
        self.on_command: Callable[[InboundText], Awaitable[str]] | None = None
        self.answers_paused = False  # `/pause` from WhatsApp: only admin commands are answered
        self.self_chat_prefix: str | None = None  # marks the agent's replies in the owner's chat
        self.approvals = False  # a stranger's first message waits for the owner's approval
        self.approval_hours = 24.0
        self.self_chat = False
        # Told when a stranger's message is held (the app streams the waiting requests).
        self.on_approvals_changed: Callable[[], Awaitable[None]] | None = None

    async def open(self) -> None:
        """Open the store and the default workspace (once). Enough for everything that does not
        need WhatsApp, and takes no lock: another process may hold the link meanwhile."""
        if self.store is None:
            self.store = await AsyncStore.open(
                self.home / "cortask.db", environ={**self.environ, "CORTASK_HOME": str(self.home)}
            )
            self.workspace = await self.store.workspaces.ensure_default()

    def auth_dir(self, settings: WhatsAppSettings) -> Path:
        """Where the WhatsApp link of these settings is kept."""
        return settings.auth_dir or self.home / "whatsapp-auth"

    async def start(self, *, connect: bool = True) -> None:
        """Open the store and build the channel; with `connect`, connect it as its settings say
        (added, linked and not paused). The CLI, with no gateway running, passes False and drives
        the channel itself. Raises AuthDirInUse when another process holds the WhatsApp link."""
        await self.open()
        assert self.store is not None and self.workspace is not None
        settings = await self.store.whatsapp.settings(self.workspace.id)
        config = WhatsAppConfig(
            auth_dir=self.auth_dir(settings),
            sandbox=self.sandbox,
            trusted_contacts=settings.trusted_contacts,
            allowed_users=settings.allowed_users,
            open_to_everyone=settings.open_to_everyone,
            answer_groups=settings.answer_groups,
            self_chat=settings.self_chat,
            group_rule=group_rule(settings),
            default_region=settings.default_region,
            **{**WhatsAppConfig.tuning_from_env(self.environ), **self.channel_options},
        )
        from cortask.channels.whatsapp.channel import WhatsAppChannel

        self._auth_dir_made = not config.auth_dir.exists()
        channel = WhatsAppChannel(config, self.handle, ledger=StoreJournal(self.store))
        self._owner_settings(settings)
        channel.set_silent(self._silent)
        channel.set_hold(self._hold)
        channel.on_open(self._check_all_contacts)  # after each link: which account is each contact now
        try:
            linked = channel.is_linked()  # takes the auth directory's lock: one owner at a time
        except BaseException:
            await channel.close()
            raise
        self.channel = channel
        if not connect:
            return
        self.start_pruning()
        if not settings.enabled:
            return
        if linked and settings.paused:
            await self.channel.pause()  # says so in the status; the link is kept
        elif linked:
            await self.channel.start()
        else:
            await self.channel.warm_up()  # the person is about to link: make the first QR quick

    async def channel_can_wait(self) -> bool:
        """True when starting would only build an idle channel: WhatsApp not added and its link
        not held by another process. The gateway then says ready first and builds it right after
        (issue #18); otherwise it starts as before, so a held link still stops it before ready."""
        await self.open()
        assert self.store is not None and self.workspace is not None
        settings = await self.store.whatsapp.settings(self.workspace.id)
        info = peek_link(self.auth_dir(settings))
        return not settings.enabled and info.in_use_by is None and info.problem is None

    async def close_channel(self) -> None:
        """Close the channel (keeping the link) and let go of the link's lock; the store stays open."""
        if self.channel is not None:
            channel, self.channel = self.channel, None
            await channel.close()
            if self._auth_dir_made:
                forget_unused_link(channel.config.auth_dir)

    async def close(self) -> None:
        if self._pruner is not None:
            self._pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruner
            self._pruner = None
        await self.close_channel()
        if self._agent is not None:
            await self._agent[1].aclose()
            self._agent = None
        if self.store is not None:
            await self.store.aclose()

    # -- retention: data that does not grow forever ----------------------------------------------

    def start_pruning(self) -> None:
        """Prune now and then every `retention.interval_seconds`, while the service runs."""
        if self._pruner is None:
            self._pruner = asyncio.create_task(self._prune_forever(), name="cortask-retention")

    async def _prune_forever(self) -> None:
        while True:
            try:
                await self.prune()
            except Exception:  # a full disk or a locked database: the next round tries again
                log.exception("pruning old records failed; trying again in %.0f s", self.retention.interval_seconds)
            await asyncio.sleep(self.retention.interval_seconds)

    async def prune(self) -> Pruned:
        """Drop what the retention period lets go (cortask.store.retention says what), one batch
        per store call so the channel's own writes run in between; and the sent texts kept for
        retry receipts."""
        assert self.store is not None
        now = utcnow()
        total = Pruned()
        while (done := await self.store.run(prune_batch, self.retention, now)).total:
            total += done
        sent = await self.channel.prune_sent(self.retention.cutoff(now).timestamp()) if self.channel else 0
        if total.total or sent:
            log.info(
                "retention (%g days): pruned %d journal entries, %d outbox items, %d session turns, %d sent texts",
                self.retention.days, total.journal, total.outbox, total.turns, sent,
            )  # fmt: skip
        return total

    async def reload_policy(self) -> None:
        """Apply access changes (trusted contacts, allowedUsers, open, groups) to the running
        channel at once."""
        assert self.store and self.workspace and self.channel
        self.channel.set_policy(await self.store.whatsapp.access_policy(self.workspace.id))
        settings = await self.store.whatsapp.settings(self.workspace.id)
        self.channel.set_answer_groups(settings.answer_groups)
        self.channel.set_self_chat(settings.self_chat)
        self.channel.set_group_rule(group_rule(settings))
        self._owner_settings(settings)

    def _owner_settings(self, settings: WhatsAppSettings) -> None:
        self.answers_paused = settings.answers_paused
        self.self_chat_prefix = settings.self_chat_prefix
        self.approvals = settings.approvals
        self.approval_hours = settings.approval_hours
        self.self_chat = settings.self_chat

    async def _hold(self, message: InboundText) -> bool:
        """With approvals on, keep a stranger's first message and tell the owner once, in their
        own chat (and the page, live). True when the message is kept (new, or already waiting)."""
        if not self.approvals or self.store is None or self.workspace is None or message.sender_phone is None:
            return False
        held = await self.store.approvals.hold(
            self.workspace.id, phone=message.sender_phone, chat_jid=message.chat_jid,
            message_id=message.message_id, sender_jid=message.sender_jid, push_name=message.push_name,
            text=message.text, message_ts=message.timestamp, now=time.time(), valid_hours=self.approval_hours,
        )  # fmt: skip
        if held.approval is None:
            if held.reason != "waiting":
                log.info("a stranger's message is not held for approval (%s)", held.reason)
            return held.reason == "waiting"
        if self.channel is not None:
            try:
                await self.channel.tell_owner(approval_notice(held.approval, self.approval_hours, self.self_chat))
            except Exception as exc:  # the page still shows it; the owner's chat gets it when connected
                log.warning("could not tell the owner about a stranger's message: %s", exc)
        if self.on_approvals_changed is not None:
            await self.on_approvals_changed()
        return True

    def is_command(self, message: InboundText) -> bool:
        """An admin's (or the owner's, in self-chat) message that starts with `/`: a command for
        the product, never for the agent. A `/word` from anyone else is ordinary text."""
        if not message.text.lstrip().startswith("/") or self.on_command is None or self.channel is None:
            return False
        if message.is_group:  # never in a group: the answers (contacts, status) are the owner's business
            return False
        if message.from_owner or self.channel.is_owner_chat(message):
            return True
        contact = self.channel.policy.contact_for(message.sender_phone, message.sender_lid)
        return contact is not None and contact.permission is Permission.ADMIN

    def _silent(self, message: InboundText) -> bool:
        return self.answers_paused and not self.is_command(message)

    async def check_contacts(self, phones: Collection[str] | None = None) -> bool:
        """Ask WhatsApp which account each trusted contact's number is (all, or those in `phones`,
        E.164) and keep the answers; matching uses them at once. False when not connected."""
        channel = self.channel
        if channel is None or self.store is None or self.workspace is None:
            return False
        asked_any = False
        for contact in await self.store.whatsapp.contacts(self.workspace.id):
            if phones is not None and contact.phone not in phones:
                continue
            found = await channel.check_numbers(numbers_to_ask(contact.phone))
            if found is None:
                break
            asked_any = True
            registration = registration_of(contact.phone, found, datetime.now(UTC))
            await self.store.whatsapp.record_registration(self.workspace.id, contact.phone, registration)
            log.info("WhatsApp: %s is %s", contact.phone, registration.state.value)
        if asked_any:
            if self.channel is not None:
                await self.reload_policy()
            if self.on_contacts_checked is not None:
                await self.on_contacts_checked()
        return asked_any

    async def _check_all_contacts(self) -> None:
        await self.check_contacts()

    async def agent_config(self) -> AgentConfig:
        if self.agent_override is not None:
            return self.agent_override
        assert self.store and self.workspace
        stored = await self.store.agents.get(self.workspace.id)
        if stored is None:
            return DEFAULT_AGENT
        return AgentConfig(stored.provider, dict(stored.settings))

    async def _current_agent(self) -> Agent:
        config = await self.agent_config()
        key = json.dumps(config.to_dict(), sort_keys=True, default=str)
        if self._agent is None or self._agent[0] != key:
            if self._agent is not None:
                await self._agent[1].aclose()
            self._agent = (key, build_agent(config, self.environ))
        return self._agent[1]

    def _agent_timed(self, started: float, *, ok: bool) -> None:
        if self.channel is not None:
            self.channel.metrics.agent_run(time.monotonic() - started, ok)

    async def handle(self, message: InboundText) -> str:
        """The channel's handler: history, agent, history. (The channel's ledger has already
        journaled the message, and records the reply before it is sent.)"""
        assert self.store and self.workspace
        if self.on_command is not None and self.is_command(message):
            return await self.on_command(message)  # answered by the product, not kept as conversation
        reply = await self._agent_reply(message)
        if self.self_chat_prefix and self.channel is not None and self.channel.is_owner_chat(message):
            return self.self_chat_prefix + reply
        return reply

    async def _agent_reply(self, message: InboundText) -> str:
        assert self.store and self.workspace
        session_id = session_id_for_chat(message.chat_jid)
        await self.store.sessions.ensure(session_id)
        earlier = await self.store.sessions.history(session_id, limit=HISTORY_TURNS)
        history = tuple(Turn("user" if m.role == "user" else "assistant", m.text) for m in earlier)
        agent = await self._current_agent()
        session = Session(
            session_id=session_id,
            workspace=self.workspace.name,
            chat_jid=message.chat_jid,
            sender_phone=message.sender_phone,
            sender_name=message.push_name,
            history=history,
        )
        started = time.monotonic()
        try:
            reply = await agent.reply(session, message.text)
        except BaseException:
            self._agent_timed(started, ok=False)
            raise
        self._agent_timed(started, ok=True)

        def keep(store: Store) -> None:
            # both turns together, and only once (an answer computed again after a crash)
            with store.transaction():
                if not store.sessions.has_message(session_id, message.message_id):
                    store.sessions.append(session_id, "user", message.text, message_id=message.message_id)
                    store.sessions.append(session_id, "assistant", reply)

        await self.store.run(keep)
        return reply
