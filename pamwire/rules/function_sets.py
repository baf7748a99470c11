"""Named sets of function names that rule files refer to as ``@name``.

A set is written once here, next to where it comes from, so a rule file can
say ``functions_not_in = ["@pg_read_only"]`` instead of listing two thousand
built-ins.
"""

from __future__ import annotations

from pamwire.sql.mysql_functions import MYSQL_READ_ONLY
from pamwire.sql.pg_catalog import NON_VOLATILE_FUNCTIONS

# Immutable or stable, yet they run SQL text or read a whole table, schema or
# database named by a string, out of sight of the table facts.
_READS_BY_NAME = frozenset(
    name
    for name in NON_VOLATILE_FUNCTIONS
    if name.startswith(
        ("table_to_xml", "schema_to_xml", "database_to_xml", "query_to_xml")
    )
)

# Volatile built-ins that only read, or change nothing but the session's own
# scratch state. set_config is here because rules on `when.settings` judge the
# setting it changes (pg_dump calls set_config('search_path', '', false)).
_VOLATILE_READERS = frozenset(
    {
        "clock_timestamp",
        "currval",
        "current_query",
        "gen_random_uuid",
        "lastval",
        "pg_blocking_pids",
        "pg_collation_actual_version",
        "pg_current_wal_flush_lsn",
        "pg_current_wal_insert_lsn",
        "pg_current_wal_lsn",
        "pg_database_size",
        "pg_indexes_size",
        "pg_is_in_recovery",
        "pg_is_wal_replay_paused",
        "pg_jit_available",
        "pg_last_wal_receive_lsn",
        "pg_last_wal_replay_lsn",
        "pg_last_xact_replay_timestamp",
        "pg_lock_status",
        "pg_partition_ancestors",
        "pg_partition_tree",
        "pg_relation_size",
        "pg_safe_snapshot_blocking_pids",
        "pg_sequence_last_value",
        "pg_table_size",
        "pg_tablespace_size",
        "pg_total_relation_size",
        "pg_xact_status",
        "random",
        "set_config",
        "setseed",
        "timeofday",
        "txid_status",
    }
)

# Never in a read-only set, whatever their volatility says: they write large
# objects or take advisory locks.
_NEVER_READ_ONLY = frozenset(
    {
        "lo_create",
        "lo_creat",
        "lo_from_bytea",
        "lo_import",
        "lo_export",
        "lo_open",
        "lo_put",
        "lo_truncate",
        "lo_truncate64",
        "lo_unlink",
        "lowrite",
        "pg_advisory_lock",
        "pg_advisory_lock_shared",
        "pg_advisory_unlock",
        "pg_advisory_unlock_all",
        "pg_advisory_unlock_shared",
        "pg_advisory_xact_lock",
        "pg_advisory_xact_lock_shared",
        "pg_try_advisory_lock",
        "pg_try_advisory_lock_shared",
        "pg_try_advisory_xact_lock",
        "pg_try_advisory_xact_lock_shared",
    }
)

#: Set name -> bare function names. ``pg_read_only``: pg_catalog functions that
#: cannot change the database (every overload immutable or stable in PostgreSQL
#: 15), less those that read by name, plus volatile ones that only read.
#: ``mysql_read_only``: MySQL and MariaDB built-ins that neither write, wait nor
#: lock (pamwire/sql/mysql_functions.py).
FUNCTION_SETS: dict[str, frozenset[str]] = {
    "pg_read_only": ((NON_VOLATILE_FUNCTIONS - _READS_BY_NAME) | _VOLATILE_READERS)
    - _NEVER_READ_ONLY,
    "mysql_read_only": MYSQL_READ_ONLY,
}

#: Set name -> the one schema whose qualified calls the set also covers (None:
#: bare calls only; a qualified call on MySQL is always a stored function).
SET_SCHEMAS: dict[str, str | None] = {
    "pg_read_only": "pg_catalog",
    "mysql_read_only": None,
}
