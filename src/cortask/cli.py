"""`cortask`: run the service, the demo, and manage WhatsApp, contacts and the agent.

When a gateway is running (it leaves `$CORTASK_HOME/gateway.json`), commands act through its API,
so there is never a second WhatsApp connection on one account; otherwise they act directly.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from cortask.channels.whatsapp.config import cortask_home

app = typer.Typer(help="Cortask: talk to your agent from WhatsApp.", no_args_is_help=True, add_completion=False)
whatsapp_app = typer.Typer(help="Link, start, stop and inspect the WhatsApp channel.", no_args_is_help=True)
contacts_app = typer.Typer(help="The trusted contacts who may talk to the agent.", no_args_is_help=True)
agent_app = typer.Typer(help="Which agent answers.", no_args_is_help=True)
app.add_typer(whatsapp_app, name="whatsapp")
app.add_typer(contacts_app, name="contacts")
app.add_typer(agent_app, name="agent")
console = Console(stderr=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def _home() -> Path:
    return cortask_home()


def _gateway() -> tuple[str, str | None] | None:
    info = _home() / "gateway.json"
    if not info.exists():
        return None
    data = json.loads(info.read_text())
    try:
        httpx.get(data["url"] + "api/health", timeout=2)
    except httpx.HTTPError:
        return None  # left behind by a gateway that is gone
    return str(data["url"]), data.get("token")


def _api(method: str, path: str, body: Any = None) -> Any:
    gw = _gateway()
    if gw is None:
        raise typer.Exit(_fail("no Cortask gateway is running: start one with `cortask serve` (or `cortask demo`)."))
    url, token = gw
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp = httpx.request(method, url + "api" + path, json=body, headers=headers, timeout=60)
    data = resp.json()
    if resp.status_code >= 400:
        raise typer.Exit(_fail(str(data.get("error", data))))
    return data


def _fail(message: str) -> int:
    console.print(f"[red]error:[/red] {message}")
    return 1


def _print(data: Any, as_json: bool, human: str) -> None:
    if as_json:
        print(json.dumps(data))
    else:
        console.print(human)


# -- serve and demo -----------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8484,
    token: Annotated[str | None, typer.Option(envvar="CORTASK_TOKEN", help="required beyond loopback")] = None,
    agent: Annotated[str | None, typer.Option(help="override the configured agent for this run, e.g. echo")] = None,
) -> None:
    """Run the gateway (API, events, web UI) and the WhatsApp channel."""
    from cortask.agents import AgentConfig
    from cortask.gateway.server import run_gateway
    from cortask.service import CortaskService

    override = AgentConfig(agent, {}) if agent else None
    sys.exit(asyncio.run(run_gateway(CortaskService(_home(), agent_override=override), host, port, token)))


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="gateway port")] = 8484,
    agent: Annotated[str, typer.Option(help="agent for the demo")] = "echo",
) -> None:
    """Try it without a phone: wasim (the offline WhatsApp sandbox), the gateway and the echo agent."""
    from cortask.demo import run_demo

    sys.exit(asyncio.run(run_demo(_home(), port, agent)))


# -- whatsapp -------------------------------------------------------------------------------------


@whatsapp_app.command("status")
def whatsapp_status(as_json: JsonFlag = False) -> None:
    """The connection state, with what to do about it."""
    data = _api("GET", "/whatsapp")
    status = data["status"]
    _print(
        status,
        as_json,
        f"[bold]{status['state']}[/bold]: {status['sentence']}" + (f"\n{status['action']}" if status["action"] else ""),
    )


def _status_command(action: str, as_json: bool) -> None:
    status = _api("POST", f"/whatsapp/{action}")
    _print(status, as_json, f"[bold]{status['state']}[/bold]: {status['sentence']}")


@whatsapp_app.command("start")
def whatsapp_start(as_json: JsonFlag = False) -> None:
    """Connect with the stored link."""
    _status_command("start", as_json)


@whatsapp_app.command("pause")
def whatsapp_pause(as_json: JsonFlag = False) -> None:
    """Disconnect but keep the link."""
    _status_command("pause", as_json)


@whatsapp_app.command("stop")
def whatsapp_stop(as_json: JsonFlag = False) -> None:
    """Disconnect and log this device out (a new QR scan is needed afterwards)."""
    _status_command("stop", as_json)


@whatsapp_app.command("logout")
def whatsapp_logout(as_json: JsonFlag = False) -> None:
    """Log out and delete the stored credentials."""
    _status_command("logout", as_json)


@whatsapp_app.command("link")
def whatsapp_link(as_json: JsonFlag = False) -> None:
    """Show the QR code to scan (live, with its countdown) until linked or expired."""
    gw = _gateway()
    if gw is None:
        raise typer.Exit(_fail("no Cortask gateway is running: start one with `cortask serve` (or `cortask demo`)."))
    url, token = gw
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    _api("POST", "/whatsapp")  # add the channel if needed
    first = _api("POST", "/whatsapp/qr")
    from cortask.channels.whatsapp.qr import QrCode

    shown = None
    with httpx.stream("GET", url + "api/events", headers=headers, timeout=None) as stream:
        event = ""
        pending: list[dict[str, Any]] = [first]
        lines = stream.iter_lines()
        while True:
            for qr in pending:
                if qr["qr"] != shown:
                    shown = qr["qr"]
                    import time

                    left = max(0, int(qr["expires_at"] - time.time()))
                    if as_json:
                        print(json.dumps({"qr": qr["qr"], "expires_in": left}), flush=True)
                    else:
                        console.print(QrCode(qr["qr"], qr["expires_at"]).terminal(), highlight=False)
                        console.print(f"Scan within {left} s: WhatsApp → Settings → Linked Devices → Link a device")
            pending = []
            line = next(lines)
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                if event == "qr":
                    pending.append(data)
                elif event == "status" and data["state"] == "open":
                    _print({"state": "linked"}, as_json, "[green]Linked.[/green] The channel is running.")
                    return
                elif event == "status" and data["state"] == "unlinked" and shown is not None:
                    _print({"state": "expired"}, as_json, "The QR code expired. Run `cortask whatsapp link` again.")
                    raise typer.Exit(1)


# -- contacts -------------------------------------------------------------------------------------


def _contacts_store() -> Any:
    from cortask.store import Store

    store = Store.open(_home() / "cortask.db")
    return store, store.ensure_default_workspace().id


@contacts_app.command("list")
def contacts_list(as_json: JsonFlag = False) -> None:
    """The trusted contacts."""
    if _gateway():
        contacts = _api("GET", "/whatsapp/contacts")
    else:
        store, ws = _contacts_store()
        contacts = [
            {"phone": c.phone, "name": c.name, "permission": c.permission.value} for c in store.trusted_contacts(ws)
        ]
        store.close()
    if as_json:
        print(json.dumps(contacts))
        return
    table = Table("phone", "name", "permission")
    for c in contacts:
        table.add_row(c["phone"], c["name"] or "", c["permission"])
    Console().print(table)


@contacts_app.command("add")
def contacts_add(
    phone: str,
    name: Annotated[str | None, typer.Option(help="a name to show")] = None,
    permission: Annotated[str, typer.Option(help="read, write or admin")] = "write",
    as_json: JsonFlag = False,
) -> None:
    """Trust a phone number (E.164, e.g. +4915123456789)."""
    if _gateway():
        contact = _api("POST", "/whatsapp/contacts", {"phone": phone, "name": name, "permission": permission})
    else:
        from cortask.store import StoreError

        store, ws = _contacts_store()
        try:
            c = store.add_trusted_contact(ws, phone, permission, name)
        except (StoreError, ValueError) as exc:
            raise typer.Exit(_fail(str(exc))) from None
        finally:
            store.close()
        contact = {"phone": c.phone, "name": c.name, "permission": c.permission.value}
    _print(contact, as_json, f"Added {contact['phone']} ({contact['permission']}).")


@contacts_app.command("set")
def contacts_set(
    phone: str,
    name: Annotated[str | None, typer.Option(help="a name to show")] = None,
    permission: Annotated[str | None, typer.Option(help="read, write or admin")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Change a trusted contact's name or permission."""
    changes = {k: v for k, v in {"name": name, "permission": permission}.items() if v is not None}
    from urllib.parse import quote

    contact = _api("PUT", f"/whatsapp/contacts/{quote(phone)}", changes)
    _print(contact, as_json, f"Updated {contact['phone']}.")


@contacts_app.command("remove")
def contacts_remove(phone: str, as_json: JsonFlag = False) -> None:
    """Stop trusting a phone number."""
    from urllib.parse import quote

    _api("DELETE", f"/whatsapp/contacts/{quote(phone)}")
    _print({"removed": phone}, as_json, f"Removed {phone}.")


@agent_app.command("show")
def agent_show(as_json: JsonFlag = False) -> None:
    """The configured agent (secrets masked)."""
    data = _api("GET", "/agent")
    _print(data, as_json, f"agent: [bold]{data['active']}[/bold] {data['settings']}")


@agent_app.command("set")
def agent_set(
    provider: str,
    setting: Annotated[list[str] | None, typer.Option("--set", help="NAME=VALUE, repeatable")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Choose the agent: echo, openai, anthropic, command or webhook, with its settings."""
    settings = dict(s.split("=", 1) for s in setting or [])
    data = _api("PUT", "/agent", {"provider": provider, "settings": settings})
    _print(data, as_json, f"agent: [bold]{data['active']}[/bold]")


def main() -> None:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()
