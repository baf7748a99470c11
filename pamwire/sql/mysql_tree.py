"""Walk a sqlglot MySQL tree once: tables, columns, functions, writes and scope.

Tables are ``db.table`` (lowercased; ``?`` as the database when the session has
none). A CTE name is no table where the CTE is visible. Columns resolve through
the aliases of their query level and the levels around it; ``*`` reaches every
column of the level's tables. A DELETE or UPDATE is unscoped when its WHERE
(with the ON conditions of inner joins, for the multi-table forms) can hold for
every row of a target without the data deciding.
"""

from __future__ import annotations

import re

from sqlglot import exp

from pamwire.sql.facts import linked_names

__all__ = ["Walk", "function_name"]

# Func subclasses that are syntax, not calls a rule could mean (sqlglot also
# reads a one-arm CASE as If; IF() itself has no effect of its own).
_SYNTAX = (exp.Cast, exp.TryCast, exp.Case, exp.If, exp.Extract, exp.Convert)
_NO_TABLES: tuple[str, ...] = ()


def function_name(node: exp.Expression) -> str | None:
    """The lowercase name of a call node, or None when the node is no call."""
    if isinstance(node, exp.Anonymous):
        name = node.this
        return (name.name if isinstance(name, exp.Identifier) else str(name)).lower()
    if not isinstance(node, exp.Func) or isinstance(node, _SYNTAX):
        return None
    if isinstance(node, (exp.Binary, exp.Unary, exp.Connector)):
        return None  # an operator sqlglot types as a function (REGEXP, DIV...)
    return node.sql_name().lower()


class _Level:
    __slots__ = ("aliases", "tables")

    def __init__(self) -> None:
        self.aliases: dict[str, tuple[str, ...]] = {}
        self.tables: list[str] = []

    def add(self, alias: str, tables: tuple[str, ...]) -> None:
        self.aliases[alias.lower()] = tables
        self.tables.extend(tables)


