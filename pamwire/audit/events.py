"""The audit trail's records: an event per statement or session step, and completions.

The field list is schema version 1; docs/audit.md describes every field. A change to
these records needs a new SCHEMA_VERSION and a migration in the store.
"""

from __future__ import annotations

import uuid

import attrs

SCHEMA_VERSION = 1

EVENT_KINDS = frozenset(
    {"statement", "session_start", "session_end", "login", "login_failed"}
)
VERDICTS = ("allow", "deny", "audit")
OUTCOMES = frozenset({"ok", "error", "skipped", "cancelled", "unknown"})


def new_event_id() -> str:
    """Return a fresh event id: 32 lowercase hex digits of a random UUID."""
    return uuid.uuid4().hex


@attrs.frozen
class AuditEvent:
    """What pamwire knew about a statement or session step before acting on it."""

    event_id: str
    time: float
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


@attrs.frozen
class Completion:
    """How the server answered the statement of the event with this id."""

    event_id: str
    duration_ms: float
    outcome: str
    sqlstate: str | None
    rows: int | None


@attrs.frozen
class AuditRecord:
    """An event as read back from the store, with its completion if one was written."""

    event: AuditEvent
    duration_ms: float | None = None
    outcome: str | None = None
    sqlstate: str | None = None
    rows: int | None = None
