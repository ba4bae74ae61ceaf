"""What an activity entry says to a person: its label, its sentence and its tone.

The channel records codes (`kind`, an ignore `reason`, an access `verdict`); this module turns
them into words, so that every reader (the page, the CLI) shows the same thing. The reasons a
message is not answered are worded once, in `inbound.py`; the few the channel adds itself are
worded here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from cortask.channels.whatsapp.inbound import Ignored, IgnoreReason
from cortask.channels.whatsapp.state import Tone

# Routine traffic that nobody needs to read about (shown dimmed).
QUIET_REASONS = frozenset({IgnoreReason.FROM_ME, IgnoreReason.UPSERT_TYPE, IgnoreReason.PROTOCOL, IgnoreReason.STUB})

_LABELS = {
    "received": "Received",
    "ignored": "Ignored",
    "replied": "Replied",
    "failed": "Agent failed",
    "duplicate": "Duplicate",
    "skipped": "Skipped",
    "queued": "Queued",
    "refused": "Refused",
    "watchdog": "Restarted",
    "command": "Command",
    "held": "Waiting",
    "retrying": "Retrying",
    "send_failed": "Not sent",
    "store_failing": "Database failing",
    "store_recovered": "Database back",
}
_TONES = {
    "replied": Tone.OK,
    "skipped": Tone.WARN,
    "queued": Tone.BUSY,
    "watchdog": Tone.WARN,
    "refused": Tone.ERROR,
    "failed": Tone.ERROR,
    "retrying": Tone.WARN,
    "send_failed": Tone.ERROR,
    "store_failing": Tone.ERROR,
    "store_recovered": Tone.OK,
}
# Reasons the channel records that are not the inbound classifier's.
_CHANNEL_REASONS = {
    "not_allowed": "Not a trusted contact: ignored silently.",
    "paused": "Answers are paused (/pause): not answered.",
    "not_mentioned": "In a group, without a mention of this account or a reply to the agent: not answered.",
    "group_not_listed": "Not one of the groups the agent answers in.",
    "too_old": "Too old to answer: recorded and skipped.",
}
_VERDICTS = {
    "agent": ("Passed to the agent.", Tone.OK),
    "read_only": ("Read-only contact: answered “You have read-only access.”", Tone.WARN),
    "ignore": ("Ignored.", Tone.IDLE),
}


# The owner's own chat ("Message yourself"), as the page titles a chat.
OWN_CHAT = ("You", "your own chat")
_PERSON_SERVERS = ("s.whatsapp.net", "c.us", "lid")


def own_users(addresses: Iterable[str | None]) -> frozenset[str]:
    """The user parts of our account's addresses (`15550001111:2@s.whatsapp.net`, its LID)."""
    return frozenset(a.partition("@")[0].partition(":")[0] for a in addresses if a)


def chat_words(chat: str | None, own: frozenset[str]) -> tuple[str, str] | None:
    """A chat's title and subtitle where the server knows them for certain: the owner's own chat
    (by its number or its LID), which is no contact to trust or not; None for any other chat."""
    user, _, server = (chat or "").partition("@")
    if server in _PERSON_SERVERS and user.partition(":")[0] in own:
        return OWN_CHAT
    return None


def reason_sentence(reason: str) -> str:
    if reason in _CHANNEL_REASONS:
        return _CHANNEL_REASONS[reason]
    try:
        return Ignored(IgnoreReason(reason)).sentence
    except ValueError:  # a code we have no words for: show it readably rather than not at all
        return reason.replace("_", " ").capitalize() + "."


def label(kind: str) -> str:
    return _LABELS.get(kind, kind.replace("_", " ").capitalize())


def describe(entry: Mapping[str, object], name_for: Callable[[str], str | None]) -> tuple[str, Tone, bool]:
    """The sentence, tone and quietness of one entry. `name_for` names a sender's phone number
    (a trusted contact's name), for messages in group chats."""
    kind = str(entry.get("kind", ""))
    reason, verdict, chars = entry.get("reason"), entry.get("verdict"), entry.get("chars")
    bits: list[str] = []
    tone = _TONES.get(kind, Tone.IDLE)
    sender, chat = entry.get("sender"), entry.get("chat")
    if (
        isinstance(sender, str)
        and sender
        and sender != "owner"
        and _digits(sender) != _digits(str(chat or "").split("@")[0])
    ):
        bits.append(f"From {name_for(sender) or sender}.")
    if isinstance(verdict, str):
        sentence, tone = _VERDICTS.get(verdict, (verdict.replace("_", " ").capitalize() + ".", tone))
        bits.append(sentence)
    if kind == "duplicate":
        bits.append("Handled before: not answered again.")
    if isinstance(reason, str):
        bits.append(reason_sentence(reason) if kind in ("ignored", "skipped") else f"Reason: {reason.rstrip('.')}.")
    agent_error = entry.get("agent_error")
    if isinstance(agent_error, str):
        bits.append(f"The agent failed: {agent_error.rstrip('.')}. The sender got “Sorry, an error occurred.”")
    if kind == "command":
        bits.extend(_command_bits(entry))
    if kind == "held":
        bits.append("Not a trusted contact: waiting for your approval (they see nothing until then).")
    if kind == "watchdog":
        bits.append("The WhatsApp sidecar did not answer, so it was restarted.")
    if kind == "queued":
        bits.append("The reply is sent after reconnecting.")
    bits.extend(_trouble_sentences(kind, entry.get("attempts")))
    if isinstance(chars, int) and not isinstance(agent_error, str):
        bits.append(f"The reply has {chars} character{'' if chars == 1 else 's'}.")
    error = entry.get("error")
    if isinstance(error, str):
        bits.append(f"WhatsApp refused it (error {error}); it is not sent again.")
    quiet = isinstance(reason, str) and reason in QUIET_REASONS
    return " ".join(bits), tone, quiet


def _command_bits(entry: Mapping[str, object]) -> list[str]:
    """An admin command from WhatsApp: who sent it (the owner, in self-chat) and how it went."""
    bits = ["From you, in your own chat."] if entry.get("sender") == "owner" else []
    command = entry.get("command")
    shown = f"/{command}" if isinstance(command, str) and command != "unknown" else "An unknown command"
    refused = entry.get("outcome") == "refused"
    bits.append(f"{shown}: {'refused, with a sentence saying what to type' if refused else 'done'}.")
    return bits


def _trouble_sentences(kind: str, attempts: object) -> list[str]:
    """What the entries of a failing send or a failing database add in words."""
    tries = f" after {attempts} attempt{'' if attempts == 1 else 's'}" if isinstance(attempts, int) else ""
    if kind == "retrying":
        return [f"Sending the reply failed{tries}; trying again shortly."]
    if kind == "send_failed":
        return [f"The reply could not be sent{tries} and was given up; other chats were not held up."]
    if kind == "store_failing":
        return ["The database cannot be written: messages are kept and recorded once it works again."]
    if kind == "store_recovered":
        return ["The database works again: what waited is recorded and answered."]
    return []


def _digits(text: str) -> str:
    return "".join(c for c in text.split(":")[0] if c.isdigit())
