"""Decide whether a PostgreSQL DELETE, UPDATE, MERGE or upsert is limited by its rows.

Works on the JSON tree of ``pglast.parser.parse_sql_json``.

Theory of operation: a WHERE is *scoped* only when it provably restricts the
target's rows by their data. The judge gives every predicate one of four values:
FALSE (no row), RESTRICT (a restriction that depends on the target's columns),
OPEN (nothing shows that it restricts: a parameter, another table only, a
pattern that may match everything) and TRUE (every row). AND restricts when any
conjunct does; OR only when every branch does. NOT is pushed down to the leaves
(``NOT id = ANY($1)`` is ``id <> ALL($1)``). A leaf restricts when it compares a
target column with something that is not an expression of that same column
(``id = 1``, ``a < $1``, ``t.id = u.t_id``, ``a LIKE 'x%'``), or is a sub-select
correlated with the target. Complementary branches (``id > 0 OR id <= 0``,
``p OR NOT p``) are TRUE.

A join of the target with itself is judged twice: once with each other alias of
the table as another table, and once reading every alias (in USING, FROM, the
MERGE source, and positive EXISTS or IN sub-selects) as the target row itself.
``DELETE FROM t USING t o WHERE t.id = o.id`` is then ``t.id = t.id``: unscoped.
Both readings must restrict.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

from pamwire.sql import pg_patterns
from pamwire.sql.facts import linked_names
from pamwire.sql.pg_patterns import Atom

# JSON values from the parser: dicts, lists, strings, numbers, booleans.
_Json = Any


def sval(node: _Json) -> str:
    """The text of a ``{"String": {"sval": ...}}`` node, or "" for any other node."""
    value = node.get("String", {}).get("sval")
    return value if isinstance(value, str) else ""


class Target:
    """The table a DELETE, UPDATE, MERGE or INSERT changes, as columns name it."""

    __slots__ = ("name", "qualified", "relname", "schemaname")

    def __init__(self, range_var: _Json, schema: str) -> None:
        self.relname: str = range_var["relname"]
        self.schemaname: str | None = range_var.get("schemaname")
        self.qualified = f"{self.schemaname or schema}.{self.relname}"
        alias = range_var.get("alias")
        self.name: str = alias["aliasname"] if alias else self.relname

    def same_table(self, range_var: _Json) -> bool:
        """Whether a FROM item may be this very table (schemas left out match any)."""
        if range_var.get("relname") != self.relname:
            return False
        schema = range_var.get("schemaname")
        return schema is None or self.schemaname is None or schema == self.schemaname


def unscoped(
    where: _Json,
    target: Target,
    sources: Iterable[_Json] = (),
    ctes: dict[str, _Json] | None = None,
) -> bool:
    """Whether a WHERE (or MERGE join condition) fails to limit the rows of ``target``.

    ``sources`` are the other FROM items of the statement (USING, FROM, the MERGE
    source); ``ctes`` the queries of the WITH names in scope, to see through
    ``WITH s AS (SELECT * FROM t)``. No WHERE is unscoped.
    """
    if where is None:
        return True
    items = list(sources)
    first = _Judge(target, items, ctes or {}, substitute=False)
    value = first.judge_where(where)
    if value >= _V.OPEN:
        return True
    if value is _V.FALSE and not first.refs(where).cols:
        return True  # `WHERE 1 = 2` never references the target either
    if not first.saw_same:
        return False
    second = _Judge(target, items, ctes or {}, substitute=True)
    second.unlink_copies(where, items)
    return second.judge_where(where) >= _V.OPEN


def _conjuncts(expr: _Json) -> list[_Json]:
    if isinstance(expr, dict) and "BoolExpr" in expr:
        body = expr["BoolExpr"]
        if body.get("boolop") == "AND_EXPR":
            return [c for arg in body.get("args", ()) for c in _conjuncts(arg)]
    return [expr]


def _qualifier(expr: _Json) -> str | None:
    """The table name of a qualified column reference (``t2`` of ``t2.id``)."""
    if not isinstance(expr, dict) or "ColumnRef" not in expr:
        return None
    fields = expr["ColumnRef"].get("fields", ())
    return sval(fields[-2]) or None if len(fields) >= 2 else None


def _item_name(item: _Json) -> str | None:
    if isinstance(item, dict) and "RangeVar" in item:
        body = item["RangeVar"]
        alias = body.get("alias")
        return str(alias["aliasname"] if alias else body["relname"])
    return None


def _column_links(
    conditions: Iterable[_Json], items: Iterable[_Json]
) -> list[tuple[str, str]]:
    """Pairs of table names that a condition every row must meet joins by a column
    equality (``t.id = t2.id``, ``JOIN t3 USING (id)``)."""
    pairs = []
    for cond in conditions:
        for part in _conjuncts(cond):
            body = part.get("A_Expr") if isinstance(part, dict) else None
            if not body or body.get("kind") != "AEXPR_OP":
                continue
            if [sval(n) for n in body.get("name", ())] != ["="]:
                continue
            left, right = _qualifier(body.get("lexpr")), _qualifier(body.get("rexpr"))
            if left and right:
                pairs.append((left, right))
    stack = list(items)
    while stack:
        item = stack.pop()
        join = item.get("JoinExpr") if isinstance(item, dict) else None
        if not join:
            continue
        stack += [join.get("larg"), join.get("rarg")]
        left, right = _item_name(join.get("larg")), _item_name(join.get("rarg"))
        if join.get("usingClause") and left and right:
            pairs.append((left, right))
    return pairs


def with_colnames(cte: _Json) -> _Json:
    """A CTE's query, carrying the column names the CTE gives it (`c(x) AS ...`)
    under "_colnames", for renames of a copied table's columns."""
    query = cte.get("ctequery")
    names = [sval(item) for item in cte.get("aliascolnames") or ()]
    if isinstance(query, dict) and names:
        return {**query, "_colnames": names}
    return query


