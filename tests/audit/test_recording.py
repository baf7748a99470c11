"""Tests of the session recorder: attribution of replies, limits, secrets, storage."""

from __future__ import annotations

import pathlib

import pytest

from pamwire.audit.recording import HIDDEN_COLUMN, RecordingChunk, SessionRecorder
from pamwire.audit.store import AuditStore
from pamwire.pg.codec import FrameReader, encode
from pamwire.pg.messages import (
    BindComplete,
    CommandComplete,
    DataRow,
    EmptyQueryResponse,
    ErrorResponse,
    FieldDescription,
    NoticeResponse,
    ParseComplete,
    ReadyForQuery,
    RowDescription,
)
from tests.audit import BASE_TIME


def _block(*messages: object) -> bytes:
    return b"".join(encode(m) for m in messages)  # type: ignore[arg-type]


def feed(recorder: SessionRecorder, data: bytes, *, split: int | None = None) -> None:
    """Pass server bytes as the session does: frames from a FrameReader."""
    reader = FrameReader()
    pieces = [data] if split is None else [data[:split], data[split:]]
    for piece in pieces:
        reader.feed(piece)
        block, frames = reader.read_frames()
        recorder.server_block(block, frames)


def _describe(*names: str, type_oid: int = 25, fmt: int = 0) -> RowDescription:
    return RowDescription(
        tuple(FieldDescription(n, type_oid=type_oid, format=fmt) for n in names)
    )


def _rows(n: int) -> list[DataRow]:
    return [DataRow((str(i).encode(), f"name {i}".encode())) for i in range(n)]


def _error(code: str, message: str) -> ErrorResponse:
    return ErrorResponse((("S", "ERROR"), ("V", "ERROR"), ("C", code), ("M", message)))


def _recorder(**kw: int) -> SessionRecorder:
    return SessionRecorder("5e55", clock=lambda: BASE_TIME + 1, **kw)


def test_recording_simple_query_with_two_statements() -> None:
    rec = _recorder()
    rec.statement("e1", "SELECT id, name FROM t", BASE_TIME)
    rec.statement("e2", "INSERT INTO t VALUES (9)", BASE_TIME)
    rec.sync()
    data = _block(
        _describe("id", "name"),
        *_rows(2),
        CommandComplete("SELECT 2"),
        CommandComplete("INSERT 0 1"),
        ReadyForQuery(b"I"),
    )
    feed(rec, data)
    first, second = rec.drain()
    assert first.event_id == "e1" and first.status == "ok"
    assert first.columns == ("id", "name")
    assert first.rows == (("0", "name 0"), ("1", "name 1"))
    assert first.tag == "SELECT 2" and first.truncated is None
    assert second.event_id == "e2" and second.columns is None
    assert second.tag == "INSERT 0 1"
    assert rec.waiting == 0 and rec.drain() == []


@pytest.mark.parametrize("split", range(1, 60, 7))
def test_recording_any_split_of_the_replies_gives_the_same_chunks(split: int) -> None:
    data = _block(
        _describe("id", "name"),
        *_rows(3),
        CommandComplete("SELECT 3"),
        ReadyForQuery(b"I"),
    )
    whole, parts = _recorder(), _recorder()
    for rec in (whole, parts):
        rec.statement("e1", "SELECT 1", BASE_TIME)
        rec.sync()
    feed(whole, data)
    feed(parts, data, split=split)
    assert whole.drain() == parts.drain()


def test_recording_error_skips_the_rest_of_the_query() -> None:
    rec = _recorder()
    rec.statement("e1", "SELECT nope", BASE_TIME)
    rec.statement("e2", "SELECT 2", BASE_TIME)
    rec.sync()
    rec.statement("e3", "SELECT 3", BASE_TIME)  # pipelined second Query
    rec.sync()
    feed(
        rec,
        _block(
            _error("42703", 'column "nope" does not exist'),
            ReadyForQuery(b"I"),
            _describe("x"),
            DataRow((b"3",)),
            CommandComplete("SELECT 1"),
            ReadyForQuery(b"I"),
        ),
    )
    failed, skipped, third = rec.drain()
    assert failed.status == "error" and dict(failed.error or ())["C"] == "42703"
    assert skipped.event_id == "e2" and skipped.status == "skipped"
    assert third.event_id == "e3" and third.rows == (("3",),)


