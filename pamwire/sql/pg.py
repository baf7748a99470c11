"""Turn PostgreSQL statement text into StatementFacts, cheaply enough for every message.

Theory of operation: libpg_query (through pglast's C-level ``parse_sql_json``)
parses the whole message; we walk the resulting plain dicts once, never building
pglast's Python node objects, which cost about twenty times more. In the JSON a
node held in a generic slot is wrapped as ``{"TypeName": {fields}}`` while a node
in a typed slot (``DeleteStmt.relation``) is a bare field dict, so the walker
recognises a bare RangeVar by its ``relname`` field and a bare FuncCall by its
``funcname``. Byte offsets (``stmt_location``, ``stmt_len``) cut each statement's
own text out of the UTF-8 encoding. Results are cached by exact text and the
session settings that change the parse.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import attrs
from pglast import parser as pg_parser

from pamwire.sql import pg_kinds, pg_scope
from pamwire.sql.encodings import is_unsafe_client_encoding
from pamwire.sql.facts import ANY_SETTING, Analysis, StatementFacts
from pamwire.sql.pg_catalog import CATALOG_RELATIONS
from pamwire.sql.pg_scope import Target, copies_target, sval, unscoped

__all__ = ["Analysis", "StatementFacts", "analyze", "cache_clear"]

logger = logging.getLogger("pamwire.sql")

#: Analyses kept; a proxy sees the same few hundred statement texts over and over.
CACHE_SIZE = 4096

_DEFAULT_SCHEMA = "public"

# JSON values from the parser: dicts, lists, strings, numbers, booleans.
_Json = Any


def analyze(
    sql: str,
    *,
    standard_conforming_strings: bool = True,
    search_path: tuple[str, ...] = ("public",),
) -> Analysis:
    """Analyse every statement of ``sql`` as the PostgreSQL server would read it.

    Never raises for bad input: text that cannot be trusted (a syntax error, a NUL
    byte, lone surrogates, a backslash in a plain string literal while
    ``standard_conforming_strings`` is off) gives ``Analysis(statements=(),
    error=...)``. An unqualified table name counts in every schema of
    ``search_path`` (pass names already resolved: ``"$user"`` is taken literally),
    or in pg_catalog for the catalog's own relations. A ``SET search_path`` (or
    ``set_config``) with constant values applies to the statements after it in
    the same message, as on the server.
    """
    key = (sql, standard_conforming_strings, tuple(search_path))
    hit = _exact.get(key)
    if hit is not None:
        return hit
    if standard_conforming_strings:
        hit = _shapes.lookup(sql, key[2])
        if hit is not None:
            return hit
    analysis = _analyze_guarded(*key)
    if len(_exact) >= CACHE_SIZE:
        del _exact[next(iter(_exact))]  # oldest first
    _exact[key] = analysis
    if standard_conforming_strings:
        _shapes.learn(sql, key[2], analysis)
    return analysis


def cache_clear() -> None:
    """Forget every cached analysis (for tests and benchmarks)."""
    _exact.clear()
    _shapes.clear()


# Analyses by exact text and the settings that change the parse.
_exact: dict[tuple[str, bool, tuple[str, ...]], Analysis] = {}


# Literal tokens of the server's lexer (pglast.parser.scan names them so).
_LITERAL_TOKENS = frozenset(
    {"ICONST", "FCONST", "SCONST", "BCONST", "XCONST", "USCONST"}
)


class _ShapeCache:
    """Reuses the facts of a statement for texts that differ only in literal values.

    OLTP clients send the same statement with new constants each time (pgbench's
    ``WHERE aid = 48213``), so an exact-text cache never hits. The key here is the
    lexer's token stream with every literal replaced by a placeholder. Reuse is only
    sound when no fact depends on a literal's value, so a shape is remembered only
    for a single plain SELECT or INSERT that calls no function, changes no setting
    and has no inner statement: its kind, tables and columns come from identifiers
    alone. UPDATE and DELETE are never reused: whether a WHERE clause scopes rows
    can depend on constants (``OR 1 = 1``). Text with comments is not reused either,
    since the statement's own text is rebuilt from the message here.
    """

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._size = size
        self._facts: dict[tuple[tuple[str, ...], tuple[str, ...]], StatementFacts] = {}

    def clear(self) -> None:
        self._facts.clear()

    def lookup(self, sql: str, path: tuple[str, ...]) -> Analysis | None:
        if not self._facts or not _shape_candidate(sql):
            return None
        shape = _shape(sql)
        if shape is None:
            return None
        template = self._facts.get((shape, path))
        if template is None:
            return None
        text = sql.strip().rstrip(";").rstrip()
        return Analysis((attrs.evolve(template, text=text),))

    def learn(self, sql: str, path: tuple[str, ...], analysis: Analysis) -> None:
        if analysis.error is not None or len(analysis.statements) != 1:
            return
        facts = analysis.statements[0]
        if not _literal_free(facts) or not _shape_candidate(sql):
            return
        shape = _shape(sql)
        if shape is None:
            return
        if len(self._facts) >= self._size:
            self._facts.pop(next(iter(self._facts)))
        self._facts[(shape, path)] = facts


def _shape_candidate(sql: str) -> bool:
    if len(sql) > 4096 or "--" in sql or "/*" in sql or "\x00" in sql:
        return False
    try:
        sql.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _literal_free(facts: StatementFacts) -> bool:
    """Whether no fact of this statement depends on the value of a literal."""
    return (
        facts.kind in ("select", "insert")
        and not facts.functions
        and not facts.calls
        and not facts.settings
        and not facts.assignments
        and facts.inner is None
        and facts.copy_target is None
        and not facts.server_code
        and not facts.destructive
        and not facts.unscoped_write
        and not facts.empty
    )


def _shape(sql: str) -> tuple[str, ...] | None:
    """The token stream with literals replaced; None when it is not one statement."""
    try:
        tokens = pg_parser.scan(sql)
    except pg_parser.ParseError:
        return None
    if not tokens:
        return None
    raw = sql.encode("utf-8")
    shape: list[str] = []
    for i, token in enumerate(tokens):
        if token.name == ";" and i != len(tokens) - 1:
            return None  # several statements: never reused
        if token.name in _LITERAL_TOKENS:
            shape.append("?")
        else:
            shape.append(raw[token.start : token.end + 1].decode("utf-8", "replace"))
    return tuple(shape)


_shapes = _ShapeCache()


def _analyze_guarded(sql: str, scs: bool, search_path: tuple[str, ...]) -> Analysis:
    try:
        return _analyze(sql, scs, search_path)
    except RecursionError:
        # TODO(depth): json.loads and the walk recurse, so about 300 nested calls
        # exceed Python's default limit and fail closed; an explicit stack would
        # lift that.
        return Analysis((), error="statement nested too deeply")
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        # A tree shape the walker does not expect: a bug here, but never a reason
        # to let the statement through.
        logger.warning("cannot analyze statement", exc_info=True)
        return Analysis((), error="statement has a shape the analyser does not know")


def _analyze(sql: str, scs: bool, search_path: tuple[str, ...]) -> Analysis:
    if "\x00" in sql:
        # libpg_query stops at a NUL, so anything after it would go unseen.
        return Analysis((), error="nul byte in statement text")
    try:
        raw = sql.encode("utf-8")
    except UnicodeEncodeError:
        return Analysis((), error="statement text is not valid utf-8")
    if not scs and "\\" in sql and _backslash_in_plain_string(sql):
        return Analysis(
            (),
            error="backslash in a string literal with standard_conforming_strings off",
        )
    try:
        tree = json.loads(pg_parser.parse_sql_json(sql))
    except pg_parser.ParseError as exc:
        return Analysis((), error=f"syntax error: {exc}")

    items = tree.get("stmts") or []
    if not items:
        empty = StatementFacts(
            text=sql,
            kind="empty",
            tables_read=frozenset(),
            tables_written=frozenset(),
            functions=frozenset(),
            unscoped_write=False,
            fingerprint=pg_parser.fingerprint(sql),
            empty=True,
        )
        return Analysis((empty,))

    # The server parses the whole message before running any of it, so a SET of
    # standard_conforming_strings or client_encoding only changes later messages;
    # search_path is looked up when each statement runs, so it changes the rest.
    schemas = search_path or (_DEFAULT_SCHEMA,)
    statements = []
    for item in items:
        start = item.get("stmt_location", 0)
        length = item.get("stmt_len", 0)
        end = start + length if length else len(raw)
        text = raw[start:end].decode("utf-8").strip()
        facts = _statement_facts(text, item["stmt"], schemas)
        statements.append(facts)
        for setting, value in facts.assignments:
            if setting == "search_path":
                schemas = _schemas(value) if value is not None else search_path
    return Analysis(tuple(statements))


def _schemas(value: str) -> tuple[str, ...]:
    """The schemas of a search_path value, as SET and set_config spell them."""
    names = tuple(part.strip().strip('"') for part in value.split(","))
    return tuple(name for name in names if name) or (_DEFAULT_SCHEMA,)


def _backslash_in_plain_string(sql: str) -> bool:
    """Whether a backslash sits in a literal the server would lex differently.

    With standard_conforming_strings off the server treats a backslash in a plain
    '...' literal as an escape, pglast never does. Up to the first such literal
    both lex the same, so pglast's own scan finds it exactly. E'', dollar-quoted
    strings, identifiers and comments read the same either way.
    """
    try:
        tokens = pg_parser.scan(sql)
    except pg_parser.ParseError:
        return True
    for token in tokens:
        if token.name != "SCONST":
            continue
        literal = sql[token.start : token.end + 1]
        if literal[:1] not in ("e", "E", "$") and "\\" in literal:
            return True
    return False


def _statement_facts(
    text: str, node: _Json, schemas: tuple[str, ...]
) -> StatementFacts:
    ((name, body),) = node.items()
    kind, object_type, prepare_name = pg_kinds.kind_of(name, body)

    walk = _Walk(schemas)
    walk.assignments.extend(pg_kinds.assignments(name, body))
    walk.server_code = pg_kinds.server_code(name, kind, object_type, body)
    walk.destructive = pg_kinds.destructive(name, body)
    inner = None
    if name == "PrepareStmt":
        # The prepared statement runs later, on EXECUTE; rules judge it now, so
        # its facts travel both inside `inner` and merged into the PREPARE.
        inner_walk = _Walk(schemas)
        query = body["query"]
        inner_walk.visit(query)
        ((inner_name, inner_body),) = query.items()
        inner_kind, inner_object, _ = pg_kinds.kind_of(inner_name, inner_body)
        inner = inner_walk.facts(text, inner_walk.promote(inner_kind), inner_object)
        walk.absorb(inner_walk, scope=True)
        walk.visit(body.get("argtypes"))
    else:
        walk.visit_node(name, body)
        kind = walk.promote(kind)
    return walk.facts(text, kind, object_type, prepare_name=prepare_name, inner=inner)


# --- the walk ---------------------------------------------------------------------

_TABLE_OBJECTS = frozenset(
    {
        "OBJECT_TABLE",
        "OBJECT_VIEW",
        "OBJECT_MATVIEW",
        "OBJECT_SEQUENCE",
        "OBJECT_FOREIGN_TABLE",
    }
)

_NO_TABLES: tuple[str, ...] = ()


class _Scope:
    """The FROM items one query level can name: alias -> tables behind it."""

    __slots__ = ("aliases", "setting", "tables")

    def __init__(self) -> None:
        self.aliases: dict[str, tuple[str, ...]] = {}
        self.tables: list[str] = []
        # The one pg_settings row a `FROM pg_settings WHERE name = '...'` selects.
        self.setting: str | None = None

    def settings_row(self, arg: _Json) -> str | None:
        """The setting ``set_config(name, ...)`` changes when ``name`` is that row's.

        pg_dump sends ``SELECT set_config(name, ...) FROM pg_settings WHERE name
        = 'restrict_nonsystem_relation_kind'``.
        """
        column = arg.get("ColumnRef") if isinstance(arg, dict) else None
        if self.setting is None or column is None:
            return None
        fields = [sval(item) for item in column.get("fields") or ()]
        return self.setting if fields[-1:] == ["name"] else None

    def add(self, alias: str, tables: tuple[str, ...]) -> None:
        self.aliases[alias] = tables
        self.tables.extend(tables)


class _Walk:
    """One pass over a statement tree: tables, columns, functions and effects."""

    __slots__ = (
        "assignments",
        "calls",
        "columns",
        "copy_target",
        "cte_queries",
        "ctes",
        "destructive",
        "functions",
        "read",
        "schemas",
        "scopes",
        "server_code",
        "unsafe_encoding",
        "unscoped",
        "writes",
        "written",
    )

    def __init__(self, schemas: tuple[str, ...]) -> None:
        self.schemas = schemas
        self.read: set[str] = set()
        self.written: set[str] = set()
        self.functions: set[str] = set()
        self.calls: set[str] = set()
        self.columns: set[str] = set()
        self.writes: set[str] = set()
        self.assignments: list[tuple[str, str | None]] = []
        self.copy_target: str | None = None
        self.unscoped = False
        self.server_code = False
        self.destructive = False
        # A set_config of client_encoding to a value that is not a constant.
        self.unsafe_encoding = False
        # CTE names in scope, innermost last.
        self.ctes: list[set[str]] = []
        # The query of each CTE name seen (the latest wins), to see through
        # `WITH s AS (SELECT * FROM t) DELETE FROM t USING s ...`.
        self.cte_queries: dict[str, _Json] = {}
        # FROM items of the enclosing query levels, innermost last.
        self.scopes: list[_Scope] = []

    # Results.

    def promote(self, kind: str) -> str:
        """Raise ``kind`` to the most consequential data change seen in the walk."""
        if not self.writes:
            return kind
        rank = pg_kinds.DML_RANK
        best = max(self.writes, key=rank.__getitem__)
        if kind in rank and rank[kind] >= rank[best]:
            return kind
        return best

    def absorb(self, other: _Walk, *, scope: bool) -> None:
        """Take the tables, columns and functions of a sub-walk (and its effects)."""
        self.read |= other.read
        self.written |= other.written
        self.functions |= other.functions
        self.calls |= other.calls
        self.columns |= other.columns
        self.assignments.extend(other.assignments)
        self.server_code = self.server_code or other.server_code
        self.unsafe_encoding = self.unsafe_encoding or other.unsafe_encoding
        if scope:
            self.unscoped = self.unscoped or other.unscoped
            self.destructive = self.destructive or other.destructive
            self.copy_target = self.copy_target or other.copy_target

    def facts(
        self,
        text: str,
        kind: str,
        object_type: str | None,
        *,
        prepare_name: str | None = None,
        inner: StatementFacts | None = None,
    ) -> StatementFacts:
        settings = frozenset(
            name
            for name, value in self.assignments
            if not pg_kinds.narrows(name, value)
        )
        return StatementFacts(
            text=text,
            kind=kind,
            tables_read=frozenset(self.read),
            tables_written=frozenset(self.written),
            functions=frozenset(self.functions),
            calls=frozenset(self.calls),
            unscoped_write=self.unscoped,
            fingerprint=pg_parser.fingerprint(text),
            prepare_name=prepare_name,
            object_type=object_type,
            inner=inner,
            columns=frozenset(self.columns),
            settings=settings,
            assignments=tuple(self.assignments),
            copy_target=self.copy_target,
            destructive=self.destructive,
            server_code=self.server_code,
            unsafe_client_encoding=self.unsafe_encoding
            or any(
                name == "client_encoding"
                and value is not None
                and is_unsafe_client_encoding(value)
                for name, value in self.assignments
            ),
        )

    # Generic traversal.

    def visit(self, value: _Json) -> None:
        if isinstance(value, dict):
            if len(value) == 1:
                ((name, body),) = value.items()
                if name[0].isupper():
                    self.visit_node(name, body)
                    return
            if "relname" in value:
                self.table(value, written=False)
            elif "funcname" in value:
                self.func_call(value)
            else:
                self.fields(value)
        elif isinstance(value, list):
            for item in value:
                self.visit(item)

    def visit_node(self, name: str, body: _Json) -> None:
        handler = _HANDLERS.get(name)
        if handler is None:
            self.fields(body)
        elif handler is not _skip:
            handler(self, body)

    def fields(self, body: _Json, skip: tuple[str, ...] = ()) -> None:
        """Visit every field of a node, with its WITH clause's names in scope."""
        if not isinstance(body, dict):
            return
        with_clause = body.get("withClause")
        if with_clause is not None and "withClause" not in skip:
            self.enter_with(with_clause)
        for key, value in body.items():
            if key in skip or key == "withClause":
                continue
            if isinstance(value, (dict, list)):
                self.visit(value)
        if with_clause is not None and "withClause" not in skip:
            self.ctes.pop()

    def enter_with(self, with_clause: _Json) -> None:
        """Walk the CTE bodies, each seeing the names that are in scope for it."""
        names: set[str] = set()
        self.ctes.append(names)
        ctes = [cte["CommonTableExpr"] for cte in with_clause.get("ctes") or ()]
        if with_clause.get("recursive"):
            names.update(cte["ctename"] for cte in ctes)
        for cte in ctes:
            self.visit(cte.get("ctequery"))
            names.add(cte["ctename"])
            self.cte_queries[cte["ctename"]] = pg_scope.with_colnames(cte)

    def sub_walk(self, value: _Json) -> _Walk:
        """Walk a part that does not run now (a rule action, a plain EXPLAIN)."""
        other = _Walk(self.schemas)
        other.ctes = list(self.ctes)
        other.cte_queries = self.cte_queries
        other.scopes = list(self.scopes)
        other.visit(value)
        self.absorb(other, scope=False)
        return other

    def query_level(
        self, body: _Json, sources: tuple[str, ...], skip: tuple[str, ...]
    ) -> None:
        """Visit a query level's fields with its FROM items (``sources``) in scope.

        The WITH clause is entered first, so a FROM item naming a CTE is known
        not to be a table.
        """
        with_clause = body.get("withClause")
        if with_clause is not None:
            self.enter_with(with_clause)
        scope = _Scope()
        for key in sources:
            self.collect(scope, body.get(key))
        if scope.tables == ["pg_catalog.pg_settings"]:
            scope.setting = _named_setting(body.get("whereClause"))
        self.scopes.append(scope)
        self.fields(body, skip=(*skip, "withClause"))
        self.scopes.pop()
        if with_clause is not None:
            self.ctes.pop()

    def collect(self, scope: _Scope, item: _Json) -> tuple[str, ...]:
        """Add a FROM item's names to ``scope``; returns the tables behind it."""
        if isinstance(item, list):
            found: tuple[str, ...] = ()
            for each in item:
                found += self.collect(scope, each)
            return found
        if not isinstance(item, dict):
            return _NO_TABLES
        if "relname" in item:
            tables = self.resolve(item, written=False)
            alias = item.get("alias")
            scope.add(alias["aliasname"] if alias else item["relname"], tables)
            return tables
        if len(item) != 1:
            return _NO_TABLES
        ((name, body),) = item.items()
        if name == "RangeVar":
            return self.collect(scope, body)
        if name == "JoinExpr":
            tables = self.collect(scope, body.get("larg")) + self.collect(
                scope, body.get("rarg")
            )
            if body.get("alias"):
                scope.add(body["alias"]["aliasname"], tables)
            return tables
        if name == "RangeTableSample":
            return self.collect(scope, body.get("relation"))
        alias = body.get("alias") if isinstance(body, dict) else None
        if alias:
            # A sub-select or a function in FROM: its own walk records what it
            # reads; its alias names no table.
            scope.add(alias["aliasname"], _NO_TABLES)
        return _NO_TABLES

    # Leaves.

    def resolve(self, range_var: _Json, *, written: bool) -> tuple[str, ...]:
        """The tables a name can mean: qualified, catalog, or each search_path schema.

        A CTE in scope is no table (except as the target of a write).
        """
        relname = range_var["relname"]
        schema = range_var.get("schemaname")
        if schema is not None:
            return (f"{schema}.{relname}",)
        if not written and any(relname in names for names in self.ctes):
            return _NO_TABLES
        if relname in CATALOG_RELATIONS:
            # pg_catalog is searched before search_path unless listed later in it.
            return (f"pg_catalog.{relname}",)
        return tuple(f"{each}.{relname}" for each in self.schemas)

    def table(self, range_var: _Json, *, written: bool) -> tuple[str, ...]:
        tables = self.resolve(range_var, written=written)
        (self.written if written else self.read).update(tables)
        return tables

    def qualified(self, names: list[str]) -> tuple[str, ...]:
        if len(names) == 1:
            if names[0] in CATALOG_RELATIONS:
                return (f"pg_catalog.{names[0]}",)
            return tuple(f"{each}.{names[0]}" for each in self.schemas)
        return (f"{names[-2]}.{names[-1]}",)

    def func_call(self, body: _Json) -> None:
        names = [sval(item).lower() for item in body.get("funcname") or ()]
        if names:
            self.functions.add(names[-1])
            written = ".".join(names)
            self.calls.add(written)
            if len(names) > 1:
                self.functions.add(written)
            if names[-1] == "set_config":
                self.set_config(body.get("args") or [])
        self.fields(body, skip=("funcname",))

    def set_config(self, args: list[_Json]) -> None:
        """Record the setting ``set_config(name, value, is_local)`` changes."""
        name = pg_kinds.const_text(args[0]) if args else None
        if name is None and args and self.scopes:
            name = self.scopes[-1].settings_row(args[0])
        if name is None:
            self.assignments.append((ANY_SETTING, None))
            return
        value = pg_kinds.const_text(args[1]) if len(args) > 1 else None
        name = name.strip().lower()
        if name == "client_encoding" and value is None:
            self.unsafe_encoding = True
        self.assignments.append((name, value))

    def column(self, names: list[str]) -> None:
        """Record a column reference; ``*`` or a bare FROM name reaches every column."""
        if len(names) >= 3:
            self.columns.add(".".join(names[-3:]))
            return
        if len(names) == 2:
            for scope in reversed(self.scopes):
                tables = scope.aliases.get(names[0])
                if tables is not None:
                    self.columns.update(f"{table}.{names[1]}" for table in tables)
                    return
            return
        (name,) = names
        if name == "*":
            if self.scopes:
                self.columns.update(f"{t}.*" for t in self.scopes[-1].tables)
            return
        # Unqualified: PostgreSQL takes the innermost level with such a column, and
        # a bare FROM name is a whole-row reference. Without a schema every level
        # counts.
        for scope in self.scopes:
            whole = scope.aliases.get(name)
            if whole is not None:
                self.columns.update(f"{table}.*" for table in whole)
            self.columns.update(f"{table}.{name}" for table in scope.tables)

    def target_columns(self, tables: tuple[str, ...], targets: _Json) -> None:
        """Record the columns an INSERT, UPDATE or MERGE assigns."""
        for item in targets or ():
            name = item.get("ResTarget", {}).get("name")
            if name:
                self.columns.update(f"{table}.{name}" for table in tables)


