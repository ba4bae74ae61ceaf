"""The one status shape, from a running channel or from what is stored when Cortask is not running.

Pure: the caller reads the link (`authpeek.LinkInfo`), the settings and the channel's status.
"""

from __future__ import annotations

from collections.abc import Sequence

from cortask.app.models import ActionOffer, LinkOutcome, Status, StatusNote
from cortask.channels.whatsapp.authpeek import LinkInfo
from cortask.channels.whatsapp.state import CODE_REFUSED_DETAIL, SANDBOX_NOTE, ChannelStatus, ConnectionState, offers
from cortask.store import WhatsAppSettings

SERVE_HINT = "start it with `cortask serve`"


def channel_status(
    channel: ChannelStatus, info: LinkInfo, settings: WhatsAppSettings, *, running: bool = True
) -> Status:
    """The channel's own status (`running`: in Cortask, or in a CLI command that drives it). A
    channel that was never connected says "unlinked" even with a stored link (the channel is not
    added yet); that is "linked"."""
    if channel.state is ConnectionState.UNLINKED and info.linked:
        channel = ChannelStatus.linked(info.account, sandbox=channel.sandbox).with_activity(
            inbound_at=channel.last_inbound_at, outbound_at=channel.last_outbound_at
        )
    return _status(channel, info, settings, running=running, in_use_by=None)  # the holder is this process


def stored_status(info: LinkInfo, settings: WhatsAppSettings, *, sandbox: bool) -> Status:
    """Cortask does not run: the stored link and settings, said as such."""
    who = f" as {info.account}" if info.account else ""
    state = ConnectionState.LINKED
    if info.problem:
        state, sentence = ConnectionState.CREDENTIALS_UNREADABLE, info.problem + "."
        action = "Restore that folder from a backup, or `cortask whatsapp logout` and link again."
    elif not info.linked:
        state, sentence = ConnectionState.UNLINKED, "WhatsApp is not linked; Cortask is not running."
        action = "Link it with `cortask whatsapp link`, then start Cortask with `cortask serve`."
    elif settings.paused:
        state, sentence = ConnectionState.PAUSED, f"WhatsApp is linked{who} and paused; Cortask is not running."
        action = f"`cortask whatsapp start` to resume, then {SERVE_HINT}."
    elif not settings.enabled:
        sentence = f"WhatsApp is linked{who} but the channel is not added; Cortask is not running."
        action = f"`cortask whatsapp start` to add it, then {SERVE_HINT}."
    else:
        sentence = f"WhatsApp is linked{who}; Cortask is not running, so it is not connected."
        action = f"To connect, {SERVE_HINT}."
    if info.in_use_by:
        sentence += f" The link is in use by {info.in_use_by}."
    if sandbox:
        sentence += f" {SANDBOX_NOTE}"
    status = ChannelStatus(state, sentence, action, sandbox=sandbox)
    return _status(status, info, settings, running=False, in_use_by=info.in_use_by)


def _status(
    channel: ChannelStatus, info: LinkInfo, settings: WhatsAppSettings, *, running: bool, in_use_by: str | None
) -> Status:
    state = channel.state
    return Status(
        state=state,
        label=state.label,
        tone=state.tone,
        sentence=channel.sentence,
        action=channel.action,
        actions=[
            ActionOffer(action=o.action, allowed=o.allowed, label=o.label, why_not=o.why_not) for o in offers(state)
        ],
        running=running,
        linked=info.linked,
        account=info.account,
        enabled=settings.enabled,
        paused=settings.paused,
        sandbox=channel.sandbox,
        in_use_by=in_use_by,
        attempt=channel.attempt,
        max_attempts=channel.max_attempts,
        next_retry_at=channel.next_retry_at,
        qr_expires_at=channel.qr_expires_at,
        last_inbound_at=channel.last_inbound_at,
        last_outbound_at=channel.last_outbound_at,
        detail=channel.detail,
        terminal=state.terminal,
        needs_relink=state.needs_relink,
        notes=[StatusNote(kind=note.kind, sentence=note.sentence) for note in channel.notes],
    )


def link_outcome(
    final: ChannelStatus, qr_shown: bool, problems: Sequence[ChannelStatus]
) -> tuple[LinkOutcome, str | None]:
    """How a QR session ended, from the channel's last status, whether a code was shown, and the
    troubles seen on the way (reconnects, terminal states); with the reason when it failed."""
    if final.state is ConnectionState.OPEN:
        return "linked", None
    if final.detail == CODE_REFUSED_DETAIL:  # a pairing code typed wrong: not a lapse of time
        return "failed", f"{final.sentence} {final.action or ''}".strip()
    if qr_shown and final.state is ConnectionState.UNLINKED:
        return "expired", None
    if final.state.terminal or not problems:
        return "failed", f"{final.sentence} {final.action or ''}".strip()
    last = problems[-1].detail or problems[-1].sentence  # it kept retrying until the session ended
    return "failed", f"could not connect to WhatsApp before the QR session ended ({last})."