class Walk:
    """Facts gathered from one statement tree."""

    def __init__(self, database: str | None) -> None:
        self.database = (database or "?").lower()
        self.read: set[str] = set()
        self.written: set[str] = set()
        self.functions: set[str] = set()
        self.calls: set[str] = set()
        self.columns: set[str] = set()
        self.writes: set[str] = set()
        self.unscoped = False
        # The statement is a REPLACE (read as INSERT): each row it writes first
        # deletes the row with the same key.
        self.replacing = False
        self.ctes: set[str] = set()
        self.levels: list[_Level] = []

    # --- names ----------------------------------------------------------------

    def name(self, table: exp.Table) -> str | None:
        """``db.table`` for a table node, None for a CTE name or DUAL."""
        name = table.name.lower()
        db = table.text("db").lower()
        if not name:
            return None
        if not db:
            if name in self.ctes or name == "dual":
                return None
            db = self.database
        return f"{db}.{name}"

    def table(self, table: exp.Table, *, written: bool) -> tuple[str, ...]:
        name = self.name(table)
        if name is None:
            return _NO_TABLES
        (self.written if written else self.read).add(name)
        return (name,)

    # --- the walk -------------------------------------------------------------

    def visit(self, node: exp.Expression | None) -> None:
        if node is None:
            return
        if isinstance(node, (exp.Select, exp.Update, exp.Delete)):
            self.query_level(node)
            return
        if isinstance(node, exp.With):
            self.with_clause(node)
            return
        if isinstance(node, exp.Insert):
            self.insert(node)
            return
        if isinstance(node, exp.Table):
            self.table(node, written=False)
            self.children(node)
            return
        if isinstance(node, exp.Column):
            self.column(node)
            return
        if isinstance(node, exp.Star):
            if self.levels:
                self.columns.update(f"{t}.*" for t in self.levels[-1].tables)
            return
        if isinstance(node, exp.Dot) and isinstance(node.expression, exp.Anonymous):
            qualifier = node.this
            if isinstance(qualifier, exp.Identifier):
                bare = function_name(node.expression)
                if bare is not None:
                    written = f"{qualifier.name.lower()}.{bare}"
                    self.functions.update((bare, written))
                    self.calls.add(written)
                    self.children(node.expression)
                    return
        name = function_name(node)
        if name is not None:
            self.functions.add(name)
            self.calls.add(name)
        self.children(node)

    def children(self, node: exp.Expression) -> None:
        for child in node.iter_expressions():
            self.visit(child)

    def with_clause(self, node: exp.With) -> None:
        # A CTE is visible in the CTEs after it and in the statement; in its
        # own body only when RECURSIVE.
        for cte in node.expressions:
            name = cte.alias_or_name.lower()
            if node.args.get("recursive"):
                self.ctes.add(name)
            self.visit(cte.this)
            self.ctes.add(name)

    def query_level(self, node: exp.Expression) -> None:
        with_clause = node.args.get("with_") or node.args.get("with")
        if isinstance(with_clause, exp.With):
            self.with_clause(with_clause)
        level = _Level()
        sources = self.sources(node)
        for source in sources:
            self.collect(level, source)
        self.levels.append(level)
        try:
            if isinstance(node, exp.Update):
                self.update(node, level)
            elif isinstance(node, exp.Delete):
                self.delete(node, level)
            elif node.args.get("locks"):
                self.writes.add("lock")
            for key, value in node.args.items():
                if key in ("with_", "with"):
                    continue
                for child in value if isinstance(value, list) else [value]:
                    if isinstance(child, exp.Expression):
                        self.visit_source_aware(child, sources)
        finally:
            self.levels.pop()

    def visit_source_aware(
        self, node: exp.Expression, sources: list[exp.Expression]
    ) -> None:
        """Visit a child; FROM items are recorded already, so only their insides."""
        if isinstance(node, exp.From):
            self.visit_source_aware(node.this, sources)
            return
        if isinstance(node, exp.Join):
            self.visit_source_aware(node.this, sources)
            for key in ("on", "using"):
                value = node.args.get(key)
                for child in value if isinstance(value, list) else [value]:
                    if isinstance(child, exp.Expression):
                        self.using(child) if key == "using" else self.visit(child)
            return
        if isinstance(node, exp.Table) and any(node is s for s in sources):
            for join in node.args.get("joins") or ():
                self.visit_source_aware(join, sources)
            for key, value in node.args.items():
                if key in ("this", "db", "catalog", "alias", "joins"):
                    continue
                for child in value if isinstance(value, list) else [value]:
                    if isinstance(child, exp.Expression):
                        self.visit(child)
            return
        self.visit(node)

    def using(self, node: exp.Expression) -> None:
        # JOIN ... USING (c): the column of every table at this level.
        if isinstance(node, (exp.Identifier, exp.Column)) and self.levels:
            self.columns.update(
                f"{t}.{node.name.lower()}" for t in self.levels[-1].tables
            )

    def sources(self, node: exp.Expression) -> list[exp.Expression]:
        """The FROM items of one query level, joins included."""
        found: list[exp.Expression] = []
        # A multi-table DELETE's target list (``DELETE a FROM t a ...``) names
        # aliases of the FROM items; it is no FROM item of its own, and neither
        # is the list before USING (``DELETE FROM a, b USING ...``).
        using = node.args.get("using")
        if isinstance(node, (exp.Update, exp.Delete)) and not isinstance(using, list):
            found.append(node.this)
        from_ = node.args.get("from_") or node.args.get("from")
        if isinstance(from_, exp.From):
            found.append(from_.this)
        if isinstance(using, list):
            found.extend(using)
        for join in node.args.get("joins") or ():
            found.append(join.this)
        more = []
        for item in found:
            for join in item.args.get("joins") or ():
                more.extend(_join_group(join.this))
        return found + more

    def collect(self, level: _Level, source: exp.Expression) -> None:
        """Record a FROM item's table (read) and its alias at this level."""
        if isinstance(source, exp.Table):
            name = self.name(source)
            tables = (name,) if name else _NO_TABLES
            if name:
                self.read.add(name)
            level.add(source.alias_or_name, tables)
            if source.alias and source.name:
                level.aliases.setdefault(source.name.lower(), tables)
            return
        alias = source.alias if hasattr(source, "alias") else ""
        if alias:
            level.add(alias, _NO_TABLES)

    def column(self, node: exp.Column) -> None:
        name = node.name.lower()
        qualifier = node.table.lower()
        if isinstance(node.this, exp.Star):
            name = "*"
        db = node.text("db").lower()
        if db:
            self.columns.add(f"{db}.{qualifier}.{name}")
            return
        if qualifier:
            for level in reversed(self.levels):
                tables = level.aliases.get(qualifier)
                if tables is not None:
                    self.columns.update(f"{t}.{name}" for t in tables)
                    return
            self.columns.add(f"{self.database}.{qualifier}.{name}")
            return
        for level in self.levels:
            self.columns.update(f"{t}.{name}" for t in level.tables)

    # --- writes ---------------------------------------------------------------

    def insert(self, node: exp.Insert) -> None:
        self.writes.add("insert")
        target = node.this
        columns: list[str] = []
        if isinstance(target, exp.Schema):
            columns = [c.name.lower() for c in target.expressions]
            target = target.this
        tables = (
            self.table(target, written=True) if isinstance(target, exp.Table) else ()
        )
        if columns:
            self.columns.update(f"{t}.{c}" for t in tables for c in columns)
        else:
            self.columns.update(f"{t}.*" for t in tables)
        level = _Level()
        if isinstance(target, exp.Table):
            level.add(target.alias_or_name, tables)
        with_clause = node.args.get("with_") or node.args.get("with")
        if isinstance(with_clause, exp.With):
            self.with_clause(with_clause)
        if _upsert_of_itself(node, self, tables):
            self.unscoped = True
        self.visit(node.expression)
        self.levels.append(level)
        try:
            for key, value in node.args.items():
                if key in ("this", "expression", "with_", "with"):
                    continue
                for child in value if isinstance(value, list) else [value]:
                    if isinstance(child, exp.Expression):
                        self.visit(child)
        finally:
            self.levels.pop()

    def targets(
        self, node: exp.Expression, level: _Level
    ) -> list[tuple[str | None, tuple[str, ...]]]:
        """The tables a DELETE or UPDATE writes: each as the alias it is written
        through (None if unknown) and its resolved names."""
        listed = node.args.get("tables")
        if isinstance(node, exp.Delete) and isinstance(node.args.get("using"), list):
            joins = node.this.args.get("joins") or ()
            listed = [node.this, *(join.this for join in joins)]
        if isinstance(node, exp.Delete) and listed:
            result: list[tuple[str | None, tuple[str, ...]]] = []
            for item in listed:
                key = item.name.lower()
                resolved = level.aliases.get(key)
                if resolved is None:
                    name = self.name(item)
                    result.append((None, (name,) if name else _NO_TABLES))
                else:
                    result.append((key, resolved))
            return result
        if isinstance(node, exp.Update) and len(self.sources(node)) > 1:
            # Multi-table UPDATE: the tables whose columns SET assigns.
            result = []
            for assignment in node.expressions:
                column = assignment.this
                if isinstance(column, exp.Column) and column.table:
                    alias = column.table.lower()
                    resolved = level.aliases.get(alias)
                    if resolved is not None:
                        result.append((alias, resolved))
                        continue
                result.extend((None, (t,)) for t in level.tables)
            return result
        name = self.name(node.this) if isinstance(node.this, exp.Table) else None
        if not name:
            return []
        alias = node.this.alias_or_name.lower()
        return [(alias if alias in level.aliases else None, (name,))]

    def update(self, node: exp.Update, level: _Level) -> None:
        self.writes.add("update")
        targets = self.targets(node, level)
        for _, tables in targets:
            self.written.update(tables)
        for assignment in node.expressions:
            column = assignment.this
            if isinstance(column, exp.Column):
                self.column(column)
        self.scope(node, level, targets)

    def delete(self, node: exp.Delete, level: _Level) -> None:
        self.writes.add("delete")
        targets = self.targets(node, level)
        for _, tables in targets:
            self.written.update(tables)
        self.scope(node, level, targets)

    def scope(
        self,
        node: exp.Expression,
        level: _Level,
        targets: list[tuple[str | None, tuple[str, ...]]],
    ) -> None:
        conditions: list[exp.Expression] = []
        where = node.args.get("where")
        if isinstance(where, exp.Where):
            conditions.append(where.this)
        for source in self.sources(node):
            left = source.alias_or_name.lower() if isinstance(source, exp.Table) else ""
            for join in source.args.get("joins") or ():
                conditions.extend(_inner_join_conditions(join, left))
        for join in node.args.get("joins") or ():
            conditions.extend(_inner_join_conditions(join, ""))
        for alias, tables in targets:
            copies = {a for a, t in level.aliases.items() if set(t) & set(tables)}
            # A condition must restrict the very copy of the table that is
            # written: in a self-join, `b.id = 1` does not scope `a`.
            written = {alias} if alias is not None else copies
            written = _linked(conditions, written, copies)
            if not any(_scopes(c, copies | written, written) for c in conditions):
                self.unscoped = True


