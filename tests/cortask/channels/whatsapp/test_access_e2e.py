"""Who gets in, end to end: one linked channel (real sidecar, real Baileys, wasim) and a table of
senders and access settings. For each row: whether the agent ran, what the contact received, and
whether the account showed typing or sent a read receipt (wasim sees every chatstate and receipt
the account sends). Nobody outside the lists reaches the agent, gets a reply, or sees typing.

Settings change between rows the way the gateway changes them, on the running channel
(`set_policy`, `set_answer_groups`), so the device is linked once. Rows run in order: the LID
rows rely on what Baileys learned from the row before (a LID <-> phone mapping).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import pytest
from testkit.channel import MakeChannel, link, reply_seen, texts_received

from cortask.channels.whatsapp.channel import READ_ONLY_REPLY, WhatsAppChannel
from cortask.channels.whatsapp.groups import GroupRule
from cortask.channels.whatsapp.inbound import InboundText
from cortask.contacts.access import AccessPolicy, Permission, TrustedContact
from wasim.server.app import Wasim

pytestmark = pytest.mark.e2e

ADA, LINUS, GRACE = "+4915123456789", "+14155550123", "+447911123456"
EVE = "+33612345678"  # on no list
SUFFIX_OF_ADA = "+15123456789"  # Ada's digits end with these: must never match her
LUCY, LUCY_LID = "+4917612345678", "987654321012345"  # writes by LID
OTTO, OTTO_LID = "+4916012345678", "876543210987654"  # trusted, but his first message hides his number
GROUP = "Book club"

TRUSTED = AccessPolicy(
    [
        TrustedContact(ADA, Permission.WRITE, "Ada"),
        TrustedContact(LINUS, Permission.ADMIN, "Linus"),
        TrustedContact(GRACE, Permission.READ, "Grace"),
        TrustedContact(LUCY, Permission.WRITE, "Lucy"),
        TrustedContact(OTTO, Permission.WRITE, "Otto"),
    ]
)


class Via(Enum):
    PHONE = "addressed by phone number"
    LID = "addressed by LID, with the phone number"
    LID_ONLY = "addressed by LID, phone number withheld"
    GROUP = "posted in a group"


class Gets(Enum):
    AGENT = "the agent's reply, with typing and a read receipt"
    READ_ONLY = "exactly the read-only sentence and a read receipt, no typing"
    NOTHING = "nothing: no reply, no typing, no read receipt"


@dataclass(frozen=True)
class Row:
    who: str
    sender: str
    policy: AccessPolicy
    gets: Gets
    via: Via = Via.PHONE
    groups: bool = False
    status_says: str | None = None  # a phrase the policy's status sentence must contain


def legacy(*entries: str) -> AccessPolicy:
    return AccessPolicy((), entries)


TABLE = [
    Row("trusted write", ADA, TRUSTED, Gets.AGENT, status_says="4 trusted contacts can reach the agent"),
    Row("trusted admin", LINUS, TRUSTED, Gets.AGENT),
    Row("trusted read-only", GRACE, TRUSTED, Gets.READ_ONLY),
    Row("unknown number", EVE, TRUSTED, Gets.NOTHING),
    Row("only a suffix of a trusted number", SUFFIX_OF_ADA, TRUSTED, Gets.NOTHING),
    Row("trusted, LID-addressed with its number", LUCY, TRUSTED, Gets.AGENT, Via.LID),
    Row("trusted, LID-addressed, number withheld but mapped before", LUCY, TRUSTED, Gets.AGENT, Via.LID_ONLY),
    Row("trusted number, LID-addressed, never mapped", OTTO, TRUSTED, Gets.NOTHING, Via.LID_ONLY),
    Row("trusted participant, groups off (default)", ADA, TRUSTED, Gets.NOTHING, Via.GROUP),
    Row("unknown participant, groups on", EVE, TRUSTED, Gets.NOTHING, Via.GROUP, groups=True),
    Row("trusted participant, groups on", ADA, TRUSTED, Gets.AGENT, Via.GROUP, groups=True),
    Row("legacy: bare digits", EVE, legacy("33612345678"), Gets.AGENT),
    Row("legacy: with +", EVE, legacy("+33612345678"), Gets.AGENT),
    Row("legacy: spaces", EVE, legacy("+33 6 12 34 56 78"), Gets.AGENT),
    Row("legacy: dashes", EVE, legacy("+33-6-12-34-56-78"), Gets.AGENT),
    Row("legacy: parentheses", EVE, legacy("+33 (6) 12 34 56 78"), Gets.AGENT),
    Row("legacy: 00 prefix", EVE, legacy("0033 6 12 34 56 78"), Gets.AGENT),
    Row("legacy: not listed", ADA, legacy("0033 6 12 34 56 78"), Gets.NOTHING),
    Row("legacy: only a suffix of a listed number", SUFFIX_OF_ADA, legacy("+49 151 2345 6789"), Gets.NOTHING),
    Row(
        "legacy list ignored while trusted contacts exist",
        EVE,
        AccessPolicy([TrustedContact(ADA, Permission.WRITE)], [EVE]),
        Gets.NOTHING,
    ),
    Row("both lists empty: nobody", ADA, AccessPolicy(), Gets.NOTHING, status_says="Nobody can reach the agent"),
    Row("both lists empty, open: anyone", EVE, AccessPolicy(open_to_everyone=True), Gets.AGENT, status_says="Everyone"),
    Row("open: even a LID-only stranger", OTTO, AccessPolicy(open_to_everyone=True), Gets.AGENT, Via.LID_ONLY),
]


class Agent:
    def __init__(self) -> None:
        self.seen: list[InboundText] = []

    async def __call__(self, message: InboundText) -> str:
        self.seen.append(message)
        return f"echo: {message.text}"


def _chats(sim: Wasim, row: Row) -> set[str]:
    """Where the account could show typing or send receipts about this row's message."""
    if row.via is Via.GROUP:
        return {sim.state.groups[GROUP].jid}
    contact = sim.state.contacts[row.sender.lstrip("+")]
    return {contact.jid, contact.lid_jid}


