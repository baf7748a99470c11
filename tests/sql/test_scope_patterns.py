"""Patterns that match every string, and comparisons that cover every value."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pamwire.sql.pg_patterns import Atom, covers_every_value, matches_everything


@pytest.mark.parametrize(
    ("op", "pattern"),
    [
        ("~~", "%"),
        ("~~", "%%"),
        ("~~", "_%"),
        ("~~*", "%"),
        ("~", ""),
        ("~", ".*"),
        ("~", "^"),
        ("~", "$"),
        ("~", "x*"),
        ("~", "."),
        ("~*", "(a|)"),
        ("~", "\\mword\\M"),  # PostgreSQL-only syntax: unknown, so everything
        ("~", "a" * 600),  # too long to probe
        ("similar", "%"),
        ("^@", ""),
    ],
)
def test_matches_everything(op: str, pattern: str) -> None:
    assert matches_everything(op, pattern)


@pytest.mark.parametrize(
    ("op", "pattern"),
    [
        ("~~", "x%"),
        ("~~", "%x%"),
        ("~~", "___%"),
        ("~~", "\\%"),
        ("~", "^abc"),
        ("~", "[a-z]"),
        ("~*", "[a-z]"),
        ("similar", "x%"),
        ("^@", "a"),
    ],
)
def test_matches_everything_not(op: str, pattern: str) -> None:
    assert not matches_everything(op, pattern)


def test_matches_everything_like_escape() -> None:
    assert not matches_everything("~~", "#%", escape="#")
    assert matches_everything("~~", "%", escape="#")


def _n(value: int) -> Decimal:
    return Decimal(value)


@pytest.mark.parametrize(
    "atoms",
    [
        [Atom("c", ">", (_n(0),)), Atom("c", "<=", (_n(0),))],
        [Atom("c", "=", (_n(1),)), Atom("c", "<>", (_n(1),))],
        [Atom("c", "<", (_n(10),)), Atom("c", ">", (_n(5),))],
        [Atom("c", "in", (_n(1), _n(2))), Atom("c", "not in", (_n(2), _n(1)))],
        [
            Atom("c", "between", (_n(1), _n(5))),
            Atom("c", "not between", (_n(1), _n(5))),
        ],
        [Atom("c", ">", ("$1",)), Atom("c", "<=", ("$1",))],
    ],
)
def test_covers_every_value(atoms: list[Atom]) -> None:
    assert covers_every_value(atoms)


@pytest.mark.parametrize(
    "atoms",
    [
        [Atom("c", ">", (_n(5),)), Atom("c", "<", (_n(5),))],
        [Atom("c", "<", (_n(0),)), Atom("c", ">", (_n(1),)), Atom("d", "=", (_n(0),))],
        [Atom("c", ">", ("$1",)), Atom("c", "<=", ("$2",))],
        [Atom("c", "=", (_n(1),)), Atom("d", "<>", (_n(1),))],
        [Atom("c", "in", (_n(5), "'x'")), Atom("c", "<>", (_n(5),))],
    ],
)
def test_covers_every_value_not(atoms: list[Atom]) -> None:
    assert not covers_every_value(atoms)