def _upsert_of_itself(node: exp.Insert, walk: Walk, tables: tuple[str, ...]) -> bool:
    """INSERT ... SELECT from the target itself, unfiltered, ON DUPLICATE KEY UPDATE.

    Every row conflicts with itself, so every row is updated; under REPLACE every
    row is deleted and inserted again (ON DELETE CASCADE and triggers fire).
    """
    conflict = isinstance(node.args.get("conflict"), exp.OnConflict)
    if not (conflict or walk.replacing):
        return False
    return _all_rows_of(node.expression, walk, tables)


def _all_rows_of(select: object, walk: Walk, tables: tuple[str, ...]) -> bool:
    """A SELECT of every row of one of tables: directly, or through derived
    tables (`FROM (SELECT * FROM t) AS x`), with no filter on the way."""
    while isinstance(select, exp.Subquery):
        select = select.this
    if isinstance(select, exp.Union):
        # A union holds every row of either side.
        return any(
            _all_rows_of(side, walk, tables)
            for side in (select.this, select.expression)
        )
    if not isinstance(select, exp.Select) or select.args.get("limit"):
        return False
    from_ = select.args.get("from_") or select.args.get("from")
    source = from_.this if isinstance(from_, exp.From) else None
    where = select.args.get("where")
    if isinstance(source, exp.Subquery):
        if isinstance(where, exp.Where) or select.args.get("joins"):
            return False
        return _all_rows_of(source.this, walk, tables)
    if not isinstance(source, exp.Table) or walk.name(source) not in tables:
        return False
    alias = {source.alias_or_name.lower(), source.name.lower()}
    return not isinstance(where, exp.Where) or not _scopes(where.this, alias)