def test_recording_extended_protocol_pipeline() -> None:
    rec = _recorder()
    # Parse, Bind, Describe, Execute, Parse, Bind, Execute, Sync
    rec.statement("e1", "SELECT $1", BASE_TIME)
    rec.statement("e2", "SELECT 2", BASE_TIME)
    rec.sync()
    feed(
        rec,
        _block(
            ParseComplete(),
            BindComplete(),
            _describe("n", type_oid=23, fmt=1),
            DataRow((b"\x00\x00\x00\x07",)),
            CommandComplete("SELECT 1"),
            _error("22012", "division by zero"),
            ReadyForQuery(b"I"),
        ),
    )
    first, second = rec.drain()
    assert first.rows == (("\\x00000007",),) and first.column_types == (23,)
    assert second.status == "error" and second.rows == ()


def test_recording_row_limit_counts_the_rest() -> None:
    rec = _recorder(max_rows_per_statement=10)
    rec.statement("e1", "SELECT * FROM big", BASE_TIME)
    rec.sync()
    feed(
        rec,
        _block(_describe("id", "name"), *_rows(1000), CommandComplete("SELECT 1000")),
    )
    feed(rec, _block(ReadyForQuery(b"I")))
    (chunk,) = rec.drain()
    assert len(chunk.rows) == 10 and chunk.row_count == 1000
    assert chunk.rows_not_recorded == 990 and chunk.truncated == "rows"


def test_recording_byte_budget_spans_the_session() -> None:
    rec = _recorder(max_bytes_per_session=100)  # a row is 17 bytes
    for i in range(3):
        rec.statement(f"e{i}", "SELECT * FROM t", BASE_TIME)
        rec.sync()
        feed(
            rec,
            _block(
                _describe("id", "name"),
                *_rows(5),
                CommandComplete("SELECT 5"),
                ReadyForQuery(b"I"),
            ),
        )
    chunks = rec.drain()
    recorded = [len(c.rows) for c in chunks]
    assert recorded == [5, 0, 0]
    assert chunks[-1].truncated == "bytes" and chunks[-1].row_count == 5
    assert rec.budget >= 0


def test_recording_notices_empty_query_and_loose_messages() -> None:
    rec = _recorder()
    feed(rec, _block(NoticeResponse((("S", "WARNING"), ("M", "between statements")))))
    rec.statement("e1", "", BASE_TIME)
    rec.sync()
    rec.statement("e2", "DO $$ BEGIN RAISE NOTICE 'hi'; END $$", BASE_TIME)
    rec.sync()
    feed(
        rec,
        _block(
            EmptyQueryResponse(),
            ReadyForQuery(b"I"),
            NoticeResponse((("S", "NOTICE"), ("M", "hi"))),
            CommandComplete("DO"),
            ReadyForQuery(b"I"),
        ),
    )
    loose, empty, notice = rec.drain()
    assert loose.status == "message" and loose.event_id is None
    assert loose.notices == ((("S", "WARNING"), ("M", "between statements")),)
    assert empty.status == "empty"
    assert notice.notices == ((("S", "NOTICE"), ("M", "hi")),)


def test_recording_secret_statement_keeps_no_message_text() -> None:
    rec = _recorder()
    rec.statement("e1", "ALTER ROLE bob PASSWORD '<redacted>'", BASE_TIME)
    rec.sync()
    feed(
        rec,
        _block(
            _error("42601", 'syntax error at or near "hunter2"'), ReadyForQuery(b"I")
        ),
    )
    (chunk,) = rec.drain()
    assert "hunter2" not in repr(chunk)
    assert dict(chunk.error or ())["C"] == "42601"


