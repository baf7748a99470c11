"""The persons who log in to pamwire, kept in one SQLite file.

Only password verifiers are stored, never a password. The file is created with
mode 0600 and runs in WAL mode so the proxy and the command line can share it.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import pathlib
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from types import TracebackType

import attrs

from pamwire.errors import AuthenticationError, ConfigError
from pamwire.mysql.auth import mysql_verifiers
from pamwire.pg.auth import ScramVerifier, make_scram_verifier
from pamwire.sqlitefile import open_store, transaction

log = logging.getLogger("pamwire.users")

# Bump when the schema changes, and add the step from the previous version to
# _MIGRATIONS. PRAGMA user_version holds the version a file is at.
SCHEMA_VERSION = 1

NAME_PATTERN = re.compile(r"[A-Za-z0-9_.@+-]{1,63}")
NAME_RULE = "1-63 characters of A-Z a-z 0-9 _ . @ + -"

# "alice" and "Alice" would be two persons to the database but one to a reader of
# the audit trail: names are unique regardless of ASCII case, looked up exactly.
#
# The MySQL methods' verifiers live in person_verifier, one row per method (hex),
# so a method can be added without a migration: mysql_native_password checks a
# client against SHA1(SHA1(password)), caching_sha2_password's fast path against
# SHA256(SHA256(password)). Neither can be derived from the SCRAM verifier, so
# add() and set_password() write them while they hold the password. Persons added
# before these rows existed have none until their password is set again.
_SCHEMA_V1 = (
    """
    CREATE TABLE person (
        name          TEXT    NOT NULL PRIMARY KEY,
        scram_sha_256 TEXT    NOT NULL,
        created_at    REAL    NOT NULL,
        disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1))
    )
    """,
    "CREATE UNIQUE INDEX person_name_nocase ON person (name COLLATE NOCASE)",
    """
    CREATE TABLE person_verifier (
        name     TEXT NOT NULL REFERENCES person (name) ON DELETE CASCADE,
        method   TEXT NOT NULL,
        verifier TEXT NOT NULL,
        PRIMARY KEY (name, method)
    )
    """,
)

# Statements that take a file from version N to N + 1, at index N.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (_SCHEMA_V1,)
assert len(_MIGRATIONS) == SCHEMA_VERSION


@attrs.frozen
class Person:
    """A person who may log in to pamwire."""

    name: str
    scram: ScramVerifier
    created_at: float
    disabled: bool


def check_name(name: str) -> str:
    """Return `name` if it is a valid person name, else raise ConfigError."""
    if not NAME_PATTERN.fullmatch(name):
        raise ConfigError(f"invalid person name {name!r}: use {NAME_RULE}")
    return name


def _check_password(password: str) -> None:
    if not password:
        raise ConfigError("password must not be empty")


class UserStore:
    """The store of persons: add, change, look up and remove them.

    Safe to call from several threads (one connection behind a lock); each call
    is one short transaction. Errors from the caller's input are ConfigError.
    """

    def __init__(
        self, path: pathlib.Path, *, clock: Callable[[], float] = time.time
    ) -> None:
        """Open the store at `path`, creating the file (mode 0600) and schema.

        Raises ConfigError if the file cannot be opened or was written by a newer
        pamwire.
        """
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._db = open_store(path, what="user store", migrations=_MIGRATIONS)

    def add(self, name: str, password: str) -> Person:
        """Add a person; ConfigError if the name is invalid or taken."""
        check_name(name)
        _check_password(password)
        person = Person(name, make_scram_verifier(password), self._clock(), False)
        try:
            with self._lock, self._transaction():
                self._db.execute(
                    "INSERT INTO person (name, scram_sha_256, created_at, disabled)"
                    " VALUES (?, ?, ?, 0)",
                    (name, person.scram.to_string(), person.created_at),
                )
                self._store_verifiers(name, password)
        except sqlite3.IntegrityError:
            raise ConfigError(
                f"person {name!r} already exists (names are compared ignoring case)"
            ) from None
        return person

    def set_password(self, name: str, password: str) -> None:
        """Replace a person's password; ConfigError if there is no such person."""
        _check_password(password)
        verifier = make_scram_verifier(password)
        with self._lock, self._transaction():
            changed = self._db.execute(
                "UPDATE person SET scram_sha_256 = ? WHERE name = ?",
                (verifier.to_string(), name),
            ).rowcount
            # Verifiers of other methods belong to the old password.
            self._db.execute("DELETE FROM person_verifier WHERE name = ?", (name,))
            if changed:
                self._store_verifiers(name, password)
        if not changed:
            raise ConfigError(f"no person named {name!r}")

    def set_disabled(self, name: str, disabled: bool) -> None:
        """Disable or enable a person; ConfigError if there is no such person."""
        with self._lock, self._transaction():
            changed = self._db.execute(
                "UPDATE person SET disabled = ? WHERE name = ?", (int(disabled), name)
            ).rowcount
        if not changed:
            raise ConfigError(f"no person named {name!r}")

    def get(self, name: str) -> Person | None:
        """Return the person named exactly `name`, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT name, scram_sha_256, created_at, disabled FROM person"
                " WHERE name = ?",
                (name,),
            ).fetchone()
        return None if row is None else self._person(row)

    def verifiers(self, name: str) -> dict[str, bytes]:
        """The MySQL verifiers of the person named exactly `name`, by method name.

        Empty when there is no such person or the person has none stored yet.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT method, verifier FROM person_verifier WHERE name = ?", (name,)
            ).fetchall()
        out: dict[str, bytes] = {}
        for method, verifier in rows:
            try:
                out[method] = bytes.fromhex(verifier)
            except ValueError:
                log.error("unreadable %s verifier of person %r", method, name)
        return out

    def _store_verifiers(self, name: str, password: str) -> None:
        # Called inside the caller's transaction, with the lock held.
        self._db.executemany(
            "INSERT INTO person_verifier (name, method, verifier) VALUES (?, ?, ?)",
            [(name, m, v.hex()) for m, v in mysql_verifiers(password).items()],
        )

    def list(self) -> builtins.list[Person]:
        """Return all persons, ordered by name."""
        with self._lock:
            rows = self._db.execute(
                "SELECT name, scram_sha_256, created_at, disabled FROM person"
                " ORDER BY name"
            ).fetchall()
        return [self._person(row) for row in rows]

    def remove(self, name: str) -> bool:
        """Remove a person; return False if there was none."""
        with self._lock, self._transaction():
            removed = self._db.execute(
                "DELETE FROM person WHERE name = ?", (name,)
            ).rowcount
        return bool(removed)

    def close(self) -> None:
        """Close the file; calling it again does nothing."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> UserStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _transaction(self) -> contextlib.AbstractContextManager[None]:
        return transaction(self._db)

    def _person(self, row: tuple[str, str, float, int]) -> Person:
        name, scram, created_at, disabled = row
        try:
            verifier = ScramVerifier.from_string(scram)
        except AuthenticationError as error:
            raise ConfigError(
                f"stored verifier of person {name!r} is unreadable: {error}",
                path=str(self.path),
            ) from None
        return Person(name, verifier, created_at, bool(disabled))
