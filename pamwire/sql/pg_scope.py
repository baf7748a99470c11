"""Decide whether a PostgreSQL DELETE, UPDATE or MERGE is limited by its rows.

Works on the JSON tree of ``pglast.parser.parse_sql_json``. "Unscoped" means: no
WHERE; a WHERE provably true without looking at data (constants, ``id = id``,
``b IS NULL OR b IS NOT NULL``, a bare ``IS NOT NULL``, ``col IN (SELECT col FROM
target)``); or a WHERE that never references the target table. Anything that
depends on the rows counts as scoped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

# JSON values from the parser: dicts, lists, strings, numbers, booleans.
_Json = Any


def sval(node: _Json) -> str:
    """The text of a ``{"String": {"sval": ...}}`` node, or "" for any other node."""
    value = node.get("String", {}).get("sval")
    return value if isinstance(value, str) else ""


class Target:
    """The table a DELETE, UPDATE or MERGE changes, as column references name it."""

    __slots__ = ("name", "qualified", "relname")

    def __init__(self, range_var: _Json, schema: str) -> None:
        self.relname: str = range_var["relname"]
        self.qualified = f"{range_var.get('schemaname', schema)}.{self.relname}"
        alias = range_var.get("alias")
        self.name: str = alias["aliasname"] if alias else self.relname


def unscoped(where: _Json, target: Target) -> bool:
    """Whether a WHERE clause fails to limit the rows of ``target``.

    Unscoped: no WHERE; a WHERE provably true without looking at data; a WHERE
    that never references the target. Anything that depends on the rows counts
    as scoped. A bare ``col IS NOT NULL`` counts as true (see docs/rules.md).
    """
    if where is None:
        return True
    if "CurrentOfExpr" in where:
        return False
    if _truth(where, target) is True:
        return True
    return not _references(where, target, nested=False)


def _references(value: _Json, target: Target, *, nested: bool) -> bool:
    """Whether an expression mentions a column of the target.

    At the top level an unqualified column is taken to be the target's; inside a
    sub-select it is taken to be the sub-select's own (fail closed: PostgreSQL
    resolves it to the innermost table that has such a column).
    """
    if isinstance(value, list):
        return any(_references(item, target, nested=nested) for item in value)
    if not isinstance(value, dict):
        return False
    column = value.get("ColumnRef")
    if column is not None:
        fields = column.get("fields") or []
        if len(fields) == 1:
            # TODO(using-scope): with USING/FROM an unqualified column may belong to
            # another table; without a schema it is taken as the target's.
            return not nested or sval(fields[0]) == target.name
        return sval(fields[-2]) == target.name
    if "SelectStmt" in value:
        return _references(value["SelectStmt"], target, nested=True)
    return any(
        _references(item, target, nested=nested)
        for item in value.values()
        if isinstance(item, (dict, list))
    )


_TRUE_WORDS = frozenset({"t", "true", "y", "yes", "on", "1"})
_BOOL_FALSE_WORDS = frozenset({"f", "false", "n", "no", "off", "0"})


def _truth(expr: _Json, target: Target) -> bool | None:
    """True or False when ``expr`` has that value for every row, else None."""
    if not isinstance(expr, dict) or len(expr) != 1:
        return None
    ((name, body),) = expr.items()

    if name == "A_Const":
        if "boolval" in body:
            return bool(body["boolval"].get("boolval", False))
        return None
    if name == "TypeCast":
        return _bool_cast(body)
    if name == "BoolExpr":
        return _bool_expr(body, target)
    if name == "NullTest":
        return _null_test(body)
    if name == "A_Expr":
        return _a_expr(body)
    if name == "SubLink":
        return True if _self_semijoin(body, target) else None
    return None


def _bool_cast(body: _Json) -> bool | None:
    names = [sval(item) for item in body.get("typeName", {}).get("names", ())]
    if not names or names[-1] not in ("bool", "boolean"):
        return None
    value = _constant(body.get("arg"))
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _BOOL_FALSE_WORDS:
            return False
    if isinstance(value, bool):
        return value
    return None


def _bool_expr(body: _Json, target: Target) -> bool | None:
    op = body.get("boolop")
    args = body.get("args") or []
    values = [_truth(arg, target) for arg in args]
    if op == "NOT_EXPR":
        return None if values[0] is None else not values[0]
    if op == "AND_EXPR":
        if False in values:
            return False
        return True if all(value is True for value in values) else None
    if True in values or _complementary(args):
        return True
    return False if all(value is False for value in values) else None


def _complementary(args: list[_Json]) -> bool:
    """Whether an OR holds ``p`` and ``NOT p``, or both null tests of one ``x``."""
    null_tests: dict[str, set[str]] = {}
    plain = []
    negated = []
    for arg in args:
        test = arg.get("NullTest")
        if test is not None:
            key = _shape(test.get("arg"))
            null_tests.setdefault(key, set()).add(test.get("nulltesttype", ""))
            continue
        boolexpr = arg.get("BoolExpr")
        if boolexpr is not None and boolexpr.get("boolop") == "NOT_EXPR":
            negated.append(_shape(boolexpr["args"][0]))
        else:
            plain.append(_shape(arg))
    if any(len(kinds) == 2 for kinds in null_tests.values()):
        return True
    return bool(set(plain) & set(negated))


def _null_test(body: _Json) -> bool | None:
    arg = body.get("arg")
    is_not_null = bool(body.get("nulltesttype") == "IS_NOT_NULL")
    if isinstance(arg, dict) and "A_Const" in arg:
        is_null = bool(arg["A_Const"].get("isnull"))
        return is_null != is_not_null
    # A WHERE that only asks for non-NULL values keeps every row of a NOT NULL
    # column; without a schema we cannot tell, so it counts as true.
    return True if is_not_null else None


_CONSTANT_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: bool(a == b),
    "<>": lambda a, b: bool(a != b),
    "!=": lambda a, b: bool(a != b),
    "<": lambda a, b: bool(a < b),
    ">": lambda a, b: bool(a > b),
    "<=": lambda a, b: bool(a <= b),
    ">=": lambda a, b: bool(a >= b),
}
_SELF_TRUE_OPS = frozenset({"=", "<=", ">="})
_SELF_FALSE_OPS = frozenset({"<>", "!=", "<", ">"})


def _a_expr(body: _Json) -> bool | None:
    kind = body.get("kind")
    names = body.get("name") or ()
    op = sval(names[-1]) if names else ""
    left, right = body.get("lexpr"), body.get("rexpr")

    if kind == "AEXPR_OP":
        a, b = _constant(left), _constant(right)
        if a is not None and b is not None and op in _CONSTANT_OPS:
            a, b = _comparable(a, b)
            if type(a) is type(b) and (
                op in ("=", "<>", "!=") or not isinstance(a, str)
            ):
                return _CONSTANT_OPS[op](a, b)
            return None
        if _stable(left) and _shape(left) == _shape(right):
            if op in _SELF_TRUE_OPS:
                return True
            if op in _SELF_FALSE_OPS:
                return False
        return None
    if kind in ("AEXPR_NOT_DISTINCT", "AEXPR_DISTINCT"):
        if _stable(left) and _shape(left) == _shape(right):
            return bool(kind == "AEXPR_NOT_DISTINCT")
        return None
    if kind == "AEXPR_IN" and isinstance(right, list):
        a = _constant(left)
        values = [_constant(item) for item in right]
        if a is None or any(value is None for value in values):
            return None
        found = any(_equal(a, value) for value in values)
        return found if op == "=" else not found
    if kind in ("AEXPR_LIKE", "AEXPR_ILIKE"):
        pattern = _constant(right)
        if isinstance(pattern, str) and pattern and set(pattern) == {"%"}:
            # Matches every non-NULL value, like a bare IS NOT NULL.
            return op in ("~~", "~~*")
    return None


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


def _stable(expr: _Json) -> bool:
    """Whether an expression has no calls (``random() = random()`` is not ``x = x``)."""
    shape = _shape(expr)
    return '"FuncCall"' not in shape and '"funcname"' not in shape


def _shape(expr: _Json) -> str:
    """A canonical text of an expression without source positions, for comparison."""
    return json.dumps(_strip_locations(expr), sort_keys=True)


def _strip_locations(value: _Json) -> _Json:
    if isinstance(value, dict):
        return {k: _strip_locations(v) for k, v in value.items() if k != "location"}
    if isinstance(value, list):
        return [_strip_locations(item) for item in value]
    return value


def _self_semijoin(body: _Json, target: Target) -> bool:
    """``col IN (SELECT col FROM target)`` with nothing filtering the sub-select."""
    if body.get("subLinkType") != "ANY_SUBLINK":
        return False
    operator = body.get("operName")
    if operator and sval(operator[-1]) != "=":
        return False
    test = (body.get("testexpr") or {}).get("ColumnRef")
    select = (body.get("subselect") or {}).get("SelectStmt")
    if test is None or select is None:
        return False
    test_fields = test.get("fields") or []
    if len(test_fields) > 1 and sval(test_fields[-2]) != target.name:
        return False
    column = sval(test_fields[-1])
    if (
        any(
            select.get(key)
            for key in (
                "whereClause",
                "havingClause",
                "limitCount",
                "limitOffset",
                "withClause",
            )
        )
        or select.get("op", "SETOP_NONE") != "SETOP_NONE"
    ):
        return False
    sources = select.get("fromClause") or []
    targets = select.get("targetList") or []
    if len(sources) != 1 or len(targets) != 1 or "RangeVar" not in sources[0]:
        return False
    source = sources[0]["RangeVar"]
    schema = target.qualified.rsplit(".", 1)[0]
    if f"{source.get('schemaname', schema)}.{source['relname']}" != target.qualified:
        return False
    selected = targets[0].get("ResTarget", {}).get("val", {}).get("ColumnRef")
    if selected is None:
        return False
    return sval((selected.get("fields") or [{}])[-1]) == column
