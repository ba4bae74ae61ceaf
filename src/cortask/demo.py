"""`cortask demo`: the product on the offline WhatsApp sandbox, so anyone can try it without a phone.

wasim runs in-process (its state under $CORTASK_HOME/demo/wasim), the gateway uses it as its
WhatsApp, and the echo agent answers. A simulated contact, Ada (+4915123456789), is created and
trusted; the simulated phone page (printed) scans the QR and chats as her or as a stranger.
"""

from __future__ import annotations

import sys
from pathlib import Path

from cortask.agents import AgentConfig
from cortask.app.actions import CortaskApp
from cortask.app.models import ContactIn
from cortask.channels.whatsapp.authstore import AuthStoreError
from cortask.channels.whatsapp.config import Sandbox
from cortask.gateway.server import port_in_use, run_gateway
from cortask.service import CortaskService
from wasim.server.app import Wasim
from wasim.server.control import start_control

DEMO_CONTACT = "+4915123456789"
# The simulated phone's own number: a valid one, so "Link with phone number instead" accepts it.
DEMO_OWN_PHONE = "+4915112345678"


def phone_port(port: int) -> int:
    """The simulated phone's port: the gateway's plus one (8485 by default), stable across starts
    so a bookmarked phone page keeps working."""
    return port + 1


async def run_demo(home: Path, port: int, agent: str = "echo") -> int:
    busy = port_in_use("127.0.0.1", port)
    if busy is not None:  # before anything starts or is written
        print(f"cortask: {busy}", file=sys.stderr)
        return 1
    demo_home = home / "demo"
    sim = Wasim(demo_home / "wasim", default_phone=DEMO_OWN_PHONE[1:])
    await sim.start()
    wanted = phone_port(port)
    fallback = port_in_use("127.0.0.1", wanted)
    if fallback is not None:
        print(f"cortask: the simulated phone's usual port {wanted} is busy, so it gets another one this time.",
              file=sys.stderr)  # fmt: skip
    runner, control_url = await start_control(sim, port=0 if fallback else wanted)
    if sim.state.contacts.get(DEMO_CONTACT[1:]) is None:
        sim.add_contact(DEMO_CONTACT, "Ada")
    service = CortaskService(
        demo_home, sandbox=Sandbox(sim.url, sim.root_public_key), agent_override=AgentConfig(agent, {})
    )
    service.phone_url = f"{control_url}/phone"
    try:
        await service.start()
    except AuthStoreError as exc:  # another demo holds the sandbox's link: one line, not a traceback
        print(f"cortask: {exc}", file=sys.stderr)
        await service.close()
        await runner.cleanup()
        await sim.stop()
        return 1
    # Set up through the application layer, as a person would: the channel added, Ada trusted.
    setup = CortaskApp(service, serving=False)
    await setup.open()
    await setup.add_channel()
    if not await setup.contacts():
        await setup.add_contact(ContactIn(phone=DEMO_CONTACT, name="Ada", permission="write"))
    announce = (
        f"\nSimulated phone (scan the QR, chat as Ada or a stranger): {control_url}/phone"
        f"\nTo link without a camera, use the phone's own number {DEMO_OWN_PHONE} and type the code on that page."
        f"\nSandbox (wasim) control API: {control_url}  — scan with: "
        f'.venv/bin/python -m wasim scan --control {control_url} "<QR string>"'
        f"\nThe demo keeps its data apart, in {demo_home}: while it runs, `cortask` commands act on it; "
        f"afterwards, see it with CORTASK_HOME={demo_home}."
    )
    try:
        return await run_gateway(service, "127.0.0.1", port, None, announce=announce, home=home)
    finally:
        await runner.cleanup()
        await sim.stop()
