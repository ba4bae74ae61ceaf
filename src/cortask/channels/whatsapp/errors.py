"""The channel's exceptions, apart from the modules that raise them: the application layer maps
them to its errors, and importing them must not load the channel, the sidecar protocol or the
QR library (`cortask serve` says ready sooner without them, issue #18)."""

from __future__ import annotations


class NotLinked(Exception):
    """Start needs a linked device; the message says how to link one."""


class ChannelError(Exception):
    pass


class SidecarError(Exception):
    """The sidecar cannot run or stopped working; the message says what to do."""
