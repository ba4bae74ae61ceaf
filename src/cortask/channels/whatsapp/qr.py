"""QR codes for linking: the string Baileys produced, rendered as PNG, SVG and terminal text."""

from __future__ import annotations

import io
from dataclasses import dataclass

import segno


@dataclass(frozen=True, slots=True)
class QrCode:
    data: str  # exactly the string Baileys produced; a phone scans this
    expires_at: float  # when the linking session ends (seconds since the epoch)

    def seconds_left(self, now: float) -> int:
        return max(0, int(self.expires_at - now + 0.5))

    def png(self, scale: int = 6) -> bytes:
        out = io.BytesIO()
        segno.make(self.data, error="l", micro=False).save(out, kind="png", scale=scale, border=4)
        return out.getvalue()

    def svg(self, scale: int = 6) -> str:
        out = io.BytesIO()
        segno.make(self.data, error="l", micro=False).save(out, kind="svg", scale=scale, border=4, xmldecl=False)
        return out.getvalue().decode()

    def terminal(self) -> str:
        """Half-block rendering: two QR rows per text line, readable by phone cameras."""
        qr = segno.make(self.data, error="l", micro=False)
        rows = [[bool(v) for v in row] for row in qr.matrix_iter(scale=1, border=2)]
        if len(rows) % 2:
            rows.append([False] * len(rows[0]))
        chars = {(False, False): "█", (True, True): " ", (True, False): "▄", (False, True): "▀"}
        return "\n".join(
            "".join(chars[(top, bottom)] for top, bottom in zip(rows[i], rows[i + 1], strict=True))
            for i in range(0, len(rows), 2)
        )
