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
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import httpx
import typer
from rich.console import Console
from rich.table import Table

from cortask.home import cortask_home

if TYPE_CHECKING:  # the direct mode imports the service and agents: only when it is used
    from cortask.channels.whatsapp.qr import QrCode
    from cortask.channels.whatsapp.state import ChannelStatus
    from cortask.direct import Direct
    from cortask.terminal import QrPresenter

T = TypeVar("T")
EXPIRED = "The QR code expired before it was scanned. Run `cortask whatsapp link` again."

app = typer.Typer(help="Cortask: talk to your agent from WhatsApp.", no_args_is_help=True, add_completion=False)
whatsapp_app = typer.Typer(help="Link, start, stop and inspect the WhatsApp channel.", no_args_is_help=True)
contacts_app = typer.Typer(help="The trusted contacts who may talk to the agent.", no_args_is_help=True)
agent_app = typer.Typer(help="Which agent answers.", no_args_is_help=True)
app.add_typer(whatsapp_app, name="whatsapp")
app.add_typer(contacts_app, name="contacts")
app.add_typer(agent_app, name="agent")
console = Console(stderr=True, soft_wrap=True)  # no hard wraps: sentences stay greppable
JsonFlag = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def _home() -> Path:
    return cortask_home()


def _gateway() -> tuple[str, str | None] | None:
    info = _home() / "gateway.json"
    if not info.exists():
        return None
    try:
        data = json.loads(info.read_text())
        httpx.get(data["url"] + "api/health", timeout=2)
    except (OSError, ValueError, KeyError, TypeError, httpx.HTTPError):
        return None  # left behind by a gateway that is gone (or half written)
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
    from cortask.channels.whatsapp.config import ConfigError
    from cortask.gateway.server import run_gateway
    from cortask.service import CortaskService

    override = AgentConfig(agent, {}) if agent else None
    try:
        service = CortaskService(_home(), agent_override=override)
    except ConfigError as exc:  # e.g. half of the sandbox settings
        raise typer.Exit(_fail(str(exc))) from None
    sys.exit(asyncio.run(run_gateway(service, host, port, token)))


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="gateway port")] = 8484,
    agent: Annotated[str, typer.Option(help="agent for the demo")] = "echo",
) -> None:
    """Try it without a phone: wasim (the offline WhatsApp sandbox), the gateway and the echo agent."""
    from cortask.demo import run_demo

    sys.exit(asyncio.run(run_demo(_home(), port, agent)))


# -- acting directly (no gateway) -----------------------------------------------------------------


def _direct() -> Direct:
    from cortask.direct import Direct

    _log_to_file(_home() / "cli.log")
    return Direct(_home())


def _log_to_file(path: Path) -> None:
    """The channel's and Baileys' log lines go to a file: on the terminal they would tear up the
    live QR code, and on stdout they would break --json."""
    import logging
    from logging.handlers import RotatingFileHandler

    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    handler = RotatingFileHandler(path, maxBytes=2_000_000, backupCount=1)
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def _directly(action: Callable[[], T]) -> T:
    """Run a direct action; what it refuses becomes an error sentence and exit code 1."""
    from cortask.direct import ActionFailed

    try:
        return action()
    except ActionFailed as exc:
        raise typer.Exit(_fail(str(exc))) from None
    except KeyboardInterrupt:
        raise typer.Exit(_fail("interrupted before it finished.") + 129) from None


def _show_status(status: dict[str, Any], as_json: bool, done: str = "") -> None:
    lines = [done] if done else []
    lines.append(f"[bold]{status['state']}[/bold]: {status['sentence']}")
    if status.get("action"):
        lines.append(status["action"])
    seen = [
        f"{what} {_local_time(status[key])}"
        for what, key in (("last message in", "last_inbound_at"), ("last reply out", "last_outbound_at"))
        if status.get(key)
    ]
    if seen:
        lines.append(", ".join(seen).capitalize())
    _print(status, as_json, "\n".join(lines))


def _local_time(epoch: float) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


# -- whatsapp -------------------------------------------------------------------------------------


