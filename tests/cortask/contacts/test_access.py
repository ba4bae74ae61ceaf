"""Access policy: trusted contacts, the legacy allowedUsers list, open mode, and what each implies."""

from __future__ import annotations

import pytest

from cortask.contacts.access import (
    READ_ONLY_REPLY,
    AccessPolicy,
    Permission,
    TrustedContact,
    Verdict,
)
from cortask.contacts.phone import InvalidPhoneNumber

ALICE = "+4915123456789"  # write
BOB = "+12125550100"  # read
CAROL = "+442079460958"  # admin
STRANGER = "+33612345678"
SUFFIX_OF_ALICE = "+15123456789"  # "+1 512 345 6789": Alice's digits end with these

CONTACTS = [
    TrustedContact(ALICE, Permission.WRITE, "Alice"),
    TrustedContact(BOB, Permission.READ, "Bob"),
    TrustedContact(CAROL, Permission.ADMIN),
]


@pytest.mark.parametrize(
    ("contacts", "allowed", "open_", "sender", "verdict", "reason"),
    [
        # Trusted contacts decide alone.
        (CONTACTS, [], False, ALICE, Verdict.AGENT, "trusted_write"),
        (CONTACTS, [], False, CAROL, Verdict.AGENT, "trusted_admin"),
        (CONTACTS, [], False, BOB, Verdict.READ_ONLY, "trusted_read"),
        (CONTACTS, [], False, STRANGER, Verdict.IGNORE, "unknown"),
        (CONTACTS, [], False, None, Verdict.IGNORE, "unknown"),
        (CONTACTS, [], False, SUFFIX_OF_ALICE, Verdict.IGNORE, "unknown"),
        (CONTACTS, [], False, "4915123456789", Verdict.IGNORE, "unknown"),  # not E.164: no loose match
        # ...and take priority over the legacy list.
        (CONTACTS, [STRANGER], False, STRANGER, Verdict.IGNORE, "unknown"),
        (CONTACTS, [BOB], False, BOB, Verdict.READ_ONLY, "trusted_read"),
        # Open has no effect once contacts are configured (spec: unknown numbers are ignored).
        (CONTACTS, [], True, STRANGER, Verdict.IGNORE, "unknown"),
        (CONTACTS, [], True, BOB, Verdict.READ_ONLY, "trusted_read"),
        # Legacy allowedUsers, only without contacts, with the same normalisation.
        ([], ["4915123456789"], False, ALICE, Verdict.AGENT, "allowed_user"),
        ([], ["+49 (151) 2345-6789"], False, ALICE, Verdict.AGENT, "allowed_user"),
        ([], ["0049 151 23456789"], False, ALICE, Verdict.AGENT, "allowed_user"),
        ([], ["4915123456789"], False, SUFFIX_OF_ALICE, Verdict.IGNORE, "unknown"),
        ([], ["+1 512 345 6789"], False, ALICE, Verdict.IGNORE, "unknown"),
        ([], ["4915123456789"], False, STRANGER, Verdict.IGNORE, "unknown"),
        ([], ["4915123456789"], False, None, Verdict.IGNORE, "unknown"),
        ([], ["4915123456789"], True, STRANGER, Verdict.IGNORE, "unknown"),
        # Both lists empty: nobody, unless open.
        ([], [], False, ALICE, Verdict.IGNORE, "nobody_allowed"),
        ([], [], False, None, Verdict.IGNORE, "nobody_allowed"),
        ([], [], True, STRANGER, Verdict.AGENT, "open"),
        ([], [], True, None, Verdict.AGENT, "open"),
        ([], ["  ", ""], True, STRANGER, Verdict.AGENT, "open"),  # blank entries are no list
    ],
)
def test_decide(
    contacts: list[TrustedContact],
    allowed: list[str],
    open_: bool,
    sender: str | None,
    verdict: Verdict,
    reason: str,
) -> None:
    decision = AccessPolicy(contacts, allowed, open_to_everyone=open_).decide(sender)
    assert (decision.verdict, decision.reason) == (verdict, reason)


def test_read_only_contact_gets_the_fixed_reply_and_no_agent() -> None:
    decision = AccessPolicy(CONTACTS).decide(BOB)
    assert decision.reply == READ_ONLY_REPLY == "You have read-only access."
    assert not decision.runs_agent
    assert not decision.shows_typing
    assert decision.sends_read_receipt  # "messages are acknowledged"
    assert decision.contact is not None and decision.contact.name == "Bob"


def test_unknown_sender_gets_nothing_at_all() -> None:
    decision = AccessPolicy(CONTACTS).decide(STRANGER)
    assert decision.reply is None
    assert not decision.runs_agent
    assert not decision.shows_typing
    assert not decision.sends_read_receipt


def test_writer_reaches_the_agent_with_typing_and_receipt() -> None:
    decision = AccessPolicy(CONTACTS).decide(ALICE)
    assert decision.runs_agent and decision.shows_typing and decision.sends_read_receipt
    assert decision.reply is None


