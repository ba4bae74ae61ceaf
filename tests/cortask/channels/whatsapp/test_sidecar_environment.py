"""Issue #12: the real sidecar process starts from an allow-list, so neither the gateway token nor
any agent key (by its usual name or one an agent setting names) is in its environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from cortask.agents import AgentConfig, build_agent
from cortask.channels.whatsapp.authstore import AuthStore
from cortask.channels.whatsapp.sidecar import Sidecar, locate_sidecar

SECRETS = {
    "CORTASK_TOKEN": "gateway-token-" + "g" * 40,
    "OPENAI_API_KEY": "sk-proj-openai-key-must-not-reach-node",
    "ANTHROPIC_API_KEY": "sk-ant-api03-anthropic-key-must-not-reach-node",
    "MY_AGENT_API_KEY": "sk-named-by-an-agent-setting",
    "HOOK_TOKEN": "webhook-token-named-by-a-setting",
    "AWS_SECRET_ACCESS_KEY": "an-unrelated-secret-of-the-owner",
}


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


@pytest.mark.e2e  # starts the real Node sidecar
async def test_the_sidecar_environment_holds_no_token_and_no_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("NODE_OPTIONS", "--no-warnings")  # Node's own options are kept
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    # The agents name these variables, and build from this very environment.
    for config in (
        AgentConfig("openai", {"model": "m", "base_url": "http://127.0.0.1:9/v1", "api_key_env": "MY_AGENT_API_KEY"}),
        AgentConfig("webhook", {"url": "http://127.0.0.1:9/h", "token_env": "HOOK_TOKEN"}),
    ):
        await build_agent(config).aclose()

    store = AuthStore.open(tmp_path / "whatsapp-auth")
    sidecar = Sidecar(locate_sidecar(), store, log_level="warn")
    try:
        await sidecar.start()
        assert sidecar.pid is not None and sidecar.hello is not None
        seen = environ_of(sidecar.pid)
    finally:
        await sidecar.stop()
        store.close()

    assert not set(SECRETS) & set(seen), sorted(seen)
    everything = "\0".join(f"{k}={v}" for k, v in seen.items())
    assert not [value for value in SECRETS.values() if value in everything]
    assert not [name for name in seen if "KEY" in name or "TOKEN" in name or "SECRET" in name]
    assert seen["PATH"] and seen["NODE_OPTIONS"] == "--no-warnings" and seen["LC_ALL"] == "C.UTF-8"
    assert seen["CORTASK_SIDECAR_LOG_LEVEL"] == "warn"
    assert set(seen) <= {
        "PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "TZ", "LANG", "LANGUAGE", "NODE_OPTIONS",
        "NODE_EXTRA_CA_CERTS", "NODE_PATH", "NODE_DEBUG", "UV_THREADPOOL_SIZE",
        "CORTASK_SIDECAR_LOG_LEVEL", "CORTASK_SIDECAR_SPILL_DIR", "MALLOC_ARENA_MAX",
        "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_",
    } | {name for name in seen if name.startswith("LC_")}  # fmt: skip
