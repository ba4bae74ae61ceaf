"""The WhatsApp channel: a personal WhatsApp account, linked as a device through Baileys.

Policy is pure and lives in `phone`, `access`, `inbound`, `reconnect` and `state` (no I/O, no
asyncio, time passed in as numbers). The I/O pieces (the sidecar process, the auth store, the
channel itself) import those; this package imports nothing on purpose, so importing a pure
module never starts or loads anything else.
"""
