"""Workspaces, and which workspace a chat goes to."""

from __future__ import annotations

from pathlib import Path

import pytest
from store_support import (
    LastWorkspace,
    chat_mappings,
    create_workspace,
    default_workspace,
    delete_workspace,
    find_workspace,
    get_workspace,
    list_workspaces,
    map_chat,
    rename_workspace,
    unmap_chat,
    workspace_for_chat,
)

from cortask.store import DEFAULT_WORKSPACE_NAME, Duplicate, InvalidInput, NotFound, Store


def test_personal_is_created_once_on_first_run(db_path: Path) -> None:
    with Store.open(db_path) as store:
        (personal,) = list_workspaces(store)
        assert personal.name == DEFAULT_WORKSPACE_NAME == "Personal"
        assert store.workspaces.ensure_default() == personal
        assert store.workspaces.ensure_default() == personal
    with Store.open(db_path) as store:
        assert list_workspaces(store) == [personal]


def test_personal_is_not_recreated_once_renamed(db_path: Path) -> None:
    with Store.open(db_path) as store:
        rename_workspace(store, default_workspace(store).id, "Home")
    with Store.open(db_path) as store:
        assert [w.name for w in list_workspaces(store)] == ["Home"]


def test_create_get_find_list(store: Store) -> None:
    work = create_workspace(store, "  Work  ")
    assert work.name == "Work"
    assert work.created_at.tzinfo is not None
    assert get_workspace(store, work.id) == work
    assert find_workspace(store, "work") == work  # names are case-insensitive
    assert find_workspace(store, "Nope") is None
    assert [w.name for w in list_workspaces(store)] == ["Personal", "Work"]


@pytest.mark.parametrize("name", ["", "   ", "x" * 201])
def test_bad_names_are_refused(store: Store, name: str) -> None:
    with pytest.raises(InvalidInput, match="workspace"):
        create_workspace(store, name)


def test_duplicate_names_are_refused_case_insensitively(store: Store) -> None:
    create_workspace(store, "Work")
    with pytest.raises(Duplicate, match="already a workspace called “WORK”: choose another name"):
        create_workspace(store, "WORK")
    assert len(list_workspaces(store)) == 2


def test_rename(store: Store) -> None:
    work = create_workspace(store, "Work")
    assert rename_workspace(store, work.id, "Job").name == "Job"
    assert rename_workspace(store, work.id, "job").name == "job"  # its own name, other case
    with pytest.raises(Duplicate):
        rename_workspace(store, work.id, "personal")
    with pytest.raises(NotFound, match="no workspace with id 99"):
        rename_workspace(store, 99, "x")


def test_unknown_workspace(store: Store) -> None:
    with pytest.raises(NotFound, match="There is no workspace with id 42: choose one"):
        get_workspace(store, 42)
    with pytest.raises(InvalidInput):  # NotFound is bad input too
        store.whatsapp.settings(42)


def test_delete_cascades_and_the_last_one_stays(store: Store) -> None:
    personal = default_workspace(store)
    work = create_workspace(store, "Work")
    store.whatsapp.set_enabled(work.id)
    store.whatsapp.add_contact(work.id, "+4915123456789")
    store.whatsapp.set_allowed_users(work.id, ["+12125550100"])
    store.agents.set(work.id, "echo", {})
    map_chat(store, "team@g.us", work.id)
    store.sessions.append("whatsapp:team@g.us", "user", "hi")

    delete_workspace(store, work.id)
    assert list_workspaces(store) == [personal]
    assert chat_mappings(store) == []
    assert workspace_for_chat(store, "team@g.us") == personal
    assert len(store.sessions.history("whatsapp:team@g.us")) == 1  # history belongs to the chat
    with pytest.raises(NotFound):
        delete_workspace(store, work.id)
    with pytest.raises(LastWorkspace, match="only workspace and cannot be deleted: create another one first"):
        delete_workspace(store, personal.id)


def test_deleting_the_first_makes_the_next_the_default(store: Store) -> None:
    personal = default_workspace(store)
    work = create_workspace(store, "Work")
    delete_workspace(store, personal.id)
    assert default_workspace(store) == work
    assert workspace_for_chat(store, "anyone@s.whatsapp.net") == work


def test_chats_go_to_the_first_workspace_unless_mapped(store: Store) -> None:
    personal = default_workspace(store)
    work = create_workspace(store, "Work")
    assert workspace_for_chat(store, "4915123456789@s.whatsapp.net") == personal

    mapping = map_chat(store, "4915123456789@s.whatsapp.net", work.id)
    assert (mapping.chat_jid, mapping.workspace_id) == ("4915123456789@s.whatsapp.net", work.id)
    assert workspace_for_chat(store, "4915123456789@s.whatsapp.net") == work
    assert workspace_for_chat(store, "other@s.whatsapp.net") == personal

    map_chat(store, "4915123456789@s.whatsapp.net", personal.id)  # remap
    assert workspace_for_chat(store, "4915123456789@s.whatsapp.net") == personal
    assert [m.workspace_id for m in chat_mappings(store)] == [personal.id]

    assert unmap_chat(store, "4915123456789@s.whatsapp.net") is True
    assert unmap_chat(store, "4915123456789@s.whatsapp.net") is False
    assert chat_mappings(store) == []


def test_chat_mappings_by_workspace(store: Store) -> None:
    personal = default_workspace(store)
    work = create_workspace(store, "Work")
    map_chat(store, "b@s.whatsapp.net", work.id)
    map_chat(store, "a@s.whatsapp.net", work.id)
    map_chat(store, "c@s.whatsapp.net", personal.id)
    assert [m.chat_jid for m in chat_mappings(store, work.id)] == ["a@s.whatsapp.net", "b@s.whatsapp.net"]
    assert [m.chat_jid for m in chat_mappings(store)] == ["a@s.whatsapp.net", "b@s.whatsapp.net", "c@s.whatsapp.net"]
    with pytest.raises(NotFound):
        chat_mappings(store, 99)


def test_map_chat_validates(store: Store) -> None:
    with pytest.raises(NotFound):
        map_chat(store, "a@s.whatsapp.net", 99)
    with pytest.raises(InvalidInput, match="chat JID is empty"):
        map_chat(store, " ", default_workspace(store).id)
