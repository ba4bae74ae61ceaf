"""What the application layer refuses, as one exception with a sentence and a kind. The gateway
turns the kind into an HTTP status, the HTTP client turns the status back into the kind, and the
CLI prints the sentence: so each refusal reads the same whichever way it was asked."""

from __future__ import annotations

from enum import IntEnum

from cortask.channels.whatsapp.authstore import AuthStoreError
from cortask.channels.whatsapp.errors import ChannelError, NotLinked, SidecarError
from cortask.store import StoreError
from cortask.store.errors import NotFound


class Kind(IntEnum):
    """Each kind is the HTTP status the gateway answers with."""

    INVALID = 400  # the request is wrong: the sentence says what to fix
    FORBIDDEN = 403  # allowed, but not from where it was asked (e.g. the command agent over HTTP)
    NOT_FOUND = 404
    CONFLICT = 409  # not possible in the current state (not added, not linked, link in use…)
    FAILED = 500


class AppError(Exception):
    def __init__(self, message: str, kind: Kind = Kind.CONFLICT) -> None:
        super().__init__(message)
        self.kind = kind


# Exceptions from below the application layer that are answers, not bugs.
EXPECTED: tuple[type[Exception], ...] = (
    AppError, StoreError, ValueError, NotLinked, ChannelError, AuthStoreError, SidecarError,
)  # fmt: skip


def classify(exc: Exception) -> AppError:
    """The application error for an exception of one of the `EXPECTED` types."""
    if isinstance(exc, AppError):
        return exc
    if isinstance(exc, NotFound):
        return AppError(str(exc), Kind.NOT_FOUND)
    if isinstance(exc, ValueError):  # invalid phone, unknown permission, bad agent settings, config…
        return AppError(str(exc), Kind.INVALID)
    if isinstance(exc, StoreError):
        return AppError(str(exc), Kind.FAILED)
    return AppError(str(exc), Kind.CONFLICT)
