"""The line protocol between Python and the sidecar, fed bad lines in both directions.

Python → sidecar: the real sidecar (node, real Baileys), started with the command and environment
`Sidecar` uses, gets malformed, truncated, oversized, unknown and mistyped lines and binary
garbage. It must answer each with a clear error in protocol form, keep stdout one JSON object per
line, stay up, answer a good command afterwards, and touch no file.

Sidecar → Python: a scripted stand-in for the sidecar prints bad lines to the real `Sidecar`
reader, which must log them and keep going, answer the auth store's requests safely, and never
let a key name reach the file system.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cortask.channels.whatsapp import wire
from cortask.channels.whatsapp.authstore import AuthStore
from cortask.channels.whatsapp.sidecar import Sidecar, SidecarInstall, locate_sidecar

pytestmark = pytest.mark.e2e

BIG = 20 * 1024 * 1024  # far larger than any line of the protocol, within the cap
HUGE = 65 * 1024 * 1024  # beyond the sidecar's 64 MiB cap on a line

# (line as sent, words its error must contain). Each must be answered with exactly one error.
BAD_LINES: list[tuple[bytes, str]] = [
    (b"{not json", "not JSON"),
    (b'{"id":1,"cmd":"ping"', "not JSON"),  # truncated
    (b'{"id":1,"cmd":"pi', "not JSON"),
    (b'{"id":1,"cmd":"ping",', "not JSON"),
    (b"null", "JSON object"),
    (b"42", "JSON object"),
    (b'"ping"', "JSON object"),
    (b'[{"id":1,"cmd":"ping"}]', "JSON object"),
    (b"true", "JSON object"),
    (b'{"id":2,"cmd":"launch_missiles"}', "unknown command"),
    (b'{"id":3,"cmd":"__proto__"}', "unknown command"),
    (b'{"id":3,"cmd":"constructor"}', "unknown command"),
    (b'{"id":3,"cmd":"toString"}', "unknown command"),
    (b'{"id":3,"cmd":"hasOwnProperty"}', "unknown command"),
    (b'{"id":4}', '"cmd"'),
    (b'{"id":4,"cmd":7}', '"cmd"'),
    (b'{"id":4,"cmd":["ping"]}', '"cmd"'),
    (b'{"id":"x","cmd":"ping"}', '"id"'),
    (b'{"id":-1,"cmd":"ping"}', '"id"'),
    (b'{"id":1.5,"cmd":"ping"}', '"id"'),
    (b'{"id":1e300,"cmd":"ping"}', '"id"'),
    (b'{"id":{"a":1},"cmd":"ping"}', '"id"'),
    (b'{"id":5,"cmd":"send_text","jid":5,"text":"hi"}', '"jid"'),
    (b'{"id":5,"cmd":"send_text","jid":{"user":"x"},"text":"hi"}', '"jid"'),
    (b'{"id":5,"cmd":"send_text","jid":"4915123456789@s.whatsapp.net"}', '"text"'),
    (b'{"id":5,"cmd":"send_text","jid":"4915123456789@s.whatsapp.net","text":42}', '"text"'),
    (b'{"id":5,"cmd":"send_text","jid":"4915123456789@s.whatsapp.net","text":"hi","messageId":[1]}', '"messageId"'),
    (b'{"id":6,"cmd":"presence","type":"dancing","jid":"4915123456789@s.whatsapp.net"}', '"type"'),
    (b'{"id":6,"cmd":"presence"}', '"type"'),
    (b'{"id":7,"cmd":"ack","seq":"abc"}', '"seq"'),
    (b'{"id":7,"cmd":"ack","seq":-1}', '"seq"'),
    (b'{"id":7,"cmd":"ack"}', '"seq"'),
    (b'{"id":8,"cmd":"read","keys":"all"}', '"keys"'),
    (b'{"id":8,"cmd":"read","keys":[]}', '"keys"'),
    (b'{"id":8,"cmd":"read","keys":[{"id":"x"}]}', '"keys"'),
    (b'{"id":9,"cmd":"lid_for_phone","jid":1}', '"jid"'),
    (b'{"id":9,"cmd":"phone_for_lid"}', '"jid"'),
    # connect must never start a socket on a mistyped request (without a sandbox it would go to
    # WhatsApp itself: these all carry one, or a field that is refused before anything starts)
    (b'{"id":10,"cmd":"connect","sandbox":"ws://127.0.0.1:1/ws/chat"}', '"sandbox"'),
    (b'{"id":10,"cmd":"connect","sandbox":{"url":"http://127.0.0.1:1/","rootKey":"00"}}', '"sandbox"'),
    (b'{"id":10,"cmd":"connect","sandbox":{"url":"ws://127.0.0.1:1/ws/chat","rootKey":"zz"}}', '"sandbox"'),
    (
        b'{"id":10,"cmd":"connect","sandbox":{"url":"ws://127.0.0.1:1/ws/chat","rootKey":"00"},"qrTimeoutMs":"soon"}',
        '"qrTimeoutMs"',
    ),
    (
        b'{"id":10,"cmd":"connect","sandbox":{"url":"ws://127.0.0.1:1/ws/chat","rootKey":"00"},"keepAliveMs":-5}',
        '"keepAliveMs"',
    ),
    (
        b'{"id":10,"cmd":"connect","sandbox":{"url":"ws://127.0.0.1:1/ws/chat","rootKey":"00"},"connectTimeoutMs":0.5}',
        '"connectTimeoutMs"',
    ),
    (b'{"re":77,"ok":true,"result":{}}', "no request 77"),
    (b'{"re":"x","ok":true}', '"re"'),
    (b'{"re":null}', '"re"'),
    (bytes(b for b in range(256) if b != 10), "UTF-8"),
    (b"\xff\xfe\x00{}", "UTF-8"),
    (b"\x00\x01\x02", "not JSON"),
    (b"[" * 200_000, "not JSON"),
    (b'{"id":11,"cmd":"nope","deep":' + b"[" * 200_000 + b"]" * 200_000 + b"}", "unknown command"),
    (b"y" * BIG, "not JSON"),
    (b'{"id":12,"cmd":"ping","pad":"' + b"x" * HUGE + b'"}', "longer than"),
    (b"y" * HUGE, "longer than"),
]

# Lines that carry nothing: no answer at all, and no harm.
BLANK_LINES = [b"", b"   ", b"\t", b"\r"]

# Commands that look like paths: still only errors, and no file appears anywhere.
PATH_LIKE = [
    b'{"id":20,"cmd":"send_text","jid":"../../x@s.whatsapp.net","text":"hi","messageId":"../../x"}',
    b'{"id":21,"cmd":"lid_for_phone","jid":"/etc/passwd@lid"}',
    b'{"id":22,"cmd":"read","keys":[{"id":"../../../x","remoteJid":"../x@s.whatsapp.net"}]}',
]


class RawSidecar:
    """The real sidecar on raw pipes: we write bytes and read every line it prints."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.printed: list[bytes] = []  # every stdout line, for the one-JSON-per-line check
        self._next_id = 1000

    @classmethod
    async def start(cls, auth_dir: Path) -> RawSidecar:
        store = AuthStore.open(auth_dir)
        store.close()
        argv, cwd, env = Sidecar(locate_sidecar(), store, log_level="warn").launch()
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            limit=1024 * 1024,
        )
        raw = cls(proc)
        hello = await raw.read()
        assert hello["event"] == "hello" and hello["protocol"] == 1, hello
        return raw

    async def read(self) -> dict[str, Any]:
        assert self.proc.stdout
        async with asyncio.timeout(30):
            line = await self.proc.stdout.readline()
        assert line.endswith(b"\n"), f"the sidecar's stdout ended or broke a line: {line[:200]!r}"
        self.printed.append(line)
        msg = json.loads(line)
        assert isinstance(msg, dict), line
        return msg

    async def send(self, data: bytes) -> None:
        assert self.proc.stdin
        self.proc.stdin.write(data)
        await self.proc.stdin.drain()

    async def ping(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Send a good command; return its answer and whatever else was printed before it."""
        self._next_id += 1
        ping_id = self._next_id
        await self.send(b'{"id":%d,"cmd":"ping"}\n' % ping_id)
        others = []
        while (msg := await self.read()).get("re") != ping_id:
            others.append(msg)
        return msg, others

    async def answers_to(self, line: bytes) -> list[dict[str, Any]]:
        """Send one line and a ping; return what was printed besides the ping's answer."""
        await self.send(line + b"\n")
        answer, others = await self.ping()
        assert answer == {"re": self._next_id, "ok": True, "result": {"connected": False}}, answer
        return others


def error_text(msg: dict[str, Any]) -> str:
    """The sentence of an error in protocol form (a refused command or a protocol_error event)."""
    if msg.get("event") == "protocol_error":
        return str(msg["message"])
    assert msg.get("ok") is False and isinstance(msg.get("re"), int), msg
    return str(msg["error"])


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


@pytest.fixture
async def raw_sidecar(tmp_path: Path) -> AsyncIterator[RawSidecar]:
    raw = await RawSidecar.start(tmp_path / "auth")
    yield raw
    if raw.proc.returncode is None:
        raw.proc.kill()
        await raw.proc.wait()


async def test_every_bad_line_gets_a_clear_error_and_the_sidecar_keeps_going(
    raw_sidecar: RawSidecar, tmp_path: Path
) -> None:
    before = files_under(tmp_path)
    for line, words in BAD_LINES:
        answers = await raw_sidecar.answers_to(line)
        assert len(answers) == 1, (line[:80], answers)
        text = error_text(answers[0])
        assert words in text, (line[:80], text)
        assert len(text) < 1000, "an error quotes at most a little of the line"
    # a large line that is good is still served (a keys.get answer for a big group can be MBs)
    await raw_sidecar.send(b'{"id":13,"cmd":"ping","pad":"' + b"x" * BIG + b'"}\n')
    assert await raw_sidecar.read() == {"re": 13, "ok": True, "result": {"connected": False}}
    for line in BLANK_LINES:
        assert await raw_sidecar.answers_to(line) == [], line
    for line in PATH_LIKE:
        [answer] = await raw_sidecar.answers_to(line)
        assert answer["ok"] is False and "not connected" in answer["error"], answer
    assert raw_sidecar.proc.returncode is None, "the sidecar exited on bad input"
    assert files_under(tmp_path) == before, "bad input made the sidecar create or remove files"
    # stdout stayed the protocol: one JSON object per line, nothing else
    assert all(isinstance(json.loads(line), dict) for line in raw_sidecar.printed)
    await raw_sidecar.send(b'{"id":1,"cmd":"exit"}\n')
    assert await raw_sidecar.read() == {"re": 1, "ok": True, "result": {}}
    assert await raw_sidecar.proc.wait() == 0


async def test_a_burst_of_bad_lines_in_one_write_is_answered_line_by_line(raw_sidecar: RawSidecar) -> None:
    small = [(line, words) for line, words in BAD_LINES if len(line) < 100_000]
    # one write, and a line split across writes, as a pipe may deliver them
    burst = b"".join(line + b"\n" for line, _ in small)
    await raw_sidecar.send(burst[:1000])
    await raw_sidecar.send(burst[1000:])
    answer, others = await raw_sidecar.ping()
    assert answer["ok"] is True
    while len(others) < len(small):  # a refused command may be answered after the ping
        others.append(await raw_sidecar.read())
    assert len(others) == len(small)
    assert all(error_text(msg) for msg in others)
    assert raw_sidecar.proc.returncode is None


# --- the other direction: a stand-in sidecar prints bad lines to Python ---------------------

STAND_IN = textwrap.dedent(
    """
    // Prints hello, then the bytes of bad.bin as they are, then a good event; then answers
    // ping and reports every answer Python sends back to its requests. Both reports ride in a
    // "lid" event, whose mapping Python passes on untouched.
    import fs from 'node:fs';
    import readline from 'node:readline';
    const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
    out({ event: 'hello', protocol: 1, baileys: 'stand-in', node: process.version });
    process.stdout.write(fs.readFileSync(new URL('./bad.bin', import.meta.url)));
    out({ event: 'lid', mapping: { marker: 'after-the-bad-lines' } });
    readline.createInterface({ input: process.stdin }).on('line', (line) => {
      const msg = JSON.parse(line);
      if (msg.cmd === 'ping') out({ re: msg.id, ok: true, result: { connected: false } });
      else if (msg.cmd === 'exit') { out({ re: msg.id, ok: true, result: {} }); setTimeout(() => process.exit(0), 20); }
      else if (msg.re !== undefined) out({ event: 'lid', mapping: { answer: msg } });
    });
    """
)

# Requests the stand-in makes of Python's auth store, with ids 1…: each must be answered.
STORE_REQUESTS: list[dict[str, Any]] = [
    {"req": 1, "op": "keys.set", "items": [["session", "../../x", '{"v":1}'], ["session", "/tmp/abs", '{"v":2}']]},
    {"req": 2, "op": "keys.get", "type": "session", "ids": ["../../x", "/tmp/abs", "nope"]},
    {"req": 3, "op": "keys.set", "items": [["../../x", "a", "{}"]]},  # a key type that is a path
    {"req": 4, "op": "keys.get", "type": "../../etc", "ids": ["passwd"]},
    {"req": 5, "op": "keys.get", "type": "session", "ids": 5},
    {"req": 6, "op": "keys.set", "items": [["session"]]},
    {"req": 7, "op": "creds.set", "creds": "{not json"},
    {"req": 8, "op": "unlink", "path": "../../x"},
    {"req": 9},
    {"req": 10, "op": "sent.get"},
    {"req": 11, "op": "keys.set", "items": [["session", "big", "s" * 5000]]},
    {"req": 12, "op": "keys.get", "type": "session", "ids": ["big"]},  # an answer over the line cap
]


def bad_output_lines(max_line: int) -> bytes:
    lines = [
        b"not json at all",
        b"\xff\xfe garbage \x00\x01",
        b"",
        b"null",
        b"[1, 2, 3]",
        b'{"re": [1], "ok": true}',  # an id Python cannot look up
        b'{"re": {"a": 1}, "ok": false}',
        b'{"re": 999999, "ok": true, "result": 5}',
        b'{"req": [1], "op": "creds.get"}',
        b'{"req": "1", "op": "creds.get"}',
        b'{"event": "protocol_error", "message": "a line Python never sent"}',
        b'{"event": 5}',
        b"{" * 100_000,
        b'{"event": "padding", "x": "' + b"z" * (3 * max_line) + b'"}',
        b"q" * (2 * max_line),
    ]
    lines += [json.dumps(request).encode() for request in STORE_REQUESTS]
    return b"".join(line + b"\n" for line in lines)


async def test_python_logs_bad_lines_from_the_sidecar_and_keeps_serving(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG, logger="cortask.whatsapp.sidecar")
    monkeypatch.setattr("cortask.channels.whatsapp.sidecar.MAX_LINE", 4096)  # what the sidecar reads
    max_line = 1024 * 1024
    stand_in = tmp_path / "stand-in"
    stand_in.mkdir()
    (stand_in / "index.mjs").write_text(STAND_IN)
    (stand_in / "bad.bin").write_bytes(bad_output_lines(max_line))
    node = shutil.which("node")
    assert node is not None
    store = AuthStore.open(tmp_path / "home" / "auth")
    before = files_under(tmp_path)
    sidecar = Sidecar(SidecarInstall(stand_in, node, "stand-in"), store, max_line=max_line)
    await sidecar.start()
    try:
        answers: dict[int, dict[str, Any]] = {}
        markers = []
        async with asyncio.timeout(30):
            while len(answers) < len(STORE_REQUESTS):
                event = await sidecar.events.get()
                assert isinstance(event, wire.Lid), event
                assert isinstance(event.mapping, dict)
                if "answer" in event.mapping:
                    answer = event.mapping["answer"]
                    answers[answer["re"]] = answer
                else:
                    markers.append(event.mapping["marker"])
        assert "after-the-bad-lines" in markers  # the reader got past every bad line
        assert await sidecar.request(wire.Ping(), timeout=10) == wire.Pong(connected=False)

        assert answers[1]["ok"] is True
        assert answers[2]["result"]["values"] == {"../../x": '{"v":1}', "/tmp/abs": '{"v":2}'}
        for refused, words in [(3, "unknown Signal key type"), (4, "unknown Signal key type"), (8, "unknown store")]:
            assert answers[refused]["ok"] is False and words in answers[refused]["error"], answers[refused]
        assert all(answers[n]["ok"] is False and answers[n]["error"] for n in (5, 6, 7, 9, 10))
        # too large to send: refused in so many words rather than dropped and waited for forever
        assert answers[11]["ok"] is True
        assert answers[12]["ok"] is False and "more than the sidecar reads" in answers[12]["error"]
        # key names are rows in SQLite, never file names: nothing appeared outside the store's files
        assert files_under(tmp_path) - before <= {
            tmp_path / "home" / "auth" / f for f in ("auth.db-wal", "auth.db-shm")
        }
        assert not (tmp_path / "x").exists() and not (tmp_path / "home" / "x").exists()
        assert store.creds() is None, "an unreadable creds.set must not be stored"

        logged = caplog.text
        assert "not JSON" in logged and "longer than" in logged and "refused a line from us" in logged
    finally:
        await sidecar.stop()
        store.close()
    assert sidecar.running is False
