"""Statement events as sessions build them: what an override leaves in the trail."""

from __future__ import annotations

import attrs

from pamwire.rules.engine import Decision, Lift
from pamwire.server.session_events import SessionEvents


@attrs.define
class _Subject:
    id: str = "abc123"
    user: str | None = "dana"
    target: None = None
    peer: str = "127.0.0.1:5000"
    application: str | None = None
    login: None = None


def test_session_events_statement_names_lifted_deny_in_detail() -> None:
    events = SessionEvents("mysql", lambda text: text)
    decision = Decision(
        "allow",
        "dba-truncate-staging",
        "allow by rule dba-truncate-staging",
        (Lift("baseline/no-truncate", "team/dba-truncate-staging"),),
    )
    event = events.statement(_Subject(), "TRUNCATE t", None, decision, "query")
    assert (event.verdict, event.rule) == ("allow", "dba-truncate-staging")
    assert event.detail == (
        "deny rule baseline/no-truncate lifted by team/dba-truncate-staging"
    )


def test_session_events_statement_without_override_has_no_detail() -> None:
    events = SessionEvents("postgres", lambda text: text)
    decision = Decision("deny", "no-truncate", "TRUNCATE is not allowed")
    event = events.statement(_Subject(), "TRUNCATE t", None, decision, "query")
    assert event.detail is None
