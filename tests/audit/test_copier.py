"""Tests of the store copier child: frames in, commits and answers out."""

from __future__ import annotations

import io
import pathlib

import pytest

from pamwire.audit import copier
from pamwire.audit.chain import Chain
from pamwire.audit.recording import RecordingChunk
from pamwire.audit.recording_store import digest_rows
from pamwire.audit.search import SearchQuery
from pamwire.audit.store import AuditStore
from tests.audit import make_event


@pytest.fixture
def store(tmp_path: pathlib.Path) -> AuditStore:
    return AuditStore(tmp_path / "audit.db")


def _records(chain: Chain, count: int) -> bytes:
    data, _ = chain.add_events([make_event() for _ in range(count)])
    line, _ = chain.add_mark("checkpoint", 1.0)
    return data + line


def _run(store: AuditStore, *frames: bytes) -> tuple[int, list[bytes]]:
    answers = io.BytesIO()
    code = copier.serve(store, io.BytesIO(b"".join(frames)), answers)
    return code, answers.getvalue().splitlines()


def test_copier_commits_records_and_answers_each_frame(store: AuditStore) -> None:
    chain = Chain("w1")
    code, answers = _run(
        store,
        copier.encode_frame(copier.RECORDS, _records(chain, 3)),
        copier.encode_frame(copier.RECORDS, _records(chain, 2)),
    )
    assert (code, answers) == (0, [b"+", b"+"])
    assert len(store.search(SearchQuery())) == 5
    assert [m.kind for m in store.marks()] == ["checkpoint", "checkpoint"]


def test_copier_answers_a_bad_frame_and_goes_on(store: AuditStore) -> None:
    chain = Chain("w1")
    code, answers = _run(
        store,
        copier.encode_frame(copier.RECORDS, b"not a record\n"),
        copier.encode_frame(copier.RECORDS, _records(chain, 1)),
    )
    assert code == 0
    assert answers[0].startswith(b"-bad record line 1")
    assert answers[1] == b"+"
    assert len(store.search(SearchQuery())) == 1


def test_copier_answers_a_store_failure(store: AuditStore) -> None:
    assert store._conn is not None
    store._conn.execute("PRAGMA query_only = 1")
    code, answers = _run(
        store, copier.encode_frame(copier.RECORDS, _records(Chain("w1"), 1))
    )
    assert code == 0
    assert answers[0].startswith(b"-cannot write audit events")


@pytest.mark.parametrize(
    "stream",
    [b"R\x00\x00\x00\x10short", b"X\x00\x00\x00\x00", b"R\x00"],
    ids=["short-body", "unknown-kind", "short-header"],
)
def test_copier_stops_on_a_broken_frame_stream(
    store: AuditStore, stream: bytes
) -> None:
    code, answers = _run(store, stream)
    # A header cut short is the end of input; anything else is a broken stream.
    assert code == (0 if stream == b"R\x00" else 1)
    assert answers == []


def test_copier_stores_recordings(store: AuditStore) -> None:
    chunk = RecordingChunk(
        session="s1",
        seq=1,
        event_id="e1",
        statement="SELECT 'caf\udce9'",
        started=1.5,
        finished=2.5,
        status="ok",
        columns=("a",),
        column_types=(25,),
        rows=(("x",), (None,)),
        row_count=2,
        tag="SELECT 2",
    )
    body = copier.recordings_body([chunk])
    code, answers = _run(store, copier.encode_frame(copier.RECORDINGS, body))
    assert code == 0 and answers[0].startswith(b"+")
    (seal,) = copier.decode_seals(answers[0][1:])
    assert (seal.session, seal.seqs) == ("s1", (1,))
    assert seal.digest == digest_rows(store.recording_rows("s1"))
    assert store.recording("s1") == [chunk]


def test_copier_frame_refuses_an_oversized_body() -> None:
    class Huge(bytes):
        def __len__(self) -> int:
            return copier.MAX_FRAME + 1

    with pytest.raises(ValueError, match="too large"):
        copier.encode_frame(copier.RECORDS, Huge())