def renames_of(select: _Json, colnames: list[str]) -> dict[str, str]:
    """Output column name -> the column it is (`SELECT id AS x`, `c(x)`), for the
    columns of a query that are plain columns under another name."""
    body = select.get("SelectStmt") if isinstance(select, dict) else None
    while isinstance(body, dict) and body.get("op", "SETOP_NONE") != "SETOP_NONE":
        body = body.get("larg")
    if not isinstance(body, dict):
        return {}
    names = list(colnames) or list(select.get("_colnames") or ())
    renames: dict[str, str] = {}
    for index, item in enumerate(body.get("targetList") or ()):
        target = item.get("ResTarget", {}) if isinstance(item, dict) else {}
        val = target.get("val") if isinstance(target, dict) else None
        fields = (val or {}).get("ColumnRef", {}).get("fields") if val else None
        if not fields or "A_Star" in fields[-1]:
            continue
        source = sval(fields[-1])
        output = names[index] if index < len(names) else target.get("name") or source
        if source and output != source:
            renames[output] = source
    return renames


def copies_target(select: _Json, target: Target, ctes: dict[str, _Json]) -> bool:
    """Whether a query returns every row of ``target`` (``SELECT * FROM t``).

    Used for ``INSERT INTO t SELECT ... FROM t ON CONFLICT DO UPDATE``, which
    conflicts with, and so updates, every row. A WHERE that does not restrict, and
    any select list, still count as every row.
    """
    body = select.get("SelectStmt") if isinstance(select, dict) else None
    if body is None:
        return False
    return _copy_of(body, target, ctes, depth=0)


class _V(enum.IntEnum):
    """What a predicate is known to do to the target's rows, weakest scope last."""

    FALSE = 0
    RESTRICT = 1
    OPEN = 2
    TRUE = 3


def _and(values: Iterable[_V]) -> _V:
    found = set(values)
    for value in (_V.FALSE, _V.RESTRICT, _V.OPEN):
        if value in found:
            return value
    return _V.TRUE


def _or(values: Iterable[_V]) -> _V:
    return max(values, default=_V.FALSE)


_TARGET = "target"
_OTHER = "other"


class _Level:
    """The names one query level can qualify a column with, and what they mean."""

    __slots__ = ("names", "quals", "unqualified")

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        # What an unqualified column means here; None: look at the level outside.
        self.unqualified: str | None = None
        # Conditions of inner joins among the level's FROM items.
        self.quals: list[_Json] = []


class _Refs:
    """What an operand depends on: target columns, other columns, parameters, calls."""

    __slots__ = ("calls", "cols", "other", "param")

    def __init__(self) -> None:
        self.cols: set[str] = set()
        self.other = False
        self.param = False
        self.calls = False


_NEGATED_COMPARISON = {
    "=": "<>",
    "<>": "=",
    "!=": "=",
    "<": ">=",
    ">=": "<",
    ">": "<=",
    "<=": ">",
}
_FLIPPED = {
    "=": "=",
    "<>": "<>",
    "!=": "<>",
    "<": ">",
    ">": "<",
    "<=": ">=",
    ">=": "<=",
}
_COMPARISONS = frozenset(_NEGATED_COMPARISON)

# Functions f for which ``f(col) = value`` still picks rows by their data: no
# constant value is taken by every input (as ``length(s) >= 0`` or ``pg_typeof``
# would be). Case and blank folding, day of a timestamp, digests.
_EQUALITY_KEEPING = frozenset(
    {"lower", "upper", "btrim", "ltrim", "rtrim", "trim", "date", "md5"}
)

# Functions that are pattern operators in disguise: name -> operator.
_PATTERN_FUNCTIONS = {
    "like": "~~",
    "textlike": "~~",
    "bpcharlike": "~~",
    "namelike": "~~",
    "texticlike": "~~*",
    "bpchariclike": "~~*",
    "nameiclike": "~~*",
    "notlike": "!~~",
    "textnlike": "!~~",
    "texticnlike": "!~~*",
    "textregexeq": "~",
    "bpcharregexeq": "~",
    "nameregexeq": "~",
    "regexp_like": "~",
    "texticregexeq": "~*",
    "bpcharicregexeq": "~*",
    "nameicregexeq": "~*",
    "textregexne": "!~",
    "texticregexne": "!~*",
    "starts_with": "^@",
}

# Built-in aggregates: a sub-select using one returns a value computed over rows,
# so its FROM items cannot be read as the target row.
_AGGREGATES = frozenset(
    {
        "count",
        "sum",
        "max",
        "min",
        "avg",
        "array_agg",
        "string_agg",
        "bool_and",
        "bool_or",
        "every",
        "json_agg",
        "jsonb_agg",
        "json_object_agg",
        "jsonb_object_agg",
        "xmlagg",
        "bit_and",
        "bit_or",
        "bit_xor",
        "range_agg",
        "range_intersect_agg",
        "mode",
        "percentile_cont",
        "percentile_disc",
    }
)

_TRUE_WORDS = frozenset({"t", "tr", "tru", "true", "y", "ye", "yes", "on", "1"})
_FALSE_WORDS = frozenset(
    {"f", "fa", "fal", "fals", "false", "n", "no", "of", "off", "0"}
)
_EMPTY_CONSTANTS = frozenset({"", "{}", "[]", "null"})