def _named_setting(where: _Json) -> str | None:
    """The constant of a top-level ``name = '...'`` conjunct of a WHERE clause."""
    if not isinstance(where, dict):
        return None
    boolexpr = where.get("BoolExpr")
    if boolexpr is not None:
        if boolexpr.get("boolop") != "AND_EXPR":
            return None
        found = [_named_setting(arg) for arg in boolexpr.get("args") or ()]
        return next((name for name in found if name is not None), None)
    expr = where.get("A_Expr")
    if expr is None or expr.get("kind") != "AEXPR_OP":
        return None
    if [sval(item) for item in expr.get("name") or ()] != ["="]:
        return None
    column = (expr.get("lexpr") or {}).get("ColumnRef")
    value = pg_kinds.const_text(expr.get("rexpr"))
    if column is None or value is None:
        return None
    fields = [sval(item) for item in column.get("fields") or ()]
    return value.lower() if fields[-1:] == ["name"] else None


# --- node handlers ------------------------------------------------------------------


def _skip(walk: _Walk, body: _Json) -> None:
    """Leaves with nothing to record (never called: visit_node checks identity)."""


def _range_var(walk: _Walk, body: _Json) -> None:
    walk.table(body, written=False)


def _func_call(walk: _Walk, body: _Json) -> None:
    walk.func_call(body)


