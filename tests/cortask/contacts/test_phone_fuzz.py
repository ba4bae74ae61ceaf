"""Phone numbers fuzzed (hypothesis): random text and near-valid numbers into every place that
parses them — normalize_phone, trusted contacts, the allowedUsers policy, the store (real SQLite)
and the contacts API (the real gateway app, in-process).

Always either a valid E.164 number or a clear error; never a crash or a 500; a stored contact
round-trips; nothing invalid is ever written.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import phonenumbers
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from cortask.channels.whatsapp.config import Sandbox
from cortask.contacts.access import AccessPolicy, TrustedContact
from cortask.contacts.phone import InvalidPhoneNumber, is_e164, normalize_phone
from cortask.gateway.app import create_app
from cortask.service import CortaskService
from cortask.store import Store
from cortask.store.errors import InvalidInput

REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)


def _example(region: str) -> phonenumbers.PhoneNumber | None:
    return phonenumbers.example_number_for_type(region, PhoneNumberType.MOBILE) or phonenumbers.example_number(region)


EXAMPLES = {region: number for region in REGIONS if (number := _example(region)) is not None}


def spellings(number: phonenumbers.PhoneNumber) -> dict[str, str]:
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    return {
        "e164": e164,
        "international": phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL),
        "00": "00" + e164[1:],
        "national": phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL),
        "bare": e164[1:],
        "rfc3966": phonenumbers.format_number(number, PhoneNumberFormat.RFC3966),
    }


# Spellings that carry the country code and must be read as exactly the example number.
UNAMBIGUOUS = {"e164", "international", "00"}
JUNK = ["x", "O", "l", "#", "*", "++", "ext. 5", "😀", "٣", "１", "\u200b", "\n", "'", ";DROP TABLE x", "%00", "+"]


@st.composite
def near_valid(draw: st.DrawFn) -> tuple[str, str, str, bool]:
    """(text, region of the example, the example's E.164, whether the text is the number unchanged)."""
    region = draw(st.sampled_from(sorted(EXAMPLES)))
    forms = spellings(EXAMPLES[region])
    form = draw(st.sampled_from(sorted(forms)))
    text = forms[form]
    mutation = draw(st.sampled_from(["none", "drop", "insert", "replace", "swap", "junk", "pad", "fullwidth"]))
    i = draw(st.integers(0, max(0, len(text) - 1)))
    digit = draw(st.sampled_from("0123456789"))
    if mutation == "drop":
        text = text[:i] + text[i + 1 :]
    elif mutation == "insert":
        text = text[:i] + digit + text[i:]
    elif mutation == "replace":
        text = text[:i] + digit + text[i + 1 :]
    elif mutation == "swap" and i + 1 < len(text):
        text = text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    elif mutation == "junk":
        text = text[:i] + draw(st.sampled_from(JUNK)) + text[i:]
    elif mutation == "pad":
        text = draw(st.sampled_from([" ", "\t", "\u00a0", " ( ", "-"])) + text + draw(st.sampled_from(["", " ", "."]))
    elif mutation == "fullwidth":
        text = text.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    unchanged = form in UNAMBIGUOUS and mutation in ("none", "pad", "fullwidth")
    return text, region, forms["e164"], unchanged


regions = st.sampled_from([None, "DE", "US", "GB", "IN", "BR", "FR", "IT", "NG", "CN"])
texts = st.one_of(st.text(max_size=40), st.text(alphabet="+0123456789 -()./", max_size=24))


def assert_usable(result: str) -> None:
    assert is_e164(result), result
    assert phonenumbers.is_valid_number(phonenumbers.parse(result)), result
    assert normalize_phone(result) == result  # idempotent: a stored number reads back as itself


def assert_clear(exc: InvalidPhoneNumber) -> None:
    message = str(exc)
    assert len(message.split()) >= 5, message
    assert exc.problem


@settings(max_examples=600, deadline=None)
@given(case=near_valid(), region=regions)
def test_near_valid_numbers_normalise_or_are_refused_with_a_sentence(
    case: tuple[str, str, str, bool], region: str | None
) -> None:
    text, _, e164, unchanged = case
    try:
        result = normalize_phone(text, region)
    except InvalidPhoneNumber as exc:
        assert not unchanged, f"{text!r} is {e164} spelled plainly, yet refused: {exc}"
        assert_clear(exc)
        return
    assert_usable(result)
    if unchanged:
        assert result == e164


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(texts, near_valid().map(lambda c: c[0])), region=regions)
def test_trusted_contacts_and_allowed_users_never_hold_an_invalid_number(text: str, region: str | None) -> None:
    try:
        contact = TrustedContact.parse(text, "write", "Ada", default_region=region)
    except InvalidPhoneNumber as exc:
        assert_clear(exc)
    else:
        assert_usable(contact.phone)
    policy = AccessPolicy(allowed_users=[text, 4915123456789], default_region=region)
    assert "+4915123456789" in policy.allowed_users  # a good entry survives a bad neighbour
    for number in policy.allowed_users:
        assert_usable(number)
    if text.strip() and len(policy.allowed_users) == 1 and normalize_or_none(text, region) is None:
        assert any(repr(text.strip()) in problem for problem in policy.problems), policy.problems


