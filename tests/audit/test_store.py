"""Tests of the SQLite audit store: round trips, schema, permissions and failures."""

from __future__ import annotations

import os
import pathlib
import shutil
import sqlite3
from collections.abc import Iterator

import pytest

from pamwire.audit.events import SCHEMA_VERSION, AuditEvent, Completion
from pamwire.audit.search import SearchQuery
from pamwire.audit.store import (
    CHAIN_COLUMNS,
    COMPLETION_COLUMNS,
    EVENT_COLUMNS,
    AuditError,
    AuditStore,
    AuditWriteError,
)
from pamwire.errors import PamwireError
from tests.audit import make_event


@pytest.fixture
def path(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "audit.db"


@pytest.fixture
def store(path: pathlib.Path) -> Iterator[AuditStore]:
    store = AuditStore(path)
    yield store
    store.close()


def everything(store: AuditStore) -> list[AuditEvent]:
    return [record.event for record in store.search(SearchQuery())]


def test_store_round_trip_keeps_every_field(store: AuditStore) -> None:
    full = make_event(
        time=1796378400.123456,
        rule="no-unscoped-delete",
        verdict="deny",
        message="delete without where",
        fingerprint="0123456789abcdef",
        detail="détail with ünïcode and 'quotes'",
        statement="DELETE FROM t\n-- 漢字",
    )
    sparse = make_event(
        time=1796378401.0,
        kind="session_start",
        user=None,
        target=None,
        client_addr=None,
        application=None,
        statement=None,
        verdict=None,
        statement_kind=None,
        operation=None,
    )
    store.append([full, sparse])

    assert everything(store) == [full, sparse]
    record = store.search(SearchQuery())[0]
    assert (record.duration_ms, record.outcome, record.sqlstate, record.rows) == (
        None,
        None,
        None,
        None,
    )


def test_store_complete_fills_completion_fields(store: AuditStore) -> None:
    done, pending = make_event(), make_event()
    store.append([done, pending])

    store.complete([Completion(done.event_id, 1.25, "error", "42501", None)])

    first, second = store.search(SearchQuery())
    assert first.event == done
    assert (first.duration_ms, first.outcome, first.sqlstate, first.rows) == (
        1.25,
        "error",
        "42501",
        None,
    )
    assert second.outcome is None


def test_store_append_and_complete_may_complete_events_of_the_same_call(
    store: AuditStore,
) -> None:
    event = make_event()
    store.append_and_complete([event], [Completion(event.event_id, 0.5, "ok", None, 3)])

    (record,) = store.search(SearchQuery())
    assert (record.outcome, record.rows) == ("ok", 3)


def test_store_complete_skips_unknown_event_ids(store: AuditStore) -> None:
    store.complete([Completion("f" * 32, 1.0, "ok", None, 1)])
    assert everything(store) == []


def test_store_empty_calls_write_nothing(store: AuditStore) -> None:
    store.append([])
    store.append_and_complete([], [])
    assert everything(store) == []


def test_store_files_are_private(store: AuditStore, path: pathlib.Path) -> None:
    store.append([make_event()])
    files = [path, *path.parent.glob("audit.db-*")]
    assert len(files) == 3  # the database, its -wal and its -shm
    for file in files:
        assert os.stat(file).st_mode & 0o777 == 0o600, file


def test_store_uses_wal_and_schema_version(
    store: AuditStore, path: pathlib.Path
) -> None:
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        columns = [row[1] for row in conn.execute("PRAGMA table_info(events)")]
    finally:
        conn.close()
    # Version-1 columns first, then those added by version 2, as a migration has them.
    assert columns == [
        "row_no",
        *EVENT_COLUMNS[:16],
        *COMPLETION_COLUMNS,
        *EVENT_COLUMNS[16:],
        *CHAIN_COLUMNS,
    ]


def test_store_reopen_keeps_events(path: pathlib.Path) -> None:
    event = make_event()
    first = AuditStore(path)
    first.append([event])
    first.close()

    second = AuditStore(path)
    try:
        assert everything(second) == [event]
    finally:
        second.close()


def test_store_refuses_newer_schema_version(path: pathlib.Path) -> None:
    AuditStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()

    with pytest.raises(AuditError, match=f"schema version {SCHEMA_VERSION + 1}"):
        AuditStore(path)


def test_store_refuses_a_foreign_database(path: pathlib.Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE accounts (id INTEGER)")
    conn.close()

    with pytest.raises(AuditError, match="not a pamwire audit store"):
        AuditStore(path)


def test_store_read_only_can_search_but_not_write(
    store: AuditStore, path: pathlib.Path
) -> None:
    event = make_event()
    store.append([event])

    reader = AuditStore(path, read_only=True)
    try:
        assert everything(reader) == [event]
        with pytest.raises(AuditWriteError, match="read-only"):
            reader.append([make_event()])
    finally:
        reader.close()


def test_store_read_only_needs_an_existing_file(tmp_path: pathlib.Path) -> None:
    with pytest.raises(AuditError, match="cannot open audit store"):
        AuditStore(tmp_path / "missing.db", read_only=True)
    assert not (tmp_path / "missing.db").exists()


def test_store_open_in_missing_directory_raises(tmp_path: pathlib.Path) -> None:
    with pytest.raises(AuditWriteError, match="cannot open audit store"):
        AuditStore(tmp_path / "no" / "such" / "audit.db")


class ReadOnlyConnectionStore(AuditStore):
    """A real store whose connection was opened through a mode=ro URI.

    Tests run as root, where chmod does not stop writes; SQLite's read-only open
    does, and fails exactly where a read-only disk would: at the write.
    """

    def reopen_read_only(self) -> None:
        assert self._conn is not None
        self._conn.close()
        uri = self.path.resolve().as_uri() + "?mode=ro"
        self._conn = sqlite3.connect(
            uri, uri=True, isolation_level=None, check_same_thread=False
        )


def test_store_append_on_read_only_database_raises(path: pathlib.Path) -> None:
    store = ReadOnlyConnectionStore(path)
    store.append([make_event()])
    store.reopen_read_only()
    try:
        with pytest.raises(AuditWriteError, match="readonly database") as info:
            store.append([make_event()])
    finally:
        store.close()
    assert isinstance(info.value, PamwireError)
    assert str(path) in str(info.value)


def test_store_append_on_full_database_raises(store: AuditStore) -> None:
    # max_page_count makes SQLite report SQLITE_FULL as a full disk would.
    assert store._conn is not None
    store._conn.execute("PRAGMA max_page_count = 1")
    big = "x" * 100_000

    with pytest.raises(AuditWriteError, match="full"):
        store.append([make_event(statement=big)])


def test_store_deleted_directory_raises(store: AuditStore, path: pathlib.Path) -> None:
    store.append([make_event()])
    shutil.rmtree(path.parent)

    with pytest.raises(AuditWriteError, match="deleted or replaced"):
        store.append([make_event()])


def test_store_replaced_file_raises(store: AuditStore, path: pathlib.Path) -> None:
    store.append([make_event()])
    path.rename(path.with_name("moved.db"))

    with pytest.raises(AuditWriteError, match="deleted or replaced"):
        store.append([make_event()])


def test_store_failed_group_writes_nothing(store: AuditStore) -> None:
    first, second = make_event(), make_event()
    store.append([first])

    with pytest.raises(AuditWriteError, match="UNIQUE"):
        store.append([second, first])

    assert everything(store) == [first]
    store.append([second])  # the connection is usable again
    assert everything(store) == [first, second]


def test_store_closed_raises(store: AuditStore) -> None:
    store.close()
    store.close()
    with pytest.raises(AuditWriteError, match="closed"):
        store.append([make_event()])
    with pytest.raises(AuditError, match="closed"):
        store.search(SearchQuery())