def _column_ref(walk: _Walk, body: _Json) -> None:
    names = []
    for item in body.get("fields") or ():
        if "A_Star" in item:
            names.append("*")
        else:
            names.append(sval(item))
    walk.column(names)


def _indirection(walk: _Walk, body: _Json) -> None:
    # `(x).f` is also function-call notation, f(x): record field names as calls.
    # TODO(functions): `t.f` in a ColumnRef can be f(t) too; recording every
    # qualified column as a function would drown the function facts.
    for item in body.get("indirection") or ():
        name = sval(item)
        if name:
            walk.functions.add(name.lower())
            walk.calls.add(name.lower())
    walk.fields(body)


def _join(walk: _Walk, body: _Json) -> None:
    # USING (c) and NATURAL compare columns of both sides.
    using = [sval(item) for item in body.get("usingClause") or ()]
    scope = walk.scopes[-1] if walk.scopes else None
    if scope is not None and (using or body.get("isNatural")):
        sides = walk.collect(_Scope(), body.get("larg")) + walk.collect(
            _Scope(), body.get("rarg")
        )
        for table in sides:
            if body.get("isNatural"):
                walk.columns.add(f"{table}.*")
            walk.columns.update(f"{table}.{name}" for name in using)
    walk.fields(body, skip=("usingClause",))


