"""Audit events as a client session builds them, for every protocol.

A session hands itself (its person, target, login and peer as they stand) and the
event's own fields; the event id is the session id and a counter, so building an
event needs no system call.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any, Protocol

import trio

from pamwire.audit.events import AuditEvent
from pamwire.audit.params import Params
from pamwire.config import Target
from pamwire.rules.engine import Decision
from pamwire.server.credentials import SessionLogin
from pamwire.sql.facts import StatementFacts

# Texts whose redaction a session remembers (a few prepared statements' worth).
_REDACTED_KEPT = 64


class EventSubject(Protocol):
    """What an event says about the session it belongs to."""

    id: str
    user: str | None
    target: Target | None
    peer: str
    application: str | None
    login: SessionLogin | None


_UNPARSED_SECRET = (
    "the statement could not be parsed; the parser's message is not kept "
    "because the statement carried a secret"
)


class SessionEvents:
    """Builds one session's events; `redact` cuts secrets from statement text."""

    def __init__(self, protocol: str, redact: Callable[[str], str]) -> None:
        self._protocol = protocol
        self._redact = redact
        self._numbers = itertools.count(1)
        # Redacted texts by original: a prepared statement runs the same text
        # again and again. Emptied when full, so it stays small.
        self._redacted: dict[str, str] = {}

    def redact(self, text: str) -> str:
        """The text with its secrets cut (see the redactor), remembered."""
        found = self._redacted.get(text)
        if found is None:
            if len(self._redacted) >= _REDACTED_KEPT:
                self._redacted.clear()
            found = self._redacted[text] = self._redact(text)
        return found

    def event(self, session: EventSubject, kind: str, **fields: Any) -> AuditEvent:
        login = session.login
        return AuditEvent(
            event_id=f"{session.id}{next(self._numbers):08x}",
            time=time.time(),
            kind=kind,
            session=session.id,
            user=session.user,
            target=session.target.name if session.target else None,
            client_addr=session.peer,
            application=session.application,
            grant=str(login.grant_id) if login and login.grant_id is not None else None,
            db_account=login.credential.user if login else None,
            protocol=self._protocol,
            **fields,
        )

    def statement(
        self,
        session: EventSubject,
        text: str,
        facts: StatementFacts | None,
        decision: Decision,
        operation: str,
        params: Params | None = None,
    ) -> AuditEvent:
        """A statement's event. Secrets (passwords in CREATE ROLE/USER, user
        mappings, connection strings) are cut from the stored text; the
        fingerprint, taken from the original, still correlates. ``detail`` names
        the deny rules an override lifted, and the rules that lifted them. params
        are the bound parameters as pamwire/audit/params.py keeps them."""
        stored = self.redact(text)
        message = decision.message
        if facts is None and message and stored != text:
            # The parser's message quotes the text where it stopped, which can
            # be inside the very literal the redaction removed.
            message = _UNPARSED_SECRET
        return self.event(
            session,
            "statement",
            statement=stored,
            verdict=decision.verdict,
            rule=decision.rule,
            message=message,
            detail=decision.lifted_text(),
            statement_kind=facts.kind if facts else None,
            fingerprint=facts.fingerprint if facts else None,
            operation=operation,
            tables_read=facts.tables_read if facts else (),
            tables_written=facts.tables_written if facts else (),
            functions=facts.functions if facts else (),
            params=params,
        )


def peer_address(stream: trio.SocketStream) -> str:
    """ "host:port" of the client, or "unknown" once the socket is gone."""
    try:
        host, port = stream.socket.getpeername()[:2]
    except OSError:
        return "unknown"
    return f"{host}:{port}"