@whatsapp_app.command("status")
def whatsapp_status(as_json: JsonFlag = False) -> None:
    """The connection state, with what to do about it (the stored state when Cortask is not running)."""
    if _gateway() is None:
        _show_status(_directly(_direct().status), as_json)
        return
    _show_status(_api("GET", "/whatsapp")["status"], as_json)


def _through_gateway(action: str, as_json: bool) -> None:
    from cortask.terminal import waiting

    with waiting(console, f"Asking Cortask to {action} WhatsApp…", as_json):
        status = _api("POST", f"/whatsapp/{action}")
    _print(status, as_json, f"[bold]{status['state']}[/bold]: {status['sentence']}")


@whatsapp_app.command("start")
def whatsapp_start(as_json: JsonFlag = False) -> None:
    """Connect with the stored link (without a running Cortask: `cortask serve` will)."""
    if _gateway() is not None:
        _through_gateway("start", as_json)
        return
    status = _directly(_direct().start)
    _show_status(status, as_json, "Started: saved, so `cortask serve` connects with the stored link.")


@whatsapp_app.command("pause")
def whatsapp_pause(as_json: JsonFlag = False) -> None:
    """Disconnect but keep the link (saved: `cortask serve` stays paused until started)."""
    if _gateway() is not None:
        _through_gateway("pause", as_json)
        return
    status = _directly(_direct().pause)
    _show_status(
        status, as_json, "Paused: saved; the link is kept and nothing connects until `cortask whatsapp start`."
    )


@whatsapp_app.command("stop")
def whatsapp_stop(as_json: JsonFlag = False) -> None:
    """Disconnect and log this device out (a new QR scan is needed afterwards)."""
    if _gateway() is not None:
        _through_gateway("stop", as_json)
        return
    from cortask.terminal import waiting

    with waiting(console, "Connecting to WhatsApp to log this device out…", as_json) as spinner:

        def note(status: ChannelStatus) -> None:
            if spinner is not None:
                spinner.update(f"{status.sentence} (to log this device out)")

        status = _directly(lambda: asyncio.run(_direct().stop(note)))
    _show_status(status, as_json, "Stopped: this device was logged out of WhatsApp and its stored link removed.")


@whatsapp_app.command("logout")
def whatsapp_logout(as_json: JsonFlag = False) -> None:
    """Log out and delete the stored credentials (without a running Cortask: delete them here only)."""
    if _gateway() is not None:
        _through_gateway("logout", as_json)
        return
    direct = _direct()
    before = _directly(direct.status)
    status = _directly(lambda: asyncio.run(direct.logout()))
    if before["linked"] or before["state"] == "credentials_unreadable":
        done = (
            "Logged out: the stored link was removed. Cortask was not connected, so WhatsApp was not told: "
            "remove the device on your phone under Settings → Linked Devices."
        )
    else:
        done = "Nothing to log out: no link was stored."
    _show_status(status, as_json, done)


@whatsapp_app.command("link")
def whatsapp_link(as_json: JsonFlag = False) -> None:
    """Show the QR code to scan (live, with its countdown) until linked or expired."""
    from cortask.terminal import QrPresenter

    gw = _gateway()
    with QrPresenter(console, as_json) as view:
        if gw is None:
            _link_directly(view)
            return
        try:
            _link_through_gateway(view, *gw)
        except KeyboardInterrupt:
            view.__exit__()
            raise typer.Exit(_fail("interrupted; the QR code stays in the web UI until it expires.") + 129) from None


def _link_directly(view: QrPresenter) -> None:
    """No gateway: run the channel here, and close it once linked, keeping the link for `serve`."""
    from cortask.channels.whatsapp.state import ConnectionState

    problems: list[ChannelStatus] = []  # why no code came, if none does

    def show(qr: QrCode) -> None:
        view.show(qr.data, qr.expires_at)

    def note(status: ChannelStatus) -> None:
        view.state(status.sentence)
        if status.state is ConnectionState.RECONNECTING or status.state.terminal:
            problems.append(status)

    final = _directly(lambda: asyncio.run(_direct().link(show, note)))
    if final.state is ConnectionState.OPEN:
        view.finish("linked", f"[green]Linked.[/green] {final.sentence}\nThe link is kept: `cortask serve` connects.")
        return
    if view.qr is not None and final.state is ConnectionState.UNLINKED:
        view.finish("expired", EXPIRED)
    else:
        if final.state.terminal or not problems:
            reason = f"[red]Not linked:[/red] {final.sentence} {final.action or ''}"
        else:  # it kept retrying until the session ended
            last = problems[-1].detail or problems[-1].sentence
            reason = f"[red]Not linked:[/red] could not connect to WhatsApp before the QR session ended ({last})."
        view.finish("failed", reason)
        if view.as_json:
            console.print(reason)  # scripts get the state on stdout, people the reason on stderr
    raise typer.Exit(1)