def _select(walk: _Walk, body: _Json) -> None:
    if body.get("lockingClause"):
        walk.writes.add("lock")
    into = body.get("intoClause")
    if into is not None:
        walk.table(into["rel"], written=True)
    if body.get("op", "SETOP_NONE") != "SETOP_NONE":
        # The arms of UNION, INTERSECT, EXCEPT are bare SelectStmt fields.
        with_clause = body.get("withClause")
        if with_clause is not None:
            walk.enter_with(with_clause)
        _select(walk, body["larg"])
        _select(walk, body["rarg"])
        walk.fields(body, skip=("larg", "rarg", "intoClause", "withClause"))
        if with_clause is not None:
            walk.ctes.pop()
        return
    walk.query_level(body, ("fromClause",), ("intoClause",))


def _create_table_as(walk: _Walk, body: _Json) -> None:
    into = body.get("into") or {}
    if "rel" in into:
        walk.table(into["rel"], written=True)
    walk.fields(body, skip=("into",))


def _insert(walk: _Walk, body: _Json) -> None:
    walk.writes.add("insert")
    tables = walk.table(body["relation"], written=True)
    cols = body.get("cols")
    if cols:
        walk.target_columns(tables, cols)
    else:
        walk.columns.update(f"{table}.*" for table in tables)
    # The target (and EXCLUDED) is in scope for ON CONFLICT and RETURNING.
    scope = _Scope()
    alias = body["relation"].get("alias")
    scope.add(alias["aliasname"] if alias else body["relation"]["relname"], tables)
    scope.aliases["excluded"] = tables
    with_clause = body.get("withClause")
    if with_clause is not None:
        walk.enter_with(with_clause)
    walk.visit(body.get("selectStmt"))
    if _unscoped_upsert(walk, body):
        walk.unscoped = True
    walk.scopes.append(scope)
    walk.fields(body, skip=("relation", "cols", "selectStmt", "withClause"))
    walk.scopes.pop()
    if with_clause is not None:
        walk.ctes.pop()


