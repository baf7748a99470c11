"""Generated ordinary statements: baseline never denies them, read-only never a SELECT.

Hypothesis builds SELECT, INSERT, UPDATE and DELETE statements of the kind an
application sends (a WHERE on a key, joins, CTEs, aggregates, ordinary
built-ins) over the corpus schema's tables; no pack may refuse them.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pamwire.rules.engine import RuleContext, RuleSet, strongest
from pamwire.rules.loader import builtin_pack, load_rules
from pamwire.sql import pg

TABLES = {
    "t": ("id", "a", "b"),
    "u": ("id", "t_id", "name", "b"),
    "app_user": ("id", "last_login"),
    "delete_log": ("id", "note"),
    "pgbench_accounts": ("aid", "bid", "abalance", "filler"),
}
FUNCTIONS = ("lower", "upper", "length", "coalesce", "abs", "now", "md5", "trim")
AGGREGATES = ("count", "sum", "max", "min", "avg")

READ_WRITE = RuleContext(user="app", target="prod", role="read-write")
READ_ONLY = RuleContext(user="report", target="prod", role="read-only")

_PACKS: list[RuleSet] = []


def _policy() -> RuleSet:
    # Loaded once; hypothesis does not mix with function-scoped fixtures.
    if not _PACKS:
        _PACKS.append(load_rules([builtin_pack(n) for n in ("baseline", "read-only")]))
    return _PACKS[0]


tables = st.sampled_from(sorted(TABLES))
values = st.one_of(
    st.integers(-1000, 10**6).map(str),
    st.text("abcxyz' ", max_size=8).map(lambda s: "'" + s.replace("'", "''") + "'"),
    st.just("$1"),
)
in_list_values = st.one_of(
    st.integers(2 * 10**6, 3 * 10**6).map(str), st.sampled_from(["$2", "$3"])
)


@st.composite
def predicate(draw: Any, alias: str, table: str) -> str:
    """A WHERE that depends on the rows: a key compared, maybe AND more."""
    key = TABLES[table][0]
    op = draw(st.sampled_from(["=", ">", "<", ">=", "<=", "<>"]))
    where = f"{alias}.{key} {op} {draw(values)}"
    if draw(st.booleans()):
        column = draw(st.sampled_from(TABLES[table]))
        where += f" AND {alias}.{column} IS NOT NULL"
    if draw(st.booleans()):
        # Values of their own: `id IN (5, 6) OR id <> 5` is a real tautology.
        listed = ", ".join(draw(in_list_values) for _ in range(2))
        where = f"{alias}.{key} IN ({listed}) OR ({where})"
    return where


@st.composite
def expression(draw: Any, alias: str, table: str) -> str:
    column = f"{alias}.{draw(st.sampled_from(TABLES[table]))}"
    shape = draw(st.integers(0, 2))
    if shape == 0:
        return column
    if shape == 1:
        function = draw(st.sampled_from(FUNCTIONS))
        if function in ("now",):
            return "now()"
        if function in ("coalesce",):
            return f"coalesce({column}::text, 'x')"
        if function in ("abs",):
            return f"abs({alias}.{TABLES[table][0]})"
        return f"{function}({column}::text)"
    return f"{column}::text || '-'"


@st.composite
def select(draw: Any) -> str:
    table = draw(tables)
    columns = draw(st.lists(expression("a", table), min_size=1, max_size=3))
    sql = f"SELECT {', '.join(columns)} FROM {table} a"
    if draw(st.booleans()):
        other = draw(tables)
        kind = draw(st.sampled_from(["JOIN", "LEFT JOIN"]))
        sql += f" {kind} {other} b ON b.{TABLES[other][0]} = a.{TABLES[table][0]}"
    sql += f" WHERE {draw(predicate('a', table))}"
    if draw(st.booleans()):
        sql += f" ORDER BY 1 LIMIT {draw(st.integers(1, 100))}"
    if draw(st.booleans()):
        aggregate = draw(st.sampled_from(AGGREGATES))
        sql = f"SELECT {aggregate}(x.n) FROM (SELECT 1 AS n FROM ({sql}) y) x"
    if draw(st.booleans()):
        sql = f"WITH c AS ({sql}) SELECT * FROM c"
    return sql


@st.composite
def write(draw: Any) -> str:
    table = draw(tables)
    columns = TABLES[table]
    kind = draw(st.sampled_from(["insert", "update", "delete"]))
    if kind == "insert":
        picked = draw(st.lists(st.sampled_from(columns), min_size=1, unique=True))
        row = ", ".join(draw(values) for _ in picked)
        sql = f"INSERT INTO {table} ({', '.join(picked)}) VALUES ({row})"
        if draw(st.booleans()):
            sql += " RETURNING " + columns[0]
        return sql
    where = draw(predicate(table, table))
    if kind == "update":
        column = draw(st.sampled_from(columns[1:]))
        sql = f"UPDATE {table} SET {column} = {draw(values)} WHERE {where}"
    elif draw(st.booleans()):
        other = draw(st.sampled_from(sorted(TABLES)))
        key = TABLES[other][0]
        sql = (
            f"DELETE FROM {table} USING {other} o "
            f"WHERE {table}.{columns[0]} = o.{key} AND o.{key} = {draw(values)}"
        )
    else:
        sql = f"DELETE FROM {table} WHERE {where}"
    if draw(st.booleans()):
        sql = f"WITH c AS (SELECT 1) {sql}"
    return sql


def _verdict(sql: str, ctx: RuleContext) -> Any:
    analysis = pg.analyze(sql)
    assert analysis.error is None, (sql, analysis.error)
    return strongest(_policy().decide_all(analysis, ctx))


@settings(max_examples=300, deadline=None)
@given(st.one_of(select(), write()))
def test_baseline_never_denies_ordinary_statements(sql: str) -> None:
    decision = _verdict(sql, READ_WRITE)
    assert decision.verdict == "allow", (sql, decision)


@settings(max_examples=300, deadline=None)
@given(select())
def test_read_only_never_denies_ordinary_selects(sql: str) -> None:
    decision = _verdict(sql, READ_ONLY)
    assert decision.verdict == "allow", (sql, decision)


@pytest.mark.parametrize("sql", ["DELETE FROM t WHERE t.id = 1", "SELECT 1"])
def test_generated_shapes_parse(sql: str) -> None:
    assert _verdict(sql, READ_WRITE).verdict == "allow"
