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


@pytest.mark.parametrize(
    ("kind", "flags", "value", "expected"),
    [
        (1, 0, b"\xff", "-1"),
        (1, 0x80, b"\xff", "255"),
        (3, 0, (42).to_bytes(4, "little"), "42"),
        (8, 0x80, (2**64 - 1).to_bytes(8, "little"), str(2**64 - 1)),
        (5, 0, b"\x00\x00\x00\x00\x00\x00\x04@", "2.5"),
        (253, 0, b"\x05hello", "hello"),
        (253, 0, b"\xfc\x03\x00abc", "abc"),
        (12, 0, b"\x07\xea\x07\x0c\x04\x0a\x1e\x05", "2026-12-04 10:30:05"),
        (10, 0, b"\x04\xea\x07\x0c\x04", "2026-12-04"),
        (11, 0, b"\x08\x01\x01\x00\x00\x00\x02\x03\x04", "-26:03:04"),
        (253, 0, b"\x09short", "\\x0973686f7274"),  # a length that lies
    ],
)
def test_params_mysql_values_by_bound_type(
    kind: int, flags: int, value: bytes, expected: str
) -> None:
    got = params.mysql_params("values", [value], [(kind, flags)], secret=False)
    assert got == (expected,)


def test_params_mysql_long_data_secret_and_modes() -> None:
    values = [b"\x01", b"", None]
    types = [(1, 0), (252, 0), (1, 0)]
    assert params.mysql_params(
        "values", values, types, secret=False, long_data=(1,)
    ) == ("1", "(long data)", None)
    assert params.mysql_params("values", values, types, secret=True) == (
        "?",
        "?",
        None,
    )
    assert params.mysql_params("none", values, types, secret=False) is None


@pytest.mark.parametrize(
    "text",
    [
        'select $1::text as U&"p\\0061ssword"',
        'select $1 as "Pass Word"',
        "select $1 as passwd",
        "select md5($1) /* pass-word */",
        "select set_config('app.secret', $1, false)",
        "select $1 as secret_token",
        "select dblink_connect($1)",
        "CREATE USER u IDENTIFIED BY ?",
        "select crypt($1, gen_salt('bf'))",
    ],
)
def test_params_names_a_secret_sees_through_spelling(text: str) -> None:
    assert params.names_a_secret(text)


@pytest.mark.parametrize(
    "text",
    [
        "SELECT abalance FROM pgbench_accounts WHERE aid = $1",
        "UPDATE orders SET status = $1 WHERE id = $2",
        "SELECT c FROM sbtest1 WHERE id=?",
    ],
)
def test_params_names_a_secret_leaves_ordinary_statements(text: str) -> None:
    assert not params.names_a_secret(text)