def test_unusable_legacy_entries_are_reported_not_dropped() -> None:
    policy = AccessPolicy([], ["+49 151 2345 6789", "0151 999", "call me", ""])
    assert policy.allowed_users == frozenset({ALICE})
    assert [e.text for e in policy.rejected_entries] == ["0151 999", "call me"]
    assert all(e.reason for e in policy.rejected_entries)
    assert any("'call me'" in p for p in policy.problems)
    assert any("'0151 999'" in p and "country code" in p for p in policy.problems)


def test_legacy_entries_may_be_json_numbers() -> None:
    policy = AccessPolicy([], [4915123456789])
    assert policy.decide(ALICE).verdict is Verdict.AGENT


def test_legacy_entries_use_the_default_region() -> None:
    policy = AccessPolicy([], ["0151 23456789"], default_region="DE")
    assert policy.decide(ALICE).verdict is Verdict.AGENT
    assert policy.rejected_entries == ()


def test_all_legacy_entries_unusable_fails_closed_even_when_open() -> None:
    policy = AccessPolicy([], ["not a number"], open_to_everyone=True)
    assert policy.decide(STRANGER).verdict is Verdict.IGNORE
    assert policy.nobody_can_reach_agent
    assert not policy.open_to_everyone
    assert policy.status.startswith("Nobody can reach the agent")


@pytest.mark.parametrize(
    ("contacts", "allowed", "open_", "nobody", "status"),
    [
        (
            [],
            [],
            False,
            True,
            "Nobody can reach the agent: add a trusted contact, or switch on answering everyone.",
        ),
        ([], [], True, False, "Everyone who messages this WhatsApp account can reach the agent."),
        (
            CONTACTS,
            [],
            False,
            False,
            "2 trusted contacts can reach the agent, and 1 more has read-only access.",
        ),
        ([CONTACTS[0]], [], False, False, "1 trusted contact can reach the agent."),
        (
            [CONTACTS[1], TrustedContact(ALICE, Permission.READ)],
            [],
            False,
            True,
            "Nobody can reach the agent: all 2 trusted contacts have read-only access; give a contact write access.",
        ),
        (
            [CONTACTS[1]],
            [],
            False,
            True,
            "Nobody can reach the agent: the only trusted contact has read-only access; give a contact write access.",
        ),
        (
            [],
            ["4915123456789", "+12125550100"],
            False,
            False,
            "2 numbers from the legacy allowedUsers list can reach the agent.",
        ),
    ],
)
def test_status_sentence(
    contacts: list[TrustedContact], allowed: list[str], open_: bool, nobody: bool, status: str
) -> None:
    policy = AccessPolicy(contacts, allowed, open_to_everyone=open_)
    assert policy.nobody_can_reach_agent is nobody
    assert policy.status == status


def test_ignored_settings_are_reported() -> None:
    policy = AccessPolicy(CONTACTS, ["+33612345678"], open_to_everyone=True)
    assert "The allowedUsers list is not used because trusted contacts are configured." in policy.problems
    assert any("Answering everyone is switched on but has no effect" in p for p in policy.problems)
    assert not policy.open_to_everyone


def test_duplicate_contacts_settle_on_the_more_restrictive_permission() -> None:
    policy = AccessPolicy([TrustedContact(ALICE, Permission.ADMIN), TrustedContact(ALICE, Permission.READ)])
    assert policy.decide(ALICE).verdict is Verdict.READ_ONLY
    assert any("listed twice" in p for p in policy.problems)


def test_exact_duplicate_contacts_are_not_a_problem() -> None:
    policy = AccessPolicy([CONTACTS[0], CONTACTS[0]])
    assert policy.problems == ()
    assert len(policy.contacts) == 1


@pytest.mark.parametrize(
    ("phone", "permission", "name", "expected"),
    [
        ("+49 151 2345 6789", "write", "  Alice ", TrustedContact(ALICE, Permission.WRITE, "Alice")),
        ("0049-151-2345-6789", " READ ", None, TrustedContact(ALICE, Permission.READ)),
        ("4915123456789", Permission.ADMIN, "   ", TrustedContact(ALICE, Permission.ADMIN)),
    ],
)
def test_trusted_contact_parse(
    phone: str, permission: Permission | str, name: str | None, expected: TrustedContact
) -> None:
    assert TrustedContact.parse(phone, permission, name) == expected


def test_trusted_contact_parse_with_region_and_errors() -> None:
    assert TrustedContact.parse("0151 23456789", default_region="DE").phone == ALICE
    with pytest.raises(InvalidPhoneNumber, match="country code"):
        TrustedContact.parse("0151 23456789")
    with pytest.raises(ValueError, match="read, write or admin"):
        TrustedContact.parse(ALICE, "owner")


@pytest.mark.parametrize("phone", ["4915123456789", "+49 151 2345 6789", "", "+049151"])
def test_trusted_contact_requires_e164(phone: str) -> None:
    with pytest.raises(ValueError, match=r"E\.164"):
        TrustedContact(phone, Permission.WRITE)


def test_trusted_contact_requires_a_permission_value() -> None:
    with pytest.raises(TypeError):
        TrustedContact(ALICE, "write")  # type: ignore[arg-type]


def test_contact_label() -> None:
    assert CONTACTS[0].label == "Alice (+4915123456789)"
    assert CONTACTS[2].label == CAROL
