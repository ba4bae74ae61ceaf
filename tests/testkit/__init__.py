"""What the tests and benchmarks share and the product never ships: the plain Baileys client and
its Node oracles, a raw WhatsApp Web client, the kill-loop harness, free ports, paths."""
