"""Tests of `log export`: JSON lines in chain order, time filters, bounded --follow."""

from __future__ import annotations

import argparse
import io
import json
import pathlib

import pytest

from pamwire.audit import export
from pamwire.audit.events import Completion
from pamwire.audit.store import AuditError, AuditStore
from pamwire.errors import PamwireError
from tests.audit import BASE_TIME, make_event


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    export.add_export_arguments(parser)
    return parser.parse_args(list(argv))


def _lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


def test_export_every_event_and_completion_in_chain_order(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "audit.db"
    store = AuditStore(path)
    events = [make_event(statement=f"SELECT {i}") for i in range(5)]
    store.append(events[:3])
    store.complete([Completion(events[0].event_id, 1.0, "ok", None, 1)])
    store.close()
    store = AuditStore(path)  # a second writer
    store.append(events[3:])
    store.close()

    out = io.StringIO()
    assert export.run_export(_args(), path, out) == 0
    lines = _lines(out.getvalue())
    kinds = [line["record"] for line in lines]
    assert kinds == ["event"] * 3 + ["completion"] + ["event"] * 2
    assert [line["statement"] for line in lines if line["record"] == "event"] == [
        f"SELECT {i}" for i in range(5)
    ]
    writers = [line["writer"] for line in lines]
    assert writers[0] == writers[3] != writers[4]
    first = lines[0]
    assert isinstance(first["hash"], str) and len(first["hash"]) == 64
    assert lines[3]["event_id"] == events[0].event_id and lines[3]["outcome"] == "ok"
    assert out.getvalue().isascii()


def test_export_time_filters(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "audit.db"
    store = AuditStore(path)
    store.append([make_event(time=BASE_TIME + i) for i in range(10)])
    store.close()
    out = io.StringIO()
    export.run_export(
        _args("--since", "2026-12-04T10:00:03Z", "--until", "2026-12-04T10:00:05Z"),
        path,
        out,
    )
    assert len(_lines(out.getvalue())) == 2


def test_export_reads_in_batches(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "BATCH", 7)
    path = tmp_path / "audit.db"
    store = AuditStore(path)
    events = [make_event(statement=str(i)) for i in range(30)]
    store.append(events)
    store.complete([Completion(e.event_id, 1.0, "ok", None, 1) for e in events])
    store.close()
    out = io.StringIO()
    export.run_export(_args(), path, out)
    lines = _lines(out.getvalue())
    assert len(lines) == 60
    seen: set[object] = set()
    for line in lines:  # no completion before its event
        if line["record"] == "event":
            seen.add(line["event_id"])
        else:
            assert line["event_id"] in seen


def test_export_follow_prints_new_events_once(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "audit.db"
    writer = AuditStore(path)
    writer.append([make_event(statement="SELECT 0")])
    added = iter(range(1, 4))

    def sleep(seconds: float) -> None:
        assert seconds == 0.5
        n = next(added, None)
        if n is not None:
            writer.append([make_event(statement=f"SELECT {n}")])

    out = io.StringIO()
    try:
        export.run_export(_args("--follow", "--max-polls", "6"), path, out, sleep=sleep)
    finally:
        writer.close()
    statements = [line["statement"] for line in _lines(out.getvalue())]
    assert statements == [f"SELECT {i}" for i in range(4)]


def test_export_refuses_bad_arguments_and_missing_store(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "audit.db"
    with pytest.raises(AuditError):
        export.run_export(_args(), path, io.StringIO())
    AuditStore(path).close()
    with pytest.raises(PamwireError, match="after --until"):
        export.run_export(_args("--since", "2h", "--until", "3h"), path, io.StringIO())
    with pytest.raises(PamwireError, match="interval"):
        export.run_export(_args("--interval", "0"), path, io.StringIO())