def _link_through_gateway(view: QrPresenter, url: str, token: str | None) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    _api("POST", "/whatsapp")  # add the channel if needed
    first = _api("POST", "/whatsapp/qr")
    with httpx.stream("GET", url + "api/events", headers=headers, timeout=None) as stream:
        view.show(first["qr"], first["expires_at"])
        event = ""
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
                continue
            if not line.startswith("data: "):
                continue
            data = json.loads(line[6:])
            if event == "qr":
                view.show(data["qr"], data["expires_at"])
            elif event == "status":
                view.state(data["sentence"])
                if data["state"] == "open":
                    view.finish("linked", f"[green]Linked.[/green] {data['sentence']} The channel is running.")
                    return
                if data["state"] == "unlinked":
                    view.finish(
                        "expired", "The QR code expired before it was scanned. Run `cortask whatsapp link` again."
                    )
                    raise typer.Exit(1)


# -- contacts -------------------------------------------------------------------------------------


def _contacts_store() -> Any:
    from cortask.store import Store

    store = Store.open(_home() / "cortask.db")
    return store, store.workspaces.ensure_default().id


@contacts_app.command("list")
def contacts_list(as_json: JsonFlag = False) -> None:
    """The trusted contacts."""
    if _gateway():
        contacts = _api("GET", "/whatsapp/contacts")
    else:
        store, ws = _contacts_store()
        contacts = [
            {"phone": c.phone, "name": c.name, "permission": c.permission.value} for c in store.whatsapp.contacts(ws)
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
            c = store.whatsapp.add_contact(ws, phone, permission, name)
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
    if _gateway():
        from urllib.parse import quote

        contact = _api("PUT", f"/whatsapp/contacts/{quote(phone)}", changes)
    else:
        contact = _directly(lambda: _direct().update_contact(phone, changes))
    _print(contact, as_json, f"Updated {contact['phone']} ({contact['permission']}).")


@contacts_app.command("remove")
def contacts_remove(phone: str, as_json: JsonFlag = False) -> None:
    """Stop trusting a phone number."""
    if _gateway():
        from urllib.parse import quote

        _api("DELETE", f"/whatsapp/contacts/{quote(phone)}")
    else:
        _directly(lambda: _direct().remove_contact(phone))
    _print({"removed": phone}, as_json, f"Removed {phone}.")


@agent_app.command("show")
def agent_show(as_json: JsonFlag = False) -> None:
    """The configured agent (secrets masked)."""
    data = _api("GET", "/agent") if _gateway() else _directly(_direct().agent)
    _print(data, as_json, f"agent: [bold]{data['active']}[/bold] {data['settings']}")


@agent_app.command("set")
def agent_set(
    provider: str,
    setting: Annotated[list[str] | None, typer.Option("--set", help="NAME=VALUE, repeatable")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Choose the agent: echo, openai, anthropic, command or webhook, with its settings."""
    bad = [s for s in setting or [] if "=" not in s]
    if bad:
        raise typer.Exit(_fail(f"--set takes NAME=VALUE, got {bad[0]!r}: for example --set model=llama3.2"))
    settings = dict(s.split("=", 1) for s in setting or [])
    if _gateway():
        data = _api("PUT", "/agent", {"provider": provider, "settings": settings})
    else:
        data = _directly(lambda: asyncio.run(_direct().set_agent(provider, settings)))
    _print(data, as_json, f"agent: [bold]{data['active']}[/bold]")


def main() -> None:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()
