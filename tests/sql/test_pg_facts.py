"""Facts of PostgreSQL statements, from fixtures/sql/pg-facts.jsonl, plus the cache.

Each fixture line holds ``sql``, optional ``settings`` (``search_path``,
``standard_conforming_strings``) and either ``error`` (a substring of the
expected error) or ``statements``: one object per expected statement whose keys
are StatementFacts fields (lists compare as sets) or ``inner_kind``.
"""

from __future__ import annotations

import json
import pathlib
import time
from typing import Any

import pytest

from pamwire.sql import pg
from pamwire.sql.facts import KINDS, OBJECT_TYPES

FIXTURE = pathlib.Path(__file__).parents[2] / "fixtures" / "sql" / "pg-facts.jsonl"
CASES = [json.loads(line) for line in FIXTURE.read_text("utf-8").splitlines() if line]


def _actual(facts: pg.StatementFacts, key: str) -> Any:
    if key == "inner_kind":
        return facts.inner.kind if facts.inner is not None else None
    value = getattr(facts, key)
    if key == "assignments":
        return [list(pair) for pair in value]
    return set(value) if isinstance(value, frozenset) else value


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_analyze_fixture(case: dict[str, Any]) -> None:
    settings = case.get("settings", {})
    analysis = pg.analyze(
        case["sql"],
        standard_conforming_strings=settings.get("standard_conforming_strings", True),
        search_path=tuple(settings.get("search_path", ("public",))),
    )
    if "error" in case:
        assert analysis.statements == ()
        assert analysis.error is not None and case["error"] in analysis.error
        return
    assert analysis.error is None
    assert len(analysis.statements) == len(case["statements"])
    for facts, expected in zip(analysis.statements, case["statements"], strict=True):
        for key, value in expected.items():
            listed = isinstance(value, list) and key != "assignments"
            want = set(value) if listed else value
            assert _actual(facts, key) == want, key


def test_analyze_fixture_ids_are_unique() -> None:
    ids = [case["id"] for case in CASES]
    assert len(ids) == len(set(ids))


def test_analyze_reports_only_known_kinds_and_objects() -> None:
    for case in CASES:
        for facts in pg.analyze(case["sql"]).statements:
            assert facts.kind in KINDS
            assert facts.object_type is None or facts.object_type in OBJECT_TYPES


def test_object_types_cover_pglast_enum() -> None:
    from pglast.enums.parsenodes import ObjectType

    names = {member.name.removeprefix("OBJECT_").lower() for member in ObjectType}
    assert names <= OBJECT_TYPES


def test_analyze_fingerprint_ignores_constants() -> None:
    one = pg.analyze("SELECT * FROM t WHERE id = 1").statements[0]
    two = pg.analyze("select *  from t where id = 99").statements[0]
    other = pg.analyze("SELECT * FROM u WHERE id = 1").statements[0]
    assert one.fingerprint == two.fingerprint != other.fingerprint


def test_analyze_fingerprint_is_per_statement() -> None:
    both = pg.analyze("SELECT 1; DELETE FROM t").statements
    alone = pg.analyze("DELETE FROM t").statements[0]
    assert both[1].fingerprint == alone.fingerprint


def test_analyze_caches_by_text_and_settings() -> None:
    pg.cache_clear()
    sql = "SELECT * FROM salaries"
    first = pg.analyze(sql)
    assert pg.analyze(sql) is first
    moved = pg.analyze(sql, search_path=("hr",))
    assert moved is not first
    assert moved.statements[0].tables_read == {"hr.salaries"}


def test_analyze_deep_nesting_fails_closed() -> None:
    for depth in (1000, 20000):
        analysis = pg.analyze("SELECT " + "f(" * depth + "1" + ")" * depth)
        assert analysis.statements == () and analysis.error


def test_analyze_never_raises_on_junk() -> None:
    for sql in ("\udc80", "'", '"', "$$", "/*", "SELECT '\\", "\x00", "E'\\", ")" * 50):
        analysis = pg.analyze(sql)
        assert analysis.error is not None or analysis.statements


def test_analyze_speed_within_budget() -> None:
    # Product bar: 150 µs cold, 5 µs cached on an ordinary OLTP statement; the
    # test allows slack for a loaded machine.
    sql = "UPDATE pgbench_accounts SET abalance = abalance + -42 WHERE aid = 99"
    rounds = 200
    started = time.perf_counter()
    for _ in range(rounds):
        pg.cache_clear()
        pg.analyze(sql)
    cold = (time.perf_counter() - started) / rounds
    started = time.perf_counter()
    for _ in range(rounds * 10):
        pg.analyze(sql)
    cached = (time.perf_counter() - started) / (rounds * 10)
    assert cold < 450e-6
    assert cached < 15e-6
