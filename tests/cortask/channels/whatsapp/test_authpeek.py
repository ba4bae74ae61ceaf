"""Looking at an auth directory from outside: linked or not, who holds it, unreadable credentials."""

from __future__ import annotations

import json
import os
from pathlib import Path

from cortask.channels.whatsapp.authpeek import LinkInfo, peek_link
from cortask.channels.whatsapp.authstore import AuthStore

ME = {"id": "4915123456789:3@s.whatsapp.net", "name": "Ada"}


def test_a_directory_that_does_not_exist_is_not_linked_and_stays_absent(tmp_path: Path) -> None:
    assert peek_link(tmp_path / "auth") == LinkInfo(False)
    assert not (tmp_path / "auth").exists()


def test_linked_credentials_are_seen_while_and_after_their_owner_holds_them(tmp_path: Path) -> None:
    store = AuthStore.open(tmp_path / "auth")
    unpaired = peek_link(tmp_path / "auth")
    assert unpaired.linked is False and unpaired.in_use_by is not None
    store.set_creds(json.dumps({"me": ME}))
    held = peek_link(tmp_path / "auth")
    assert (held.linked, held.account) == (True, ME["id"])
    assert held.in_use_by is not None and f"process {os.getpid()}" in held.in_use_by
    store.close()
    assert peek_link(tmp_path / "auth") == LinkInfo(True, ME["id"])
    AuthStore.open(tmp_path / "auth").close()  # looking took nothing away from the next owner


def test_unreadable_credentials_are_reported_not_raised(tmp_path: Path) -> None:
    (tmp_path / "auth").mkdir()
    (tmp_path / "auth" / "auth.db").write_bytes(b"this is not a database" * 100)
    info = peek_link(tmp_path / "auth")
    assert info.linked is False and info.problem is not None and "cannot be read" in info.problem
