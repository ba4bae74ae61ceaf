"""The sidecar protocol's types (wire.py): parsing, encoding, and agreement with the Node side."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from cortask.channels.whatsapp import wire
from cortask.channels.whatsapp.sidecar import PACKAGE_DIR


def node_tables() -> object:
    node = shutil.which("node")
    assert node is not None, "the sidecar needs Node"
    script = "import('./protocol.mjs').then((m) => process.stdout.write(JSON.stringify(m.describe())))"
    out = subprocess.run([node, "-e", script], cwd=PACKAGE_DIR, capture_output=True, text=True, timeout=30, check=True)
    return json.loads(out.stdout)


@pytest.mark.e2e  # starts a process
def test_the_node_side_and_python_describe_the_same_messages() -> None:
    # Every command, result, event, store request and answer, and every nested shape: the same
    # names, the same fields, the same required ones. Change one side alone and this fails.
    assert node_tables() == wire.describe()


def test_every_command_and_event_is_in_a_table() -> None:
    assert set(wire.COMMANDS) == {
        "connect", "send_text", "presence", "read", "lid_for_phone", "phone_for_lid",
        "ack", "logout", "ping", "close", "exit", "check_numbers", "pairing_code",
    }  # fmt: skip
    assert set(wire.EVENTS) == {
        "hello", "qr", "connection", "messages", "creds", "receipts", "lid", "fatal", "protocol_error",
        "code_refused",
    }  # fmt: skip
    assert (
        set(wire.REQUESTS) == set(wire.STORE_RESULTS) == {"keys.get", "keys.set", "creds.get", "creds.set", "sent.get"}
    )


def test_commands_encode_as_one_line_in_camel_case_without_absent_fields() -> None:
    line = wire.encode(wire.SendText("491@s.whatsapp.net", "hi", "3EB0AA"), 7)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {
        "id": 7,
        "cmd": "send_text",
        "jid": "491@s.whatsapp.net",
        "text": "hi",
        "messageId": "3EB0AA",
    }
    connect = wire.Connect(sandbox=wire.SandboxTarget("ws://h/ws/chat", "ab"), qr_timeout_ms=65000)
    assert json.loads(wire.encode(connect)) == {
        "id": 0, "cmd": "connect", "sandbox": {"url": "ws://h/ws/chat", "rootKey": "ab"}, "qrTimeoutMs": 65000,
    }  # fmt: skip
    read = wire.Read((wire.MessageKey("X", "g@g.us", participant="p@s.whatsapp.net", from_me=False),))
    assert json.loads(wire.encode(read))["keys"] == [
        {"id": "X", "remoteJid": "g@g.us", "participant": "p@s.whatsapp.net", "fromMe": False}
    ]
    assert json.loads(wire.encode(wire.Ack(3))) == {"id": 0, "cmd": "ack", "seq": 3}
    assert json.loads(wire.encode(wire.RequestPairingCode("4915123456789", "CORTASK1"), 8)) == {
        "id": 8, "cmd": "pairing_code", "phone": "4915123456789", "code": "CORTASK1",
    }  # fmt: skip


def test_check_numbers_asks_for_each_number_and_reads_each_answer() -> None:
    command = wire.CheckNumbers(("+525512345678", "+4915123456789"))
    assert json.loads(wire.encode(command, 9)) == {
        "id": 9, "cmd": "check_numbers", "numbers": ["+525512345678", "+4915123456789"],
    }  # fmt: skip
    answer = wire.parse(
        '{"re": 9, "ok": true, "result": {"numbers": ['
        '{"number": "+525512345678", "exists": true, "jid": "5215512345678@s.whatsapp.net", "lid": "77@lid"},'
        '{"number": "+4915123456789", "exists": false}]}}'
    )
    assert isinstance(answer, wire.Answer)
    found = wire.result_of(command, answer).numbers
    assert found == (
        wire.NumberFound("+525512345678", True, "5215512345678@s.whatsapp.net", "77@lid"),
        wire.NumberFound("+4915123456789", False),
    )
    bad = wire.parse('{"re": 9, "ok": true, "result": {"numbers": [{"number": "+52", "exists": "yes"}]}}')
    assert isinstance(bad, wire.Answer)
    with pytest.raises(wire.WireError, match="exists"):
        wire.result_of(command, bad)


def test_store_answers_carry_a_result_or_an_error() -> None:
    assert json.loads(wire.encode(wire.StoreAnswer(4, result=wire.KeysFound({"a": "b"})))) == {
        "re": 4, "ok": True, "result": {"values": {"a": "b"}},
    }  # fmt: skip
    assert json.loads(wire.encode(wire.StoreAnswer(5, result=wire.CredsFound(None)))) == {
        "re": 5,
        "ok": True,
        "result": {},
    }
    assert json.loads(wire.encode(wire.StoreAnswer(6, error="disk full"))) == {
        "re": 6,
        "ok": False,
        "error": "disk full",
    }


def test_events_parse_into_their_types() -> None:
    hello = wire.parse(b'{"event":"hello","protocol":1,"baileys":"7.0.0","node":"v22.0.0"}')
    assert hello == wire.Hello(1, "7.0.0", "v22.0.0")
    closed = wire.parse(
        '{"event":"connection","connection":"close","isNewLogin":false,"statusCode":515,'
        '"reason":"restart required","data":{"code":"515"},"ms":12}'
    )
    assert closed == wire.Connection(False, 12, "close", 515, "restart required", {"code": "515"})
    batch = wire.parse(
        b'{"event":"messages","seq":2,"type":"notify","messages":[{"key":{"id":"A","remoteJid":"x@lid"}}]}'
    )
    assert isinstance(batch, wire.Messages) and batch.seq == 2 and batch.messages[0]["key"]["id"] == "A"
    receipts = wire.parse(
        b'{"event":"receipts","receipts":[{"id":"A","remoteJid":"x@s.whatsapp.net","status":0,"error":"463"}]}'
    )
    assert receipts == wire.Receipts((wire.Receipt("A", "x@s.whatsapp.net", 0, "463"),))
    assert wire.parse(b'{"event":"creds","registered":true,"me":{"id":"1:2@s.whatsapp.net"}}') == wire.Creds(
        True, {"id": "1:2@s.whatsapp.net"}
    )
    assert wire.parse(b'{"event":"code_refused","message":"typed wrong"}') == wire.CodeRefused("typed wrong")


def test_store_requests_and_answers_parse() -> None:
    assert wire.parse(b'{"req":1,"op":"keys.set","items":[["session","a",null],["session","b","{}"]]}') == wire.KeysSet(
        1, (("session", "a", None), ("session", "b", "{}"))
    )
    assert wire.parse(b'{"req":2,"op":"sent.get","id":"X","jid":"y@lid"}') == wire.SentGet(2, "X", "y@lid")
    answer = wire.parse(b'{"re":3,"ok":true,"result":{"id":"X","remoteJid":"y@lid","timestamp":5}}')
    assert isinstance(answer, wire.Answer)
    assert wire.result_of(wire.SendText("y@lid", "hi"), answer) == wire.Sent("X", "y@lid", 5)
    assert wire.result_of(wire.Ping(), wire.Answer(4, True, {"connected": True})) == wire.Pong(True)
    assert wire.result_of(wire.Logout(), wire.Answer(5, True, {})) == wire.Done()


@pytest.mark.parametrize(
    ("line", "words", "req", "re"),
    [
        (b"{nope", "not JSON", None, None),
        (b"\xff\xfe", "not JSON", None, None),
        (b"[1]", "JSON object", None, None),
        (b'{"event":5}', "unknown event", None, None),
        (b'{"event":"dance"}', "unknown event", None, None),
        (b'{"event":"qr","qr":"x"}', "needs 'ms'", None, None),
        (b'{"event":"qr","qr":5,"ms":1}', "'qr' must be a string", None, None),
        (b'{"event":"qr","qr":"x","ms":true}', "'ms' must be a whole number", None, None),
        (b'{"event":"qr","qr":"x","ms":1,"extra":1}', "unknown field 'extra'", None, None),
        (b'{"event":"messages","seq":1,"type":"notify","messages":[5]}', "must be an object", None, None),
        (b'{"event":"receipts","receipts":[{"id":"A"}]}', "needs 'remoteJid'", None, None),
        (b'{"req":"1","op":"creds.get"}', '"req"', None, None),
        (b'{"req":-1,"op":"creds.get"}', '"req"', None, None),
        (b'{"req":9}', "unknown store operation", 9, None),
        (b'{"req":8,"op":"unlink","path":"../x"}', "unknown store operation", 8, None),
        (b'{"req":5,"op":"keys.get","type":"session","ids":5}', "'ids' must be a list", 5, None),
        (b'{"req":6,"op":"keys.set","items":[["session"]]}', "a list of 3", 6, None),
        (b'{"req":10,"op":"sent.get"}', "needs 'id'", 10, None),
        (b'{"re":[1],"ok":true}', '"re"', None, None),
        (b'{"re":7,"ok":true,"result":5}', "must be an object", None, 7),
        (b'{"re":7}', "needs 'ok'", None, 7),
    ],
)
def test_bad_lines_are_refused_with_a_clear_error(line: bytes, words: str, req: int | None, re: int | None) -> None:
    with pytest.raises(wire.WireError) as caught:
        wire.parse(line)
    assert words in str(caught.value)
    assert (caught.value.req, caught.value.re) == (req, re)


def test_a_bad_result_is_an_error_not_a_default() -> None:
    with pytest.raises(wire.WireError, match="needs 'connected'"):
        wire.result_of(wire.Ping(), wire.Answer(1, True, {}))


def test_a_message_key_is_read_leniently_from_a_raw_message() -> None:
    raw: wire.WAMessage = {
        "key": {"id": "A", "remoteJid": "x@lid", "fromMe": False, "remoteJidAlt": "1@s.whatsapp.net"}
    }
    assert wire.MessageKey.of(raw) == wire.MessageKey("A", "x@lid", from_me=False)
    assert wire.MessageKey.of({"key": {"id": "A"}}) is None
    assert wire.MessageKey.of({}) is None


def test_a_spilled_batch_is_typed_like_a_messages_event() -> None:
    batch = wire.spilled_batch({"type": "append", "messages": [{"key": {"id": "A", "remoteJid": "x@lid"}}]})
    assert batch.type == "append" and len(batch.messages) == 1
    with pytest.raises(wire.WireError):
        wire.spilled_batch({"messages": []})
