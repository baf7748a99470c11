"""Decode a MySQL/MariaDB ``sql_mode`` value into the two flags that change lexing.

A value is a comma-separated list of mode names or a number whose bits are the
modes (bit values as in the MariaDB and MySQL manuals; the server expands the
combination modes ANSI, POSTGRESQL, ORACLE, MSSQL, DB2 and MAXDB). A value the
server would read differently in some flavour, or not accept, is None: unknown.
"""

from __future__ import annotations

import attrs

ANSI_QUOTES = 4
ANSI = 1 << 18
NO_BACKSLASH_ESCAPES = 1 << 20

# Combination modes that include ANSI_QUOTES on MariaDB and MySQL 5.7; MySQL 8.0
# removed them (a name is an error there, a bit is ignored with a warning).
_LEGACY_COMBINATIONS = (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12)

# The highest mode bit any supported server knows (MariaDB's
# TIME_ROUND_FRACTIONAL is bit 34); a larger number is an error on the server.
_ALL_BITS = (1 << 35) - 1

# Every mode name of MariaDB 10.x/11.x, MySQL 5.7 and 8.0, upper case.
_NAMES = frozenset(
    {
        "REAL_AS_FLOAT",
        "PIPES_AS_CONCAT",
        "ANSI_QUOTES",
        "IGNORE_SPACE",
        "IGNORE_BAD_TABLE_OPTIONS",
        "ONLY_FULL_GROUP_BY",
        "NO_UNSIGNED_SUBTRACTION",
        "NO_DIR_IN_CREATE",
        "POSTGRESQL",
        "ORACLE",
        "MSSQL",
        "DB2",
        "MAXDB",
        "NO_KEY_OPTIONS",
        "NO_TABLE_OPTIONS",
        "NO_FIELD_OPTIONS",
        "MYSQL323",
        "MYSQL40",
        "ANSI",
        "NO_AUTO_VALUE_ON_ZERO",
        "NO_BACKSLASH_ESCAPES",
        "STRICT_TRANS_TABLES",
        "STRICT_ALL_TABLES",
        "NO_ZERO_IN_DATE",
        "NO_ZERO_DATE",
        "ALLOW_INVALID_DATES",
        "INVALID_DATES",
        "ERROR_FOR_DIVISION_BY_ZERO",
        "TRADITIONAL",
        "NO_AUTO_CREATE_USER",
        "HIGH_NOT_PRECEDENCE",
        "NO_ENGINE_SUBSTITUTION",
        "PAD_CHAR_TO_FULL_LENGTH",
        "EMPTY_STRING_IS_NULL",
        "SIMULTANEOUS_ASSIGNMENT",
        "TIME_ROUND_FRACTIONAL",
        "TIME_TRUNCATE_FRACTIONAL",
        "EXTENDED_ALIASES",
    }
)

# Names that turn ANSI_QUOTES on (the legacy combinations are errors on MySQL
# 8.0, so the statements after them never run there).
_QUOTING_NAMES = frozenset(
    {"ANSI_QUOTES", "ANSI", "POSTGRESQL", "ORACLE", "MSSQL", "DB2", "MAXDB"}
)


@attrs.frozen
class LexingModes:
    """The sql_mode flags that decide where strings and identifiers end."""

    ansi_quotes: bool
    no_backslash_escapes: bool


def decode_sql_mode(value: str, *, legacy_combinations: bool) -> LexingModes | None:
    """The lexing flags of a constant ``sql_mode`` value; None when unknown.

    ``legacy_combinations`` is true on servers that still have the POSTGRESQL,
    ORACLE, MSSQL, DB2 and MAXDB modes (MariaDB, MySQL before 8.0).
    """
    text = value.strip()
    if text.isdigit() and text.isascii():
        return _decode_number(int(text), legacy_combinations=legacy_combinations)
    names = {part.strip().upper() for part in text.split(",")} - {""}
    if not names <= _NAMES:
        return None  # the server refuses the SET, or reads a name we do not know
    return LexingModes(
        ansi_quotes=bool(names & _QUOTING_NAMES),
        no_backslash_escapes="NO_BACKSLASH_ESCAPES" in names,
    )


def _decode_number(number: int, *, legacy_combinations: bool) -> LexingModes | None:
    if number > _ALL_BITS:
        return None
    quoting = ANSI_QUOTES | ANSI
    if number & _LEGACY_COMBINATIONS:
        if not legacy_combinations:
            # TODO(sql-mode): MySQL 8.0 ignores these bits; confirm on a server
            # before decoding them, until then the value is unknown.
            return None
        quoting |= _LEGACY_COMBINATIONS
    return LexingModes(
        ansi_quotes=bool(number & quoting),
        no_backslash_escapes=bool(number & NO_BACKSLASH_ESCAPES),
    )
