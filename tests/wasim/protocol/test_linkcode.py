"""The phone's half of linking by code, against a companion that follows Baileys' steps."""

from __future__ import annotations

import secrets

import pytest

from wasim.protocol.crypto import KeyPair
from wasim.protocol.linkcode import (
    KeyBundle,
    LinkCodeError,
    adv_secret,
    finish,
    normalize_code,
    primary_hello,
    seal_bundle,
    unwrap_key,
    wrap_key,
)


def companion_finish(
    code: str, ephemeral: KeyPair, identity: KeyPair, wrapped_primary: bytes, primary_identity: bytes
) -> tuple[bytes, bytes]:
    """What Baileys does on primary_hello: unwrap with its own code, seal the bundle, derive the secret."""
    shared = ephemeral.dh(unwrap_key(code, wrapped_primary))
    random = secrets.token_bytes(32)
    sealed = seal_bundle(shared, KeyBundle(identity.public, primary_identity, random))
    return sealed, adv_secret(shared, identity.dh(primary_identity), random)


def test_the_right_code_agrees_on_the_adv_secret_on_both_sides() -> None:
    account, companion_eph, companion_id = KeyPair.generate(), KeyPair.generate(), KeyPair.generate()
    wrapped = wrap_key("ABCDEFGH", companion_eph.public)
    hello = primary_hello("abcd-efgh", wrapped)
    sealed, companion_secret = companion_finish(
        "ABCDEFGH", companion_eph, companion_id, hello.wrapped_primary_ephemeral, account.public
    )
    assert finish(hello, account, sealed, companion_id.public) == companion_secret


def test_a_wrong_code_is_noticed_when_the_bundle_does_not_open() -> None:
    account, companion_eph, companion_id = KeyPair.generate(), KeyPair.generate(), KeyPair.generate()
    hello = primary_hello("ABCDEFGX", wrap_key("ABCDEFGH", companion_eph.public))
    sealed, _ = companion_finish(
        "ABCDEFGH", companion_eph, companion_id, hello.wrapped_primary_ephemeral, account.public
    )
    with pytest.raises(LinkCodeError, match="not the code shown"):
        finish(hello, account, sealed, companion_id.public)


@pytest.mark.parametrize("typed", ["ABC", "ABCD-EFGHI", "ABCD EFG!", ""])
def test_a_code_that_is_not_eight_letters_and_digits_is_refused_with_its_form(typed: str) -> None:
    with pytest.raises(LinkCodeError, match="8 letters and digits, like ABCD-EFGH"):
        normalize_code(typed)