def _shown_to(sim: Wasim, since: int, jids: set[str]) -> tuple[list[str], list[str]]:
    """The chatstates and receipt types the account sent to any of `jids` since `since`."""
    states, receipts = [], []
    for event in sim.events.since(since):
        to = str(event.data.get("attrs", {}).get("to", "")).split(":")[0].split("@")[0]
        if to not in {j.split("@")[0] for j in jids}:
            continue
        if event.kind == "chatstate":
            states.append(str(event.data["node"]))
        elif event.kind == "receipt":
            receipts.append(str(event.data["attrs"].get("type", "delivery")))
    return states, receipts


async def _send(sim: Wasim, row: Row, text: str) -> str:
    if row.via is Via.GROUP:
        return await sim.messaging.send(row.sender, text, group=GROUP)
    lid = row.via in (Via.LID, Via.LID_ONLY)
    return await sim.messaging.send(row.sender, text, lid_addressed=lid, withhold_phone=row.via is Via.LID_ONLY)


async def _run_row(sim: Wasim, channel: WhatsAppChannel, agent: Agent, row: Row) -> None:
    channel.set_policy(row.policy)
    channel.set_answer_groups(row.groups)
    # Who may reach the agent is this table's question; whether a group post calls the account
    # (a mention, issue #14) is test_groups_e2e's: here every trusted post in a group does.
    channel.set_group_rule(GroupRule("always"))
    if row.status_says is not None:
        assert row.status_says in channel.policy.status, (row.who, channel.policy.status)
    before = texts_received(sim, row.sender)
    ran = len(agent.seen)
    since = sim.events.last_seq
    text = f"{row.who}?"
    message_id = await _send(sim, row, text)

    if row.gets is Gets.AGENT and row.via is not Via.GROUP:
        assert await reply_seen(sim, row.sender, len(before) + 1) == [*before, f"echo: {text}"], row.who
    elif row.gets is Gets.READ_ONLY:
        assert await reply_seen(sim, row.sender, len(before) + 1, typing=False) == [*before, READ_ONLY_REPLY]
    elif row.gets is Gets.NOTHING:
        decided = await channel.wait_activity(lambda a: a["message_id"] == message_id)
        assert decided["kind"] == "ignored", f"{row.who}: let in ({decided})"
    else:
        # The reply is posted in the group (every member's phone shows it), never privately.
        group_jid = sim.state.groups[GROUP].jid

        def in_group() -> list[str]:
            return [x["text"] for x in sim.inbox(row.sender) if x["type"] == "message" and x.get("chat") == group_jid]

        earlier = len(in_group())
        await channel.wait_activity(lambda a: a["kind"] in ("replied", "queued") and a["chat"] == group_jid)
        await sim.events.wait_for("contact.received", lambda e: len(in_group()) > earlier, timeout=20)
        assert in_group()[-1] == f"echo: {text}", row.who
        private = [x["text"] for x in sim.inbox(row.sender) if x["type"] == "message" and x.get("chat") != group_jid]
        assert len(private) == len(before) - earlier, f"{row.who}: a group post was answered privately"

    states, receipts = _shown_to(sim, since, _chats(sim, row))
    ran_agent = [m.message_id for m in agent.seen[ran:]]
    if row.gets is Gets.AGENT:
        assert ran_agent == [message_id], row.who
        assert any("composing" in s for s in states) and "read" in receipts, (row.who, states, receipts)
    else:
        assert ran_agent == [], f"{row.who}: the agent ran"
        assert states == [], f"{row.who}: typing was shown: {states}"
        if row.gets is Gets.NOTHING:
            assert texts_received(sim, row.sender) == before, f"{row.who}: got a reply"
            assert "read" not in receipts, f"{row.who}: got a read receipt"
        else:
            assert "read" in receipts, f"{row.who}: no read receipt"


async def test_who_gets_in(sim: Wasim, make_channel: MakeChannel) -> None:
    agent = Agent()
    channel = await make_channel(sim, handler=agent, pacing=None)
    await link(channel, sim)
    for phone, name, lid in (
        (ADA, "Ada", None),
        (LINUS, "Linus", None),
        (GRACE, "Grace", None),
        (EVE, "Eve", None),
        (SUFFIX_OF_ADA, "Suffix", None),
        (LUCY, "Lucy", LUCY_LID),
        (OTTO, "Otto", OTTO_LID),
    ):
        sim.add_contact(phone, name, lid)
    sim.create_group(GROUP, [ADA, EVE])
    for row in TABLE:
        try:
            await _run_row(sim, channel, agent, row)
        except TimeoutError as exc:
            raise AssertionError(f"row {row.who!r}: waited in vain for {row.gets.value}") from exc
    # Nothing arrived late: each contact holds exactly the replies its rows expected.
    for phone in {row.sender for row in TABLE}:
        replied = [r for r in TABLE if r.sender == phone and r.gets is not Gets.NOTHING and r.via is not Via.GROUP]
        # (A post in the group is in its members' phones too, in the group: not a reply to them.)
        group_jid = sim.state.groups[GROUP].jid
        private = [x for x in sim.inbox(phone) if x["type"] == "message" and x.get("chat") != group_jid]
        assert len([x for x in private if x.get("text") is not None]) == len(replied), phone