def _join_group(item: exp.Expression) -> list[exp.Expression]:
    """A joined item, with a parenthesised group of joins (`JOIN (t2 CROSS JOIN
    t3)`) opened into its tables: each is a FROM item of the same level."""
    if isinstance(item, exp.Subquery) and isinstance(item.this, exp.Table):
        inner = item.this
        found: list[exp.Expression] = [inner]
        for join in inner.args.get("joins") or ():
            found.extend(_join_group(join.this))
        return found
    return [item]


def _inner_join_conditions(join: exp.Join, left: str) -> list[exp.Expression]:
    """ON/USING of a join that filters both sides (not LEFT/RIGHT/NATURAL).

    USING (c) of a table joined to `left` is read as `left.c = right.c`, so that
    a table joined to a copy of itself on its own columns is seen for what it is.
    """
    if join.side or join.args.get("method"):
        return []
    on = join.args.get("on")
    if isinstance(on, exp.Expression):
        return [on]
    using = join.args.get("using")
    if using:
        right = join.this
        if left and isinstance(right, exp.Table):
            name = right.alias_or_name
            return [
                exp.EQ(
                    this=exp.column(column.name, left),
                    expression=exp.column(column.name, name),
                )
                for column in using
            ]
        # USING (c) compares c of both sides: it depends on the rows.
        return [exp.column("__using__", "__any__")]
    return []


# --- scope: does a condition depend on the target's rows? -------------------------

