"""The asyncio side of wasim: WebSocket server, connections, the simulated phone, control API."""

from wasim.server.app import Wasim

__all__ = ["Wasim"]
