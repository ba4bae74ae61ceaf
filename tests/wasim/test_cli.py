"""The wasim CLI as scripts and people use it: serve, scan, devices, fault — real processes."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from testkit.baileys import BaileysDriver
from testkit.cli import wasim_cli as _wasim

pytestmark = pytest.mark.e2e

StartBaileys = Callable[..., Awaitable[BaileysDriver]]


async def test_serve_scan_devices_fault_and_clean_exit(tmp_path: Path, make_baileys: StartBaileys) -> None:
    state = tmp_path / "state"
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wasim", "serve", "--port", "0", "--state", str(state),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        first = json.loads(await asyncio.wait_for(server.stdout.readline(), 30))
        assert set(first) == {"url", "root_public_key", "control_url"}
        assert first["url"].startswith("ws://127.0.0.1:") and first["url"].endswith("/ws/chat")
        control = first["control_url"]

        client = await make_baileys()
        mark = await client.connect(first["url"], first["root_public_key"])
        qr = (await client.wait("qr", since=mark))["qr"]

        code, out, err = await _wasim("scan", "--control", control, "not a qr code")
        assert code != 0 and "not a WhatsApp linking QR code" in err

        code, out, err = await _wasim("scan", "--control", control, qr)
        assert code == 0, err
        assert json.loads(out)["device_jid"] == "15550001111:2@s.whatsapp.net"
        assert (await client.wait_close(mark))["statusCode"] == 515
        mark = await client.connect(first["url"], first["root_public_key"])
        await client.wait_open(mark)

        code, out, err = await _wasim("devices", "--control", control)
        assert code == 0, err
        [account] = json.loads(out)["accounts"]
        assert account["phone"] == "+15550001111"
        assert [(d["device"], d["linked"], d["connected"]) for d in account["devices"]] == [(2, True, True)]

        # Contacts: add one, it writes, Baileys answers, the inbox shows the reply; redelivery.
        code, out, err = await _wasim("contact", "add", "--control", control, "+4915123456789", "--name", "Ada")
        assert code == 0, err
        code, out, err = await _wasim("contact", "add", "--control", control, "12", "--name", "Bad")
        assert code != 0 and "E.164" in err

        # A contact registered under another address than the number people dial, as WhatsApp keeps
        # Mexican mobiles (521…): Baileys' own onWhatsApp finds it under that address, finds nobody
        # for an unregistered number, and its messages come from that address.
        lupita = ["+525512345678", "--name", "Lupita", "--address", "5215512345678"]
        code, out, err = await _wasim("contact", "add", "--control", control, *lupita)
        assert code == 0, err
        assert (json.loads(out)["phone"], json.loads(out)["dialled"]) == ("+5215512345678", ["+525512345678"])
        found = await client.command("onWhatsApp", numbers=["+525512345678", "+525587654321"])
        assert found["found"] == [{"jid": "5215512345678@s.whatsapp.net", "exists": True}]
        mark = client.mark()
        code, out, err = await _wasim("send", "--control", control, "--from", "+525512345678", "--text", "hola")
        assert code == 0, err
        hola = json.loads(out)["id"]
        upsert = await client.wait("upsert", lambda e: e["messages"][0]["key"]["id"] == hola, since=mark)
        assert upsert["messages"][0]["key"]["remoteJid"] == "5215512345678@s.whatsapp.net"
        mark = client.mark()
        code, out, err = await _wasim(
            "send", "--control", control, "--from", "+4915123456789", "--text", "hi from the CLI"
        )
        assert code == 0, err
        message_id = json.loads(out)["id"]
        upsert = await client.wait("upsert", lambda e: e["messages"][0]["key"]["id"] == message_id, since=mark)
        assert upsert["messages"][0]["message"]["conversation"] == "hi from the CLI"
        await client.command("send", jid="4915123456789@s.whatsapp.net", text="answer")
        for _ in range(100):
            code, out, err = await _wasim("inbox", "--control", control, "--contact", "+4915123456789")
            texts = [x.get("text") for x in json.loads(out)["inbox"] if x["type"] == "message"]
            if texts:
                break
        assert texts == ["answer"]
        mark = client.mark()
        code, out, err = await _wasim(
            "send", "--control", control, "--from", "+4915123456789", "--text", "x", "--count", "5"
        )
        assert code == 0, err
        burst = json.loads(out)["ids"]
        assert len(set(burst)) == 5
        for burst_id in burst:
            await client.wait("upsert", lambda e, i=burst_id: e["messages"][0]["key"]["id"] == i, since=mark)

        mark = client.mark()
        code, out, err = await _wasim("redeliver", "--control", control, "--id", message_id)
        assert code == 0, err
        await client.wait("upsert", lambda e: e["messages"][0]["key"]["id"] == message_id, since=mark)

        mark = client.mark()
        code, out, err = await _wasim("fault", "--control", control, "--code", "503")
        assert code == 0, err
        assert (await client.wait_close(mark))["statusCode"] == 503

        server.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(server.wait(), 15) == 0
        saved = json.loads((state / "wasim-state.json").read_text())
        assert saved["root"]["public"] == first["root_public_key"]
        assert [d["device_id"] for d in saved["accounts"][0]["devices"]] == [2]
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()


async def test_control_commands_explain_an_unreachable_server() -> None:
    code, _, err = await _wasim("devices", "--control", "http://127.0.0.1:9")
    assert code != 0 and "cannot reach the control API" in err
