"""The WhatsApp channel's settings: switches, trusted contacts, the legacy list, the access policy."""

from __future__ import annotations

from pathlib import Path

import pytest
from store_support import allowed_users, create_workspace, default_workspace, whatsapp_workspaces

from cortask.contacts.access import Permission, TrustedContact, Verdict
from cortask.contacts.phone import InvalidPhoneNumber, PhoneProblem
from cortask.store import UNSET, Duplicate, InvalidInput, InvalidPhone, NotFound, Store, StoreError, WhatsAppSettings

ANNA = "+4915123456789"
BOB = "+12125550100"


@pytest.fixture
def ws(store: Store) -> int:
    return default_workspace(store).id


def test_defaults_before_the_channel_is_added(store: Store, ws: int) -> None:
    assert store.whatsapp.settings(ws) == WhatsAppSettings(ws)
    settings = store.whatsapp.settings(ws)
    assert settings.enabled is False
    assert settings.answer_groups is False
    assert settings.open_to_everyone is False
    assert settings.default_region is None
    assert settings.auth_dir is None
    assert whatsapp_workspaces(store) == []


def test_enable_and_disable_keep_other_settings(store: Store, ws: int) -> None:
    assert store.whatsapp.set_enabled(ws).enabled is True
    store.whatsapp.update_settings(ws, answer_groups=True)
    store.whatsapp.add_contact(ws, ANNA)
    assert [w.id for w in whatsapp_workspaces(store)] == [ws]
    off = store.whatsapp.set_enabled(ws, False)
    assert off.enabled is False
    assert off.answer_groups is True
    assert [c.phone for c in off.trusted_contacts] == [ANNA]
    assert whatsapp_workspaces(store) == []


def test_pause_is_kept_apart_from_enabled_and_survives_reopening(store: Store, ws: int) -> None:
    assert store.whatsapp.settings(ws).paused is False
    store.whatsapp.set_enabled(ws)
    paused = store.whatsapp.set_paused(ws)
    assert (paused.enabled, paused.paused) == (True, True)
    store.close()
    with Store.open(store.path) as again:
        assert again.whatsapp.settings(ws).paused is True
        resumed = again.whatsapp.set_paused(ws, False)
        assert (resumed.enabled, resumed.paused) == (True, False)
        with pytest.raises(InvalidInput, match="paused must be true or false"):
            again.whatsapp.set_paused(ws, "yes")  # type: ignore[arg-type]
        with pytest.raises(NotFound):
            again.whatsapp.set_paused(99)


def test_update_changes_only_what_is_passed(store: Store, ws: int, tmp_path: Path) -> None:
    s = store.whatsapp.update_settings(
        ws, answer_groups=True, open_to_everyone=True, default_region="de", auth_dir=tmp_path / "wa"
    )
    assert (s.answer_groups, s.open_to_everyone, s.default_region, s.auth_dir) == (True, True, "DE", tmp_path / "wa")
    s = store.whatsapp.update_settings(ws, open_to_everyone=False)
    assert (s.answer_groups, s.open_to_everyone, s.default_region, s.auth_dir) == (True, False, "DE", tmp_path / "wa")
    s = store.whatsapp.update_settings(ws, default_region=None, auth_dir=None)
    assert (s.default_region, s.auth_dir) == (None, None)
    assert store.whatsapp.update_settings(ws, answer_groups=UNSET) == s
    assert s.enabled is False  # settings alone do not add the channel


def test_auth_dir_expands_home_and_must_be_absolute(store: Store, ws: int) -> None:
    assert store.whatsapp.update_settings(ws, auth_dir="~/wa").auth_dir == Path.home() / "wa"
    with pytest.raises(InvalidInput, match="relative: give an absolute path"):
        store.whatsapp.update_settings(ws, auth_dir="wa-auth")


def test_bad_settings_are_refused(store: Store, ws: int) -> None:
    with pytest.raises(InvalidInput, match="two-letter country code"):
        store.whatsapp.update_settings(ws, default_region="Germany")
    with pytest.raises(InvalidInput, match="answer_groups must be true or false"):
        store.whatsapp.update_settings(ws, answer_groups="yes")  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        store.whatsapp.update_settings(99, answer_groups=True)
    with pytest.raises(NotFound):
        store.whatsapp.set_enabled(99)
    assert store.whatsapp.settings(ws) == WhatsAppSettings(ws, enabled=False)


