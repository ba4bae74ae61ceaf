"""The owner's `/commands` in WhatsApp, run through `CortaskApp`'s own actions (issue #14), so a
command does exactly what the same button, API call or CLI command does. The words are
`cortask.app.commands`' (pure); this module only calls the actions and records who asked.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from cortask.app import commands
from cortask.app.errors import EXPECTED, classify
from cortask.app.models import ApprovalIn, ContactIn, ContactPatch, SettingsPatch
from cortask.channels.whatsapp.inbound import InboundText
from cortask.store.errors import Duplicate

if TYPE_CHECKING:
    from cortask.app.actions import CortaskApp

__all__ = ["run_command"]

log = logging.getLogger("cortask.admin")


async def run_command(app: CortaskApp, message: InboundText) -> str:
    """The answer to one admin command; recorded in the activity log with who sent it."""
    parsed = commands.parse(message.text)
    name = parsed.name if isinstance(parsed, commands.Command) else "unknown"
    try:
        answer = await _run(app, parsed, message)
        outcome = "ok"
    except EXPECTED as exc:  # an answer, not a bug: the sentence says what to change
        answer, outcome = classify(exc).args[0], "refused"
    channel = app.service.channel
    if channel is not None:
        who = "owner" if message.from_owner else (message.sender_phone or message.sender_jid)
        channel.record("command", message.chat_jid, message.message_id, sender=who, command=name, outcome=outcome)
    log.info("WhatsApp command /%s from %s: %s", name, message.sender_phone or message.sender_jid, outcome)
    return answer


async def _run(app: CortaskApp, parsed: commands.Command | commands.Problem, message: InboundText) -> str:
    if isinstance(parsed, commands.Problem):
        return f"{parsed.sentence}\n\n{commands.HELP}" if parsed.help else parsed.sentence
    name = parsed.name
    if name == "help":
        return commands.HELP
    if name == "status":
        overview = await app.overview()
        return commands.status_text(
            overview.status, answers_paused=overview.settings.answers_paused, agent=await app.agent()
        )
    if name in ("pause", "resume"):
        await app.update_settings(SettingsPatch(answers_paused=name == "pause"))
        if name == "pause":
            return "Paused: nobody gets an answer from the agent until you send /resume (commands still work)."
        return "Answering again."
    if name == "contacts":
        return commands.contacts_text(await app.contacts())
    if name == "allow":
        return await _allow(app, parsed)
    if name == "deny":
        assert parsed.number is not None
        await app.remove_contact(parsed.number)
        return f"{parsed.number} is no longer a trusted contact: their messages are ignored."
    if name == "agent":
        return commands.agent_text(await app.agent())
    if name == "reset":
        forgotten = await app.forget_chat(message.chat_jid)
        return f"Forgotten: this chat's conversation history ({forgotten} messages). The agent starts afresh."
    assert parsed.code is not None
    if name == "approve":
        contact = await app.approve(parsed.code, ApprovalIn(permission=parsed.permission or "write"))
        who = f"{contact.name} ({contact.phone})" if contact.name else contact.phone
        return f"Approved: {who} has {contact.permission} access, and their message is being answered."
    await app.reject(parsed.code)
    return f"Rejected: the message with code {parsed.code} is dropped and that number is muted."


async def _allow(app: CortaskApp, command: commands.Command) -> str:
    assert command.number is not None and command.permission is not None
    try:
        contact = await app.add_contact(
            ContactIn(phone=command.number, permission=command.permission, name=command.name_arg)
        )
        verb = "Added"
    except Duplicate:
        patch = ContactPatch(permission=command.permission)
        if command.name_arg is not None:
            patch = ContactPatch(permission=command.permission, name=command.name_arg)
        contact = await app.update_contact(command.number, patch)
        verb = "Changed"
    who = f"{contact.name} ({contact.written or contact.phone})" if contact.name else contact.written or contact.phone
    return f"{verb}: {who} has {contact.permission} access."