class _Judge:
    """Values of predicates over one target, with the FROM levels in scope."""

    def __init__(
        self,
        target: Target,
        sources: list[_Json],
        ctes: dict[str, _Json],
        *,
        substitute: bool,
    ) -> None:
        self.target = target
        self.ctes = ctes
        self.substitute = substitute
        self.saw_same = False
        # Per name of a copy of the table: its column names -> the table's.
        self.renames: dict[str, dict[str, str]] = {}
        self.levels: list[_Level] = []
        top = self.level(sources, substitute=substitute)
        top.names[target.name] = _TARGET
        # TODO(using-scope): with USING/FROM an unqualified column may belong to
        # another table; without a schema it is taken as the target's.
        top.unqualified = _TARGET
        self.levels.append(top)

    def unlink_copies(self, where: _Json, items: list[_Json]) -> None:
        """Read as the target row only the copies of the table that column
        equalities every row must meet join to it: in ``t.id = t2.id AND t3.id =
        1``, t3 is just some row of the table, and limiting it limits nothing."""
        top = self.levels[0]
        conditions = [where, *top.quals]
        linked = linked_names(_column_links(conditions, items), [self.target.name])
        for name, meaning in list(top.names.items()):
            if meaning == _TARGET and name not in linked:
                top.names[name] = _OTHER

    # Predicates.

    def judge_where(self, where: _Json) -> _V:
        """The value of a whole WHERE, with the inner joins of the FROM items."""
        return _and([self.judge(where), *map(self.judge, self.levels[0].quals)])

    def judge(self, expr: _Json, neg: bool = False) -> _V:
        """The value of ``expr`` (of ``NOT expr`` when ``neg``) as a WHERE clause."""
        if not isinstance(expr, dict) or len(expr) != 1:
            return _V.OPEN
        ((name, body),) = expr.items()
        handler = _PREDICATES.get(name)
        if handler is None:
            return _V.OPEN
        return handler(self, body, neg)

    def _const(self, body: _Json, neg: bool) -> _V:
        if body.get("isnull"):
            return _V.FALSE
        value = _constant({"A_Const": body})
        if isinstance(value, str):
            value = _bool_word(value)
        if isinstance(value, bool):
            return _V.TRUE if value != neg else _V.FALSE
        return _V.OPEN

    def _cast(self, body: _Json, neg: bool) -> _V:
        names = [sval(item) for item in body.get("typeName", {}).get("names", ())]
        arg = body.get("arg")
        if names and names[-1] in ("bool", "boolean"):
            value = _constant(arg)
            if isinstance(value, str):
                value = _bool_word(value)
            if isinstance(value, bool):
                return _V.TRUE if value != neg else _V.FALSE
        return self.judge(arg, neg)

    def _bool(self, body: _Json, neg: bool) -> _V:
        op = body.get("boolop")
        args = body.get("args") or []
        if op == "NOT_EXPR":
            return self.judge(args[0], not neg)
        if (op == "AND_EXPR") != neg:
            return _and(self.judge(arg, neg) for arg in args)
        branches = self._branches(args, neg)
        values = [self.judge(arg, arg_neg) for arg, arg_neg in branches]
        if _V.TRUE not in values and self._complementary(branches):
            return _V.TRUE
        return _or(values)

    def _branches(self, args: list[_Json], neg: bool) -> list[tuple[_Json, bool]]:
        """The branches of an OR (or of NOT over an AND), nested ones flattened."""
        found = []
        for arg in args:
            inner = arg.get("BoolExpr") if isinstance(arg, dict) else None
            if inner is not None:
                op = inner.get("boolop")
                if op == "NOT_EXPR":
                    found.extend(self._branches(inner["args"], not neg))
                    continue
                if (op == "OR_EXPR") != neg:
                    found.extend(self._branches(inner["args"], neg))
                    continue
            found.append((arg, neg))
        return found

    def _null_test(self, body: _Json, neg: bool) -> _V:
        arg = body.get("arg")
        is_null = (body.get("nulltesttype") == "IS_NULL") != neg
        if isinstance(arg, dict) and "A_Const" in arg:
            return (
                _V.TRUE if bool(arg["A_Const"].get("isnull")) == is_null else _V.FALSE
            )
        if not is_null:
            # Every row of a NOT NULL column; pamwire knows no schema.
            return _V.TRUE
        return _V.RESTRICT if self.refs(arg).cols else _V.OPEN

    def _boolean_test(self, body: _Json, neg: bool) -> _V:
        kind = body.get("booltesttype")
        arg = body.get("arg")
        if kind in ("IS_TRUE", "IS_NOT_FALSE"):
            return self.judge(arg, neg)
        if kind in ("IS_FALSE", "IS_NOT_TRUE"):
            return self.judge(arg, not neg)
        if (kind == "IS_UNKNOWN") != neg:
            return _V.RESTRICT if self.refs(arg).cols else _V.OPEN
        return _V.TRUE

    def _column(self, body: _Json, neg: bool) -> _V:
        refs = _Refs()
        self._column_refs(body, refs)
        return _V.RESTRICT if refs.cols else _V.OPEN

    def _current_of(self, body: _Json, neg: bool) -> _V:
        return _V.RESTRICT

    def _param(self, body: _Json, neg: bool) -> _V:
        return _V.OPEN

    def _case(self, body: _Json, neg: bool) -> _V:
        # CASE WHEN c1 THEN r1 ... ELSE rn holds at most where some (ci AND ri) or
        # rn holds; NOT moves into the results.
        arg = body.get("arg")
        branches = []
        values = []
        for item in body.get("args") or ():
            when = item.get("CaseWhen", {})
            condition = when.get("expr")
            if arg is not None:
                condition = _comparison("=", arg, condition)
            result = self.judge(when.get("result"), neg)
            value = _and([self.judge(condition), result])
            values.append(value)
            if result is _V.TRUE:
                branches.append((condition, False))
        default = body.get("defresult")
        if default is not None:
            values.append(self.judge(default, neg))
        if _V.TRUE not in values and self._complementary(branches):
            return _V.TRUE
        return _or(values)

    def _coalesce(self, body: _Json, neg: bool) -> _V:
        return self._coalesce_args(body.get("args") or [], neg)

    def _coalesce_args(self, args: list[_Json], neg: bool) -> _V:
        # COALESCE(a, rest) holds where a holds, or where a is NULL and rest holds.
        if not args:
            return _V.FALSE
        first, rest = args[0], args[1:]
        value = self.judge(first, neg)
        if not rest:
            return value
        if isinstance(first, dict) and "A_Const" in first:
            if first["A_Const"].get("isnull"):
                return self._coalesce_args(rest, neg)
            return value
        when_null = _V.RESTRICT if self.refs(first).cols else _V.OPEN
        return _or([value, _and([when_null, self._coalesce_args(rest, neg)])])

    def _func(self, body: _Json, neg: bool) -> _V:
        names = [sval(item).lower() for item in body.get("funcname") or ()]
        args = body.get("args") or []
        op = _PATTERN_FUNCTIONS.get(names[-1] if names else "")
        if op is not None and len(args) >= 2:
            if names[-1] == "regexp_like" and len(args) > 2:
                flags = _constant(args[2])
                if not isinstance(flags, str):
                    return _V.OPEN
                if "i" in flags:
                    op = "~*"
            return self._compare(op, args[0], args[1], neg)
        refs = [self.refs(arg) for arg in args]
        with_cols = [ref for ref in refs if ref.cols]
        if not with_cols:
            return _V.OPEN
        if len(refs) >= 2 and _only_themselves(refs):
            return _V.OPEN
        return _V.RESTRICT

    def _sublink(self, body: _Json, neg: bool) -> _V:
        kind = body.get("subLinkType")
        select = (body.get("subselect") or {}).get("SelectStmt")
        if select is None:
            return _V.OPEN
        operator = body.get("operName")
        op = sval(operator[-1]) if operator else "="
        test = body.get("testexpr")
        if kind == "EXISTS_SUBLINK":
            return self._exists(select, None, None, positive=not neg)
        if kind == "ANY_SUBLINK":
            # x op ANY (SELECT c ...) is EXISTS (SELECT ... WHERE x op c).
            return self._exists(select, op, test, positive=not neg)
        if kind == "ALL_SUBLINK":
            # x op ALL (SELECT c ...) is NOT EXISTS (SELECT ... WHERE NOT x op c).
            negated = _NEGATED_COMPARISON.get(op)
            if negated is None:
                return _V.OPEN
            return self._exists(select, negated, test, positive=neg)
        if kind == "EXPR_SUBLINK":
            return self._scalar(select, neg)
        return _V.OPEN

    def _a_expr(self, body: _Json, neg: bool) -> _V:
        kind = body.get("kind")
        names = body.get("name") or ()
        op = sval(names[-1]) if names else ""
        left, right = body.get("lexpr"), body.get("rexpr")
        if kind in ("AEXPR_OP", "AEXPR_LIKE", "AEXPR_ILIKE"):
            return self._compare(op, left, right, neg)
        if kind == "AEXPR_SIMILAR":
            return self._similar(op, left, right, neg)
        if kind in ("AEXPR_DISTINCT", "AEXPR_NOT_DISTINCT"):
            distinct = (kind == "AEXPR_DISTINCT") != neg
            for side, other in ((left, right), (right, left)):
                if _is_null(side):
                    test = {"NullTest": {"arg": other, "nulltesttype": "IS_NULL"}}
                    return self.judge(test, distinct)
            return self._compare("<>" if distinct else "=", left, right, False)
        if kind in ("AEXPR_OP_ANY", "AEXPR_OP_ALL"):
            return self._any_all(kind == "AEXPR_OP_ALL", op, left, right, neg)
        if kind == "AEXPR_IN":
            return self._in(op, left, _items(right), neg)
        if kind in (
            "AEXPR_BETWEEN",
            "AEXPR_NOT_BETWEEN",
            "AEXPR_BETWEEN_SYM",
            "AEXPR_NOT_BETWEEN_SYM",
        ):
            return self._between(left, _items(right))
        return _V.OPEN

    # Leaves.

    def _compare(self, op: str, left: _Json, right: _Json, neg: bool) -> _V:
        """``left op right``, negated when ``neg``."""
        if neg:
            negated = _NEGATED_COMPARISON.get(
                op
            ) or pg_patterns.NEGATED_PATTERN_OPS.get(op)
            if negated is None:
                # Unknown operator: its negation is as unknown as itself.
                return self._unknown_operator(left, right)
            op = negated
        if op == "!=":
            op = "<>"
        if op in ("=", "<>"):
            for side, other in ((left, right), (right, left)):
                value = _bool_constant(side)
                if value is not None and _bool_constant(other) is None:
                    return self.judge(other, (op == "=") != value)
        a, b = _constant(left), _constant(right)
        if a is not None and b is not None:
            return _constant_comparison(op, a, b)
        lrefs, rrefs = self.refs(left), self.refs(right)
        if not lrefs.cols and not rrefs.cols:
            return _V.OPEN
        if lrefs.cols and rrefs.cols:
            if not lrefs.calls and not rrefs.calls and self.same(left, right):
                if op in ("=", "<=", ">="):
                    return _V.TRUE
                if op in ("<>", "<", ">"):
                    return _V.FALSE
            if _only_themselves([lrefs, rrefs]):
                return _V.OPEN
            return _V.RESTRICT
        if op in _COMPARISONS:
            side = left if lrefs.cols else right
            return _V.RESTRICT if self._restricting_form(side, op) else _V.OPEN
        if op in pg_patterns.PATTERN_OPS:
            if not lrefs.cols:
                return _V.RESTRICT  # the pattern is the target's data
            return self._pattern(op, right, rrefs)
        if rrefs.cols:
            return _V.RESTRICT
        return self._unknown_operator(left, right)

    def _pattern(self, op: str, pattern: _Json, refs: _Refs) -> _V:
        """A target column matched against ``pattern`` (no target column in it)."""
        text, escape = _pattern_text(pattern)
        negative = op in pg_patterns.NOT_LIKE_OPS or op in pg_patterns.NOT_REGEX_OPS
        if text is None:
            # A column of another table is data; a parameter or an expression of
            # constants may be '%' or ''.
            return _V.RESTRICT if refs.other else _V.OPEN
        if negative:
            # TODO(patterns): a pattern that matches nothing ('a^') makes NOT
            # LIKE/!~ true everywhere; only the empty pattern is caught.
            return _V.OPEN if text == "" else _V.RESTRICT
        if pg_patterns.matches_everything(op, text, escape=escape):
            return _V.OPEN
        return _V.RESTRICT

    def _similar(self, op: str, left: _Json, right: _Json, neg: bool) -> _V:
        negative = (op == "!~") != neg
        lrefs = self.refs(left)
        if not lrefs.cols:
            return _V.RESTRICT if self.refs(right).cols else _V.OPEN
        pattern = None
        call = right.get("FuncCall") if isinstance(right, dict) else None
        if call is not None and len(call.get("args") or ()) == 1:
            pattern = _constant(call["args"][0])
        if not isinstance(pattern, str):
            return _V.RESTRICT if self.refs(right).other else _V.OPEN
        if negative:
            return _V.OPEN if pattern == "" else _V.RESTRICT
        return (
            _V.OPEN
            if pg_patterns.matches_everything("similar", pattern)
            else (_V.RESTRICT)
        )

    def _unknown_operator(self, left: _Json, right: _Json) -> _V:
        """An operator pamwire does not know (``@>``, ``&&``, ``?``...).

        It restricts when it relates a target column to another column or to a
        constant that is not empty; with a parameter, or ``'{}'``, it may hold
        for every row.
        """
        lrefs, rrefs = self.refs(left), self.refs(right)
        if not lrefs.cols and not rrefs.cols:
            return _V.OPEN
        if lrefs.cols and rrefs.cols:
            return _V.OPEN if _only_themselves([lrefs, rrefs]) else _V.RESTRICT
        value_side, refs = (right, rrefs) if lrefs.cols else (left, lrefs)
        if refs.other:
            return _V.RESTRICT
        if refs.param or _array_elements(value_side) == []:
            return _V.OPEN
        value = _constant(value_side)
        if value is not None and str(value).strip().lower() in _EMPTY_CONSTANTS:
            return _V.OPEN
        return _V.RESTRICT

    def _any_all(
        self, is_all: bool, op: str, left: _Json, right: _Json, neg: bool
    ) -> _V:
        if neg:
            negated = _NEGATED_COMPARISON.get(
                op
            ) or pg_patterns.NEGATED_PATTERN_OPS.get(op)
            if negated is None:
                return self._unknown_operator(left, right)
            op, is_all = negated, not is_all
        array = right.get("SubLink") if isinstance(right, dict) else None
        select = (array or {}).get("subselect", {}).get("SelectStmt")
        if array and array.get("subLinkType") == "ARRAY_SUBLINK" and select:
            # x op ANY (ARRAY(SELECT c ...)) is x op ANY (SELECT c ...), so a
            # self-copy of the target is judged as one.
            if not is_all:
                return self._exists(select, op, left, positive=True)
            negated = _NEGATED_COMPARISON.get(op)
            if negated is None:
                return _V.OPEN
            return self._exists(select, negated, left, positive=False)
        lrefs, rrefs = self.refs(left), self.refs(right)
        if lrefs.cols and rrefs.cols:
            return _V.OPEN if _only_themselves([lrefs, rrefs]) else _V.RESTRICT
        if not lrefs.cols:
            return _V.RESTRICT if rrefs.cols else _V.OPEN
        elements = _array_elements(right)
        if is_all and not elements:
            # Over an empty array ALL holds for every row; a parameter or a
            # column of another table may be empty.
            return _V.RESTRICT if rrefs.other and elements is None else _V.OPEN
        if op in pg_patterns.PATTERN_OPS:
            if elements is None:
                return _V.RESTRICT if rrefs.other else _V.OPEN
            values = [self._pattern(op, item, self.refs(item)) for item in elements]
            return _and(values) if is_all else _or(values)
        if op in _COMPARISONS:
            return _V.RESTRICT if self._restricting_form(left, op) else _V.OPEN
        return _V.RESTRICT if rrefs.other else _V.OPEN

    def _in(self, op: str, left: _Json, items: list[_Json], neg: bool) -> _V:
        positive = (op == "=") != neg
        a = _constant(left)
        values = [_constant(item) for item in items]
        if a is not None and all(value is not None for value in values):
            found = any(_equal(a, value) for value in values)
            return _V.TRUE if found == positive else _V.FALSE
        lrefs = self.refs(left)
        irefs = _merge(self.refs(item) for item in items)
        if lrefs.cols and irefs.cols:
            return _V.OPEN if _only_themselves([lrefs, irefs]) else _V.RESTRICT
        if lrefs.cols:
            return _V.RESTRICT if self._restricting_form(left, "=") else _V.OPEN
        return _V.RESTRICT if irefs.cols else _V.OPEN

    def _between(self, left: _Json, bounds: list[_Json]) -> _V:
        lrefs = self.refs(left)
        brefs = _merge(self.refs(item) for item in bounds)
        if lrefs.cols and brefs.cols:
            return _V.OPEN if _only_themselves([lrefs, brefs]) else _V.RESTRICT
        if lrefs.cols:
            return _V.RESTRICT if self._restricting_form(left, "<") else _V.OPEN
        return _V.RESTRICT if brefs.cols else _V.OPEN

    # Sub-selects.

    def _exists(
        self, select: _Json, op: str | None, test: _Json, *, positive: bool
    ) -> _V:
        """EXISTS (select [WHERE test op its output]), or NOT EXISTS."""
        if select.get("op", "SETOP_NONE") != "SETOP_NONE":
            arms = [select["larg"]]
            if select["op"] == "SETOP_UNION":
                arms.append(select["rarg"])
            values = [self._exists(arm, op, test, positive=positive) for arm in arms]
            return _or(values) if positive else _and(values)
        outer_depth = len(self.levels)
        substitute = self.substitute and positive and not _aggregated(select)
        level = self.level(select.get("fromClause") or (), substitute=substitute)
        conditions = list(level.quals)
        if select.get("whereClause") is not None:
            conditions.append(select["whereClause"])
        if op is not None:
            outputs = [
                target.get("ResTarget", {}).get("val")
                for target in select.get("targetList") or ()
            ]
            output = outputs[0] if len(outputs) == 1 else {"RowExpr": {"args": outputs}}
            pinned = {"_Pinned": {"expr": test, "depth": outer_depth}}
            conditions.append(_comparison(op, pinned, output))
        self.levels.append(level)
        try:
            value = _and(self.judge(condition) for condition in conditions)
        finally:
            self.levels.pop()
        if positive:
            return _V.OPEN if value is _V.TRUE else value
        if value is _V.FALSE:
            return _V.TRUE
        return _V.RESTRICT if value is _V.RESTRICT else _V.OPEN

    def _scalar(self, select: _Json, neg: bool) -> _V:
        """``(SELECT expr ...)`` used as a condition: the value of its one output."""
        outputs = list(select.get("targetList") or [])
        if len(outputs) != 1 or select.get("op", "SETOP_NONE") != "SETOP_NONE":
            return _V.OPEN
        level = self.level(select.get("fromClause") or (), substitute=False)
        self.levels.append(level)
        try:
            value = self.judge(outputs[0].get("ResTarget", {}).get("val"), neg)
        finally:
            self.levels.pop()
        return _V.OPEN if value is _V.TRUE else value

    # Names.

    def level(self, items: Iterable[_Json], *, substitute: bool) -> _Level:
        """The names of a sub-select's FROM items; inner-join conditions to quals."""
        level = _Level()
        meanings: list[str] = []
        for item in items:
            self._add_item(level, item, meanings, substitute=substitute)
        if meanings:
            # A column of a join with the target read as the target row may be
            # the target's: PostgreSQL takes the one item that has it.
            level.unqualified = _TARGET if _TARGET in meanings else _OTHER
        return level

    def _add_item(
        self, level: _Level, item: _Json, meanings: list[str], *, substitute: bool
    ) -> None:
        if not isinstance(item, dict) or len(item) != 1:
            meanings.append(_OTHER)
            return
        ((name, body),) = item.items()
        if name == "RangeTableSample" and isinstance(body, dict):
            # `t TABLESAMPLE ...` is t, rows chosen by chance: read as the table.
            self._add_item(level, body.get("relation"), meanings, substitute=substitute)
            return
        alias = body.get("alias") if isinstance(body, dict) else None
        meaning = _OTHER
        if name == "RangeVar":
            if self._is_target(body):
                self.saw_same = True
                meaning = _TARGET if substitute else _OTHER
                query = self.ctes.get(body.get("relname", ""))
                colnames = [sval(n) for n in (alias or {}).get("colnames") or ()]
                if query is not None or colnames:
                    key = alias["aliasname"] if alias else body["relname"]
                    self.renames[key] = renames_of(query or {}, colnames)
            level.names[alias["aliasname"] if alias else body["relname"]] = meaning
        elif name == "JoinExpr":
            for side in ("larg", "rarg"):
                self._add_item(level, body.get(side), meanings, substitute=substitute)
            if body.get("jointype") == "JOIN_INNER" and body.get("quals"):
                level.quals.append(body["quals"])
            if alias:
                level.names[alias["aliasname"]] = _OTHER
            return
        elif name == "RangeSubselect":
            if copies_target(body.get("subquery"), self.target, self.ctes):
                self.saw_same = True
                meaning = _TARGET if substitute else _OTHER
                if alias:
                    colnames = [sval(n) for n in alias.get("colnames") or ()]
                    self.renames[alias["aliasname"]] = renames_of(
                        body.get("subquery"), colnames
                    )
            if alias:
                level.names[alias["aliasname"]] = meaning
        elif alias:
            level.names[alias["aliasname"]] = _OTHER
        meanings.append(meaning)

    def _is_target(self, range_var: _Json) -> bool:
        if self.target.same_table(range_var):
            return True
        query = None
        if range_var.get("schemaname") is None:
            query = self.ctes.get(range_var.get("relname", ""))
        return query is not None and copies_target(query, self.target, self.ctes)

    def resolve(self, fields: list[str]) -> str:
        """What a column reference means: the target, or something else."""
        if len(fields) == 1:
            for level in reversed(self.levels):
                if level.unqualified is not None:
                    return level.unqualified
            return _OTHER
        qualifier = fields[-2]
        for level in reversed(self.levels):
            meaning = level.names.get(qualifier)
            if meaning is not None:
                return meaning
        return _OTHER

    # Operands.

    def refs(self, expr: _Json) -> _Refs:
        """What an operand depends on, resolved in the levels in scope."""
        refs = _Refs()
        self._collect(expr, refs)
        return refs

    def _column_refs(self, body: _Json, refs: _Refs) -> None:
        fields = [
            "*" if "A_Star" in item else sval(item) for item in body.get("fields") or ()
        ]
        if not fields:
            return
        if self.resolve(fields) == _TARGET:
            name = fields[-1]
            if len(fields) >= 2:
                name = self.renames.get(fields[-2], {}).get(name, name)
            refs.cols.add(name)
        else:
            refs.other = True

    def _collect(self, value: _Json, refs: _Refs) -> None:
        if isinstance(value, list):
            for item in value:
                self._collect(item, refs)
            return
        if not isinstance(value, dict):
            return
        if len(value) == 1:
            ((name, body),) = value.items()
            if name == "ColumnRef":
                self._column_refs(body, refs)
                return
            if name == "ParamRef":
                refs.param = True
                return
            if name == "FuncCall":
                refs.calls = True
            elif name == "SelectStmt":
                refs.calls = True
                self._collect_select(body, refs)
                return
            elif name == "_Pinned":
                saved = self.levels
                self.levels = saved[: body["depth"]]
                try:
                    self._collect(body["expr"], refs)
                finally:
                    self.levels = saved
                return
        for item in value.values():
            if isinstance(item, (dict, list)):
                self._collect(item, refs)

    def _collect_select(self, body: _Json, refs: _Refs) -> None:
        if body.get("op", "SETOP_NONE") != "SETOP_NONE":
            self._collect_select(body["larg"], refs)
            self._collect_select(body["rarg"], refs)
            return
        level = self.level(body.get("fromClause") or (), substitute=False)
        self.levels.append(level)
        try:
            for item in body.values():
                if isinstance(item, (dict, list)):
                    self._collect(item, refs)
        finally:
            self.levels.pop()

    def same(self, left: _Json, right: _Json) -> bool:
        """Whether two expressions are one, reading every target alias as the target."""
        return self._key(left) == self._key(right)

    def _key(self, expr: _Json) -> str:
        return _shape(self._canonical(expr))

    def _canonical(self, value: _Json) -> _Json:
        if isinstance(value, list):
            return [self._canonical(item) for item in value]
        if not isinstance(value, dict):
            return value
        column = value.get("ColumnRef")
        if column is not None and len(value) == 1:
            fields = [
                "*" if "A_Star" in item else sval(item)
                for item in column.get("fields") or ()
            ]
            if fields and self.resolve(fields) == _TARGET:
                return {"ColumnRef": {"target": fields[-1]}}
        return {key: self._canonical(item) for key, item in value.items()}

    def _complementary(self, branches: list[tuple[_Json, bool]]) -> bool:
        """Whether OR branches hold ``p`` and ``NOT p``, or cover a column's values."""
        seen: dict[str, set[bool]] = {}
        atoms = []
        for node, neg in branches:
            seen.setdefault(self._key(node), set()).add(neg)
            atom = self._atom(node, neg)
            if atom is not None:
                atoms.append(atom)
        if any(len(polarities) == 2 for polarities in seen.values()):
            return True
        return pg_patterns.covers_every_value(atoms)

    def _atom(self, node: _Json, neg: bool) -> Atom | None:
        """``node`` as ``column op points`` over one target column, if it is one."""
        expr = node.get("A_Expr") if isinstance(node, dict) else None
        if expr is None:
            return None
        kind = expr.get("kind")
        names = expr.get("name") or ()
        op = sval(names[-1]) if names else ""
        left, right = expr.get("lexpr"), expr.get("rexpr")
        if kind == "AEXPR_OP" and op in _COMPARISONS:
            if neg:
                op = _NEGATED_COMPARISON[op]
            op = _FLIPPED[op] if op == "!=" else op
            for column, value, this_op in (
                (left, right, op),
                (right, left, _FLIPPED[op]),
            ):
                if self._plain_column(column):
                    point = self._point(value)
                    if point is not None:
                        return Atom(self._key(column), this_op, (point,))
            return None
        if kind == "AEXPR_IN" and self._plain_column(left):
            points = self._points(_items(right))
            if not points:
                return None
            positive = (op == "=") != neg
            return Atom(self._key(left), "in" if positive else "not in", points)
        if kind in ("AEXPR_BETWEEN", "AEXPR_NOT_BETWEEN") and self._plain_column(left):
            bounds = self._points(_items(right))
            if len(bounds) != 2 or not all(isinstance(b, Decimal) for b in bounds):
                return None
            inside = (kind == "AEXPR_BETWEEN") != neg
            return Atom(self._key(left), "between" if inside else "not between", bounds)
        return None

    def _points(self, items: list[_Json]) -> tuple[pg_patterns.Point, ...]:
        """The points of IN-list or BETWEEN items; () when one is no constant."""
        points = []
        for item in items:
            point = self._point(item)
            if point is None:
                return ()
            points.append(point)
        return tuple(points)

    def _restricting_form(self, expr: _Json, op: str) -> bool:
        """Whether comparing ``expr`` (it reads the target) with a value restricts.

        Only the bare column, a cast of it, or (for equality) a call of a
        function that keeps values apart (``lower(email) = $1``): an arithmetic
        or other expression may hold for every row (``id % 1 = 0``,
        ``length(s) >= 0``), and pamwire knows no types to tell.
        """
        pinned = expr.get("_Pinned") if isinstance(expr, dict) else None
        if pinned is not None:
            saved = self.levels
            self.levels = saved[: pinned["depth"]]
            try:
                return self._restricting_form(pinned["expr"], op)
            finally:
                self.levels = saved
        while isinstance(expr, dict) and "TypeCast" in expr:
            expr = expr["TypeCast"].get("arg")
        if self._plain_column(expr):
            return True
        call = expr.get("FuncCall") if isinstance(expr, dict) else None
        if call is None or op != "=" or len(call.get("args") or ()) != 1:
            return False
        names = [sval(item).lower() for item in call.get("funcname") or ()]
        if names[:-1] not in ([], ["pg_catalog"]) or names[-1] not in _EQUALITY_KEEPING:
            return False
        return self._restricting_form(call["args"][0], op)

    def _plain_column(self, expr: _Json) -> bool:
        body = expr.get("ColumnRef") if isinstance(expr, dict) else None
        return body is not None and bool(self.refs(expr).cols)

    def _point(self, expr: _Json) -> pg_patterns.Point | None:
        value = _constant(expr)
        if isinstance(value, Decimal):
            return value
        if value is not None or (isinstance(expr, dict) and "ParamRef" in expr):
            return _shape(expr)
        return None