# Comparison operators, and the operator whose truth is the complement.
_COMPLEMENT: dict[type[exp.Expression], type[exp.Expression]] = {
    exp.EQ: exp.NEQ,
    exp.NEQ: exp.EQ,
    exp.GT: exp.LTE,
    exp.LTE: exp.GT,
    exp.LT: exp.GTE,
    exp.GTE: exp.LT,
}
_PATTERNS = (exp.Like, exp.ILike, exp.RegexpLike)
_MATCH_ALL_REGEX = frozenset({"", ".*", "^", "^.*", ".*$", "^.*$"})


def _scopes(
    cond: exp.Expression, target: set[str], written: set[str] | None = None
) -> bool:
    """Whether ``cond`` limits the target's rows (False: provably or maybe all).

    A condition scopes when every top-level OR branch restricts a target column:
    compares it with something other than an expression of that same column.
    ``target`` holds every alias of the written table (two copies of a table
    compared on one column match every row); ``written``, if given, the alias
    the statement writes through, which the restriction must name.
    """
    written = target if written is None else written
    cond = _normalized(_unparen(cond))
    if isinstance(cond, exp.And):
        return _scopes(cond.this, target, written) or _scopes(
            cond.expression, target, written
        )
    if isinstance(cond, exp.Or):
        branches = _or_branches(cond)
        if any(not _scopes(b, target, written) for b in branches):
            return False
        return not _complementary(branches, target)
    if isinstance(cond, exp.Column) and cond.name == "__using__":
        return True
    if isinstance(cond, exp.Escape) and isinstance(cond.this, _PATTERNS):
        cond = cond.this  # LIKE ... ESCAPE '!': the pattern decides
    if isinstance(cond, exp.Xor):
        # `p XOR 1` is NOT p, `p XOR q` either of two: no row-limiting reading.
        return False
    if (
        isinstance(cond, exp.EQ)
        and isinstance(cond.expression, exp.Any)
        and _self_in(exp.In(this=cond.this, query=cond.expression.this))
    ):
        return False  # `id = ANY (SELECT id FROM t)` is `id IN (SELECT ...)`
    if isinstance(cond, exp.Column) or not _references(cond, written):
        # A bare column is true for every non-zero, non-NULL value: without
        # types, pamwire cannot tell a boolean flag from a numeric key.
        return False
    if isinstance(cond, exp.Not):
        inner = _unparen(cond.this)
        if isinstance(inner, (exp.Is, exp.NullSafeEQ)) and isinstance(
            inner.expression, exp.Null
        ):
            return False  # NOT (c IS NULL), NOT (c <=> NULL): every NOT NULL row
        if isinstance(inner, _PATTERNS):
            return not _matches_none_only(inner)
        return _scopes(inner, target, written)
    if isinstance(cond, exp.Binary) and isinstance(
        cond, (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NullSafeEQ)
    ):
        return not _self_expression(cond.this, cond.expression, target)
    if isinstance(cond, _PATTERNS):
        if cond.args.get("negate"):
            return not _matches_none_only(cond)
        return not _matches_all(cond)
    if isinstance(cond, exp.Between) and _self_expression(
        cond.this, cond.args["low"], target
    ):
        return False  # `id BETWEEN id AND ...` holds for every row's own value
    if isinstance(cond, exp.In) and any(
        _self_expression(cond.this, item, target)
        for item in cond.args.get("expressions") or ()
    ):
        return False  # `id IN (id)`, `id IN (1, id)`: every row's own value
    return not (isinstance(cond, exp.In) and _self_in(cond))


def _linked(
    conditions: list[exp.Expression], written: set[str], copies: set[str]
) -> set[str]:
    """written, with every copy of the table joined to it by an equality of
    columns (``a.id = b.id``) that all conditions require: a restriction of
    such a copy restricts the written rows too."""
    pairs = []
    for cond in conditions:
        for part in _conjuncts(cond):
            if isinstance(part, exp.EQ) and all(
                isinstance(side, exp.Column) and side.table
                for side in (part.this, part.expression)
            ):
                left, right = part.this.table.lower(), part.expression.table.lower()
                if {left, right} <= copies | written:
                    pairs.append((left, right))
    return linked_names(pairs, written)