@pytest.mark.parametrize("text", ["+4920100000000000", "004920100000000000", "4920100000000000"])
def test_a_number_longer_than_e164_allows_is_refused(text: str) -> None:
    # found by the store fuzz below: phonenumbers calls this German number valid, but it has 16
    # digits, so it was returned as "E.164" and then refused by TrustedContact with a ValueError
    with pytest.raises(InvalidPhoneNumber, match="more than 15 digits") as refused:
        normalize_phone(text, "DE")
    assert refused.value.problem == "too_long"


def normalize_or_none(text: str, region: str | None) -> str | None:
    try:
        return normalize_phone(text, region)
    except InvalidPhoneNumber:
        return None


# --- the store: real SQLite ------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "home" / "cortask.db") as opened:
        yield opened


def stored_phones(store: Store) -> list[str]:
    with sqlite3.connect(store.path) as raw:
        return [row[0] for row in raw.execute("SELECT phone FROM whatsapp_trusted_contacts")]


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(texts, near_valid().map(lambda c: c[0])), region=st.sampled_from([None, "DE", "US", "IN"]))
def test_the_store_keeps_only_valid_numbers_and_they_round_trip(store: Store, text: str, region: str | None) -> None:
    ws = store.workspaces.ensure_default().id
    store.whatsapp.update_settings(ws, default_region=region)
    before = store.whatsapp.contacts(ws)
    expected = normalize_or_none(text, region)
    try:
        contact = store.whatsapp.add_contact(ws, text, "read", "Grace")
    except InvalidInput as exc:
        assert str(exc)
        assert expected is None or any(c.phone == expected for c in before), exc
        assert store.whatsapp.contacts(ws) == before, "a refused number changed the store"
    else:
        assert contact.phone == expected
        assert store.whatsapp.contacts(ws)[-1] == contact
        # it can be found again by any spelling that normalises to it, and by its own E.164
        assert store.whatsapp.update_contact(ws, text, permission="admin").permission.value == "admin"
        assert store.whatsapp.remove_contact(ws, contact.phone)
        assert store.whatsapp.contacts(ws) == before
    for phone in stored_phones(store):
        assert_usable(phone)


# --- the contacts API: the real gateway app, in-process --------------------------------------


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    home = tmp_path_factory.mktemp("phone-api") / "home"
    # A sandbox on a closed loopback port: nothing here connects, and if it did it could not leave.
    service = CortaskService(home, sandbox=Sandbox("ws://127.0.0.1:9/ws/chat", "00" * 32), environ={})
    token = "t" * 32
    app = create_app(service, token=token)
    with TestClient(app, base_url="http://127.0.0.1", headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


API_REGIONS = st.sampled_from([None, "DE", "US"])


@settings(max_examples=150, deadline=None)
@given(text=st.one_of(texts, near_valid().map(lambda c: c[0])), region=API_REGIONS, name=st.text(max_size=30))
@example(text="0151 2345 6789", region="DE", name="Ada")  # the round trip is always taken at least once
@example(text="+4920100000000000", region=None, name="")
def test_the_contacts_api_answers_a_valid_number_or_a_400_with_a_sentence(
    api: TestClient, text: str, region: str | None, name: str
) -> None:
    assert api.put("/api/whatsapp/settings", json={"default_region": region}).status_code == 200
    expected = normalize_or_none(text, region)
    check = api.post("/api/whatsapp/validate-phone", json={"phone": text})
    assert check.status_code == 200
    assert check.json() == ({"ok": True, "e164": expected} if expected else {"ok": False, "error": check_error(check)})

    added = api.post("/api/whatsapp/contacts", json={"phone": text, "name": name})
    assert added.status_code in (201, 400), added.text
    body: dict[str, Any] = added.json()
    if added.status_code == 400:
        assert len(body["error"].split()) >= 4, body
        assert expected is None, body  # each added contact is removed again below: no duplicates
    else:
        assert body["phone"] == expected
        listed = api.get("/api/whatsapp/contacts").json()
        assert body in listed
        # round trip by the stored number, as the UI does
        path = "/api/whatsapp/contacts/" + quote(body["phone"], safe="")
        assert api.put(path, json={"permission": "read"}).json()["permission"] == "read"
        assert api.delete(path).status_code == 200
    for contact in api.get("/api/whatsapp/contacts").json():
        assert_usable(contact["phone"])


def check_error(response: Any) -> str:
    error = response.json().get("error")
    assert isinstance(error, str) and len(error.split()) >= 4, response.text
    return error


@settings(max_examples=100, deadline=None)
@given(path_text=st.text(min_size=1, max_size=30))
def test_contact_paths_with_any_text_are_a_4xx_or_found(api: TestClient, path_text: str) -> None:
    path = "/api/whatsapp/contacts/" + quote(path_text, safe="")
    for response in (api.put(path, json={"name": "x"}), api.delete(path)):
        assert response.status_code in (200, 400, 404, 405), (path, response.status_code, response.text)
        if response.status_code != 200:
            check_error(response)