def _judge_pinned(judge: _Judge, body: _Json, neg: bool) -> _V:
    saved = judge.levels
    judge.levels = saved[: body["depth"]]
    try:
        return judge.judge(body["expr"], neg)
    finally:
        judge.levels = saved


_PREDICATES: dict[str, Callable[[_Judge, _Json, bool], _V]] = {
    "A_Const": _Judge._const,
    "TypeCast": _Judge._cast,
    "BoolExpr": _Judge._bool,
    "NullTest": _Judge._null_test,
    "BooleanTest": _Judge._boolean_test,
    "A_Expr": _Judge._a_expr,
    "SubLink": _Judge._sublink,
    "CaseExpr": _Judge._case,
    "CoalesceExpr": _Judge._coalesce,
    "ColumnRef": _Judge._column,
    "CurrentOfExpr": _Judge._current_of,
    "ParamRef": _Judge._param,
    "FuncCall": _Judge._func,
    "_Pinned": _judge_pinned,
}


# --- helpers -------------------------------------------------------------------------


def _copy_of(body: _Json, target: Target, ctes: dict[str, _Json], depth: int) -> bool:
    if depth > 8:
        return False
    if body.get("op", "SETOP_NONE") in ("SETOP_UNION", "SETOP_UNION_ALL"):
        # A union holds every row of either side: one side copying is enough.
        return any(
            isinstance(body.get(side), dict)
            and _copy_of(body[side], target, ctes, depth + 1)
            for side in ("larg", "rarg")
        )
    if body.get("op", "SETOP_NONE") != "SETOP_NONE":
        return False
    if any(body.get(key) for key in ("groupClause", "havingClause")):
        return False
    if not _no_limit(body.get("limitCount")) or not _no_limit(body.get("limitOffset")):
        return False
    sources = body.get("fromClause") or []
    if len(sources) != 1 or not isinstance(sources[0], dict):
        return False
    ((name, item),) = sources[0].items()
    if name == "RangeTableSample":
        # A sample of the table is chance, not data, choosing the rows.
        relation = item.get("relation")
        if not isinstance(relation, dict) or "RangeVar" not in relation:
            return False
        name, item = "RangeVar", relation["RangeVar"]
    if name == "RangeVar":
        same = target.same_table(item)
        if not same and item.get("schemaname") is None:
            query = ctes.get(item.get("relname", ""))
            inner = query.get("SelectStmt") if isinstance(query, dict) else None
            same = inner is not None and _copy_of(inner, target, ctes, depth + 1)
        if not same:
            return False
        where = body.get("whereClause")
        return where is None or unscoped(where, Target(item, "public"), (), ctes)
    if name == "RangeSubselect":
        inner = (item.get("subquery") or {}).get("SelectStmt")
        if inner is None or not _copy_of(inner, target, ctes, depth + 1):
            return False
        return body.get("whereClause") is None
    return False


