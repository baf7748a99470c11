"""The dialect-neutral record of what one SQL statement does, which rules decide on.

Every dialect analyser (PostgreSQL now, MySQL later) fills the same records, so a
rule file reads the same whatever server sits behind the proxy.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

#: Statement kinds an analyser may report; rule files are checked against it.
KINDS: frozenset[str] = frozenset(
    {
        "select",
        "insert",
        "update",
        "delete",
        "merge",
        "truncate",
        "drop",
        "create",
        "alter",
        "grant",
        "revoke",
        "copy",
        "call",
        "do",
        "set",
        "show",
        "begin",
        "commit",
        "rollback",
        "savepoint",
        "release",
        "prepare_transaction",
        "commit_prepared",
        "rollback_prepared",
        "prepare",
        "execute",
        "deallocate",
        "discard",
        "listen",
        "notify",
        "unlisten",
        "lock",
        "lock_read",
        "vacuum",
        "analyze",
        "explain",
        "cluster",
        "reindex",
        "refresh",
        "checkpoint",
        "load",
        "declare",
        "fetch",
        "close",
        "comment",
        "security_label",
        "empty",
        "other",
        # MySQL/MariaDB: USE db, KILL, UNLOCK TABLES.
        "use",
        "kill",
        "unlock",
    }
)

#: Object types a DDL, GRANT or REVOKE statement may name (PostgreSQL's ObjectType
#: members, lowercased, without the OBJECT_ prefix, plus "system" for ALTER SYSTEM).
OBJECT_TYPES: frozenset[str] = frozenset(
    {
        "access_method",
        "aggregate",
        "amop",
        "amproc",
        "attribute",
        "cast",
        "column",
        "collation",
        "conversion",
        "database",
        "default",
        "defacl",
        "domain",
        "domconstraint",
        "event",
        "event_trigger",
        "extension",
        "fdw",
        "foreign_server",
        "foreign_table",
        "function",
        "index",
        "language",
        "largeobject",
        "matview",
        "opclass",
        "operator",
        "opfamily",
        "parameter_acl",
        "policy",
        "procedure",
        "publication",
        "publication_namespace",
        "publication_rel",
        "role",
        "routine",
        "rule",
        "schema",
        "sequence",
        "subscription",
        "statistic_ext",
        "system",
        "tabconstraint",
        "table",
        "tablespace",
        "transform",
        "trigger",
        "tsconfiguration",
        "tsdictionary",
        "tsparser",
        "tstemplate",
        "type",
        "user_mapping",
        "view",
    }
)


#: The setting recorded when a statement changes one whose name is not in the text.
ANY_SETTING = "*"

#: Where a COPY reads or writes: the client, a file on the server, a program.
COPY_TARGETS: frozenset[str] = frozenset({"stdio", "file", "program"})


@attrs.frozen(cache_hash=True)
class StatementFacts:
    """What one statement does, as far as can be told from its text alone.

    ``kind`` names the most consequential effect: a SELECT whose CTE deletes is a
    "delete". ``inner`` holds the facts of the statement a PREPARE defines; the
    outer record already includes its tables, functions and scope, and rules are
    matched against both.

    ``functions`` has every call by its bare name, and qualified calls also by
    their qualified name (for deny-lists); ``calls`` has each call only as written
    (for allow-lists, where ``reports.f()`` must not pass as ``f()``).
    ``columns`` holds ``schema.table.column`` for every column referenced, and
    ``schema.table.*`` where a star or a whole-row reference reaches them all.
    ``settings`` names the run-time settings the statement changes (lowercase; "*"
    when a ``set_config`` name is not a constant); ``assignments`` holds the
    constant values assigned, in order (None for RESET or DEFAULT), for the
    session to track. ``copy_target`` is "stdio", "file" or "program" for COPY.
    ``destructive`` marks an ALTER that destroys stored data (DROP COLUMN, ALTER
    COLUMN TYPE); ``server_code`` a statement that creates or changes code the
    server runs later or runs code now (functions, rules, triggers, DO, LOAD...).
    ``unsafe_client_encoding`` marks a change of ``client_encoding`` to an
    encoding pamwire cannot read the same way as the server (SJIS, BIG5...; see
    pamwire.sql.encodings), or to a value that is not a constant.
    """

    text: str
    kind: str
    tables_read: frozenset[str]
    tables_written: frozenset[str]
    functions: frozenset[str]
    unscoped_write: bool
    fingerprint: str
    prepare_name: str | None = None
    empty: bool = False
    object_type: str | None = None
    inner: StatementFacts | None = None
    columns: frozenset[str] = frozenset()
    settings: frozenset[str] = frozenset()
    assignments: tuple[tuple[str, str | None], ...] = ()
    copy_target: str | None = None
    destructive: bool = False
    server_code: bool = False
    calls: frozenset[str] = frozenset()
    unsafe_client_encoding: bool = False


@attrs.frozen(cache_hash=True)
class Analysis:
    """The statements of one message, or why the message cannot be trusted."""

    statements: tuple[StatementFacts, ...]
    error: str | None = None


def linked_names(pairs: Iterable[tuple[str, str]], start: Iterable[str]) -> set[str]:
    """The names reachable from start through pairs (either way round): the
    copies of a written table that column equalities join to it."""
    linked = set(start)
    pending = list(pairs)
    grown = True
    while grown:
        grown = False
        for left, right in pending:
            if (left in linked) != (right in linked):
                linked |= {left, right}
                grown = True
    return linked
