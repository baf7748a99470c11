"""What every session of one pamwire instance shares: configuration, stores, rules."""

from __future__ import annotations

import hmac
import logging
from typing import Protocol

import attrs

from pamwire.audit.literals import LiteralRedactor
from pamwire.config import Config, Target
from pamwire.rules.engine import RuleSet
from pamwire.server.audit_writer import AuditWriter
from pamwire.server.credentials import CredentialProvider
from pamwire.server.tls import NO_TLS, UpstreamTls
from pamwire.users import UserStore

log = logging.getLogger("pamwire.server")


class Cancellable(Protocol):
    async def cancel_upstream(self) -> None: ...


class LiveSession(Protocol):
    """What the grant sweep needs of a session: its grant and a way to end it."""

    @property
    def grant_id(self) -> int | None: ...

    def end(self, reason: str) -> None: ...


class CancelRegistry:
    """Maps the backend keys pamwire hands to clients back to live sessions."""

    def __init__(self) -> None:
        self._sessions: dict[int, tuple[bytes, Cancellable]] = {}

    def register(self, key: tuple[int, bytes], session: Cancellable) -> None:
        self._sessions[key[0]] = (key[1], session)

    def unregister(self, key: tuple[int, bytes], session: Cancellable) -> None:
        entry = self._sessions.get(key[0])
        if entry is not None and entry[1] is session:
            del self._sessions[key[0]]

    async def cancel(self, process_id: int, secret_key: bytes) -> None:
        """Cancel the matching session's running query; unknown keys do nothing."""
        entry = self._sessions.get(process_id)
        if entry is None or not hmac.compare_digest(entry[0], secret_key):
            log.info("cancel request with an unknown key ignored")
            return
        await entry[1].cancel_upstream()


@attrs.define
class ServerContext:
    config: Config
    users: UserStore
    rules: RuleSet
    audit: AuditWriter
    credentials: CredentialProvider
    cancels: CancelRegistry = attrs.field(factory=CancelRegistry)
    sessions: set[LiveSession] = attrs.field(factory=set)
    # TLS toward each target's server, by target name (built at start).
    upstream_tls: dict[str, UpstreamTls] = attrs.field(factory=dict)
    # Classes of values the trail must not keep (audit.redact_literals/_patterns).
    literals: LiteralRedactor = attrs.field(factory=LiteralRedactor)

    def tls_for(self, target: Target) -> UpstreamTls:
        """The TLS settings toward a target's server (none if not configured)."""
        return self.upstream_tls.get(target.name, NO_TLS)

    async def end_sessions_without_grant(self, active: frozenset[int]) -> None:
        """End every live session whose grant is no longer active."""
        for session in list(self.sessions):
            grant = session.grant_id
            if grant is not None and grant not in active:
                log.info("grant %s ended; ending its session", grant)
                session.end(f"grant {grant} has ended (expired or revoked)")