def _conjuncts(cond: exp.Expression) -> list[exp.Expression]:
    cond = _unparen(cond)
    if isinstance(cond, exp.And):
        return _conjuncts(cond.this) + _conjuncts(cond.expression)
    return [cond]


def _unparen(cond: exp.Expression) -> exp.Expression:
    while isinstance(cond, exp.Paren):
        cond = cond.this
    return cond


def _or_branches(cond: exp.Expression) -> list[exp.Expression]:
    cond = _normalized(_unparen(cond))
    if isinstance(cond, exp.Or):
        return _or_branches(cond.this) + _or_branches(cond.expression)
    return [cond]


_BOOLEANS = (exp.Is, exp.Not, exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)
_MIRROR: dict[type[exp.Expression], type[exp.Expression]] = {
    exp.GT: exp.LT,
    exp.LT: exp.GT,
    exp.GTE: exp.LTE,
    exp.LTE: exp.GTE,
    exp.EQ: exp.EQ,
    exp.NEQ: exp.NEQ,
}


def _truth(node: exp.Expression) -> bool | None:
    """The truth a constant stands for (TRUE, FALSE, 1, 0), else None."""
    node = _unparen(node)
    if isinstance(node, exp.Boolean):
        return node.this is True
    if isinstance(node, exp.Literal) and not node.is_string and node.this in ("0", "1"):
        return str(node.this) == "1"
    return None


def _normalized(cond: exp.Expression) -> exp.Expression:
    """One spelling for conditions that mean the same: `p IS TRUE` and `p = 1`
    are p, `p IS FALSE` and `p = 0` are NOT p (ISNULL(c) reaches here as
    `(c IS NULL)`), and `1 >= id` is `id <= 1`."""
    for _ in range(8):
        if isinstance(cond, (exp.Is, exp.EQ, exp.NEQ)):
            inner = _unparen(cond.this)
            truth = _truth(cond.expression)
            if truth is not None and isinstance(inner, _BOOLEANS):
                if isinstance(cond, exp.NEQ):
                    truth = not truth
                cond = inner if truth else exp.Not(this=inner)
                continue
        mirror = _MIRROR.get(type(cond))
        if (
            mirror is not None
            and isinstance(cond, exp.Binary)
            and isinstance(_unparen(cond.this), exp.Literal)
            and isinstance(_unparen(cond.expression), exp.Column)
        ):
            cond = mirror(this=cond.expression, expression=cond.this)
        break
    return cond


def _complementary(branches: list[exp.Expression], target: set[str]) -> bool:
    """``p OR NOT p``, ``c IS NULL OR c IS NOT NULL``, ``id > 0 OR id <= 0``."""
    seen = {b.sql(dialect="mysql") for b in branches}
    comparisons: list[tuple[tuple[str, str], type[exp.Expression], exp.Expression]] = []
    for branch in branches:
        inner = _unparen(branch.this) if isinstance(branch, exp.Not) else None
        if inner is not None and inner.sql(dialect="mysql") in seen:
            return True
        if type(branch) in _COMPLEMENT and isinstance(branch.this, exp.Column):
            value = branch.expression
            comparisons.append((_column_key(branch.this, target), type(branch), value))
    for column, op, value in comparisons:
        for other_column, other_op, other_value in comparisons:
            if column != other_column:
                continue
            if _COMPLEMENT[op] is other_op and value.sql() == other_value.sql():
                return True
            if _covers(op, value, other_op, other_value):
                return True
    return False


def _covers(
    op: type[exp.Expression],
    value: exp.Expression,
    other_op: type[exp.Expression],
    other_value: exp.Expression,
) -> bool:
    """``c < 10 OR c > 5``: two ranges that together hold every value."""
    low, high = _number(value), _number(other_value)
    if low is None or high is None:
        return False
    if op in (exp.LT, exp.LTE) and other_op in (exp.GT, exp.GTE):
        if high < low:
            return True
        return high == low and (op is exp.LTE or other_op is exp.GTE)
    return False