def _note_ctes(walk: _Walk, body: _Json) -> None:
    """Know a write's own CTE queries before its scope is judged."""
    for cte in (body.get("withClause") or {}).get("ctes") or ():
        query = cte.get("CommonTableExpr", {})
        walk.cte_queries[query.get("ctename", "")] = pg_scope.with_colnames(query)


def _unscoped_upsert(walk: _Walk, body: _Json) -> bool:
    """``INSERT INTO t SELECT * FROM t ON CONFLICT DO UPDATE``: every row updated.

    Each row read from the target conflicts with itself, so the DO UPDATE reaches
    all of them unless its own WHERE restricts.
    """
    conflict = body.get("onConflictClause") or {}
    if conflict.get("action") != "ONCONFLICT_UPDATE":
        return False
    target = Target(body["relation"], walk.schemas[0])
    if not copies_target(body.get("selectStmt"), target, walk.cte_queries):
        return False
    where = conflict.get("whereClause")
    return where is None or unscoped(where, target, (), walk.cte_queries)


def _target_scope(walk: _Walk, body: _Json) -> tuple[str, ...]:
    """Record a DELETE/UPDATE/MERGE target as written; its tables."""
    return walk.table(body["relation"], written=True)


def _update(walk: _Walk, body: _Json) -> None:
    walk.writes.add("update")
    target = body["relation"]
    tables = _target_scope(walk, body)
    walk.target_columns(tables, body.get("targetList"))
    where = body.get("whereClause")
    sources = body.get("fromClause") or ()
    _note_ctes(walk, body)
    if unscoped(where, Target(target, walk.schemas[0]), sources, walk.cte_queries):
        walk.unscoped = True
    walk.query_level(body, ("relation", "fromClause"), ("relation",))


