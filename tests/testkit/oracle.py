"""A Node oracle (`testkit/node/*-oracle.mjs`: Baileys' own code answering for itself) as a child
process, asked one JSON line at a time: what the wasim tests compare our implementation with."""

from __future__ import annotations

import base64
import itertools
import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from wasim.signal import PreKeyBundle


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


def pre_key_bundle(b: Mapping[str, Any]) -> PreKeyBundle:
    """A bundle as libsignal-node writes it (keys in base64), for our side to start a session with."""
    pre_key = b.get("preKey")
    return PreKeyBundle(
        registration_id=b["registrationId"],
        identity_key=unb64(b["identityKey"]),
        signed_pre_key_id=b["signedPreKey"]["keyId"],
        signed_pre_key=unb64(b["signedPreKey"]["publicKey"]),
        signed_pre_key_signature=unb64(b["signedPreKey"]["signature"]),
        pre_key_id=None if pre_key is None else pre_key["keyId"],
        pre_key=None if pre_key is None else unb64(pre_key["publicKey"]),
    )


class OracleError(Exception):
    """The oracle refused a call: `name` is its error's name, and the message says the rest."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


class NodeOracle:
    """`node script`, its stderr kept in `stderr_path`; `call` sends one request and reads its answer."""

    def __init__(self, script: Path, stderr_path: Path) -> None:
        self._script = script
        self._stderr = stderr_path.open("wb")
        self._proc = subprocess.Popen(
            ["node", str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr
        )
        self._ids = itertools.count(1)

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        request_id = next(self._ids)
        self._proc.stdin.write(json.dumps({"id": request_id, "op": op, **args}).encode() + b"\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        assert line, f"{self._script.name} exited"
        reply: dict[str, Any] = json.loads(line)
        assert reply["id"] == request_id
        if not reply["ok"]:
            raise OracleError(reply["error"], reply["message"])
        return reply

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        self._proc.wait(timeout=10)
        self._stderr.close()