def _no_limit(node: _Json) -> bool:
    """A LIMIT or OFFSET that keeps every row: none, `LIMIT ALL` (NULL), `OFFSET 0`."""
    if node is None:
        return True
    const = node.get("A_Const") if isinstance(node, dict) else None
    if not isinstance(const, dict):
        return False
    if const.get("isnull"):
        return True
    ival = const.get("ival")
    return isinstance(ival, dict) and not ival.get("ival")


def _aggregated(select: _Json) -> bool:
    """Whether a sub-select computes over groups of rows (its rows are no copies)."""
    if any(
        select.get(key)
        for key in ("groupClause", "havingClause", "limitCount", "limitOffset")
    ):
        return True
    text = json.dumps(select.get("targetList") or [])
    if '"over"' in text or '"agg_' in text:
        return True
    for target in select.get("targetList") or ():
        call = target.get("ResTarget", {}).get("val", {}).get("FuncCall")
        if call is not None:
            names = [sval(item).lower() for item in call.get("funcname") or ()]
            if names and names[-1] in _AGGREGATES:
                return True
    return False


def _only_themselves(refs: list[_Refs]) -> bool:
    """Whether operands are expressions of the same target columns and constants.

    ``id + 0 = id``, ``id = ANY(ARRAY[id])`` or ``email = lower(email)`` compare
    a row with itself: no data decides which rows they keep.
    """
    cols = refs[0].cols
    return bool(cols) and all(ref.cols == cols and not ref.other for ref in refs)