def _delete(walk: _Walk, body: _Json) -> None:
    walk.writes.add("delete")
    target = body["relation"]
    _target_scope(walk, body)
    where = body.get("whereClause")
    sources = body.get("usingClause") or ()
    _note_ctes(walk, body)
    if unscoped(where, Target(target, walk.schemas[0]), sources, walk.cte_queries):
        walk.unscoped = True
    walk.query_level(body, ("relation", "usingClause"), ("relation",))


def _merge(walk: _Walk, body: _Json) -> None:
    walk.writes.add("merge")
    target_rel = body["relation"]
    tables = _target_scope(walk, body)
    target = Target(target_rel, walk.schemas[0])
    join = body.get("joinCondition")
    _note_ctes(walk, body)
    for clause in body.get("mergeWhenClauses") or ():
        when = clause.get("MergeWhenClause", {})
        command = when.get("commandType")
        walk.target_columns(tables, when.get("targetList"))
        if command == "CMD_DELETE":
            walk.writes.add("delete")
        if command not in ("CMD_DELETE", "CMD_UPDATE"):
            continue
        condition = when.get("condition")
        sources = [body.get("sourceRelation")]
        if when.get("matchKind") == "MERGE_WHEN_NOT_MATCHED_BY_SOURCE":
            # Rows without a partner: only the arm's own condition limits them.
            scope, sources = condition, []
        elif condition is None:
            scope = join
        else:
            scope = {"BoolExpr": {"boolop": "AND_EXPR", "args": [join, condition]}}
        if unscoped(scope, target, sources, walk.cte_queries):
            walk.unscoped = True
    walk.query_level(body, ("relation", "sourceRelation"), ("relation",))


