"""Tests of the audit trail, and a helper that builds events for them."""

from __future__ import annotations

import itertools
from typing import Any

from pamwire.audit.events import AuditEvent, new_event_id

# 2026-12-04T10:00:00Z, a fixed base so that tests can name times.
BASE_TIME = 1796378400.0

_counter = itertools.count()


def make_event(**overrides: Any) -> AuditEvent:
    """A statement event with plausible values; keyword arguments replace fields."""
    fields: dict[str, Any] = {
        "event_id": new_event_id(),
        "time": BASE_TIME + next(_counter) * 1e-3,
        "kind": "statement",
        "session": "5e55",
        "user": "alice",
        "target": "prod",
        "client_addr": "127.0.0.1:54321",
        "application": "psql",
        "statement": "SELECT 1",
        "verdict": "allow",
        "statement_kind": "select",
        "operation": "query",
    }
    fields.update(overrides)
    return AuditEvent(**fields)
