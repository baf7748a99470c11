"""Name a PostgreSQL statement node: its kind, object type and fixed effects.

Works on the JSON tree of ``pglast.parser.parse_sql_json``: one statement node
in, plain strings and booleans out. The walk in pamwire.sql.pg raises a kind
further when a nested statement changes data.
"""

from __future__ import annotations

from typing import Any

# JSON values from the parser: dicts, lists, strings, numbers, booleans.
_Json = Any

#: Kinds a nested part can raise a statement to, least consequential first. A
#: locking clause ranks above a read; an INSERT and a table creation share a rank.
DML_RANK = {
    "select": 0,
    "lock": 1,
    "create": 2,
    "insert": 2,
    "update": 3,
    "merge": 4,
    "delete": 5,
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


def kind_of(name: str, body: _Json) -> tuple[str, str | None, str | None]:
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

    if name == "LockStmt":
        # Mode 1 is ACCESS SHARE, the lock every SELECT takes (pg_dump asks for
        # it up front); every stronger mode blocks writers or readers.
        return ("lock_read" if body.get("mode") == 1 else "lock"), "table", None
    if name == "SelectStmt":
        return (
            ("create", "table", None) if _select_into(body) else ("select", None, None)
        )
    if name == "ExplainStmt":
        if explain_analyze(body):
            ((inner_name, inner_body),) = body["query"].items()
            return kind_of(inner_name, inner_body)
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


def explain_analyze(body: _Json) -> bool:
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


# --- server-side code and destructive changes -----------------------------------------

# Objects whose creation or change installs code the server runs later, or runs
# code now (an extension's script, a language handler, an operator's function).
_CODE_OBJECTS = frozenset(
    {
        "function",
        "procedure",
        "routine",
        "aggregate",
        "operator",
        "rule",
        "trigger",
        "event_trigger",
        "language",
        "extension",
        "cast",
        "transform",
        "access_method",
        "opclass",
        "opfamily",
        "conversion",
        "fdw",
    }
)
_CODE_NODES = frozenset({"DoStmt", "LoadStmt"})


def server_code(name: str, kind: str, object_type: str | None, body: _Json) -> bool:
    """Whether a statement installs, changes or runs code inside the server."""
    if name in _CODE_NODES:
        return True
    if kind not in ("create", "alter"):
        return False
    if object_type in _CODE_OBJECTS:
        return True
    # CREATE TYPE with input and output functions names C code; a composite or
    # shell type does not.
    return (
        name == "DefineStmt" and object_type == "type" and bool(body.get("definition"))
    )


# ALTER TABLE (and ALTER TYPE) subcommands that throw stored values away.
_DESTRUCTIVE_SUBCOMMANDS = frozenset(
    {"AT_DropColumn", "AT_AlterColumnType", "AT_SetExpression"}
)


def destructive(name: str, body: _Json) -> bool:
    """Whether an ALTER drops or rewrites stored data (DROP COLUMN, ALTER TYPE)."""
    if name != "AlterTableStmt":
        return False
    return any(
        cmd.get("AlterTableCmd", {}).get("subtype") in _DESTRUCTIVE_SUBCOMMANDS
        for cmd in body.get("cmds") or ()
    )


# --- settings -----------------------------------------------------------------------


_TRUE_WORDS = frozenset({"on", "true", "yes", "1", "t", "y"})

# SET TRANSACTION ... and SET SESSION CHARACTERISTICS ... set these, by option.
_MULTI_TARGETS = {
    "TRANSACTION": "transaction_",
    "SESSION CHARACTERISTICS": "default_transaction_",
}


def narrows(name: str, value: str | None) -> bool:
    """Whether assigning ``value`` to ``name`` only restricts the session.

    Turning a ``*read_only`` setting on takes rights away, so it is not counted as
    a change of that setting: ``BEGIN READ ONLY`` and pg_dump's ``SET
    default_transaction_read_only = on`` pass a rule on ``*read_only``.
    """
    return (
        name.endswith("read_only")
        and value is not None
        and value.strip().lower() in _TRUE_WORDS
    )


def const_text(node: _Json) -> str | None:
    """The text of a constant (string, number, boolean), else None."""
    if not isinstance(node, dict):
        return None
    const = node.get("A_Const")
    if const is None:
        cast = node.get("TypeCast")
        return const_text(cast.get("arg")) if cast is not None else None
    for key, field in (("sval", "sval"), ("ival", "ival"), ("fval", "fval")):
        if key in const:
            return str(const[key].get(field, 0))
    if "boolval" in const:
        return "on" if const["boolval"].get("boolval") else "off"
    return None


def _option_assignments(prefix: str, options: _Json) -> list[tuple[str, str | None]]:
    found = []
    for option in options or ():
        elem = option.get("DefElem", {})
        option_name = elem.get("defname", "")
        # Strip the "transaction_" of the option to put the right prefix on.
        setting = prefix + option_name.removeprefix("transaction_")
        found.append((setting, const_text(elem.get("arg"))))
    return found


def assignments(name: str, body: _Json) -> list[tuple[str, str | None]]:
    """The settings a SET, RESET, BEGIN or DISCARD assigns, with constant values.

    A value is None for RESET, DEFAULT and values that are not constants; "all"
    names RESET ALL and DISCARD ALL.
    """
    if name == "VariableSetStmt":
        kind = body.get("kind")
        if kind == "VAR_RESET_ALL":
            return [("all", None)]
        setting = body.get("name", "")
        if kind == "VAR_SET_MULTI":
            prefix = _MULTI_TARGETS.get(setting)
            if prefix is None:
                return [(setting.lower(), None)]
            return _option_assignments(prefix, body.get("args"))
        if kind != "VAR_SET_VALUE":
            return [(setting.lower(), None)]
        values = [const_text(arg) for arg in body.get("args") or ()]
        if any(value is None for value in values):
            return [(setting.lower(), None)]
        return [(setting.lower(), ", ".join(v for v in values if v is not None))]
    if name == "TransactionStmt" and body.get("kind") in (
        "TRANS_STMT_BEGIN",
        "TRANS_STMT_START",
    ):
        return _option_assignments("transaction_", body.get("options"))
    if name == "DiscardStmt" and body.get("target") == "DISCARD_ALL":
        return [("all", None)]
    return []
