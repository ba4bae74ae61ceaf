"""Workspaces, and which workspace a chat goes to."""

from __future__ import annotations

from pathlib import Path

import pytest

from cortask.store import DEFAULT_WORKSPACE_NAME, Duplicate, InvalidInput, LastWorkspace, NotFound, Store


def test_personal_is_created_once_on_first_run(db_path: Path) -> None:
    with Store.open(db_path) as store:
        (personal,) = store.list_workspaces()
        assert personal.name == DEFAULT_WORKSPACE_NAME == "Personal"
        assert store.ensure_default_workspace() == personal
        assert store.ensure_default_workspace() == personal
    with Store.open(db_path) as store:
        assert store.list_workspaces() == [personal]


def test_personal_is_not_recreated_once_renamed(db_path: Path) -> None:
    with Store.open(db_path) as store:
        store.rename_workspace(store.default_workspace().id, "Home")
    with Store.open(db_path) as store:
        assert [w.name for w in store.list_workspaces()] == ["Home"]


def test_create_get_find_list(store: Store) -> None:
    work = store.create_workspace("  Work  ")
    assert work.name == "Work"
    assert work.created_at.tzinfo is not None
    assert store.get_workspace(work.id) == work
    assert store.find_workspace("work") == work  # names are case-insensitive
    assert store.find_workspace("Nope") is None
    assert [w.name for w in store.list_workspaces()] == ["Personal", "Work"]


@pytest.mark.parametrize("name", ["", "   ", "x" * 201])
def test_bad_names_are_refused(store: Store, name: str) -> None:
    with pytest.raises(InvalidInput, match="workspace"):
        store.create_workspace(name)


def test_duplicate_names_are_refused_case_insensitively(store: Store) -> None:
    store.create_workspace("Work")
    with pytest.raises(Duplicate, match="already a workspace called “WORK”: choose another name"):
        store.create_workspace("WORK")
    assert len(store.list_workspaces()) == 2


def test_rename(store: Store) -> None:
    work = store.create_workspace("Work")
    assert store.rename_workspace(work.id, "Job").name == "Job"
    assert store.rename_workspace(work.id, "job").name == "job"  # its own name, other case
    with pytest.raises(Duplicate):
        store.rename_workspace(work.id, "personal")
    with pytest.raises(NotFound, match="no workspace with id 99"):
        store.rename_workspace(99, "x")


def test_unknown_workspace(store: Store) -> None:
    with pytest.raises(NotFound, match="There is no workspace with id 42: choose one"):
        store.get_workspace(42)
    with pytest.raises(InvalidInput):  # NotFound is bad input too
        store.whatsapp_settings(42)


def test_delete_cascades_and_the_last_one_stays(store: Store) -> None:
    personal = store.default_workspace()
    work = store.create_workspace("Work")
    store.set_whatsapp_enabled(work.id)
    store.add_trusted_contact(work.id, "+4915123456789")
    store.set_allowed_users(work.id, ["+12125550100"])
    store.set_agent_settings(work.id, "echo", {})
    store.map_chat("team@g.us", work.id)
    store.append_message("whatsapp:team@g.us", "user", "hi")

    store.delete_workspace(work.id)
    assert store.list_workspaces() == [personal]
    assert store.chat_mappings() == []
    assert store.workspace_for_chat("team@g.us") == personal
    assert len(store.history("whatsapp:team@g.us")) == 1  # history belongs to the chat
    with pytest.raises(NotFound):
        store.delete_workspace(work.id)
    with pytest.raises(LastWorkspace, match="only workspace and cannot be deleted: create another one first"):
        store.delete_workspace(personal.id)


def test_deleting_the_first_makes_the_next_the_default(store: Store) -> None:
    personal = store.default_workspace()
    work = store.create_workspace("Work")
    store.delete_workspace(personal.id)
    assert store.default_workspace() == work
    assert store.workspace_for_chat("anyone@s.whatsapp.net") == work


def test_chats_go_to_the_first_workspace_unless_mapped(store: Store) -> None:
    personal = store.default_workspace()
    work = store.create_workspace("Work")
    assert store.workspace_for_chat("4915123456789@s.whatsapp.net") == personal

    mapping = store.map_chat("4915123456789@s.whatsapp.net", work.id)
    assert (mapping.chat_jid, mapping.workspace_id) == ("4915123456789@s.whatsapp.net", work.id)
    assert store.workspace_for_chat("4915123456789@s.whatsapp.net") == work
    assert store.workspace_for_chat("other@s.whatsapp.net") == personal

    store.map_chat("4915123456789@s.whatsapp.net", personal.id)  # remap
    assert store.workspace_for_chat("4915123456789@s.whatsapp.net") == personal
    assert [m.workspace_id for m in store.chat_mappings()] == [personal.id]

    assert store.unmap_chat("4915123456789@s.whatsapp.net") is True
    assert store.unmap_chat("4915123456789@s.whatsapp.net") is False
    assert store.chat_mappings() == []


def test_chat_mappings_by_workspace(store: Store) -> None:
    personal = store.default_workspace()
    work = store.create_workspace("Work")
    store.map_chat("b@s.whatsapp.net", work.id)
    store.map_chat("a@s.whatsapp.net", work.id)
    store.map_chat("c@s.whatsapp.net", personal.id)
    assert [m.chat_jid for m in store.chat_mappings(work.id)] == ["a@s.whatsapp.net", "b@s.whatsapp.net"]
    assert [m.chat_jid for m in store.chat_mappings()] == ["a@s.whatsapp.net", "b@s.whatsapp.net", "c@s.whatsapp.net"]
    with pytest.raises(NotFound):
        store.chat_mappings(99)


def test_map_chat_validates(store: Store) -> None:
    with pytest.raises(NotFound):
        store.map_chat("a@s.whatsapp.net", 99)
    with pytest.raises(InvalidInput, match="chat JID is empty"):
        store.map_chat(" ", store.default_workspace().id)
