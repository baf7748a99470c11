"""Facts of MySQL/MariaDB statements from fixtures/sql/mysql-facts.jsonl, plus the rest.

Each fixture line holds ``sql``, optional ``settings`` (the keyword arguments of
``mysql.analyze``) and either ``error`` (a substring of the expected error) or
``statements``: one object per expected statement whose keys are StatementFacts
fields (lists compare as sets, ``assignments`` as a list) or ``inner_kind``.
Hypothesis checks that ordinary statements pass the baseline pack and that no
text makes the analyser raise.
"""

from __future__ import annotations

import json
import pathlib
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pamwire.rules.engine import RuleContext, RuleSet, strongest
from pamwire.rules.loader import builtin_pack, load_rules
from pamwire.sql import mysql
from pamwire.sql.facts import KINDS, OBJECT_TYPES

FIXTURE = pathlib.Path(__file__).parents[2] / "fixtures" / "sql" / "mysql-facts.jsonl"
CASES = [json.loads(line) for line in FIXTURE.read_text("utf-8").splitlines() if line]


def _analyze(sql: str, options: dict[str, Any]) -> mysql.Analysis:
    options = dict(options)
    if "server_version" in options:
        options["server_version"] = tuple(options["server_version"])
    return mysql.analyze(sql, **options)


def _actual(facts: mysql.StatementFacts, key: str) -> Any:
    if key == "inner_kind":
        return facts.inner.kind if facts.inner is not None else None
    value = getattr(facts, key)
    if key == "assignments":
        return [list(pair) for pair in value]
    return set(value) if isinstance(value, frozenset) else value


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_mysql_analyze_fixture(case: dict[str, Any]) -> None:
    analysis = _analyze(case["sql"], case.get("settings", {}))
    if "error" in case:
        assert analysis.statements == ()
        assert analysis.error is not None and case["error"] in analysis.error
        return
    assert analysis.error is None, analysis.error
    assert len(analysis.statements) == len(case["statements"])
    for facts, expected in zip(analysis.statements, case["statements"], strict=True):
        for key, value in expected.items():
            listed = isinstance(value, list) and key != "assignments"
            want = set(value) if listed else value
            assert _actual(facts, key) == want, key


def test_mysql_fixture_ids_are_unique() -> None:
    ids = [case["id"] for case in CASES]
    assert len(ids) == len(set(ids))


def test_mysql_reports_only_known_kinds_and_objects() -> None:
    for case in CASES:
        for facts in _analyze(case["sql"], case.get("settings", {})).statements:
            assert facts.kind in KINDS
            assert facts.object_type is None or facts.object_type in OBJECT_TYPES


def test_mysql_fingerprint_ignores_constants() -> None:
    one = mysql.analyze("SELECT * FROM t WHERE id = 1").statements[0]
    two = mysql.analyze("select *  from t where id = 99").statements[0]
    other = mysql.analyze("SELECT * FROM u WHERE id = 1").statements[0]
    assert one.fingerprint == two.fingerprint != other.fingerprint


def test_mysql_statement_text_is_the_original_slice() -> None:
    analysis = mysql.analyze("SELECT 1 ;  DELETE FROM t WHERE id = 2 -- bye")
    assert [f.text for f in analysis.statements] == [
        "SELECT 1",
        "DELETE FROM t WHERE id = 2",
    ]


def test_mysql_lone_surrogate_fails_closed() -> None:
    assert mysql.analyze("SELECT '\udcff'").error == "statement text is not valid utf-8"


def test_mysql_unknown_flavor_fails_closed() -> None:
    assert mysql.analyze("SELECT 1", flavor="percona").error is not None


def test_mysql_cache_returns_same_analysis() -> None:
    mysql.cache_clear()
    first = mysql.analyze("SELECT a FROM t WHERE id = 7", database="app")
    assert mysql.analyze("SELECT a FROM t WHERE id = 7", database="app") is first
    assert mysql.analyze("SELECT a FROM t WHERE id = 7", database="hr") is not first