def test_trusted_contacts_are_normalised_and_kept_in_order(store: Store, ws: int) -> None:
    anna = store.whatsapp.add_contact(ws, "+49 (151) 234-567 89", "Write", " Anna ")
    bob = store.whatsapp.add_contact(ws, "001 212 555 0100", Permission.READ)
    assert anna == TrustedContact(ANNA, Permission.WRITE, "Anna")
    assert bob == TrustedContact(BOB, Permission.READ, None)
    assert store.whatsapp.contacts(ws) == (anna, bob)
    assert store.whatsapp.settings(ws).trusted_contacts == (anna, bob)


def test_national_numbers_use_the_workspace_region(store: Store, ws: int) -> None:
    with pytest.raises(InvalidPhone, match="no country code and no default region"):
        store.whatsapp.add_contact(ws, "0151 23456789")
    store.whatsapp.update_settings(ws, default_region="DE")
    assert store.whatsapp.add_contact(ws, "0151 23456789").phone == ANNA


def test_invalid_phone_is_both_a_store_error_and_an_invalid_phone_number(store: Store, ws: int) -> None:
    with pytest.raises(InvalidPhone) as caught:
        store.whatsapp.add_contact(ws, "+49 151 abc")
    assert isinstance(caught.value, StoreError)
    assert isinstance(caught.value, InvalidPhoneNumber)
    assert caught.value.problem is PhoneProblem.BAD_CHARACTER
    assert "not part of a phone number" in str(caught.value)
    assert store.whatsapp.contacts(ws) == ()


def test_unknown_permission(store: Store, ws: int) -> None:
    with pytest.raises(InvalidInput, match="'owner' is not a permission: use read, write or admin"):
        store.whatsapp.add_contact(ws, ANNA, "owner")
    assert store.whatsapp.contacts(ws) == ()


def test_duplicate_phone_in_any_spelling(store: Store, ws: int) -> None:
    store.whatsapp.add_contact(ws, ANNA, "read")
    with pytest.raises(Duplicate, match=r"\+4915123456789 is already a trusted contact.*change its permission"):
        store.whatsapp.add_contact(ws, "0049 151 2345 6789", "admin")
    assert store.whatsapp.contacts(ws) == (TrustedContact(ANNA, Permission.READ),)


def test_the_same_phone_in_two_workspaces(store: Store, ws: int) -> None:
    work = create_workspace(store, "Work").id
    store.whatsapp.add_contact(ws, ANNA, "read")
    store.whatsapp.add_contact(work, ANNA, "admin")
    assert store.whatsapp.contacts(ws)[0].permission is Permission.READ
    assert store.whatsapp.contacts(work)[0].permission is Permission.ADMIN


def test_update_and_remove_contacts(store: Store, ws: int) -> None:
    store.whatsapp.add_contact(ws, ANNA, "read", "Anna")
    assert store.whatsapp.update_contact(ws, "+49 151 23456789", permission="admin") == TrustedContact(
        ANNA, Permission.ADMIN, "Anna"
    )
    assert store.whatsapp.update_contact(ws, ANNA, name="Anna B.").name == "Anna B."
    assert store.whatsapp.update_contact(ws, ANNA, name=None).name is None
    assert store.whatsapp.contacts(ws) == (TrustedContact(ANNA, Permission.ADMIN),)
    with pytest.raises(InvalidInput, match="not a permission"):
        store.whatsapp.update_contact(ws, ANNA, permission="god")
    with pytest.raises(NotFound, match=r"\+12125550100 is not a trusted contact in this workspace: add it first"):
        store.whatsapp.update_contact(ws, BOB, permission="read")
    assert store.whatsapp.remove_contact(ws, "+49 151 2345 6789") is True
    assert store.whatsapp.remove_contact(ws, ANNA) is False
    assert store.whatsapp.contacts(ws) == ()
    with pytest.raises(InvalidPhone):
        store.whatsapp.remove_contact(ws, "nonsense")


def test_contacts_in_an_unknown_workspace(store: Store) -> None:
    for call in (
        lambda: store.whatsapp.add_contact(99, ANNA),
        lambda: store.whatsapp.contacts(99),
        lambda: store.whatsapp.remove_contact(99, ANNA),
        lambda: store.whatsapp.update_contact(99, ANNA, name="x"),
        lambda: store.whatsapp.set_allowed_users(99, []),
        lambda: allowed_users(store, 99),
        lambda: store.whatsapp.access_policy(99),
    ):
        with pytest.raises(NotFound, match="no workspace with id 99"):
            call()


