"""The operator's commands: `cortask sidecar install`, `cortask doctor`, `cortask service install|remove|unit`.

Registered on the `cortask` command by `register`; what they need is imported when they run, so
`cortask --help` stays quick.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cortask.home import cortask_home

if TYPE_CHECKING:
    from rich.console import Console

sidecar_app = typer.Typer(help="The Node sidecar that runs Baileys.", no_args_is_help=True)
service_app = typer.Typer(help="Run Cortask as a systemd user service.", no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="machine-readable output")]
_MARKS = {"ok": "[green]ok[/green]  ", "warn": "[yellow]warn[/yellow]", "fail": "[red]fail[/red]"}


@functools.cache
def _console() -> Console:
    """Made when a command first speaks: rich is not imported for `cortask --help`."""
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.add_typer(sidecar_app, name="sidecar")
    app.add_typer(service_app, name="service")
    app.command("doctor")(doctor)


def ensure_sidecar(home: Path) -> None:
    """Install the sidecar if no usable one is found (the first command that needs it does this).
    A failure is said, not fatal: the command goes on, and its status says what is missing."""
    import shutil

    from cortask.channels.whatsapp.sidecar_files import SidecarNotInstalled, locate_sidecar

    if shutil.which("node") is None or shutil.which("npm") is None:
        return  # the channel's status says Node is missing, with what to do
    try:
        locate_sidecar(home)
    except SidecarNotInstalled:
        _console().print("The WhatsApp sidecar is not installed yet: installing it now (once).")
        try:
            _install(home)
        except typer.Exit:
            _console().print("Going on without it: WhatsApp cannot connect until `cortask sidecar install` succeeds.")


def _install(home: Path) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from cortask.channels.whatsapp.sidecar import SidecarNotInstalled
    from cortask.channels.whatsapp.sidecar_install import install_sidecar

    columns = (TextColumn("npm ci"), BarColumn(), MofNCompleteColumn(), TextColumn("packages"), TimeElapsedColumn())
    with Progress(*columns, console=_console(), transient=not _console().is_terminal) as bar:
        task = bar.add_task("npm", total=None)
        last = [-1]

        def progress(done: int, total: int, line: str) -> None:
            bar.update(task, completed=done, total=total)
            if not _console().is_terminal and done // 10 != last[0] // 10:  # a log, not a bar: every 10
                _console().print(f"npm ci: {done}/{total} packages")
            last[0] = done

        try:
            installed = install_sidecar(home, progress)
        except SidecarNotInstalled as exc:
            bar.stop()
            _console().print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from None
    _console().print(
        f"Installed the sidecar (Baileys {installed.baileys}, {installed.packages} packages) in {installed.directory} "
        f"and verified that it starts ({installed.seconds:.0f} s)."
    )


@sidecar_app.command("install")
def sidecar_install() -> None:
    """Install the pinned Baileys for this Cortask into $CORTASK_HOME/sidecar/<version>/ (npm ci from the lockfile)."""
    _install(cortask_home())


@sidecar_app.command("where")
def sidecar_where() -> None:
    """Which sidecar runs (CORTASK_SIDECAR_DIR, the source tree once set up, else $CORTASK_HOME's)."""
    from cortask.channels.whatsapp.sidecar_files import SidecarNotInstalled, locate_sidecar

    try:
        found = locate_sidecar(cortask_home())
    except SidecarNotInstalled as exc:
        _console().print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    print(found.directory)


def doctor(
    as_json: JsonFlag = False,
    port: Annotated[int, typer.Option(help="the port `cortask serve` uses")] = 8484,
) -> None:
    """Check Node, the sidecar, the database, the link, file modes, the gateway, disk, clock and Baileys' age."""
    import os

    from rich.markup import escape

    from cortask.operate.doctor import Context, run_checks

    results = run_checks(Context(cortask_home(), os.environ, port=port))
    failed = any(r.level == "fail" for r in results)
    if as_json:
        print(json.dumps({"ok": not failed, "checks": [r.to_dict() for r in results]}))
    else:
        from rich.console import Console

        out = Console(soft_wrap=True)
        for r in results:
            fix = f" [bold]fix:[/bold] {escape(r.fix)}" if r.fix else ""
            out.print(f"{_MARKS[r.level]} {r.name:<9} {escape(r.detail)}{fix}")
    raise typer.Exit(1 if failed else 0)


@service_app.command("install")
def service_install(
    serve_arg: Annotated[
        list[str] | None, typer.Option("--serve-arg", help="an argument for `cortask serve` (repeatable)")
    ] = None,
) -> None:
    """Write, enable and start a systemd user unit running `cortask serve` (restarted on failure, confined)."""
    from cortask.operate.systemd import NoSystemd, install_unit, logs_command

    home = cortask_home()
    try:
        from cortask.operate.systemd import systemd_problem

        problem = systemd_problem()
        if problem is not None:
            raise NoSystemd(problem)
        ensure_sidecar(home)  # a confined service cannot install it later
        path = install_unit(home, serve_arg or ())
    except NoSystemd as exc:
        _console().print(
            f"[red]error:[/red] {exc}. Run `cortask serve` under your own supervisor instead "
            "(`cortask service unit` prints the unit systemd would get)."
        )
        raise typer.Exit(1) from None
    _console().print(f"Installed and started {path}.\nIts logs: {logs_command()}")
    _console().print("To keep it running after you log out: loginctl enable-linger $USER")


@service_app.command("remove")
def service_remove() -> None:
    """Stop, disable and delete the systemd user unit (your data in $CORTASK_HOME stays)."""
    from cortask.operate.systemd import remove_unit

    removed = remove_unit()
    _console().print(f"Removed {removed}." if removed else "No Cortask unit was installed.")


@service_app.command("unit")
def service_unit(
    serve_arg: Annotated[
        list[str] | None, typer.Option("--serve-arg", help="an argument for `cortask serve` (repeatable)")
    ] = None,
) -> None:
    """Print the unit `service install` would write (for systemd-analyze, or a system you manage yourself)."""
    from cortask.operate.systemd import unit_text

    sys.stdout.write(unit_text(cortask_home(), serve_arg or ()))
