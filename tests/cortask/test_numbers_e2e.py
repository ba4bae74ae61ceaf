"""Real numbers reach the agent (issue #13, section 1), end to end: the service with its store, the
real sidecar and Baileys, and wasim, where each simulated person is registered under the address
WhatsApp really uses for such numbers (Mexico's ``521…``, a legacy eight-digit Brazilian mobile,
Argentina's ``549…``) and sends as that address.

For every person, each of two or three written forms of the number is entered as the trusted
contact, the way people type it, and the person writes once: exactly one reply each time. A
number that is none of them gets nothing. Then: what WhatsApp's answer (usync) stored, including
"not on WhatsApp", the check when a contact changes while linked, and the re-check after a link.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from testkit.channel import link, reply_seen, serving_app, texts_received

from cortask.app.actions import CortaskApp
from cortask.app.models import ContactIn, ContactPatch
from wasim.server.app import Wasim

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Person:
    who: str
    dialled: str  # E.164, what people dial
    address: str  # what WhatsApp knows the account as (wasim registers it so)
    forms: tuple[str, ...]  # how people write the number
    lid: str
    shown: str | None  # the note the contact list shows, when WhatsApp knows it as another address


PEOPLE = [
    Person(
        "Mexico",
        "+525512345678",
        "5215512345678",
        ("+52 55 1234 5678", "+52 1 55 1234 5678", "5215512345678"),
        "100000000000001",
        "WhatsApp knows this number as +52 1 55 1234 5678.",
    ),
    Person(
        "Brazil, registered before the ninth digit",
        "+5511987654321",
        "551187654321",
        ("+55 11 98765-4321", "+55 11 8765-4321", "551187654321"),
        "100000000000002",
        "WhatsApp knows this number as +55 11 8765-4321.",
    ),
    Person(
        "Brazil, nine digits",
        "+5521998765432",
        "5521998765432",
        ("+55 21 99876-5432", "5521998765432", "+55 (21) 9 9876-5432"),
        "100000000000003",
        None,
    ),
    Person(
        "Argentina",
        "+5491123456789",
        "5491123456789",
        ("+54 9 11 2345-6789", "+54 11 15 2345-6789", "+54 11 2345-6789"),
        "100000000000004",
        None,
    ),
    Person(
        "Argentina, the contact written without the 9",
        "+541134567890",
        "5491134567890",
        ("+54 11 3456-7890", "541134567890"),
        "100000000000005",
        "WhatsApp knows this number as +54 9 11 3456-7890.",
    ),
    Person(
        "Germany",
        "+4915123456789",
        "4915123456789",
        ("+49 151 23456789", "0049 151 2345 6789", "4915123456789"),
        "100000000000006",
        None,
    ),
    Person(
        "US",
        "+14155550123",
        "14155550123",
        ("+1 (415) 555-0123", "14155550123", "+1 415-555-0123"),
        "100000000000007",
        None,
    ),
]
# On WhatsApp, but none of the people above: one digit off the Mexican address.
STRANGER = "+5215512345679"
NOT_ON_WHATSAPP = "+52 55 8765 4321"
LATER = "+55 21 98888-7777"


@pytest.fixture
async def app(sim: Wasim, tmp_path: Path) -> AsyncIterator[CortaskApp]:
    async with serving_app(sim, tmp_path / "home") as app:
        yield app


def _add_people(sim: Wasim) -> None:
    for person in PEOPLE:
        sim.add_contact(person.dialled, person.who, person.lid, address=person.address)
    sim.add_contact(STRANGER, "Stranger")


async def _clear(app: CortaskApp) -> None:
    for contact in await app.contacts():
        await app.remove_contact(contact.phone)


async def _exactly_one_reply(sim: Wasim, person: Person, text: str, *, lid: bool) -> None:
    before = texts_received(sim, person.dialled)
    await sim.messaging.send(person.dialled, text, lid_addressed=lid)
    got = await reply_seen(sim, person.dialled, len(before) + 1)
    assert got == [*before, f"Echo: {text}"], person.who
    await asyncio.sleep(0.3)  # a second reply would have come by now
    assert texts_received(sim, person.dialled) == got, f"{person.who}: answered twice"


async def test_every_written_form_of_every_number_gets_exactly_one_reply(sim: Wasim, app: CortaskApp) -> None:
    _add_people(sim)
    channel = app.service.channel
    assert channel is not None
    await link(channel, sim)
    for person in PEOPLE:
        for index, form in enumerate(person.forms):
            await _clear(app)
            contact = await app.add_contact(ContactIn(phone=form, name=person.who))
            assert contact.written == form.strip()
            assert contact.whatsapp == "registered", (person.who, form, contact)
            assert contact.note == person.shown or form == "+54 11 2345-6789", (person.who, form, contact.note)
            # Every other message LID-addressed: the registered LID is matched as well as the number.
            await _exactly_one_reply(sim, person, f"{person.who}, written {form}?", lid=index % 2 == 1)

    # Before WhatsApp has been asked (added straight into the store, as with no link), the
    # equivalence rules alone let the same people in.
    await _clear(app)
    assert app.service.store is not None and app.service.workspace is not None
    for person in PEOPLE:
        await app.service.store.whatsapp.add_contact(app.service.workspace.id, person.forms[-1], "write", person.who)
    await app.service.reload_policy()
    assert all(c.whatsapp == "unchecked" for c in await app.contacts())
    for person in PEOPLE:
        await _exactly_one_reply(sim, person, f"{person.who}, unchecked?", lid=False)

    # Someone who is none of them gets nothing: no reply, and the agent never runs.
    message_id = await sim.messaging.send(STRANGER, "me too?")
    decided = await channel.wait_activity(lambda a: a["message_id"] == message_id)
    assert decided["kind"] == "ignored"
    await asyncio.sleep(0.3)
    assert texts_received(sim, STRANGER) == []


async def test_what_whatsapp_said_is_stored_and_rechecked_after_each_link(sim: Wasim, app: CortaskApp) -> None:
    _add_people(sim)
    mexico, brazil = PEOPLE[0], PEOPLE[1]
    # Entered while nothing is linked: not checked yet.
    for form in (mexico.forms[0], brazil.forms[0], NOT_ON_WHATSAPP):
        assert (await app.add_contact(ContactIn(phone=form))).whatsapp == "unchecked"
    channel = app.service.channel
    assert channel is not None
    await link(channel, sim)

    async def checked() -> dict[str, object]:
        while True:
            contacts = {c.phone: c for c in await app.contacts()}
            if all(c.whatsapp != "unchecked" for c in contacts.values()):
                return contacts
            await asyncio.sleep(0.1)

    contacts = await asyncio.wait_for(checked(), 30)
    mx, br, nobody = contacts[mexico.dialled], contacts[brazil.dialled], contacts["+525587654321"]
    assert (mx.whatsapp, mx.whatsapp_address, mx.note) == (
        "registered",
        "+52 1 55 1234 5678",
        "WhatsApp knows this number as +52 1 55 1234 5678.",
    )
    assert (br.whatsapp, br.whatsapp_address) == ("registered", "+55 11 8765-4321")
    assert nobody.whatsapp == "not_on_whatsapp" and nobody.note is not None and "Not on WhatsApp" in nobody.note
    assert mx.whatsapp_checked_at is not None and nobody.whatsapp_checked_at is not None

    # The store keeps the addresses and the LID: the next process matches by them at once.
    assert app.service.store is not None and app.service.workspace is not None
    stored = {c.phone: c.whatsapp for c in await app.service.store.whatsapp.contacts(app.service.workspace.id)}
    assert (stored[mexico.dialled].address, stored[mexico.dialled].lid) == (mexico.address, mexico.lid)
    assert (stored[brazil.dialled].address, stored[brazil.dialled].lid) == (brazil.address, brazil.lid)
    assert stored["+525587654321"].address is None

    # The not-on-WhatsApp number registers: changing the contact while linked asks again at once.
    sim.add_contact("+525587654321", "Late", address="5215587654321")
    changed = await app.update_contact("+525587654321", ContactPatch(name="Late"))
    assert (changed.whatsapp, changed.whatsapp_address) == ("registered", "+52 1 55 8765 4321")

    # Another registers while nothing asks; the next link (here: pause, then start) checks everyone.
    assert (await app.add_contact(ContactIn(phone=LATER))).whatsapp == "not_on_whatsapp"
    sim.add_contact("+5521988887777", "Later", address="552188887777")  # a legacy eight-digit Brazilian account
    await channel.pause()
    await channel.resume()

    async def found() -> None:
        while True:
            later = {c.phone: c for c in await app.contacts()}["+5521988887777"]
            if later.whatsapp == "registered":
                assert later.whatsapp_address == "+55 21 8888-7777"
                return
            await asyncio.sleep(0.1)

    await asyncio.wait_for(found(), 30)