def test_allowed_users_are_kept_raw_and_in_order(store: Store, ws: int) -> None:
    entries: list[str | int] = ["+1 212 555 0100", 4915123456789, "  ", "not a number", "0049-151-23456789"]
    assert store.whatsapp.set_allowed_users(ws, entries) == (
        "+1 212 555 0100",
        "4915123456789",
        "not a number",
        "0049-151-23456789",
    )
    assert allowed_users(store, ws) == ("+1 212 555 0100", "4915123456789", "not a number", "0049-151-23456789")
    assert store.whatsapp.set_allowed_users(ws, ["b", "a"]) == ("b", "a")  # replaces
    assert store.whatsapp.settings(ws).allowed_users == ("b", "a")
    assert store.whatsapp.set_allowed_users(ws, []) == ()
    assert allowed_users(store, ws) == ()


def test_access_policy_from_contacts(store: Store, ws: int) -> None:
    store.whatsapp.add_contact(ws, ANNA, "write")
    store.whatsapp.add_contact(ws, BOB, "read")
    store.whatsapp.set_allowed_users(ws, ["+44 20 7946 0958"])
    policy = store.whatsapp.access_policy(ws)
    assert policy.decide(ANNA).verdict is Verdict.AGENT
    assert policy.decide(BOB).verdict is Verdict.READ_ONLY
    assert policy.decide("+442079460958").verdict is Verdict.IGNORE  # contacts decide alone
    assert "The allowedUsers list is not used because trusted contacts are configured." in policy.problems


def test_access_policy_from_the_legacy_list_uses_the_region(store: Store, ws: int) -> None:
    store.whatsapp.update_settings(ws, default_region="DE")
    store.whatsapp.set_allowed_users(ws, ["0151 23456789", "oops"])
    policy = store.whatsapp.access_policy(ws)
    assert policy.decide(ANNA).verdict is Verdict.AGENT
    assert policy.decide(BOB).verdict is Verdict.IGNORE
    assert [r.text for r in policy.rejected_entries] == ["oops"]


def test_access_policy_open_to_everyone(store: Store, ws: int) -> None:
    assert store.whatsapp.access_policy(ws).decide(BOB).verdict is Verdict.IGNORE
    store.whatsapp.update_settings(ws, open_to_everyone=True)
    assert store.whatsapp.access_policy(ws).decide(BOB).verdict is Verdict.AGENT
    assert store.whatsapp.access_policy(ws).decide(None).verdict is Verdict.AGENT


def test_policies_are_per_workspace(store: Store, ws: int) -> None:
    work = create_workspace(store, "Work").id
    store.whatsapp.add_contact(work, ANNA)
    assert store.whatsapp.access_policy(work).decide(ANNA).runs_agent
    assert not store.whatsapp.access_policy(ws).decide(ANNA).runs_agent


# --- real numbers: as written, and what WhatsApp said (issue #13, migration 4) -----------------


def test_a_contact_keeps_the_number_as_written_and_starts_unchecked(store: Store, ws: int) -> None:
    from cortask.contacts.access import WhatsAppState

    added = store.whatsapp.add_contact(ws, " +52 1 55 1234 5678 ", "write", "Lupita")
    assert (added.phone, added.written) == ("+525512345678", "+52 1 55 1234 5678")
    [stored] = store.whatsapp.contacts(ws)
    assert stored.written == "+52 1 55 1234 5678"
    assert stored.whatsapp.state is WhatsAppState.UNCHECKED and stored.whatsapp.checked_at is None
    with pytest.raises(Duplicate):
        store.whatsapp.add_contact(ws, "5215512345678")  # the same number written another way


def test_what_whatsapp_said_is_kept_and_survives_a_change_of_permission(store: Store, ws: int) -> None:
    from datetime import UTC, datetime

    from cortask.contacts.access import Registration, WhatsAppState

    store.whatsapp.add_contact(ws, "+55 11 98765-4321", "write")
    at = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    reg = Registration(WhatsAppState.REGISTERED, "551187654321", "100200300400500", at)
    kept = store.whatsapp.record_registration(ws, "+5511987654321", reg)
    assert kept is not None and kept.whatsapp == reg
    changed = store.whatsapp.update_contact(ws, "+55 11 98765-4321", permission="read")
    assert changed.whatsapp == reg and changed.written == "+55 11 98765-4321"
    # The access policy built from the store matches the registered address.
    decision = store.whatsapp.access_policy(ws).decide("+551187654321")
    assert decision.verdict is Verdict.READ_ONLY
    nobody = Registration(WhatsAppState.NOT_ON_WHATSAPP, None, None, at)
    assert store.whatsapp.record_registration(ws, "+5511987654321", nobody) is not None
    assert store.whatsapp.contacts(ws)[0].whatsapp == nobody
    assert store.whatsapp.record_registration(ws, "+4915123456789", nobody) is None  # not a contact
