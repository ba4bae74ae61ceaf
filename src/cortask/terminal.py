"""How the CLI shows long waits and QR codes.

For people: a spinner while waiting, and the QR code drawn live in the terminal with its countdown
(redrawn in place on a terminal; printed once per new code when the output is a file or a pipe).
For scripts (`--json`): one JSON object per line on stdout and nothing else there; no spinner.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.status import Status
from rich.text import Text

from cortask.channels.whatsapp.qr import QrCode

SCAN_HINT = "WhatsApp → Settings → Linked Devices → Link a device"
CODE_HINT = (
    "On your phone: open WhatsApp → Settings → Linked Devices → Link a device → "
    "Link with phone number instead, and type this code."
)


@contextlib.contextmanager
def waiting(console: Console, message: str, quiet: bool) -> Iterator[Status | None]:
    """A spinner with `message` on the console (stderr) for a long wait; none when `quiet`."""
    if quiet or not console.is_terminal:
        yield None
        return
    with console.status(message) as status:
        yield status


class QrPresenter:
    """Shows a linking session: a spinner until the first code, each code with its countdown,
    the state while it changes, then how it ended."""

    def __init__(self, console: Console, as_json: bool) -> None:
        self.console = console
        self.as_json = as_json
        self.qr: QrCode | None = None
        self.note = "Starting WhatsApp…"
        self._live: Live | None = None

    def __enter__(self) -> QrPresenter:
        if not self.as_json and self.console.is_terminal:
            # "visible": a code taller than the terminal must never be cropped (it would not scan)
            self._live = Live(
                self, console=self.console, refresh_per_second=4, transient=True, vertical_overflow="visible"
            )
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def show(self, data: str, expires_at: float) -> None:
        if self.qr is not None and self.qr.data == data:
            return
        self.qr = QrCode(data, expires_at)
        left = self.qr.seconds_left(time.time())
        if self.as_json:
            _emit({"qr": data, "expires_in": left})
        elif self._live is None:
            self.console.print(Text(self.qr.terminal(), no_wrap=True))
            self.console.print(f"Scan within {left} s: {SCAN_HINT}", highlight=False)
        else:
            self._live.refresh()

    def state(self, sentence: str) -> None:
        """The channel's state sentence while waiting (shown under the code on a terminal)."""
        self.note = sentence

    def finish(self, state: str, message: str) -> None:
        self.__exit__()
        if self.as_json:
            _emit({"state": state})
        else:
            self.console.print(message, highlight=False)

    def __rich__(self) -> RenderableType:
        if self.qr is None:
            return Spinner("dots", Text(self.note))
        left = self.qr.seconds_left(time.time())
        return Group(
            Text(self.qr.terminal(), no_wrap=True),
            Text(f"Scan within {left} s: {SCAN_HINT}", style="bold"),
            Text(self.note, style="dim"),
        )


class CodePresenter(QrPresenter):
    """Shows a linking session by phone number: the code in large type with its countdown and
    the steps on the phone, the state while it changes, then how it ended."""

    def __init__(self, console: Console, as_json: bool) -> None:
        super().__init__(console, as_json)
        self.code: tuple[str, float] | None = None  # (ABCD-EFGH, when the session ends)

    def show(self, data: str, expires_at: float) -> None:
        if self.code is not None and self.code[0] == data:
            return
        self.code = (data, expires_at)
        left = max(0, int(expires_at - time.time() + 0.5))
        if self.as_json:
            _emit({"code": data, "expires_in": left})
        elif self._live is None:
            self.console.print(Text(f"\n    {data}\n", style="bold"), highlight=False)
            self.console.print(f"Type it within {left} s. {CODE_HINT}", highlight=False)
        else:
            self._live.refresh()

    def __rich__(self) -> RenderableType:
        if self.code is None:
            return Spinner("dots", Text(self.note))
        data, expires_at = self.code
        left = max(0, int(expires_at - time.time() + 0.5))
        return Group(
            Text(f"    {data}    ", style="bold reverse"),
            Text(f"Type it within {left} s.", style="bold"),
            Text(CODE_HINT),
            Text(self.note, style="dim"),
        )


def _emit(data: Any) -> None:
    print(json.dumps(data), flush=True)