def _merge(many: Iterable[_Refs]) -> _Refs:
    merged = _Refs()
    for refs in many:
        merged.cols |= refs.cols
        merged.other = merged.other or refs.other
        merged.param = merged.param or refs.param
        merged.calls = merged.calls or refs.calls
    return merged


def _comparison(op: str, left: _Json, right: _Json) -> _Json:
    return {
        "A_Expr": {
            "kind": "AEXPR_OP",
            "name": [{"String": {"sval": op}}],
            "lexpr": left,
            "rexpr": right,
        }
    }


def _items(value: _Json) -> list[_Json]:
    if isinstance(value, list):
        return value
    if isinstance(value, dict) and "List" in value:
        return list(value["List"].get("items") or [])
    return [value]


def _array_elements(expr: _Json) -> list[_Json] | None:
    """The elements of an array literal (``ARRAY[...]``, ``'{...}'``), else None."""
    if not isinstance(expr, dict):
        return None
    if "TypeCast" in expr:
        return _array_elements(expr["TypeCast"].get("arg"))
    array = expr.get("A_ArrayExpr")
    if array is not None:
        return list(array.get("elements") or [])
    value = _constant(expr)
    if isinstance(value, str) and value.strip().startswith("{"):
        inner = value.strip()[1:-1].strip()
        if not inner:
            return []
        # TODO(arrays): quoted elements with commas are split wrongly; they only
        # feed pattern checks, where a wrong split errs towards "matches all".
        return [
            {"A_Const": {"sval": {"sval": part.strip().strip('"')}}}
            for part in inner.split(",")
        ]
    return None


