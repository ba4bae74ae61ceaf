"""The gateway's REST API fuzzed from its own OpenAPI schema (schemathesis).

The real gateway runs as `cortask demo` (wasim on loopback as its WhatsApp, a temporary
CORTASK_HOME), so nothing real is contacted. Every operation gets generated requests, valid and
not; every answer must be: never a 5xx, a status the schema documents, a body that matches the
schema, and an error as JSON with a sentence saying what to fix.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from testkit.gateway import bearer
from testkit.paths import ROOT
from testkit.ports import free_port

from cortask.gateway.app import create_app
from cortask.service import CortaskService

pytestmark = pytest.mark.e2e


def _openapi() -> dict[str, Any]:
    """The schema the running gateway serves at /openapi.json (building the app starts nothing)."""
    app = create_app(CortaskService(Path("/nonexistent-cortask-home")), token="only-the-schema-is-built-here")
    return dict(app.openapi())


# The event stream never ends by design; it is exercised by test_gateway_cli.py.
schema = schemathesis.openapi.from_dict(_openapi()).exclude(path="/api/events")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """The demo's URL and the bearer header a user's CLI would send (from its token file)."""
    home = tmp_path_factory.mktemp("api-fuzz") / "home"
    env = {**os.environ, "CORTASK_HOME": str(home)}
    env.pop("CORTASK_TOKEN", None)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cortask", "demo", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        assert line, f"the demo exited early with {proc.wait()}"
        if "control API" in line:
            break
    yield f"http://127.0.0.1:{port}", bearer(home)
    proc.terminate()
    assert proc.wait(30) == 0


def test_the_schema_fuzzed_is_the_one_served(gateway: tuple[str, dict[str, str]]) -> None:
    url, headers = gateway
    assert httpx.get(url + "/openapi.json", headers=headers).json() == _openapi()


def errors_are_json_sentences(ctx: Any, response: Any, case: Any) -> bool | None:
    """A 4xx answer is {"error": "<a sentence saying what is wrong or what to do>"}."""
    if response.status_code < 400:
        return None
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, f"error body is not {{'error': ...}}: {body!r}"
    sentence = body["error"]
    assert isinstance(sentence, str) and len(re.findall(r"[A-Za-z]{2,}", sentence)) >= 3, (
        f"error is not a sentence: {sentence!r}"
    )
    return True


def no_server_error(ctx: Any, response: Any, case: Any) -> bool | None:
    assert response.status_code < 500, f"{response.status_code}: {response.text[:500]}"
    return True


SEEN: dict[str, set[int]] = {}  # "METHOD /path" -> statuses answered


def record_status(ctx: Any, response: Any, case: Any) -> bool | None:
    SEEN.setdefault(f"{case.method.upper()} {case.path}", set()).add(response.status_code)
    return True


CHECKS = [
    record_status,
    no_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    errors_are_json_sentences,
]


@schema.parametrize()
@hypothesis.settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
)
def test_api_answers_any_request_without_a_5xx_and_as_documented(
    case: Any, gateway: tuple[str, dict[str, str]]
) -> None:
    url, headers = gateway
    case.call_and_validate(base_url=url, headers=headers, checks=CHECKS, timeout=60)


def test_the_fuzzer_reached_the_handlers() -> None:
    """Runs after the fuzzing above: it must have got past validation into the real code."""
    print({k: sorted(v) for k, v in sorted(SEEN.items())})
    assert 400 in SEEN["POST /api/whatsapp/contacts"], SEEN  # valid numbers: see test_phone_fuzz.py
    assert 200 in SEEN["PUT /api/whatsapp/settings"], SEEN
    assert 200 in SEEN["GET /api/sessions/{session_id}/history"], SEEN
    assert 200 in SEEN["PUT /api/whatsapp/allowed-users"], SEEN
    assert 200 in SEEN["POST /api/whatsapp/validate-phone"], SEEN


def test_every_success_body_is_described() -> None:
    """Each operation states the model of its success body, so the checks above validate it."""
    for path, operations in _openapi()["paths"].items():
        for method, operation in operations.items():
            success = {k: v for k, v in operation["responses"].items() if k.startswith("2")}
            assert success, f"{method.upper()} {path} documents no success answer"
            for answer in success.values():
                (media,) = answer["content"].values()
                assert media["schema"] and media["schema"] != {}, f"{method.upper()} {path}: {answer}"
