"""The grants, their approvals and their history, kept in one SQLite file.

Every change of a grant is a conditional UPDATE (`... WHERE state = ...`) in its
own IMMEDIATE transaction, so the proxy and the command line can share the file
and two of them never both move a grant out of the same state. Passwords are
stored only as sealed blobs (pamwire/grants/secrets.py) and dropped with the
account. The file is created with mode 0600 and runs in WAL mode.
"""

from __future__ import annotations

import builtins
import enum
import logging
import os
import pathlib
import re
import threading
from collections.abc import Iterable
from types import TracebackType
from typing import Any

import attrs

from pamwire.errors import ConfigError
from pamwire.grants.actor import user_name
from pamwire.sqlitefile import open_store, transaction

log = logging.getLogger("pamwire.grants.store")

# Bump when the schema changes, and add the step from the previous version to
# _MIGRATIONS. PRAGMA user_version holds the version a file is at.
SCHEMA_VERSION = 3


class State(enum.StrEnum):
    """Where a grant is in its life; only approved grants let anyone in."""

    REQUESTED = "requested"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    REVOKED = "revoked"


class AccountState(enum.StrEnum):
    """Where the grant's account is: none yet, being minted, live, removed."""

    NONE = "none"
    MINTING = "minting"
    ACTIVE = "active"
    REMOVED = "removed"


# What a stored account tag must look like (see _SCHEMA_V2).
ACCOUNT_TAG = re.compile(r"[a-z0-9]{4,16}")

ENDED = frozenset({State.DENIED, State.EXPIRED, State.REVOKED})

_SCHEMA_V1 = (
    """
    CREATE TABLE grants (
        id               INTEGER PRIMARY KEY AUTOINCREMENT,
        person           TEXT    NOT NULL,
        target           TEXT    NOT NULL,
        role             TEXT    NOT NULL,
        duration         REAL    NOT NULL CHECK (duration > 0),
        reason           TEXT,
        state            TEXT    NOT NULL CHECK (state IN
                             ('requested', 'approved', 'denied', 'expired', 'revoked')),
        requested_at     REAL    NOT NULL,
        approved_at      REAL,
        expires_at       REAL,
        ended_at         REAL,
        account          TEXT,
        account_state    TEXT    NOT NULL DEFAULT 'none' CHECK (account_state IN
                             ('none', 'minting', 'active', 'removed')),
        minting_since    REAL,
        password         BLOB,
        last_error       TEXT,
        cleanup_attempts INTEGER NOT NULL DEFAULT 0,
        next_cleanup_at  REAL
    )
    """,
    "CREATE INDEX grants_state ON grants (state, expires_at)",
    "CREATE INDEX grants_person ON grants (person, target)",
    """
    CREATE TABLE grant_event (
        id       INTEGER PRIMARY KEY AUTOINCREMENT,
        grant_id INTEGER NOT NULL REFERENCES grants (id),
        at       REAL    NOT NULL,
        actor    TEXT    NOT NULL,
        action   TEXT    NOT NULL,
        detail   TEXT
    )
    """,
    "CREATE INDEX grant_event_grant ON grant_event (grant_id, id)",
    """
    CREATE TABLE approval (
        grant_id INTEGER NOT NULL REFERENCES grants (id),
        approver TEXT    NOT NULL,
        at       REAL    NOT NULL,
        PRIMARY KEY (grant_id, approver)
    )
    """,
)

# Version 2: a random tag of this grants file, made once, in every account name it
# mints (pamwire/grants/service.py account_name), so two pamwire instances with
# grants files of their own never mint the same name on one server. 32 random bits
# as 8 hex digits: a-z 0-9 only, fit for any identifier.
_SCHEMA_V2 = (
    "CREATE TABLE store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "INSERT INTO store_meta (key, value)"
    " VALUES ('account_tag', lower(hex(randomblob(4))))",
)

# Version 3: the OS user of the process that wrote each history line.
_SCHEMA_V3 = ("ALTER TABLE grant_event ADD COLUMN os_user TEXT",)

_MIGRATIONS: tuple[tuple[str, ...], ...] = (_SCHEMA_V1, _SCHEMA_V2, _SCHEMA_V3)
assert len(_MIGRATIONS) == SCHEMA_VERSION

_GRANT_COLUMNS = (
    "id, person, target, role, duration, reason, state, requested_at, approved_at,"
    " expires_at, ended_at, account, account_state, minting_since, last_error,"
    " cleanup_attempts"
)