def _pattern_text(pattern: _Json) -> tuple[str | None, str]:
    """The constant text of a pattern and its LIKE escape character."""
    value = _constant(pattern)
    if isinstance(value, str):
        return value, "\\"
    call = pattern.get("FuncCall") if isinstance(pattern, dict) else None
    if call is not None:
        names = [sval(item).lower() for item in call.get("funcname") or ()]
        args = call.get("args") or []
        if names and names[-1] == "like_escape" and len(args) == 2:
            text, escape = _constant(args[0]), _constant(args[1])
            if isinstance(text, str) and isinstance(escape, str):
                return text, escape
    if isinstance(pattern, dict) and "TypeCast" in pattern:
        return _pattern_text(pattern["TypeCast"].get("arg"))
    return None, "\\"


def _bool_word(text: str) -> bool | None:
    word = text.strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    return None


def _bool_constant(expr: _Json) -> bool | None:
    """The value of ``true``, ``false``, ``'t'::boolean``; None for anything else."""
    if not isinstance(expr, dict):
        return None
    const = expr.get("A_Const")
    if const is not None and "boolval" in const:
        return bool(const["boolval"].get("boolval", False))
    cast = expr.get("TypeCast")
    if cast is not None:
        names = [sval(item) for item in cast.get("typeName", {}).get("names", ())]
        if names and names[-1] in ("bool", "boolean"):
            value = _constant(cast.get("arg"))
            if isinstance(value, str):
                return _bool_word(value)
            if isinstance(value, bool):
                return value
    return None


