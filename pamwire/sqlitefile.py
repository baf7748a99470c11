"""Opening pamwire's small SQLite stores (persons, grants): private, WAL, migrated.

Each store names itself ("user store", "grant store") for its error messages and
brings its own list of migrations; the schema version lives in PRAGMA user_version.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import sqlite3
from collections.abc import Iterator, Sequence

from pamwire.errors import ConfigError

log = logging.getLogger("pamwire.store")

# Long enough for another process's short write transaction (a CLI approving a
# grant while the proxy reads), short enough that a stuck lock is reported.
BUSY_TIMEOUT_MS = 5000


def open_store(
    path: pathlib.Path,
    *,
    what: str,
    migrations: Sequence[Sequence[str]],
) -> sqlite3.Connection:
    """Open (creating with mode 0600) and migrate a store to len(migrations).

    Raises ConfigError naming the file if it cannot be opened or was written by a
    newer pamwire.
    """
    create_private_file(path, what=what)
    try:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as error:
        raise ConfigError(f"cannot open {what}: {error}", path=str(path)) from None
    try:
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA foreign_keys = ON")
        _migrate(db, path, what=what, migrations=migrations)
    except sqlite3.Error as error:
        db.close()
        raise ConfigError(f"cannot open {what}: {error}", path=str(path)) from None
    except ConfigError:
        db.close()
        raise
    return db


def _migrate(
    db: sqlite3.Connection,
    path: pathlib.Path,
    *,
    what: str,
    migrations: Sequence[Sequence[str]],
) -> None:
    latest = len(migrations)
    db.execute("BEGIN IMMEDIATE")
    try:
        (version,) = db.execute("PRAGMA user_version").fetchone()
        if version > latest:
            raise ConfigError(
                f"{what} schema version {version} is newer than "
                f"this pamwire supports ({latest})",
                path=str(path),
            )
        while version < latest:
            for statement in migrations[version]:
                db.execute(statement)
            version += 1
            db.execute(f"PRAGMA user_version = {version}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def create_private_file(path: pathlib.Path, *, what: str) -> None:
    """Create `path` with mode 0600 unless it exists; warn if others can read it.

    SQLite gives its -wal and -shm files the mode of the database file.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            log.warning("%s %s has mode %o; 600 is expected", what, path, mode)
        return
    except OSError as error:
        raise ConfigError(
            f"cannot create {what}: {error.strerror}", path=str(path)
        ) from None
    os.close(fd)


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK if the block raises."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