def _truncate(walk: _Walk, body: _Json) -> None:
    for item in body.get("relations") or ():
        walk.table(item["RangeVar"], written=True)


def _copy(walk: _Walk, body: _Json) -> None:
    if body.get("is_program"):
        walk.copy_target = "program"
    elif body.get("filename") is not None:
        walk.copy_target = "file"
    else:
        walk.copy_target = "stdio"
    relation = body.get("relation")
    if relation is not None:
        tables = walk.table(relation, written=bool(body.get("is_from")))
        names = [sval(item) for item in body.get("attlist") or ()]
        walk.columns.update(
            f"{table}.{name}" for table in tables for name in (names or ["*"])
        )
    walk.fields(body, skip=("relation", "attlist"))


def _written_relation(walk: _Walk, body: _Json) -> None:
    relation = body.get("relation")
    if relation is not None:
        walk.table(relation, written=True)
    walk.fields(body, skip=("relation",))


def _create_schema(walk: _Walk, body: _Json) -> None:
    # CREATE SCHEMA s CREATE TABLE x ...: unqualified names inside mean s.x.
    name = body.get("schemaname")
    if not name:
        walk.fields(body)
        return
    inner = _Walk((name,))
    inner.ctes = list(walk.ctes)
    inner.visit(body.get("schemaElts"))
    walk.absorb(inner, scope=True)
    walk.server_code = walk.server_code or any(
        pg_kinds.server_code(
            elt_name, *pg_kinds.kind_of(elt_name, elt_body)[:2], elt_body
        )
        for elt in body.get("schemaElts") or ()
        for elt_name, elt_body in elt.items()
    )