def _number(value: exp.Expression) -> float | None:
    if isinstance(value, exp.Literal) and not value.is_string:
        try:
            return float(value.this)
        except ValueError:
            return None
    return None


def _column_key(column: exp.Column, target: set[str]) -> tuple[str, str]:
    qualifier = column.table.lower()
    if not qualifier or qualifier in target:
        qualifier = ""  # the target row, however it is named
    return (qualifier, column.name.lower())


def _references(cond: exp.Expression, target: set[str]) -> bool:
    """Whether a column of the target appears (unqualified counts at the top)."""
    for column in cond.find_all(exp.Column):
        qualifier = column.table.lower()
        if qualifier:
            if qualifier in target:
                return True
            continue
        if not _inside_select(column, cond):
            return True
    return False


def _inside_select(node: exp.Expression, root: exp.Expression) -> bool:
    """Whether a sub-select lies between ``node`` and ``root``."""
    parent = node.parent
    while parent is not None and parent is not root:
        if isinstance(parent, exp.Select):
            return True
        parent = parent.parent
    return False


def _self_expression(
    left: exp.Expression, right: exp.Expression, target: set[str]
) -> bool:
    """``id = id``, ``id + 0 = id``, ``t.id = t2.id`` of two aliases of the target.

    Both sides are expressions of one and the same target column and nothing
    else from a row.
    """
    columns = set()
    for side in (left, right):
        found = [_column_key(c, target) for c in side.find_all(exp.Column)]
        if not found or side.find(exp.Select) is not None:
            return False
        columns.update(found)
    return len(columns) == 1 and next(iter(columns))[0] == ""


def _matches_all(cond: exp.Expression) -> bool:
    """A pattern that a parameter supplies or that every string matches."""
    pattern = _unparen(cond.expression)
    if isinstance(pattern, exp.Placeholder):
        return True
    if not (isinstance(pattern, exp.Literal) and pattern.is_string):
        return not isinstance(pattern, exp.Literal)
    text = pattern.this
    if isinstance(cond, exp.RegexpLike):
        return text in _MATCH_ALL_REGEX or _regex_matches_empty(text)
    return text != "" and set(text) <= {"%"}


def _regex_matches_empty(text: str) -> bool:
    """A REGEXP that matches the empty string matches inside every string (`a|`,
    `x*`, `()`). Read with Python's syntax, close to MySQL's; a pattern Python
    cannot read is taken to match everything (fail closed)."""
    try:
        return re.search(text, "") is not None
    except re.error:
        return True


def _matches_none_only(cond: exp.Expression) -> bool:
    """For NOT LIKE: a pattern from a parameter, or ``''`` (NOT LIKE '' is all)."""
    pattern = _unparen(cond.expression)
    if isinstance(pattern, exp.Literal) and pattern.is_string:
        return pattern.this == "" and not isinstance(cond, exp.RegexpLike)
    return True


def _self_in(cond: exp.In) -> bool:
    """``c IN (SELECT c FROM same_table)`` with nothing filtering the sub-select."""
    query = cond.args.get("query")
    select = query.this if isinstance(query, exp.Subquery) else query
    if isinstance(select, exp.Union):
        # Either side of a UNION giving every value is enough.
        return any(
            _self_in(exp.In(this=cond.this, query=side))
            for side in (select.this, select.expression)
        )
    if not isinstance(select, exp.Select) or not isinstance(cond.this, exp.Column):
        return False
    if select.args.get("joins") or select.args.get("limit"):
        return False
    if select.args.get("having"):
        return False
    where = select.args.get("where")
    if isinstance(where, exp.Where):
        from_ = select.args.get("from_") or select.args.get("from")
        source = from_.this if isinstance(from_, exp.From) else None
        names = (
            {source.alias_or_name.lower(), source.name.lower()}
            if isinstance(source, exp.Table)
            else set()
        )
        if _scopes(where.this, names):
            return False  # the sub-select itself is limited
    columns = select.expressions
    if len(columns) == 1 and isinstance(columns[0], exp.Star):
        return True  # `IN (SELECT * FROM t)`, `IN (TABLE t)`: one column, every value
    return [e.name.lower() for e in columns] == [cond.this.name.lower()]
