"""`cortask`: run the service, the demo, and manage WhatsApp, contacts and the agent.

Every command asks one `cortask.app.client.Client`, chosen once: the running gateway's API when
there is one (it leaves `$CORTASK_HOME/gateway.json`), so there is never a second WhatsApp
connection on one account; otherwise the application layer in this process. Either way the
command has one code path and prints one JSON shape.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from cortask.home import cortask_home
from cortask.operate.cli import ensure_sidecar
from cortask.operate.cli import register as register_operations

if TYPE_CHECKING:  # the models and clients are imported when a command runs, not for --help
    from pydantic import BaseModel
    from rich.console import Console
    from rich.status import Status as RichStatus

    from cortask.app.client import Client
    from cortask.app.models import CodeIn, Contact, LinkResult, Status
    from cortask.terminal import QrPresenter

T = TypeVar("T")
EXPIRED = "The QR code expired before it was scanned. Run `cortask whatsapp link` again."
CODE_EXPIRED = "The code expired before it was typed on the phone. Run `cortask whatsapp link --phone …` again."

# Plain help screens: typer's rich ones label every flag with its type (`--help <bool>`).
PLAIN: Any = {"rich_markup_mode": None}
app = typer.Typer(
    help="Cortask: talk to your agent from WhatsApp.", no_args_is_help=True, add_completion=False, **PLAIN
)
whatsapp_app = typer.Typer(help="Link, start, stop and inspect the WhatsApp channel.", no_args_is_help=True, **PLAIN)
contacts_app = typer.Typer(help="The trusted contacts who may talk to the agent.", no_args_is_help=True, **PLAIN)
agent_app = typer.Typer(help="Which agent answers.", no_args_is_help=True, **PLAIN)
app.add_typer(whatsapp_app, name="whatsapp")
app.add_typer(contacts_app, name="contacts")
app.add_typer(agent_app, name="agent")
register_operations(app)  # sidecar, doctor, service


@functools.cache
def _console() -> Console:
    """The terminal, made when a command first speaks: importing rich costs `--help` a tenth of its time."""
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)  # no hard wraps: sentences stay greppable


JsonFlag = Annotated[bool, typer.Option("--json", help="machine-readable output")]
# A number as people write it, spaces and all: `contacts add +33 6 12 34 56 78` needs no quotes
# (the words after the first arrive as the context's extra arguments).
PhoneArg = Annotated[
    str, typer.Argument(metavar="PHONE", help="the phone number, e.g. +4915123456789 or +49 151 23456789")
]
SPACED: Any = {"context_settings": {"allow_extra_args": True}}


def _phone(first: str, ctx: typer.Context) -> str:
    return " ".join([first, *ctx.args])


_log_format = "text"


@app.callback()
def _options(
    log_format: Annotated[str, typer.Option(help="log lines as text or json (one object per line)")] = "text",
) -> None:
    global _log_format
    if log_format not in ("text", "json"):
        raise typer.BadParameter("use text or json", param_hint="--log-format")
    _log_format = log_format


def _formatter(text_format: str) -> logging.Formatter:
    from cortask.redact import JsonFormatter, MaskingFormatter

    return JsonFormatter() if _log_format == "json" else MaskingFormatter(text_format)


def _needs_sidecar(*, in_process: bool = True) -> None:
    """The first command that runs the sidecar here installs it, when nothing installed it yet."""
    if in_process:
        ensure_sidecar(_home())


def _home() -> Path:
    return cortask_home()


def _fail(message: str) -> int:
    _console().print(f"[red]error:[/red] {message}")
    return 1


# -- serve and demo -----------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8484,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(help="a name or address clients use to reach this gateway beyond loopback (repeatable)"),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(help="a file holding the token to require (else CORTASK_TOKEN, else the one kept or generated)"),
    ] = None,
    token: Annotated[str | None, typer.Option(hidden=True)] = None,
    agent: Annotated[str | None, typer.Option(help="override the configured agent for this run, e.g. echo")] = None,
) -> None:
    """Run the gateway (API, events, web UI) and the WhatsApp channel. It prints its address with
    the token once; the token is kept in $CORTASK_HOME/gateway-token (readable by you only)."""
    if token is not None:
        # A command line is visible to every local user (`ps`): the token must not travel there.
        raise typer.Exit(
            _fail(
                "--token is not accepted (a command line is visible to every user of this machine): "
                "set CORTASK_TOKEN or pass --token-file FILE"
            )
        )
    from cortask.agents import AgentConfig
    from cortask.channels.whatsapp.config import ConfigError
    from cortask.gateway.security import InsecureBind
    from cortask.gateway.server import read_token_source, run_gateway
    from cortask.service import CortaskService

    override = AgentConfig(agent, {}) if agent else None
    if override is not None:
        _check_agent(override)
    try:
        supplied = read_token_source(os.environ, token_file)
        service = CortaskService(_home(), agent_override=override)
    except (ConfigError, InsecureBind) as exc:  # e.g. half of the sandbox settings, an unreadable token file
        raise typer.Exit(_fail(str(exc))) from None
    _needs_sidecar()
    _log_to_terminal()
    import asyncio

    sys.exit(asyncio.run(run_gateway(service, host, port, supplied, allowed_hosts=allowed_host or ())))


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="gateway port")] = 8484,
    agent: Annotated[str, typer.Option(help="agent for the demo")] = "echo",
) -> None:
    """Try it without a phone: wasim (the offline WhatsApp sandbox), the gateway and the echo agent."""
    from cortask.agents import AgentConfig

    try:
        from cortask.demo import run_demo
    except ModuleNotFoundError as exc:  # an installed wheel: the sandbox ships with the source only
        raise typer.Exit(_fail(f"the demo needs wasim, the sandbox in Cortask's source checkout ({exc}).")) from None

    _check_agent(AgentConfig(agent, {}))
    _needs_sidecar()
    _log_to_terminal()
    import asyncio

    sys.exit(asyncio.run(run_demo(_home(), port, agent)))


def _check_agent(config: Any) -> None:
    """`--agent` is checked before anything starts, the way `agent set` checks it (issue #17)."""
    import asyncio

    from cortask.app.actions import check_agent

    try:
        asyncio.run(check_agent(config, os.environ))
    except ValueError as exc:
        raise typer.Exit(_fail(f"--agent {config.provider}: {exc}")) from None


# -- one client, through the gateway or in this process ------------------------------------------


def _log_to_terminal() -> None:
    """What `serve` and `demo` log (warnings and worse, as before) goes through the one masker."""
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(_formatter("%(message)s"))
    logging.getLogger().addHandler(handler)


def _log_to_file(path: Path) -> None:
    """The channel's and Baileys' log lines go to a file: on the terminal they would tear up the
    live QR code, and on stdout they would break --json."""
    import logging

    from cortask.home import private_file

    backup = path.with_name(path.name + ".1")
    if backup.exists():
        private_file(backup)  # the rotated copy, should an older one be loose
    handler = _private_log_handler(path)
    handler.setFormatter(_formatter("%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def _private_log_handler(path: Path) -> logging.Handler:
    from logging.handlers import RotatingFileHandler

    from cortask.home import private_file

    class PrivateLog(RotatingFileHandler):
        """Opens the log 0600 every time, so a rotated-in file is private too."""

        def _open(self) -> Any:
            private_file(Path(self.baseFilename))
            return super()._open()

    return PrivateLog(path, maxBytes=2_000_000, backupCount=1)


def _run(
    action: Callable[[Client], Awaitable[T]],
    interrupted: str = "interrupted before it finished.",
    interrupted_with_gateway: str | None = None,
    *,
    in_process: bool = False,
) -> T:
    """Run `action` with the client for this home (chosen once: the running gateway, or this
    process); what it refuses becomes an error sentence and exit code 1, Ctrl-C exit code 130."""
    import asyncio

    from cortask.app.client import gateway_address, open_client
    from cortask.app.errors import AppError

    gateway = None if in_process else gateway_address(_home())
    if gateway is None:
        _log_to_file(_home() / "cli.log")

    async def run() -> T:
        client = await open_client(_home(), gateway)
        try:
            return await action(client)
        finally:
            await client.aclose()

    try:
        return asyncio.run(run())
    except AppError as exc:
        raise typer.Exit(_fail(str(exc))) from None
    except KeyboardInterrupt:
        said = interrupted_with_gateway if gateway is not None and interrupted_with_gateway else interrupted
        raise typer.Exit(_fail(said) + 129) from None


def _print_model(data: BaseModel | list[Any], as_json: bool, human: str) -> None:
    if not as_json:
        _console().print(human)
    elif isinstance(data, list):
        print(json.dumps([d.model_dump(mode="json") for d in data]))
    else:
        print(json.dumps(data.model_dump(mode="json")))


def _show_status(status: Status, as_json: bool, done: str = "") -> None:
    lines = [done] if done else []
    lines.append(f"[bold]{status.label}[/bold]: {status.sentence}")
    if status.action:
        lines.append(status.action)
    seen = [
        f"{what} {_local_time(epoch)}"
        for what, epoch in (("last message in", status.last_inbound_at), ("last reply out", status.last_outbound_at))
        if epoch
    ]
    if seen:
        lines.append(", ".join(seen).capitalize())
    if status.storage is not None:
        lines.append(status.storage.sentence)
    lines.extend(f"[yellow]![/yellow] {note.sentence}" for note in status.notes)  # a failing store, unsent replies
    _print_model(status, as_json, "\n".join(lines))


def _local_time(epoch: float) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


# -- whatsapp -------------------------------------------------------------------------------------


@whatsapp_app.command("status")
def whatsapp_status(as_json: JsonFlag = False) -> None:
    """The connection state, with what to do about it (the stored state when Cortask is not running)."""
    _show_status(_run(lambda c: c.status()), as_json)


@whatsapp_app.command("start")
def whatsapp_start(as_json: JsonFlag = False) -> None:
    """Connect with the stored link (without a running Cortask: `cortask serve` will)."""

    async def start(client: Client) -> tuple[Status, Status]:
        return await client.status(), await client.start()

    with _waiting("Asking Cortask to start WhatsApp…", as_json):
        before, status = _run(start)
    if before.running and before.state.running:
        done = "Already connected: nothing to do."
    else:
        done = "" if status.running else "Started: saved, so `cortask serve` connects with the stored link."
    _show_status(status, as_json, done)


@whatsapp_app.command("pause")
def whatsapp_pause(as_json: JsonFlag = False) -> None:
    """Disconnect but keep the link (saved: `cortask serve` stays paused until started)."""
    with _waiting("Asking Cortask to pause WhatsApp…", as_json):
        status = _run(lambda c: c.pause())
    if not status.linked and status.state != "credentials_unreadable":
        done = "Nothing to pause: WhatsApp is not linked."
    elif status.running:
        done = ""
    else:
        done = "Paused: saved; the link is kept and nothing connects until `cortask whatsapp start`."
    _show_status(status, as_json, done)


@whatsapp_app.command("stop")
def whatsapp_stop(as_json: JsonFlag = False) -> None:
    """Disconnect and log this device out (a new QR scan is needed afterwards)."""
    with _waiting("Connecting to WhatsApp to log this device out…", as_json) as spinner:

        def note(status: Status) -> None:
            if spinner is not None:
                spinner.update(f"{status.sentence} (to log this device out)")

        status = _run(lambda c: c.stop(note))
    done = "Stopped: this device was logged out of WhatsApp and its stored link removed."
    _show_status(status, as_json, "" if status.running else done)


@whatsapp_app.command("logout")
def whatsapp_logout(as_json: JsonFlag = False) -> None:
    """Log out and delete the stored credentials (without a running Cortask: delete them here only)."""

    async def logout(client: Client) -> tuple[Status, Status]:
        return await client.status(), await client.logout()

    with _waiting("Asking Cortask to log WhatsApp out…", as_json):
        before, status = _run(logout)
    if status.running:
        done = ""
    elif before.linked or before.state == "credentials_unreadable":
        done = (
            "Logged out: the stored link was removed. Cortask was not connected, so WhatsApp was not told: "
            "remove the device on your phone under Settings → Linked Devices."
        )
    else:
        done = "Nothing to log out: no link was stored."
    _show_status(status, as_json, done)


@whatsapp_app.command("link")
def whatsapp_link(
    as_json: JsonFlag = False,
    phone: Annotated[
        str | None,
        typer.Option("--phone", help="link with phone number instead of a QR: your phone's own number, e.g. +49…"),
    ] = None,
    code: Annotated[
        str | None, typer.Option("--code", help="with --phone: a code of your own (8 letters and digits)")
    ] = None,
) -> None:
    """Show the QR code to scan (live, with its countdown) until linked or expired; with --phone,
    a code to type on the phone instead."""
    from cortask.app.client import gateway_address
    from cortask.app.models import CodeIn
    from cortask.terminal import QrPresenter

    _needs_sidecar(in_process=gateway_address(_home()) is None)
    if phone is not None:
        _link_by_code(CodeIn(phone=phone, code=code), as_json)
        return
    if code is not None:
        raise typer.Exit(_fail("--code needs --phone: a code links the account of that phone number."))

    with QrPresenter(_console(), as_json) as view:

        async def follow(client: Client) -> LinkResult:
            async for step in client.link():
                if step.event == "qr":
                    view.show(step.data.qr, step.data.expires_at)
                elif step.event == "status":
                    view.state(step.data.sentence)
                else:
                    return step.data
            raise AssertionError("a linking session always ends with its result")

        try:
            result = _run(
                follow,
                interrupted_with_gateway="interrupted; the QR code stays in the web UI until it expires.",
            )
        except typer.Exit:
            view.__exit__()
            raise
        _finish_link(view, result)


def _link_by_code(body: CodeIn, as_json: bool) -> None:
    from cortask.terminal import CodePresenter

    with CodePresenter(_console(), as_json) as view:

        async def follow(client: Client) -> LinkResult:
            async for step in client.link_by_code(body):
                if step.event == "code":
                    view.show(step.data.grouped, step.data.expires_at)
                elif step.event == "status":
                    view.state(step.data.sentence)
                else:
                    return step.data
            raise AssertionError("a linking session always ends with its result")

        try:
            result = _run(
                follow, interrupted_with_gateway="interrupted; the code stays in the web UI until it expires."
            )
        except typer.Exit:
            view.__exit__()
            raise
        _finish_link(view, result, CODE_EXPIRED)


def _finish_link(view: QrPresenter, result: LinkResult, expired: str = EXPIRED) -> None:
    status = result.status
    if result.outcome == "linked":
        after = "The channel is running." if status.running else "The link is kept: `cortask serve` connects."
        view.finish("linked", f"[green]Linked.[/green] {status.sentence}\n{after}")
        return
    if result.outcome == "expired":
        view.finish("expired", expired)
    else:
        reason = f"[red]Not linked:[/red] {result.reason or status.sentence}"
        view.finish("failed", reason)
        if view.as_json:
            _console().print(reason)  # scripts get the state on stdout, people the reason on stderr
    raise typer.Exit(1)


@contextlib.contextmanager
def _waiting(message: str, as_json: bool) -> Iterator[RichStatus | None]:
    from cortask.terminal import waiting

    with waiting(_console(), message, as_json) as spinner:
        yield spinner


# -- contacts -------------------------------------------------------------------------------------


@contacts_app.command("list")
def contacts_list(as_json: JsonFlag = False) -> None:
    """The trusted contacts."""
    contacts = _run(lambda c: c.contacts())
    if as_json:
        _print_model(contacts, True, "")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("phone", "as written", "name", "permission", "on WhatsApp")
    for contact in contacts:
        table.add_row(
            contact.phone, contact.written or "", contact.name or "", contact.permission, _on_whatsapp(contact)
        )
    Console().print(table)


def _on_whatsapp(contact: Contact) -> str:
    """What WhatsApp said about a contact's number, in the contact list's words (the server's note
    when there is one)."""
    if contact.note:
        return contact.note
    if contact.whatsapp == "registered":
        return "yes"
    return "not checked yet"


def _added(verb: str, contact: Contact) -> str:
    written = (
        f"{contact.written} as {contact.phone}"
        if contact.written and contact.written != contact.phone
        else contact.phone
    )
    note = f" {contact.note}" if contact.note else ""
    return f"{verb} {written} ({contact.permission}).{note}"


@contacts_app.command("add", **SPACED)
def contacts_add(
    ctx: typer.Context,
    words: PhoneArg,
    name: Annotated[str | None, typer.Option(help="a name to show")] = None,
    permission: Annotated[str, typer.Option(help="read, write or admin")] = "write",
    as_json: JsonFlag = False,
) -> None:
    """Trust a phone number, written any way people write it (+4915123456789, +52 1 55 1234 5678, …)."""
    from cortask.app.models import ContactIn

    phone = _phone(words, ctx)
    body = ContactIn(phone=phone, name=name, permission=permission)
    contact = _run(lambda c: c.add_contact(body))
    _print_model(contact, as_json, _added("Added", contact))


@contacts_app.command("set", **SPACED)
def contacts_set(
    ctx: typer.Context,
    words: PhoneArg,
    name: Annotated[str | None, typer.Option(help="a name to show")] = None,
    permission: Annotated[str | None, typer.Option(help="read, write or admin")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Change a trusted contact's name or permission."""
    phone = _phone(words, ctx)
    changes = {k: v for k, v in {"name": name, "permission": permission}.items() if v is not None}
    from cortask.app.models import ContactPatch

    body = ContactPatch.model_validate(changes)  # only what was given is changed
    contact = _run(lambda c: c.update_contact(phone, body))
    _print_model(contact, as_json, _added("Updated", contact))


@contacts_app.command("remove", **SPACED)
def contacts_remove(ctx: typer.Context, words: PhoneArg, as_json: JsonFlag = False) -> None:
    """Stop trusting a phone number."""
    phone = _phone(words, ctx)
    _run(lambda c: c.remove_contact(phone))
    if as_json:
        print(json.dumps({"removed": phone}))
    else:
        _console().print(f"Removed {phone}.")


# -- strangers waiting for approval (issue #14) ---------------------------------------------------


@whatsapp_app.command("approvals")
def whatsapp_approvals(as_json: JsonFlag = False) -> None:
    """Strangers waiting for your approval (with approvals on)."""
    waiting = _run(lambda c: c.approvals())
    lines = [f"{a.code}  {a.name + ' ' if a.name else ''}{a.phone}: “{a.first_line}”" for a in waiting]
    _print_model(waiting, as_json, "\n".join(lines) if lines else "Nobody is waiting for your approval.")


@whatsapp_app.command("approve")
def whatsapp_approve(
    code: str,
    read: Annotated[bool, typer.Option("--read", help="Read-only access instead of write.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Let a waiting stranger in and answer their message (as /approve CODE in WhatsApp)."""
    from cortask.app.models import ApprovalIn

    contact = _run(lambda c: c.approve(code, ApprovalIn(permission="read" if read else "write")))
    _print_model(contact, as_json, _added("Approved", contact))


@whatsapp_app.command("reject")
def whatsapp_reject(code: str, as_json: JsonFlag = False) -> None:
    """Drop a waiting stranger's message and mute that number (as /reject CODE in WhatsApp)."""
    _run(lambda c: c.reject(code))
    if as_json:
        print(json.dumps({"rejected": code.upper()}))
    else:
        _console().print(f"Rejected {code.upper()}: dropped, and that number is muted.")


# -- agent ----------------------------------------------------------------------------------------


@agent_app.command("show")
def agent_show(as_json: JsonFlag = False) -> None:
    """The configured agent (secrets masked)."""
    data = _run(lambda c: c.agent())
    _print_model(data, as_json, _agent_words(data))


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
    from pydantic import JsonValue

    from cortask.app.models import AgentIn

    settings: dict[str, JsonValue] = {name: value for name, value in (s.split("=", 1) for s in setting or [])}
    body = AgentIn(provider=provider, settings=settings)
    from cortask.agents import AgentConfig
    from cortask.agents.factory import machine_only

    # What only the machine may set (the command agent, a program, a variable's name) is written
    # to the store in this process even while a gateway runs: its API refuses it, and the running
    # service reads the agent's settings from the store for each message.
    dangerous = bool(machine_only(AgentConfig(provider, dict(settings))))
    data = _run(lambda c: c.set_agent(body), in_process=dangerous)
    _print_model(data, as_json, "Saved. " + _agent_words(data))


def _agent_words(data: Any) -> str:
    """Which agent is stored and which runs now: they differ while `--agent` overrides it."""
    settings = f" {data.settings}" if data.settings else ""
    stored = f"Stored agent: [bold]{data.provider}[/bold]{settings}."
    if data.override:
        why = "this run's --agent; the stored one is used without it"
        return f"{stored}\nRunning now: [bold]{data.active}[/bold] ({why})."
    return stored


def main() -> None:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()