def test_mysql_cold_analysis_is_fast() -> None:
    # Generous bound for a loaded CI machine; benchmarks/ reports the real figure.
    sql = "SELECT c FROM sbtest1 WHERE id = {}"
    mysql.analyze(sql.format(0))
    rounds = 200
    start = time.perf_counter()
    for i in range(1, rounds + 1):
        mysql.analyze(sql.format(i))
    per_statement = (time.perf_counter() - start) / rounds
    assert per_statement < 0.002


# --- generated statements -----------------------------------------------------

TABLES = {
    "t": ("id", "a", "b"),
    "u": ("id", "t_id", "name", "b"),
    "app_user": ("id", "last_login"),
    "sbtest1": ("id", "k", "c", "pad"),
}
FUNCTIONS = ("lower", "upper", "length", "coalesce", "abs", "now", "concat", "ifnull")
READ_WRITE = RuleContext(user="app", target="mariadb", role="read-write")
_PACKS: list[RuleSet] = []


def _baseline() -> RuleSet:
    if not _PACKS:
        _PACKS.append(load_rules([builtin_pack("baseline")]))
    return _PACKS[0]


values = st.one_of(
    st.integers(-1000, 10**6).map(str),
    st.text("abc'\\\" x;", max_size=8).map(
        lambda s: "'" + s.replace("\\", "\\\\").replace("'", "''") + "'"
    ),
    st.just("?"),
)
names = st.sampled_from(sorted(TABLES))


@st.composite
def statements(draw: Any) -> str:
    table = draw(names)
    cols = TABLES[table]
    key = cols[0]
    op = draw(st.sampled_from(["=", ">", "<", ">=", "<>", "<=>"]))
    where = f"`{table}`.{key} {op} {draw(values)}"
    if draw(st.booleans()):
        where += f" AND {draw(st.sampled_from(cols))} IS NOT NULL"
    column = draw(st.sampled_from(cols[1:]))
    function = draw(st.sampled_from(FUNCTIONS))
    shape = draw(st.integers(0, 5))
    if shape == 0:
        limit = draw(st.sampled_from(["", " LIMIT 10", " ORDER BY 1 DESC LIMIT 5"]))
        return f"SELECT {function}({column}), {key} FROM {table} WHERE {where}{limit}"
    if shape == 1:
        return f"UPDATE {table} SET {column} = {draw(values)} WHERE {where}"
    if shape == 2:
        return f"DELETE FROM {table} WHERE {where}"
    if shape == 3:
        listed = ", ".join(cols)
        row = ", ".join(draw(values) for _ in cols)
        return f"INSERT INTO {table} ({listed}) VALUES ({row})"
    if shape == 4:
        return (
            "SELECT t.id, u.name FROM t JOIN u ON u.t_id = t.id "
            f"WHERE t.b > {draw(values)} GROUP BY t.id, u.name"
        )
    return (
        "WITH recent AS (SELECT id FROM u WHERE b > 1) "
        f"SELECT COUNT(*) FROM t WHERE id IN (SELECT id FROM recent) AND {where}"
    )


@settings(max_examples=150, deadline=None)
@given(sql=statements(), flavor=st.sampled_from(["mariadb", "mysql"]))
def test_mysql_baseline_never_denies_ordinary_statements(sql: str, flavor: str) -> None:
    analysis = mysql.analyze(
        sql, flavor=flavor, server_version=(10, 11, 0), database="app"
    )
    assert analysis.error is None, (sql, analysis.error)
    decision = strongest(_baseline().decide_all(analysis, READ_WRITE))
    assert decision.verdict == "allow", (sql, decision)


@settings(max_examples=300, deadline=None)
@given(
    sql=st.text(
        st.sampled_from(list("SELCTDROPWHE '\"`\\;/*!M+-#\n\r@()=,.0159xyz")),
        max_size=40,
    ),
    ansi=st.booleans(),
    nbe=st.booleans(),
)
def test_mysql_analyze_never_raises(sql: str, ansi: bool, nbe: bool) -> None:
    analysis = mysql.analyze(sql, ansi_quotes=ansi, no_backslash_escapes=nbe)
    assert analysis.error is not None or analysis.statements