def _view(walk: _Walk, body: _Json) -> None:
    walk.table(body["view"], written=True)
    walk.fields(body, skip=("view",))


def _drop(walk: _Walk, body: _Json) -> None:
    if body.get("removeType") in _TABLE_OBJECTS:
        for item in body.get("objects") or ():
            names = [sval(name) for name in item.get("List", {}).get("items", ())]
            if names:
                walk.written.update(walk.qualified(names))
    walk.fields(body, skip=("objects",))


def _explain(walk: _Walk, body: _Json) -> None:
    if pg_kinds.explain_analyze(body):
        walk.fields(body)
    else:
        walk.sub_walk(body.get("query"))


def _rule(walk: _Walk, body: _Json) -> None:
    # The actions run on future events, not now: their tables and functions
    # count, their write effects and scope do not.
    walk.table(body["relation"], written=True)
    walk.sub_walk(body.get("actions"))
    walk.sub_walk(body.get("whereClause"))


def _create_function(walk: _Walk, body: _Json) -> None:
    # `funcname` is the name being created, not a call; a BEGIN ATOMIC body runs
    # later, so it is walked apart like a rule action.
    walk.sub_walk({key: value for key, value in body.items() if key != "funcname"})


_Handler = Callable[[_Walk, _Json], None]

_HANDLERS: dict[str, _Handler] = {
    "RangeVar": _range_var,
    "FuncCall": _func_call,
    "A_Indirection": _indirection,
    "ColumnRef": _column_ref,
    "JoinExpr": _join,
    "A_Const": _skip,
    "ParamRef": _skip,
    "TypeName": _skip,
    "VariableSetStmt": _skip,
    "SelectStmt": _select,
    "CreateTableAsStmt": _create_table_as,
    "InsertStmt": _insert,
    "UpdateStmt": _update,
    "DeleteStmt": _delete,
    "MergeStmt": _merge,
    "TruncateStmt": _truncate,
    "CopyStmt": _copy,
    "AlterTableStmt": _written_relation,
    "CreateStmt": _written_relation,
    "IndexStmt": _written_relation,
    "CreateTrigStmt": _written_relation,
    "CreatePolicyStmt": _written_relation,
    "AlterPolicyStmt": _written_relation,
    "RenameStmt": _written_relation,
    "CreateSchemaStmt": _create_schema,
    "ViewStmt": _view,
    "DropStmt": _drop,
    "ExplainStmt": _explain,
    "RuleStmt": _rule,
    "CreateFunctionStmt": _create_function,
}
