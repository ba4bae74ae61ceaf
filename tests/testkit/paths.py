"""Where things are in the checkout, for tests and benchmarks."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SIDECAR_DIR = ROOT / "src" / "cortask" / "channels" / "whatsapp" / "sidecar"
# The Node oracles and the plain Baileys client; their node_modules is a link to the sidecar's.
NODE_DIR = Path(__file__).resolve().parent / "node"