def _is_null(expr: _Json) -> bool:
    return isinstance(expr, dict) and bool(expr.get("A_Const", {}).get("isnull"))


_CONSTANT_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: bool(a == b),
    "<>": lambda a, b: bool(a != b),
    "<": lambda a, b: bool(a < b),
    ">": lambda a, b: bool(a > b),
    "<=": lambda a, b: bool(a <= b),
    ">=": lambda a, b: bool(a >= b),
}


def _constant_comparison(op: str, a: Any, b: Any) -> _V:
    if op not in _CONSTANT_OPS:
        return _V.OPEN
    a, b = _comparable(a, b)
    if type(a) is not type(b) or (isinstance(a, str) and op not in ("=", "<>")):
        return _V.OPEN
    return _V.TRUE if _CONSTANT_OPS[op](a, b) else _V.FALSE


def _equal(a: Any, b: Any) -> bool:
    a, b = _comparable(a, b)
    return type(a) is type(b) and bool(a == b)


def _comparable(a: Any, b: Any) -> tuple[Any, Any]:
    """Read a quoted literal compared with a number as a number, as PostgreSQL does."""
    try:
        if isinstance(a, Decimal) and isinstance(b, str):
            return a, Decimal(b.strip())
        if isinstance(b, Decimal) and isinstance(a, str):
            return Decimal(a.strip()), b
    except InvalidOperation:
        pass
    return a, b


def _constant(expr: _Json) -> Decimal | str | bool | None:
    """The value of a literal: Decimal for numbers, str, bool; None otherwise."""
    if not isinstance(expr, dict):
        return None
    body = expr.get("A_Const")
    if body is None:
        return None
    if "ival" in body:
        return Decimal(body["ival"].get("ival", 0))
    if "fval" in body:
        try:
            return Decimal(body["fval"].get("fval", "0"))
        except InvalidOperation:
            return None
    if "sval" in body:
        value = body["sval"].get("sval", "")
        return value if isinstance(value, str) else None
    if "boolval" in body:
        return bool(body["boolval"].get("boolval", False))
    return None


def _shape(expr: _Json) -> str:
    """A canonical text of an expression without source positions, for comparison."""
    return json.dumps(_strip_locations(expr), sort_keys=True)


def _strip_locations(value: _Json) -> _Json:
    if isinstance(value, dict):
        return {k: _strip_locations(v) for k, v in value.items() if k != "location"}
    if isinstance(value, list):
        return [_strip_locations(item) for item in value]
    return value
