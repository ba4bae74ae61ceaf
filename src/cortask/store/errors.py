"""What can go wrong in the store; every message is a sentence saying what happened and what to do.

::

    StoreError
     ├── DatabaseUnusable          the file cannot be used as Cortask's database
     │    └── SchemaTooNew         written by a newer Cortask
     ├── InvalidInput (ValueError) what was asked for cannot be stored as given
     │    ├── InvalidPhone         also an InvalidPhoneNumber (the number is not usable)
     │    ├── Duplicate            a workspace name or a contact's number is taken
     │    └── NotFound             no such workspace, contact, journal entry or outbox item
     ├── DatabaseFailed            a read or write failed (disk full, I/O error, …)
     │    └── StoreBusy            another process kept the database locked too long
     ├── JournalStateError         a journal entry cannot move to the requested state
     └── StoreClosed               the store was used after close()
"""

from __future__ import annotations

from cortask.contacts.phone import InvalidPhoneNumber

__all__ = [
    "DatabaseFailed",
    "DatabaseUnusable",
    "Duplicate",
    "InvalidInput",
    "InvalidPhone",
    "JournalStateError",
    "NotFound",
    "SchemaTooNew",
    "StoreBusy",
    "StoreClosed",
    "StoreError",
]


class StoreError(Exception):
    """Base class of everything the store raises on purpose."""


class DatabaseUnusable(StoreError):
    """The database file cannot be opened as Cortask's database (not SQLite, unreadable, …)."""


class SchemaTooNew(DatabaseUnusable):
    """The database was written by a newer Cortask; this one must not touch it."""

    def __init__(self, message: str, *, found: int, supported: int) -> None:
        super().__init__(message)
        self.found = found
        self.supported = supported


class InvalidInput(StoreError, ValueError):
    """The request cannot be stored as given (a bad value, a duplicate, an unknown id)."""


class InvalidPhone(InvalidInput, InvalidPhoneNumber):
    """A phone number that `normalize_phone` refused; catchable as either base class."""


class Duplicate(InvalidInput):
    """A unique value (workspace name, contact number) is already taken."""


class NotFound(InvalidInput):
    """The workspace, contact, journal entry or outbox item asked for does not exist."""


class DatabaseFailed(StoreError):
    """SQLite could not complete a read or write (disk full, I/O error, locked)."""


class StoreBusy(DatabaseFailed):
    """Another process held the write lock for longer than the busy timeout."""


class JournalStateError(StoreError):
    """A journal entry cannot move to the requested state (e.g. answering it twice)."""


class StoreClosed(StoreError):
    """The store was used after it was closed."""
