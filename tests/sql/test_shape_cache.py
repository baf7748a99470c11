"""The shape cache: texts that differ only in literals share facts, and only safely.

The property that matters: whatever the caches return equals a fresh analysis of
the same text. Every statement of the fixture files is varied in its literal values
and checked against an uncached analysis.
"""

from __future__ import annotations

import json
import pathlib
import re

import attrs
import pytest

from pamwire.sql import pg

FIXTURES = pathlib.Path(__file__).parents[2] / "fixtures" / "sql"
_NUMBER = re.compile(r"(?<![\w$.])\d+(?![\w.])")
_STRING = re.compile(r"'([a-z_ ]*)'")


def _statements() -> list[str]:
    texts: list[str] = []
    for name in ("pg-facts.jsonl", "pg-policy.jsonl", "corpus-sql-cases.jsonl"):
        for line in (FIXTURES / name).read_text().splitlines():
            case = json.loads(line)
            if case.get("dialect", "postgres") == "postgres" and case.get("sql"):
                texts.append(case["sql"])
    return texts


def _variants(sql: str) -> list[str]:
    return [
        _NUMBER.sub("1", sql),
        _NUMBER.sub("7", sql),
        _NUMBER.sub("0", sql),
        _STRING.sub("'public'", sql),
        _STRING.sub("'hr'", sql),
        _STRING.sub("'role'", sql),
    ]


def _fresh(sql: str) -> pg.Analysis:
    return pg._analyze_guarded(sql, True, ("public",))


def test_shape_cache_never_differs_from_a_fresh_analysis() -> None:
    pg.cache_clear()
    checked = 0
    for sql in _statements():
        for variant in [sql, *_variants(sql)]:
            assert pg.analyze(variant) == _fresh(variant), variant
            checked += 1
    assert checked > 500


def test_shape_cache_reuses_a_select_with_new_literals() -> None:
    pg.cache_clear()
    first = pg.analyze("SELECT abalance FROM pgbench_accounts WHERE aid = 1;")
    second = pg.analyze("SELECT abalance FROM pgbench_accounts WHERE aid = 2;")
    assert (
        second.statements[0].text
        == "SELECT abalance FROM pgbench_accounts WHERE aid = 2"
    )
    assert attrs.evolve(second.statements[0], text="") == attrs.evolve(
        first.statements[0], text=""
    )


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("DELETE FROM t WHERE id = 1 OR 1 = 2", "DELETE FROM t WHERE id = 1 OR 1 = 1"),
        ("UPDATE t SET b = 1 WHERE 1 = 2", "UPDATE t SET b = 1 WHERE 1 = 1"),
        (
            "SELECT set_config('search_path', 'public', false)",
            "SELECT set_config('role', 'public', false)",
        ),
        ("SELECT nextval('s')", "SELECT nextval('hr.other')"),
    ],
)
def test_shape_cache_does_not_reuse_literal_dependent_facts(
    first: str, second: str
) -> None:
    pg.cache_clear()
    pg.analyze(first)
    assert pg.analyze(second) == _fresh(second)
