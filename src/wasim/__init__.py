"""wasim: an offline WhatsApp Web server that real, unmodified Baileys links to and chats through.

The protocol core (`wasim.protocol`) is sans-I/O; `wasim.server` wraps it in asyncio.
"""
