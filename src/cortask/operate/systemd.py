"""`cortask service`: a systemd user unit that keeps `cortask serve` running.

The unit restarts Cortask when it fails and confines it: no new privileges, the system and the
home directory read-only, write access only to `$CORTASK_HOME`. (MemoryDenyWriteExecute is left
out on purpose: Node's JIT writes code at run time.)
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

UNIT_NAME = "cortask.service"


class NoSystemd(Exception):
    """This machine (or this session) has no systemd user manager to hand the unit to."""


def unit_dir(environ: Mapping[str, str] = os.environ) -> Path:
    config = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME", str(Path.home()))) / ".config")
    return Path(config) / "systemd" / "user"


def _quote(arg: str) -> str:
    # systemd's own quoting: double quotes, with backslash escapes; % starts a specifier
    if all(c.isalnum() or c in "/._-=:+," for c in arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%") + '"'


def unit_text(home: Path, serve_args: Sequence[str] = (), environ: Mapping[str, str] = os.environ) -> str:
    """The unit for this installation: this Python, this `$CORTASK_HOME`, Node found on PATH now."""
    home = home.resolve()
    command = [sys.executable, "-m", "cortask", "--log-format", "json", "serve", *serve_args]
    node = shutil.which("node", path=environ.get("PATH"))
    path = ":".join(dict.fromkeys([*([str(Path(node).parent)] if node else []), "/usr/local/bin", "/usr/bin", "/bin"]))
    in_tmp = any(home.is_relative_to(t) for t in (Path("/tmp"), Path("/var/tmp")))
    lines = [
        "[Unit]",
        "Description=Cortask WhatsApp gateway (cortask serve)",
        "After=network-online.target",
        "Wants=network-online.target",
        "StartLimitIntervalSec=300",
        "StartLimitBurst=5",
        "",
        "[Service]",
        "Type=simple",
        "ExecStart=" + " ".join(_quote(a) for a in command),
        f"Environment={_quote('CORTASK_HOME=' + str(home))}",
        f"Environment={_quote('PATH=' + path)}",
        "Environment=PYTHONUNBUFFERED=1",
        "Restart=on-failure",
        "RestartSec=5",
        "TimeoutStopSec=30",
        # confinement
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=read-only",
        f"ReadWritePaths={_quote(str(home))}",
        *([] if in_tmp else ["PrivateTmp=yes"]),  # a home under /tmp must stay visible
        "RestrictSUIDSGID=yes",
        "LockPersonality=yes",
        "RestrictRealtime=yes",
        "UMask=0077",
        "",
        "[Install]",
        "WantedBy=default.target",
        "",
    ]
    return "\n".join(lines)


def systemd_problem() -> str | None:
    """Why units cannot be handed to a systemd user manager here, or None when they can."""
    if shutil.which("systemctl") is None:
        return "systemd is not installed on this machine (no systemctl)"
    if not Path("/run/systemd/system").is_dir():
        return "systemd is not running on this machine (it is not the init system here, e.g. in a container)"
    done = subprocess.run(["systemctl", "--user", "is-system-running"], capture_output=True, text=True, timeout=15)
    state = done.stdout.strip()
    if state in ("", "offline") or "Failed to connect" in done.stderr:
        return "there is no systemd user manager for this session (log in normally, or `loginctl enable-linger $USER`)"
    return None


def _systemctl(*args: str) -> None:
    done = subprocess.run(["systemctl", "--user", *args], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise NoSystemd(f"`systemctl --user {' '.join(args)}` failed: {done.stderr.strip() or done.stdout.strip()}")


def install_unit(home: Path, serve_args: Sequence[str] = ()) -> Path:
    """Write, enable and start the unit; returns its path. Raises NoSystemd saying why not."""
    problem = systemd_problem()
    if problem is not None:
        raise NoSystemd(problem)
    path = unit_dir() / UNIT_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(unit_text(home, serve_args))
    _systemctl("daemon-reload")
    _systemctl("enable", "--now", UNIT_NAME)
    return path


def remove_unit() -> Path | None:
    """Stop, disable and delete the unit; returns the removed path (None when there was none)."""
    path = unit_dir() / UNIT_NAME
    if systemd_problem() is None:
        subprocess.run(["systemctl", "--user", "disable", "--now", UNIT_NAME], capture_output=True, timeout=60)
    if not path.exists():
        return None
    path.unlink()
    if systemd_problem() is None:
        _systemctl("daemon-reload")
    return path


def logs_command() -> str:
    return f"journalctl --user -u {shlex.quote(UNIT_NAME)} -f"
