"""Tests of the hash chain's record bytes: what the writer journals is canonical."""

from __future__ import annotations

import json
import math

import pytest

from pamwire.audit import chain
from pamwire.audit.chain import GENESIS, Chain, Mark, decode_line, mark_bytes
from pamwire.audit.events import Completion

_COMPLETIONS = [
    Completion("e1", 0.25, "ok", None, 1),
    Completion("e2", 3, "error", "42P01", None),
    Completion("e3", 0.0, "skipped", None, None),
]


def _check_line(line: bytes, previous: bytes) -> Mark:
    """The mark a journal line holds; its hash must be over its canonical bytes."""
    record = decode_line(line.rstrip(b"\n"))
    assert isinstance(record, Mark)
    body = mark_bytes(record)
    assert line == record.hash.encode("ascii") + b" " + body + b"\n"
    assert chain.next_hash(previous, body).hex() == record.hash
    return record


def test_chain_add_mark_line_is_canonical() -> None:
    own = Chain("w1")
    line, mark = own.add_mark("start", 5, detail="a:1:ff")
    assert _check_line(line, GENESIS) == mark
    assert mark.time == 5.0 and isinstance(mark.time, float)
    assert (own.seq, own.head.hex()) == (1, mark.hash)


def test_chain_add_completions_lines_are_canonical() -> None:
    own = Chain("w1")
    data, marks = own.add_completions(_COMPLETIONS, 7.5)
    previous = GENESIS
    for line, mark in zip(data.splitlines(keepends=True), marks, strict=True):
        assert _check_line(line, previous) == mark
        previous = bytes.fromhex(mark.hash)
    assert [m.seq for m in marks] == [1, 2, 3]
    assert marks[1].duration_ms == 3.0 and marks[1].sqlstate == "42P01"


def test_chain_completion_lines_equal_add_completions() -> None:
    with_marks, lines_only = Chain("w1"), Chain("w1")
    with_marks.add_mark("start", 1.0)
    lines_only.add_mark("start", 1.0)
    data, _ = with_marks.add_completions(_COMPLETIONS, 7.5)
    assert lines_only.completion_lines(_COMPLETIONS, 7.5) == data
    assert lines_only.state() == with_marks.state()


def test_chain_completion_lines_of_nothing_is_empty() -> None:
    own = Chain("w1")
    assert own.completion_lines([], 1.0) == b""
    assert own.state() == (0, GENESIS)


@pytest.mark.parametrize(
    "value",
    [
        ["event", "w1", 1, 1796378400.123456, None, True, False, 2**70, -0.0],
        ['caf\u00e9 \udcff \x00 "q" \\ \n', ["a", None], [], ("t",)],
        [1e300, 1e-300, 0.1, math.inf, -math.inf, math.nan],
        [{"k": [1, 2]}, "\U0001f600"],
    ],
)
def test_chain_encode_matches_json_encoder(value: list[object]) -> None:
    expected = json.JSONEncoder(separators=(",", ":")).encode(value)
    assert chain._encode(value) == expected
