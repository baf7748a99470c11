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

import functools
import json
import logging
from collections.abc import Callable
from typing import Any

from pglast import parser as pg_parser

from pamwire.sql.facts import Analysis, StatementFacts
from pamwire.sql.pg_scope import Target, sval, unscoped

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
    error=...)``. Unqualified table names resolve to the first schema of
    ``search_path`` (pass names already resolved: ``"$user"`` is taken literally).
    """
    return _analyze_cached(sql, standard_conforming_strings, tuple(search_path))


def cache_clear() -> None:
    """Forget every cached analysis (for tests and benchmarks)."""
    _analyze_cached.cache_clear()


@functools.lru_cache(maxsize=CACHE_SIZE)
def _analyze_cached(sql: str, scs: bool, search_path: tuple[str, ...]) -> Analysis:
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

    schema = search_path[0] if search_path else _DEFAULT_SCHEMA
    statements = []
    for item in items:
        start = item.get("stmt_location", 0)
        length = item.get("stmt_len", 0)
        end = start + length if length else len(raw)
        text = raw[start:end].decode("utf-8").strip()
        statements.append(_statement_facts(text, item["stmt"], schema))
    return Analysis(tuple(statements))


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


def _statement_facts(text: str, node: _Json, schema: str) -> StatementFacts:
    ((name, body),) = node.items()
    kind, object_type, prepare_name = _kind_of(name, body)

    walk = _Walk(schema)
    inner = None
    if name == "PrepareStmt":
        # The prepared statement runs later, on EXECUTE; rules judge it now, so
        # its facts travel both inside `inner` and merged into the PREPARE.
        inner_walk = _Walk(schema)
        query = body["query"]
        inner_walk.visit(query)
        ((inner_name, inner_body),) = query.items()
        inner_kind, inner_object, _ = _kind_of(inner_name, inner_body)
        inner = inner_walk.facts(text, inner_walk.promote(inner_kind), inner_object)
        walk.absorb(inner_walk, scope=True)
        walk.visit(body.get("argtypes"))
    else:
        walk.visit_node(name, body)
        kind = walk.promote(kind)
    return walk.facts(text, kind, object_type, prepare_name=prepare_name, inner=inner)


# --- statement kinds --------------------------------------------------------------

_DML_RANK = {
    "select": 0,
    "create": 1,
    "insert": 1,
    "update": 2,
    "merge": 3,
    "delete": 4,
}

_TRANSACTION_KINDS = {
    "TRANS_STMT_BEGIN": "begin",
    "TRANS_STMT_START": "begin",
    "TRANS_STMT_COMMIT": "commit",
    "TRANS_STMT_ROLLBACK": "rollback",
    "TRANS_STMT_SAVEPOINT": "savepoint",
    "TRANS_STMT_RELEASE": "release",
    "TRANS_STMT_ROLLBACK_TO": "rollback",
    "TRANS_STMT_PREPARE": "prepare_transaction",
    "TRANS_STMT_COMMIT_PREPARED": "commit_prepared",
    "TRANS_STMT_ROLLBACK_PREPARED": "rollback_prepared",
}

# Statement node -> (kind, object type) where the node alone decides both.
_FIXED_KINDS: dict[str, tuple[str, str | None]] = {
    "InsertStmt": ("insert", "table"),
    "UpdateStmt": ("update", "table"),
    "DeleteStmt": ("delete", "table"),
    "MergeStmt": ("merge", "table"),
    "TruncateStmt": ("truncate", "table"),
    "CopyStmt": ("copy", "table"),
    "CallStmt": ("call", "procedure"),
    "DoStmt": ("do", None),
    # TODO(set-facts): record the setting a SET changes (role,
    # session_authorization, *read_only), so rules can tell SET ROLE from SET
    # search_path; set_config() calls need the same, from the call's arguments.
    "VariableSetStmt": ("set", None),
    "ConstraintsSetStmt": ("set", None),
    "VariableShowStmt": ("show", None),
    "PrepareStmt": ("prepare", None),
    "ExecuteStmt": ("execute", None),
    "DeallocateStmt": ("deallocate", None),
    "DiscardStmt": ("discard", None),
    "ListenStmt": ("listen", None),
    "NotifyStmt": ("notify", None),
    "UnlistenStmt": ("unlisten", None),
    "LockStmt": ("lock", "table"),
    "ClusterStmt": ("cluster", "table"),
    "ReindexStmt": ("reindex", "index"),
    "RefreshMatViewStmt": ("refresh", "matview"),
    "CheckPointStmt": ("checkpoint", None),
    "LoadStmt": ("load", None),
    "DeclareCursorStmt": ("declare", None),
    "FetchStmt": ("fetch", None),
    "ClosePortalStmt": ("close", None),
    "CreateStmt": ("create", "table"),
    "CreateForeignTableStmt": ("create", "foreign_table"),
    "ImportForeignSchemaStmt": ("create", "foreign_table"),
    "IndexStmt": ("create", "index"),
    "ViewStmt": ("create", "view"),
    "CreateSchemaStmt": ("create", "schema"),
    "CreateTrigStmt": ("create", "trigger"),
    "CreateEventTrigStmt": ("create", "event_trigger"),
    "AlterEventTrigStmt": ("alter", "event_trigger"),
    "RuleStmt": ("create", "rule"),
    "CreateExtensionStmt": ("create", "extension"),
    "AlterExtensionStmt": ("alter", "extension"),
    "AlterExtensionContentsStmt": ("alter", "extension"),
    "CreateSeqStmt": ("create", "sequence"),
    "AlterSeqStmt": ("alter", "sequence"),
    "CreatedbStmt": ("create", "database"),
    "AlterDatabaseStmt": ("alter", "database"),
    "AlterDatabaseSetStmt": ("alter", "database"),
    "AlterDatabaseRefreshCollStmt": ("alter", "database"),
    "DropdbStmt": ("drop", "database"),
    "CreateTableSpaceStmt": ("create", "tablespace"),
    "AlterTableSpaceOptionsStmt": ("alter", "tablespace"),
    "DropTableSpaceStmt": ("drop", "tablespace"),
    "CreateRoleStmt": ("create", "role"),
    "AlterRoleStmt": ("alter", "role"),
    "AlterRoleSetStmt": ("alter", "role"),
    "DropRoleStmt": ("drop", "role"),
    "DropOwnedStmt": ("drop", None),
    "ReassignOwnedStmt": ("alter", None),
    "CreateUserMappingStmt": ("create", "user_mapping"),
    "AlterUserMappingStmt": ("alter", "user_mapping"),
    "DropUserMappingStmt": ("drop", "user_mapping"),
    "CreatePLangStmt": ("create", "language"),
    "CreateDomainStmt": ("create", "domain"),
    "AlterDomainStmt": ("alter", "domain"),
    "CompositeTypeStmt": ("create", "type"),
    "CreateEnumStmt": ("create", "type"),
    "CreateRangeStmt": ("create", "type"),
    "AlterEnumStmt": ("alter", "type"),
    "AlterTypeStmt": ("alter", "type"),
    "CreateCastStmt": ("create", "cast"),
    "CreateConversionStmt": ("create", "conversion"),
    "CreateFdwStmt": ("create", "fdw"),
    "AlterFdwStmt": ("alter", "fdw"),
    "CreateForeignServerStmt": ("create", "foreign_server"),
    "AlterForeignServerStmt": ("alter", "foreign_server"),
    "CreatePolicyStmt": ("create", "policy"),
    "AlterPolicyStmt": ("alter", "policy"),
    "CreatePublicationStmt": ("create", "publication"),
    "AlterPublicationStmt": ("alter", "publication"),
    "CreateSubscriptionStmt": ("create", "subscription"),
    "AlterSubscriptionStmt": ("alter", "subscription"),
    "DropSubscriptionStmt": ("drop", "subscription"),
    "CreateStatsStmt": ("create", "statistic_ext"),
    "AlterStatsStmt": ("alter", "statistic_ext"),
    "CreateTransformStmt": ("create", "transform"),
    "CreateAmStmt": ("create", "access_method"),
    "CreateOpClassStmt": ("create", "opclass"),
    "CreateOpFamilyStmt": ("create", "opfamily"),
    "AlterOpFamilyStmt": ("alter", "opfamily"),
    "AlterOperatorStmt": ("alter", "operator"),
    "AlterSystemStmt": ("alter", "system"),
    "AlterCollationStmt": ("alter", "collation"),
    "AlterTSDictionaryStmt": ("alter", "tsdictionary"),
    "AlterTSConfigurationStmt": ("alter", "tsconfiguration"),
}

# Statement node -> (kind, field holding an ObjectType value).
_OBJTYPE_KINDS = {
    "DropStmt": ("drop", "removeType"),
    "AlterTableStmt": ("alter", "objtype"),
    "CreateTableAsStmt": ("create", "objtype"),
    "RenameStmt": ("alter", "renameType"),
    "AlterOwnerStmt": ("alter", "objectType"),
    "AlterObjectSchemaStmt": ("alter", "objectType"),
    "AlterObjectDependsStmt": ("alter", "objectType"),
    "AlterFunctionStmt": ("alter", "objtype"),
    "DefineStmt": ("create", "kind"),
    "CommentStmt": ("comment", "objtype"),
    "SecLabelStmt": ("security_label", "objtype"),
}


def _object_type(value: str | None) -> str | None:
    if not value:
        return None
    return value.removeprefix("OBJECT_").lower()


def _kind_of(name: str, body: _Json) -> tuple[str, str | None, str | None]:
    """The kind, object type and prepared-statement name of one statement node."""
    fixed = _FIXED_KINDS.get(name)
    if fixed is not None:
        kind, object_type = fixed
        if name in ("PrepareStmt", "ExecuteStmt"):
            return kind, object_type, body.get("name", "")
        if name == "DeallocateStmt":
            is_all = body.get("isall") or not body.get("name")
            return kind, object_type, "*" if is_all else body["name"]
        return kind, object_type, None
    by_field = _OBJTYPE_KINDS.get(name)
    if by_field is not None:
        kind, field = by_field
        return kind, _object_type(body.get(field)), None

    if name == "SelectStmt":
        return (
            ("create", "table", None) if _select_into(body) else ("select", None, None)
        )
    if name == "ExplainStmt":
        if _explain_analyze(body):
            ((inner_name, inner_body),) = body["query"].items()
            return _kind_of(inner_name, inner_body)
        return "explain", None, None
    if name == "GrantStmt":
        kind = "grant" if body.get("is_grant") else "revoke"
        return kind, _object_type(body.get("objtype")), None
    if name == "GrantRoleStmt":
        return ("grant" if body.get("is_grant") else "revoke"), "role", None
    if name == "AlterDefaultPrivilegesStmt":
        action = body.get("action") or {}
        kind = "grant" if action.get("is_grant") else "revoke"
        return kind, "defacl", None
    if name == "TransactionStmt":
        return _TRANSACTION_KINDS.get(body.get("kind", ""), "other"), None, None
    if name == "VacuumStmt":
        return ("vacuum" if body.get("is_vacuumcmd") else "analyze"), "table", None
    if name == "CreateFunctionStmt":
        return "create", ("procedure" if body.get("is_procedure") else "function"), None
    if name.startswith(("Create", "Define")):
        return "create", None, None
    if name.startswith("Alter"):
        return "alter", None, None
    if name.startswith("Drop"):
        return "drop", None, None
    return "other", None, None


def _select_into(body: _Json) -> bool:
    while body is not None:
        if body.get("intoClause"):
            return True
        body = body.get("larg")
    return False


_FALSE_WORDS = frozenset({"false", "off", "no", "0"})


def _explain_analyze(body: _Json) -> bool:
    """Whether EXPLAIN runs its statement; an unreadable option value counts as yes."""
    for option in body.get("options") or ():
        elem = option.get("DefElem", {})
        if elem.get("defname") != "analyze":
            continue
        arg = elem.get("arg")
        if arg is None:
            return True
        value = arg.get("String", {}).get("sval")
        if value is None:
            value = str(arg.get("Integer", {}).get("ival", 0))
        return value.lower() not in _FALSE_WORDS
    return False


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


class _Walk:
    """One pass over a statement tree, collecting tables, functions and effects."""

    __slots__ = ("ctes", "functions", "read", "schema", "unscoped", "writes", "written")

    def __init__(self, schema: str) -> None:
        self.schema = schema
        self.read: set[str] = set()
        self.written: set[str] = set()
        self.functions: set[str] = set()
        self.writes: set[str] = set()
        self.unscoped = False
        # CTE names in scope, innermost last.
        self.ctes: list[set[str]] = []

    # Results.

    def promote(self, kind: str) -> str:
        """Raise ``kind`` to the most consequential data change seen in the walk."""
        if not self.writes:
            return kind
        best = max(self.writes, key=_DML_RANK.__getitem__)
        if kind in _DML_RANK and _DML_RANK[kind] >= _DML_RANK[best]:
            return kind
        return best

    def absorb(self, other: _Walk, *, scope: bool) -> None:
        """Take the tables and functions of a sub-walk (and its scope if asked)."""
        self.read |= other.read
        self.written |= other.written
        self.functions |= other.functions
        if scope:
            self.unscoped = self.unscoped or other.unscoped

    def facts(
        self,
        text: str,
        kind: str,
        object_type: str | None,
        *,
        prepare_name: str | None = None,
        inner: StatementFacts | None = None,
    ) -> StatementFacts:
        return StatementFacts(
            text=text,
            kind=kind,
            tables_read=frozenset(self.read),
            tables_written=frozenset(self.written),
            functions=frozenset(self.functions),
            unscoped_write=self.unscoped,
            fingerprint=pg_parser.fingerprint(text),
            prepare_name=prepare_name,
            object_type=object_type,
            inner=inner,
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
        if not isinstance(body, dict):
            return
        with_clause = body.get("withClause")
        if with_clause is not None:
            self.enter_with(with_clause)
        for key, value in body.items():
            if key in skip or key == "withClause":
                continue
            if isinstance(value, (dict, list)):
                self.visit(value)
        if with_clause is not None:
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

    def sub_walk(self, value: _Json) -> _Walk:
        """Walk a part that does not run now (a rule action, a plain EXPLAIN)."""
        other = _Walk(self.schema)
        other.ctes = list(self.ctes)
        other.visit(value)
        self.absorb(other, scope=False)
        return other

    # Leaves.

    # TODO(search-path): PostgreSQL searches pg_catalog and pg_temp before
    # search_path, and CREATE SCHEMA s CREATE TABLE x puts x in s; both are
    # recorded under the first search_path schema for now.
    def table(self, range_var: _Json, *, written: bool) -> None:
        relname = range_var["relname"]
        schema = range_var.get("schemaname")
        if schema is None:
            if not written and any(relname in names for names in self.ctes):
                return
            schema = self.schema
        (self.written if written else self.read).add(f"{schema}.{relname}")

    def qualified(self, names: list[str]) -> str:
        if len(names) == 1:
            return f"{self.schema}.{names[0]}"
        return f"{names[-2]}.{names[-1]}"

    def func_call(self, body: _Json) -> None:
        names = [sval(item).lower() for item in body.get("funcname") or ()]
        if names:
            self.functions.add(names[-1])
            if len(names) > 1:
                self.functions.add(".".join(names))
        self.fields(body, skip=("funcname",))


# --- node handlers ------------------------------------------------------------------


def _skip(walk: _Walk, body: _Json) -> None:
    """Leaves with nothing to record (never called: visit_node checks identity)."""


def _range_var(walk: _Walk, body: _Json) -> None:
    walk.table(body, written=False)


def _func_call(walk: _Walk, body: _Json) -> None:
    walk.func_call(body)


def _indirection(walk: _Walk, body: _Json) -> None:
    # `(x).f` is also function-call notation, f(x): record field names as calls.
    # TODO(functions): `t.f` in a ColumnRef can be f(t) too; recording every
    # qualified column as a function would drown the function facts.
    for item in body.get("indirection") or ():
        name = sval(item)
        if name:
            walk.functions.add(name.lower())
    walk.fields(body)


def _select(walk: _Walk, body: _Json) -> None:
    into = body.get("intoClause")
    if into is not None:
        walk.table(into["rel"], written=True)
    walk.fields(body, skip=("intoClause",))


def _create_table_as(walk: _Walk, body: _Json) -> None:
    into = body.get("into") or {}
    if "rel" in into:
        walk.table(into["rel"], written=True)
    walk.fields(body, skip=("into",))


def _insert(walk: _Walk, body: _Json) -> None:
    walk.writes.add("insert")
    walk.table(body["relation"], written=True)
    walk.fields(body, skip=("relation",))


def _update(walk: _Walk, body: _Json) -> None:
    walk.writes.add("update")
    target = body["relation"]
    walk.table(target, written=True)
    if unscoped(body.get("whereClause"), Target(target, walk.schema)):
        walk.unscoped = True
    walk.fields(body, skip=("relation",))


def _delete(walk: _Walk, body: _Json) -> None:
    walk.writes.add("delete")
    target = body["relation"]
    walk.table(target, written=True)
    if unscoped(body.get("whereClause"), Target(target, walk.schema)):
        walk.unscoped = True
    walk.fields(body, skip=("relation",))


def _merge(walk: _Walk, body: _Json) -> None:
    walk.writes.add("merge")
    target_rel = body["relation"]
    walk.table(target_rel, written=True)
    target = Target(target_rel, walk.schema)
    join = body.get("joinCondition")
    for clause in body.get("mergeWhenClauses") or ():
        when = clause.get("MergeWhenClause", {})
        command = when.get("commandType")
        if command == "CMD_DELETE":
            walk.writes.add("delete")
        if command not in ("CMD_DELETE", "CMD_UPDATE"):
            continue
        condition = when.get("condition")
        if when.get("matchKind") == "MERGE_WHEN_NOT_MATCHED_BY_SOURCE":
            # Rows without a partner: only the arm's own condition limits them.
            scope = condition
        elif condition is None:
            scope = join
        else:
            scope = {"BoolExpr": {"boolop": "AND_EXPR", "args": [join, condition]}}
        if unscoped(scope, target):
            walk.unscoped = True
    walk.fields(body, skip=("relation",))


def _truncate(walk: _Walk, body: _Json) -> None:
    for item in body.get("relations") or ():
        walk.table(item["RangeVar"], written=True)


def _copy(walk: _Walk, body: _Json) -> None:
    relation = body.get("relation")
    if relation is not None:
        walk.table(relation, written=bool(body.get("is_from")))
    walk.fields(body, skip=("relation",))


# TODO(destructive-alter): ALTER TABLE ... DROP COLUMN or ALTER COLUMN TYPE destroys
# data but is only an "alter" here; a fact naming the subcommands would let a rule
# treat them like DROP.
def _written_relation(walk: _Walk, body: _Json) -> None:
    relation = body.get("relation")
    if relation is not None:
        walk.table(relation, written=True)
    walk.fields(body, skip=("relation",))


def _view(walk: _Walk, body: _Json) -> None:
    walk.table(body["view"], written=True)
    walk.fields(body, skip=("view",))


def _drop(walk: _Walk, body: _Json) -> None:
    if body.get("removeType") in _TABLE_OBJECTS:
        for item in body.get("objects") or ():
            names = [sval(name) for name in item.get("List", {}).get("items", ())]
            if names:
                walk.written.add(walk.qualified(names))
    walk.fields(body, skip=("objects",))


def _explain(walk: _Walk, body: _Json) -> None:
    if _explain_analyze(body):
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
    "ColumnRef": _skip,
    "A_Const": _skip,
    "ParamRef": _skip,
    "TypeName": _skip,
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
    "ViewStmt": _view,
    "DropStmt": _drop,
    "ExplainStmt": _explain,
    "RuleStmt": _rule,
    "CreateFunctionStmt": _create_function,
}