def test_recording_secret_statement_keeps_no_column_names() -> None:
    # An unaliased column is named by its expression, which may hold the secret.
    rec = _recorder()
    rec.statement("e1", "SELECT md5('<redacted>' || 'bob')", BASE_TIME)
    rec.sync()
    feed(
        rec,
        _block(
            _describe("md5('hunter2' || 'bob')"),
            DataRow((b"0123",)),
            CommandComplete("SELECT 1"),
            ReadyForQuery(b"I"),
        ),
    )
    (chunk,) = rec.drain()
    assert chunk.columns == (HIDDEN_COLUMN,)
    assert "hunter2" not in repr(chunk)


def test_recording_secret_columns_are_redacted() -> None:
    rec = _recorder()
    rec.statement("e1", "SELECT rolname, rolpassword FROM pg_authid", BASE_TIME)
    rec.sync()
    feed(
        rec,
        _block(
            _describe("rolname", "rolpassword"),
            DataRow((b"bob", b"SCRAM-SHA-256$4096:secretstuff")),
            DataRow((b"eve", None)),
            CommandComplete("SELECT 2"),
            ReadyForQuery(b"I"),
        ),
    )
    (chunk,) = rec.drain()
    assert chunk.rows == (("bob", "<redacted>"), ("eve", None))


def test_recording_undecodable_bytes_survive_storage(tmp_path: pathlib.Path) -> None:
    rec = _recorder()
    rec.statement("e1", "SELECT convert_to('é', 'LATIN1')", BASE_TIME)
    rec.sync()
    feed(
        rec,
        _block(
            _describe("v"),
            DataRow((b"caf\xe9",)),
            CommandComplete("SELECT 1"),
            ReadyForQuery(b"I"),
        ),
    )
    chunks = rec.drain()
    store = AuditStore(tmp_path / "audit.db")
    try:
        store.append_recording(chunks)
        assert store.recording("5e55") == chunks
        assert store.recording("other") == []
    finally:
        store.close()
    assert chunks[0].rows[0][0] == b"caf\xe9".decode("utf-8", "surrogateescape")


def test_recording_close_finishes_waiting_statements() -> None:
    rec = _recorder()
    rec.statement("e1", "SELECT pg_sleep(100)", BASE_TIME)
    rec.sync()
    feed(rec, _block(_describe("pg_sleep")))
    (chunk,) = rec.close()
    assert chunk.status == "unfinished" and chunk.columns == ("pg_sleep",)


def test_recording_rewritten_block_is_split_by_the_recorder() -> None:
    rec = _recorder()
    rec.statement("e1", "DROP TABLE t", BASE_TIME)
    rec.sync()
    rec.server_block(
        _block(_error("42501", "pamwire: statement denied"), ReadyForQuery(b"I"))
    )
    (chunk,) = rec.drain()
    assert dict(chunk.error or ())["M"] == "pamwire: statement denied"


def test_recording_chunk_data_round_trip() -> None:
    chunk = RecordingChunk(
        session="s",
        seq=3,
        event_id="e",
        statement="SELECT 1",
        started=1.5,
        finished=2.5,
        status="ok",
        columns=("a",),
        column_types=(23,),
        rows=(("1",), (None,)),
        row_count=5,
        truncated="rows",
        tag="SELECT 5",
        notices=((("S", "NOTICE"), ("M", "n")),),
    )
    again = RecordingChunk.from_data(
        chunk.to_data(),
        session="s",
        seq=3,
        event_id="e",
        started=1.5,
        finished=2.5,
        status="ok",
        row_count=5,
    )
    assert again == chunk


def test_recording_store_opened_read_only_without_table(tmp_path: pathlib.Path) -> None:
    import sqlite3

    path = tmp_path / "audit.db"
    AuditStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE recordings")
    conn.close()
    store = AuditStore(path, read_only=True)
    try:
        assert store.recording("x") == []
        assert store.session_summaries() == []
    finally:
        store.close()
