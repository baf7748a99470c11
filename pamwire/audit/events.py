"""The audit trail's records: an event per statement or session step, and completions.

The field list is schema version 2; docs/audit.md describes every field. A change to
these records needs a new SCHEMA_VERSION and a migration in the store. Fields added
after version 1 have defaults, so producers that do not know them keep working.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import attrs

SCHEMA_VERSION = 2

EVENT_KINDS = frozenset(
    {"statement", "session_start", "session_end", "login", "login_failed"}
)
VERDICTS = ("allow", "deny", "audit")
OUTCOMES = frozenset({"ok", "error", "skipped", "cancelled", "unknown"})
PROTOCOLS = ("postgres", "mysql")


def new_event_id() -> str:
    """Return a fresh event id: 32 lowercase hex digits of a random UUID."""
    return uuid.uuid4().hex


def _names(value: Iterable[str]) -> tuple[str, ...]:
    # Sorted, so that the same set of names always encodes (and hashes) the same.
    return tuple(sorted(value))


def _params(value: Iterable[str | None] | None) -> tuple[str | None, ...] | None:
    return None if value is None else tuple(value)


@attrs.frozen
class AuditEvent:
    """What pamwire knew about a statement or session step before acting on it.

    The sequence number, writer id and hash are not part of the event: the writer
    assigns them when the event enters the trail (see pamwire/audit/chain.py).
    """

    event_id: str
    time: float = attrs.field(converter=float)
    kind: str
    session: str
    user: str | None
    target: str | None
    client_addr: str | None
    application: str | None
    statement: str | None = None
    verdict: str | None = None
    rule: str | None = None
    message: str | None = None
    statement_kind: str | None = None
    fingerprint: str | None = None
    operation: str | None = None
    detail: str | None = None
    # Added in schema version 2.
    grant: str | None = None
    approvers: tuple[str, ...] = attrs.field(default=(), converter=_names)
    protocol: str = "postgres"
    db_account: str | None = None
    tables_read: tuple[str, ...] = attrs.field(default=(), converter=_names)
    tables_written: tuple[str, ...] = attrs.field(default=(), converter=_names)
    functions: tuple[str, ...] = attrs.field(default=(), converter=_names)
    params: tuple[str | None, ...] | None = attrs.field(default=None, converter=_params)
    schema: int = SCHEMA_VERSION


@attrs.frozen
class Completion:
    """How the server answered the statement of the event with this id."""

    event_id: str
    duration_ms: float = attrs.field(converter=float)
    outcome: str
    sqlstate: str | None
    rows: int | None


@attrs.frozen
class AuditRecord:
    """An event as read back from the store, with its completion if one was written.

    `writer` and `seq` place the event in its hash chain (None only for a record
    that was never chained).
    """

    event: AuditEvent
    duration_ms: float | None = None
    outcome: str | None = None
    sqlstate: str | None = None
    rows: int | None = None
    writer: str | None = None
    seq: int | None = None
