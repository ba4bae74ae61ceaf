"""The owner's commands in WhatsApp (issue #14): what a `/word` from an admin means, and the words
of the answers. Pure: `parse` reads a message into a `Command` or a `Problem` (a sentence that
says what to type); the answers are built from the application layer's own models by the
functions below, so the page, the CLI and WhatsApp describe the same things. `cortask.app.admin`
runs them through `CortaskApp`: one code path with the API and the CLI.

Who may give a command is not decided here: the service passes only an `admin` contact's (or the
owner's, in self-chat) messages that start with `/`. Anyone else's `/word` is ordinary text.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from cortask.app.models import Agent, Contact, Status

__all__ = [
    "HELP",
    "Command",
    "Problem",
    "agent_text",
    "contacts_text",
    "parse",
    "status_text",
]

PERMISSIONS = ("read", "write", "admin")

HELP = """Commands (only you and admin contacts can use them; anyone else's /word goes to the agent as text):
/status – link, connection, last message, paused or not, agent
/pause – stop answering (commands still work)
/resume – answer again
/contacts – who may talk to the agent
/allow <number> [read|write|admin] [name] – trust a number (write if not said)
/deny <number> – stop trusting a number
/agent – which agent answers (keys hidden)
/reset – forget this chat's conversation history
/approve <code> [read|write] – let a stranger in and answer them
/reject <code> – drop a stranger's message and mute them
/help – this list"""

_NAMES = frozenset(
    {"help", "status", "pause", "resume", "contacts", "allow", "deny", "agent", "reset", "approve", "reject"}
)
# What a phone number may be written with (+49 151 2345-6789, (0151) 234…); a name starts elsewhere.
_NUMBERISH = re.compile(r"[+0-9()\-./]+")


@dataclass(frozen=True, slots=True)
class Command:
    name: str  # one of _NAMES
    number: str | None = None  # /allow, /deny: as typed
    permission: str | None = None  # /allow: read|write|admin; /approve: read|write
    name_arg: str | None = None  # /allow: the contact's name
    code: str | None = None  # /approve, /reject


@dataclass(frozen=True, slots=True)
class Problem:
    """A command that cannot run as typed: the sentence says what to type. `help`: an unknown
    command, answered with the list of commands."""

    sentence: str
    help: bool = False


def parse(text: str) -> Command | Problem:
    """Read one message that starts with `/`."""
    words = text.strip().split()
    head = words[0][1:].lower() if words else ""
    head = head.partition("@")[0]  # "/status@bot" style, as other chat tools write it
    args = words[1:]
    if head not in _NAMES:
        return Problem(f"There is no command /{head}." if head else "That is not a command.", help=True)
    if head in ("allow", "deny"):
        return _number_command(head, args)
    if head in ("approve", "reject"):
        return _code_command(head, args)
    if args and head != "help":
        return Problem(f"/{head} takes nothing after it: send just /{head}.")
    return Command(head)


def _number_command(head: str, args: Sequence[str]) -> Command | Problem:
    usage = (
        "Send /allow +49 151 23456789 write Ada (the permission and the name are optional)."
        if head == "allow"
        else "Send /deny +49 151 23456789."
    )
    number_words: list[str] = []
    rest = list(args)
    while rest and _NUMBERISH.fullmatch(rest[0]) and rest[0].lower() not in PERMISSIONS:
        number_words.append(rest.pop(0))
    if not number_words:
        return Problem(f"/{head} needs a phone number. {usage}")
    number = " ".join(number_words)
    if head == "deny":
        return Command("deny", number=number) if not rest else Problem(f"/deny takes only a number. {usage}")
    permission = "write"
    if rest and rest[0].lower() in PERMISSIONS:
        permission = rest.pop(0).lower()
    name = " ".join(rest) or None
    return Command("allow", number=number, permission=permission, name_arg=name)


def _code_command(head: str, args: Sequence[str]) -> Command | Problem:
    usage = "Send /approve CODE, or /approve CODE read." if head == "approve" else "Send /reject CODE."
    if not args:
        return Problem(f"/{head} needs the code from the notice. {usage}")
    code = args[0].upper()
    if head == "reject":
        return Command("reject", code=code) if len(args) == 1 else Problem(f"/reject takes only the code. {usage}")
    if len(args) > 2 or (len(args) == 2 and args[1].lower() not in ("read", "write")):
        return Problem(f"/approve takes the code and, optionally, read or write. {usage}")
    return Command("approve", code=code, permission=args[1].lower() if len(args) == 2 else "write")


# -- answers --------------------------------------------------------------------------------------


def status_text(status: Status, *, answers_paused: bool, agent: Agent, now: float | None = None) -> str:
    """/status: link, connection, last message, paused or not, agent."""
    lines = [f"WhatsApp: {status.label}. {status.sentence}"]
    if status.account:
        lines.append(f"Linked as {status.account.partition(':')[0].partition('@')[0]}.")
    last = status.last_inbound_at
    lines.append(f"Last message: {_ago(last, now)}." if last else "Last message: none yet.")
    lines.append(
        "Answers are paused: only commands are answered (/resume to answer again)."
        if answers_paused
        else "Answering: yes (/pause to stop)."
    )
    lines.append(f"Agent: {_agent_words(agent)}.")
    return "\n".join(lines)


def contacts_text(contacts: Sequence[Contact]) -> str:
    if not contacts:
        return "No trusted contacts yet. Add one: /allow +49 151 23456789 write Ada"
    lines = [f"Trusted contacts ({len(contacts)}):"]
    for c in contacts:
        shown = c.written or c.phone
        lines.append(f"{c.name + ' ' if c.name else ''}{shown}: {c.permission}")
    return "\n".join(lines)


def agent_text(agent: Agent) -> str:
    settings = ", ".join(f"{k}={v}" for k, v in sorted(agent.settings.items()))
    line = f"Agent: {_agent_words(agent)}."
    return f"{line}\nSettings: {settings}." if settings else line


def _agent_words(agent: Agent) -> str:
    model = agent.settings.get("model")
    words = agent.active + (f", model {model}" if isinstance(model, str) and model else "")
    if agent.override:
        words += " (chosen for this run with serve --agent)"
    return words


def _ago(at: float, now: float | None) -> str:
    seconds = max(0, int((time.time() if now is None else now) - at))
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"