# Who the history names when pamwire itself acts (expiry, cleanup).
SYSTEM_ACTOR = "pamwire"


@attrs.frozen
class Grant:
    """One grant as stored; the sealed password is kept out of it on purpose."""

    id: int
    person: str
    target: str
    role: str
    duration: float
    reason: str | None
    state: State
    requested_at: float
    approved_at: float | None
    expires_at: float | None
    ended_at: float | None
    account: str | None
    account_state: AccountState
    minting_since: float | None
    last_error: str | None
    cleanup_attempts: int

    def is_active(self, now: float) -> bool:
        """Approved and not yet past its end."""
        return (
            self.state is State.APPROVED
            and self.expires_at is not None
            and now < self.expires_at
        )


@attrs.frozen
class Approval:
    grant_id: int
    approver: str
    at: float


@attrs.frozen
class GrantEvent:
    """One line of a grant's history: who did what, when."""

    grant_id: int
    at: float
    actor: str
    action: str
    detail: str | None
    # The OS user of the process that wrote it (None in files from before).
    os_user: str | None = None


class GrantStore:
    """The store of grants. Safe to share between threads (one connection, a lock).

    Methods that change a grant return False when the grant was not in a state the
    change applies to, so callers can tell a lost race from success.
    """

    def __init__(self, path: pathlib.Path, *, os_user: str | None = None) -> None:
        """Open the store at `path`, creating the file (mode 0600) and schema.

        `os_user` is recorded in every history line this object writes (default:
        the name of the process's real uid; the command line sets who invoked
        it, see pamwire/grants/actor.py). Raises ConfigError if the file cannot
        be opened or is from a newer pamwire.
        """
        self.path = path
        self.os_user = os_user or user_name(os.getuid())
        self._lock = threading.Lock()
        self._db = open_store(path, what="grant store", migrations=_MIGRATIONS)
        row = self._db.execute(
            "SELECT value FROM store_meta WHERE key = 'account_tag'"
        ).fetchone()
        if row is None or not ACCOUNT_TAG.fullmatch(str(row[0])):
            self._db.close()
            raise ConfigError(
                "grant store has no valid account tag (store_meta.account_tag)",
                path=str(path),
            )
        # Part of every account this store's grants mint; never changes.
        self.account_tag: str = str(row[0])

    # -- reading ------------------------------------------------------------------

    def get(self, grant_id: int) -> Grant | None:
        """The grant with this id, or None."""
        rows = self._select("WHERE id = ?", (grant_id,))
        return rows[0] if rows else None

    def list(
        self,
        *,
        person: str | None = None,
        target: str | None = None,
        states: Iterable[State] | None = None,
    ) -> builtins.list[Grant]:
        """Grants matching every filter given, oldest first."""
        clauses: builtins.list[str] = []
        params: builtins.list[Any] = []
        if person is not None:
            clauses.append("person = ?")
            params.append(person)
        if target is not None:
            clauses.append("target = ?")
            params.append(target)
        if states is not None:
            wanted = sorted(str(s) for s in states)
            clauses.append(f"state IN ({', '.join('?' * len(wanted))})")
            params.extend(wanted)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return self._select(where, tuple(params))

    def active(self, now: float) -> builtins.list[Grant]:
        """Approved grants whose end is after `now`."""
        return self._select("WHERE state = 'approved' AND expires_at > ?", (now,))

    def due(self, now: float) -> builtins.list[Grant]:
        """Approved grants whose end is at or before `now`."""
        return self._select("WHERE state = 'approved' AND expires_at <= ?", (now,))

    def needing_cleanup(self, now: float, stale_before: float) -> builtins.list[Grant]:
        """Grants whose account must go now: ended with a live account, or a mint
        abandoned (started before `stale_before` and never finished); those whose
        last attempt failed only once their retry time has come."""
        return self._select(
            "WHERE ((state IN ('denied', 'expired', 'revoked')"
            "        AND account_state IN ('active', 'minting'))"
            "       OR (account_state = 'minting' AND minting_since < ?))"
            "  AND (next_cleanup_at IS NULL OR next_cleanup_at <= ?)",
            (stale_before, now),
        )

    def next_due(self) -> float | None:
        """The earliest moment the sweep has work: an approved grant's end, or the
        retry time of a failed removal; None when neither exists."""
        with self._lock:
            row = self._db.execute(
                "SELECT MIN(due) FROM ("
                "  SELECT MIN(expires_at) AS due FROM grants WHERE state = 'approved'"
                "  UNION ALL"
                "  SELECT MIN(next_cleanup_at) FROM grants"
                "   WHERE state IN ('denied', 'expired', 'revoked')"
                "     AND account_state IN ('active', 'minting'))"
            ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def data_version(self) -> int:
        """A number that changes whenever another connection (another process: the
        command line) commits to the file; this connection's own commits leave it.

        SQLite's PRAGMA data_version: a few microseconds and no file lock, so the
        proxy can ask it several times a second instead of sweeping.
        """
        with self._lock:
            (version,) = self._db.execute("PRAGMA data_version").fetchone()
        return int(version)

    def sealed_password(self, grant_id: int) -> bytes | None:
        """The sealed password of a grant's account, or None when there is none."""
        with self._lock:
            row = self._db.execute(
                "SELECT password FROM grants WHERE id = ?", (grant_id,)
            ).fetchone()
        return None if row is None or row[0] is None else bytes(row[0])

    def approvals(self, grant_id: int) -> builtins.list[Approval]:
        with self._lock:
            rows = self._db.execute(
                "SELECT grant_id, approver, at FROM approval WHERE grant_id = ?"
                " ORDER BY at, approver",
                (grant_id,),
            ).fetchall()
        return [Approval(*row) for row in rows]

    def history(self, grant_id: int) -> builtins.list[GrantEvent]:
        with self._lock:
            rows = self._db.execute(
                "SELECT grant_id, at, actor, action, detail, os_user FROM grant_event"
                " WHERE grant_id = ? ORDER BY id",
                (grant_id,),
            ).fetchall()
        return [GrantEvent(*row) for row in rows]

    # -- changing -----------------------------------------------------------------

    def create(
        self,
        person: str,
        target: str,
        role: str,
        duration: float,
        reason: str | None,
        at: float,
    ) -> Grant:
        """Record a new request and return it."""
        with self._lock, transaction(self._db):
            cursor = self._db.execute(
                "INSERT INTO grants (person, target, role, duration, reason, state,"
                " requested_at) VALUES (?, ?, ?, ?, ?, 'requested', ?)",
                (person, target, role, duration, reason, at),
            )
            grant_id = cursor.lastrowid
            assert grant_id is not None  # an INSERT always sets it
            self._event(grant_id, at, person, "requested", reason)
        grant = self.get(grant_id)
        assert grant is not None  # just inserted
        return grant

    def add_approval(self, grant_id: int, approver: str, at: float) -> bool:
        """Count `approver`'s approval of a requested grant; False if she already
        approved or the grant is no longer requested."""
        with self._lock, transaction(self._db):
            if not self._in_state(grant_id, (State.REQUESTED,)):
                return False
            added = self._db.execute(
                "INSERT OR IGNORE INTO approval (grant_id, approver, at)"
                " VALUES (?, ?, ?)",
                (grant_id, approver, at),
            ).rowcount
            if added:
                self._event(grant_id, at, approver, "approval", None)
        return bool(added)

    def claim_mint(
        self, grant_id: int, account: str, at: float, stale_before: float
    ) -> bool:
        """Mark a requested grant as being minted under `account`.

        False if it is no longer requested, already has an account, or another
        process is minting it (a claim older than `stale_before` is taken over).
        """
        with self._lock, transaction(self._db):
            changed = self._db.execute(
                "UPDATE grants SET account = ?, account_state = 'minting',"
                " minting_since = ?"
                " WHERE id = ? AND state = 'requested' AND (account_state = 'none'"
                "   OR (account_state = 'minting' AND minting_since < ?))",
                (account, at, grant_id, stale_before),
            ).rowcount
        return bool(changed)

    def activate(
        self,
        grant_id: int,
        actor: str,
        at: float,
        expires_at: float,
        sealed_password: bytes,
    ) -> bool:
        """Make a grant being minted approved; False if it left `requested` meanwhile
        (its account is then marked active so the cleanup removes it)."""
        with self._lock, transaction(self._db):
            changed = self._db.execute(
                "UPDATE grants SET state = 'approved', approved_at = ?,"
                " expires_at = ?, account_state = 'active', minting_since = NULL,"
                " password = ?, last_error = NULL"
                " WHERE id = ? AND state = 'requested' AND account_state = 'minting'",
                (at, expires_at, sealed_password, grant_id),
            ).rowcount
            if changed:
                self._event(grant_id, at, actor, "approved", None)
            else:
                self._db.execute(
                    "UPDATE grants SET account_state = 'active', minting_since = NULL"
                    " WHERE id = ? AND account_state = 'minting'",
                    (grant_id,),
                )
        return bool(changed)

    def mint_failed(self, grant_id: int, at: float, error: str) -> None:
        """Record a failed mint; the grant stays requested with nothing minted."""
        with self._lock, transaction(self._db):
            self._db.execute(
                "UPDATE grants SET account_state = 'none', minting_since = NULL,"
                " account = NULL, last_error = ? WHERE id = ?",
                (error, grant_id),
            )
            self._event(grant_id, at, SYSTEM_ACTOR, "mint_failed", error)

    def end(
        self,
        grant_id: int,
        state: State,
        actor: str,
        at: float,
        detail: str | None,
        from_states: Iterable[State],
    ) -> bool:
        """Move a grant to an ended state; False if it was not in `from_states`."""
        assert state in ENDED
        allowed = sorted(str(s) for s in from_states)
        with self._lock, transaction(self._db):
            changed = self._db.execute(
                f"UPDATE grants SET state = ?, ended_at = ? WHERE id = ?"
                f" AND state IN ({', '.join('?' * len(allowed))})",
                (str(state), at, grant_id, *allowed),
            ).rowcount
            if changed:
                self._event(grant_id, at, actor, str(state), detail)
        return bool(changed)

    def claim_cleanup(self, grant_id: int, at: float, lease_until: float) -> bool:
        """Take the removal of a grant's account until `lease_until`, so the proxy
        and the command line never remove one account at the same time.

        False when the account is not live, or another process holds the removal
        (or a failed one waits for its retry time). account_removed and
        cleanup_failed end the lease; a process that dies holding it leaves the
        removal to whoever comes after `lease_until`.
        """
        with self._lock, transaction(self._db):
            changed = self._db.execute(
                "UPDATE grants SET next_cleanup_at = ?"
                " WHERE id = ? AND account_state IN ('active', 'minting')"
                "   AND (next_cleanup_at IS NULL OR next_cleanup_at <= ?)",
                (lease_until, grant_id, at),
            ).rowcount
        return bool(changed)

    def account_removed(self, grant_id: int, at: float, detail: str) -> None:
        """The removal statements ran: forget the sealed password."""
        with self._lock, transaction(self._db):
            self._db.execute(
                "UPDATE grants SET account_state = 'removed', minting_since = NULL,"
                " password = NULL, last_error = NULL, next_cleanup_at = NULL"
                " WHERE id = ?",
                (grant_id,),
            )
            self._event(grant_id, at, SYSTEM_ACTOR, "account_removed", detail)

    def cleanup_failed(
        self, grant_id: int, at: float, error: str, retry_at: float
    ) -> None:
        """Record a failed removal; a sweep at or after `retry_at` tries again."""
        with self._lock, transaction(self._db):
            self._db.execute(
                "UPDATE grants SET cleanup_attempts = cleanup_attempts + 1,"
                " last_error = ?, next_cleanup_at = ? WHERE id = ?",
                (error, retry_at, grant_id),
            )
            self._event(grant_id, at, SYSTEM_ACTOR, "cleanup_failed", error)

    def note(
        self, grant_id: int, at: float, actor: str, action: str, detail: str | None
    ) -> None:
        """Add a line to a grant's history without changing the grant."""
        with self._lock, transaction(self._db):
            self._event(grant_id, at, actor, action, detail)

    def close(self) -> None:
        """Close the file; calling it again does nothing."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> GrantStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- helpers ------------------------------------------------------------------

    def _select(self, where: str, params: tuple[Any, ...]) -> builtins.list[Grant]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_GRANT_COLUMNS} FROM grants {where} ORDER BY id", params
            ).fetchall()
        return [_grant(row) for row in rows]

    def _in_state(self, grant_id: int, states: Iterable[State]) -> bool:
        row = self._db.execute(
            "SELECT state FROM grants WHERE id = ?", (grant_id,)
        ).fetchone()
        return row is not None and row[0] in {str(s) for s in states}

    def _event(
        self, grant_id: int, at: float, actor: str, action: str, detail: str | None
    ) -> None:
        self._db.execute(
            "INSERT INTO grant_event (grant_id, at, actor, action, detail, os_user)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (grant_id, at, actor, action, detail, self.os_user),
        )


def _grant(row: tuple[Any, ...]) -> Grant:
    values = list(row)
    values[6] = State(values[6])
    values[12] = AccountState(values[12])
    return Grant(*values)
