"""Tests of what audit events keep of bound parameters."""

from __future__ import annotations

import pytest

from pamwire.audit import params


def test_params_redacted_keeps_count_and_nulls_only() -> None:
    assert params.pg_params("redacted", [b"42", None, b"x"], [], secret=False) == (
        "?",
        None,
        "?",
    )


def test_params_none_keeps_nothing() -> None:
    assert params.pg_params("none", [b"42"], [], secret=False) is None


@pytest.mark.parametrize(
    ("formats", "expected"),
    [
        ((), ("42", "caf\u00e9")),
        ((0,), ("42", "caf\u00e9")),
        ((1,), ("\\x3432", "\\x636166c3a9")),
        ((0, 1), ("42", "\\x636166c3a9")),
    ],
    ids=["no-codes", "one-text", "one-binary", "per-value"],
)
def test_params_values_follow_the_format_codes(
    formats: tuple[int, ...], expected: tuple[str, ...]
) -> None:
    values = [b"42", "caf\u00e9".encode()]
    assert params.pg_params("values", values, formats, secret=False) == expected


def test_params_values_of_a_secret_statement_are_redacted() -> None:
    assert params.pg_params("values", [b"hunter2"], [], secret=True) == ("?",)


def test_params_values_keep_undecodable_bytes_escaped() -> None:
    (value,) = params.pg_params("values", [b"a\xffb"], [], secret=False) or ()
    assert value == "a\udcffb"


def test_params_long_values_are_cut_with_their_length() -> None:
    text, binary = params.pg_params(
        "values", [b"x" * 5000, b"\x01" * 5000], (0, 1), secret=False
    ) or (None, None)
    assert text == "x" * params.MAX_CHARS + "…(5000 bytes)"
    assert binary == "\\x" + "01" * (params.MAX_CHARS // 2) + "…(5000 bytes)"


def test_params_values_at_the_limit_are_whole() -> None:
    (text,) = params.pg_params(
        "values", [b"y" * params.MAX_CHARS], [], secret=False
    ) or (None,)
    assert text == "y" * params.MAX_CHARS


@pytest.mark.parametrize(
    ("oid", "value", "expected"),
    [
        (21, b"\x00\x2a", "42"),
        (23, b"\xff\xff\xff\xfe", "-2"),
        (20, (2**40).to_bytes(8, "big"), str(2**40)),
        (26, b"\xff\xff\xff\xff", str(2**32 - 1)),
        (701, b"?\xf8\x00\x00\x00\x00\x00\x00", "1.5"),
        (16, b"\x01", "true"),
        (2950, bytes(range(16)), "00010203-0405-0607-0809-0a0b0c0d0e0f"),
        (25, "é".encode(), "é"),
        (3802, b'\x01{"a": 1}', '{"a": 1}'),
        (23, b"\x00\x2a", "\\x002a"),  # the wrong width for int4: not guessed
        (1700, b"\x00\x01", "\\x0001"),  # numeric: shown as hex
    ],
)
def test_params_binary_values_by_declared_type(
    oid: int, value: bytes, expected: str
) -> None:
    got = params.pg_params("values", [value], (1,), secret=False, types=(oid,))
    assert got == (expected,)
