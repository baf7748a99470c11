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


def test_session_events_redact_runs_once_per_text() -> None:
    seen: list[str] = []

    def redact(text: str) -> str:
        seen.append(text)
        return text.replace("s3cret", "'<redacted>'")

    events = SessionEvents("postgres", redact)
    decision = Decision("allow", "default", "allowed")
    for _ in range(3):
        event = events.statement(
            _Subject(), "ALTER ROLE a PASSWORD s3cret", None, decision, "execute"
        )
        assert event.statement == "ALTER ROLE a PASSWORD '<redacted>'"
    assert seen == ["ALTER ROLE a PASSWORD s3cret"]


def test_session_events_redact_cache_stays_bounded() -> None:
    calls = 0

    def redact(text: str) -> str:
        nonlocal calls
        calls += 1
        return text.upper()

    events = SessionEvents("postgres", redact)
    texts = [f"select {n}" for n in range(1000)]
    assert [events.redact(t) for t in texts] == [t.upper() for t in texts]
    assert calls == 1000
    assert len(events._redacted) <= 64


def test_session_events_unparsed_secret_keeps_no_parser_message() -> None:
    from pamwire.rules.engine import Decision
    from pamwire.sql.redact import redact_pg

    events = SessionEvents("postgres", redact_pg)
    text = "ALTER ROLE bob PASSWORD 'Hunter2Secret"
    message = 'unterminated quoted string at or near "\'Hunter2Secret"'
    decision = Decision("deny", "unparsable", message)
    event = events.statement(_Subject(), text, None, decision, "query")
    assert "Hunter2Secret" not in repr(event)
    assert event.message is not None and "could not be parsed" in event.message
