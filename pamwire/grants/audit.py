"""Audit events for grant steps: each change of a grant becomes an event of kind
`grant` in the configured audit store.

The command line and the proxy are separate processes, so the store is opened per
operation and chains its records under a writer of its own (AuditStore.append);
SQLite's locking keeps the writers apart. An operation that gives access
(request, approve) opens the store before it changes anything and is refused
when the store cannot be written; one that takes access away (deny, revoke,
expiry, cleanup) goes ahead and logs the audit failure instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import attrs

from pamwire.audit.events import AuditEvent, new_event_id
from pamwire.audit.store import AuditError, AuditStore
from pamwire.grants import GrantError
from pamwire.grants.store import Grant

log = logging.getLogger("pamwire.grants.audit")

EVENT_KIND = "grant"
# What the `application` column names for grant events.
APPLICATION = "pamwire grants"


class AuditUnavailable(GrantError):
    """The audit store cannot be written, so an operation giving access is refused."""


@attrs.frozen
class GrantStep:
    """One step of a grant for the audit trail (no secret may be in it)."""

    grant: Grant
    step: str
    actor: str
    at: float
    text: str | None = None
    approvers: tuple[str, ...] = ()
    protocol: str = "postgres"
    # The OS user of the process that took the step (pamwire/grants/actor.py).
    os_user: str | None = None

    def event(self) -> AuditEvent:
        detail = f"{self.step} by {self.actor}"
        if self.os_user:
            detail += f" (OS user {self.os_user})"
        if self.text:
            detail += f": {self.text}"
        return AuditEvent(
            event_id=new_event_id(),
            time=self.at,
            kind=EVENT_KIND,
            session=f"grant-{self.grant.id}",
            user=self.grant.person,
            target=self.grant.target,
            client_addr=None,
            application=APPLICATION,
            operation=self.step,
            detail=detail,
            message=f"grant role {self.grant.role} on {self.grant.target}",
            grant=str(self.grant.id),
            approvers=self.approvers,
            protocol=self.protocol,
            db_account=self.grant.account,
        )


class GrantAudit:
    """Writes grant steps to the audit store at `path` (None: nowhere)."""

    def __init__(
        self,
        path: Path | None,
        *,
        opener: Callable[[Path], AuditStore] = AuditStore,
    ) -> None:
        self.path = path
        self._opener = opener

    def open(self, *, required: bool) -> AuditBatch:
        """A batch of steps to write at its end.

        With `required`, the store is opened now and AuditUnavailable raised if
        it cannot be (before the caller changes anything); otherwise a failure
        is logged when the batch is written.
        """
        batch = AuditBatch(self)
        if required and self.path is not None:
            try:
                batch.store = self._opener(self.path)
            except AuditError as error:
                raise AuditUnavailable(
                    f"audit store {self.path} cannot be written, so this grant "
                    f"operation is refused: {error}"
                ) from None
        return batch


class AuditBatch:
    """Steps of one operation, appended in one transaction by `write()`."""

    def __init__(self, audit: GrantAudit) -> None:
        self.audit = audit
        self.store: AuditStore | None = None
        self.steps: list[GrantStep] = []

    def add(self, step: GrantStep) -> None:
        self.steps.append(step)

    def __enter__(self) -> AuditBatch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        # Steps gathered before a failure (a failed mint, say) are written too.
        self.write()

    def write(self) -> bool:
        """Append the steps gathered; False (and an error logged) on failure.

        The change is done by then; an audit failure cannot undo it, so it is
        logged with the steps it lost, for an operator to add by hand.
        """
        path = self.audit.path
        steps, self.steps = self.steps, []
        try:
            if path is None or not steps:
                return True
            if self.store is None:
                self.store = self.audit._opener(path)
            self.store.append([s.event() for s in steps])
            return True
        except AuditError as error:
            log.error(
                "cannot write %d grant audit event(s) to %s: %s; lost: %s",
                len(steps),
                path,
                error,
                "; ".join(_summary(s) for s in steps),
            )
            return False
        finally:
            self.close()

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None


def _summary(step: GrantStep) -> str:
    moment = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(step.at))
    return f"grant {step.grant.id} {step.step} by {step.actor} at {moment}"
