"""Numeric tables of the MySQL/MariaDB protocol: capabilities, status, commands, types.

GENERATED from protocols/mysql/constants.toml by protocols/mysql/gen_constants.py;
do not edit by hand. A test checks that this module is current.
"""

from __future__ import annotations

import enum
from typing import Final


class Capability(enum.IntFlag):
    """Capability flags (lower 32 bits standard, upper ones MariaDB's extended)."""

    CLIENT_LONG_PASSWORD = 1 << 0
    CLIENT_FOUND_ROWS = 1 << 1
    CLIENT_LONG_FLAG = 1 << 2
    CLIENT_CONNECT_WITH_DB = 1 << 3
    CLIENT_NO_SCHEMA = 1 << 4
    CLIENT_COMPRESS = 1 << 5
    CLIENT_ODBC = 1 << 6
    CLIENT_LOCAL_FILES = 1 << 7
    CLIENT_IGNORE_SPACE = 1 << 8
    CLIENT_PROTOCOL_41 = 1 << 9
    CLIENT_INTERACTIVE = 1 << 10
    CLIENT_SSL = 1 << 11
    CLIENT_IGNORE_SIGPIPE = 1 << 12
    CLIENT_TRANSACTIONS = 1 << 13
    CLIENT_RESERVED = 1 << 14
    CLIENT_SECURE_CONNECTION = 1 << 15
    CLIENT_MULTI_STATEMENTS = 1 << 16
    CLIENT_MULTI_RESULTS = 1 << 17
    CLIENT_PS_MULTI_RESULTS = 1 << 18
    CLIENT_PLUGIN_AUTH = 1 << 19
    CLIENT_CONNECT_ATTRS = 1 << 20
    CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA = 1 << 21
    CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS = 1 << 22
    CLIENT_SESSION_TRACK = 1 << 23
    CLIENT_DEPRECATE_EOF = 1 << 24
    CLIENT_OPTIONAL_RESULTSET_METADATA = 1 << 25
    CLIENT_ZSTD_COMPRESSION_ALGORITHM = 1 << 26
    CLIENT_QUERY_ATTRIBUTES = 1 << 27
    MULTI_FACTOR_AUTHENTICATION = 1 << 28
    CLIENT_CAPABILITY_EXTENSION = 1 << 29
    CLIENT_SSL_VERIFY_SERVER_CERT = 1 << 30
    CLIENT_REMEMBER_OPTIONS = 1 << 31
    MARIADB_CLIENT_PROGRESS = 1 << 32
    MARIADB_CLIENT_COM_MULTI = 1 << 33
    MARIADB_CLIENT_STMT_BULK_OPERATIONS = 1 << 34
    MARIADB_CLIENT_EXTENDED_METADATA = 1 << 35
    MARIADB_CLIENT_CACHE_METADATA = 1 << 36
    MARIADB_CLIENT_BULK_UNIT_RESULTS = 1 << 37


class ServerStatus(enum.IntFlag):
    """Status flags of OK and EOF packets (SERVER_STATUS_flags_enum)."""

    SERVER_STATUS_IN_TRANS = 1 << 0
    SERVER_STATUS_AUTOCOMMIT = 1 << 1
    SERVER_MORE_RESULTS_EXISTS = 1 << 3
    SERVER_STATUS_NO_GOOD_INDEX_USED = 1 << 4
    SERVER_STATUS_NO_INDEX_USED = 1 << 5
    SERVER_STATUS_CURSOR_EXISTS = 1 << 6
    SERVER_STATUS_LAST_ROW_SENT = 1 << 7
    SERVER_STATUS_DB_DROPPED = 1 << 8
    SERVER_STATUS_NO_BACKSLASH_ESCAPES = 1 << 9
    SERVER_STATUS_METADATA_CHANGED = 1 << 10
    SERVER_QUERY_WAS_SLOW = 1 << 11
    SERVER_PS_OUT_PARAMS = 1 << 12
    SERVER_STATUS_IN_TRANS_READONLY = 1 << 13
    SERVER_SESSION_STATE_CHANGED = 1 << 14
    SERVER_STATUS_ANSI_QUOTES = 1 << 15


class Command(enum.IntEnum):
    """The first payload byte of a client command packet."""

    COM_SLEEP = 0
    COM_QUIT = 1
    COM_INIT_DB = 2
    COM_QUERY = 3
    COM_FIELD_LIST = 4
    COM_CREATE_DB = 5
    COM_DROP_DB = 6
    COM_REFRESH = 7
    COM_SHUTDOWN = 8
    COM_STATISTICS = 9
    COM_PROCESS_INFO = 0x0A
    COM_CONNECT = 0x0B
    COM_PROCESS_KILL = 0x0C
    COM_DEBUG = 0x0D
    COM_PING = 0x0E
    COM_TIME = 0x0F
    COM_DELAYED_INSERT = 0x10
    COM_CHANGE_USER = 0x11
    COM_BINLOG_DUMP = 0x12
    COM_TABLE_DUMP = 0x13
    COM_CONNECT_OUT = 0x14
    COM_REGISTER_SLAVE = 0x15
    COM_STMT_PREPARE = 0x16
    COM_STMT_EXECUTE = 0x17
    COM_STMT_SEND_LONG_DATA = 0x18
    COM_STMT_CLOSE = 0x19
    COM_STMT_RESET = 0x1A
    COM_SET_OPTION = 0x1B
    COM_STMT_FETCH = 0x1C
    COM_DAEMON = 0x1D
    COM_BINLOG_DUMP_GTID = 0x1E
    COM_RESET_CONNECTION = 0x1F
    COM_CLONE = 0x20
    COM_STMT_BULK_EXECUTE = 0xFA
    COM_MULTI = 0xFE


class ColumnType(enum.IntEnum):
    """Column and parameter types (enum_field_types; MariaDB's compressed types)."""

    MYSQL_TYPE_DECIMAL = 0
    MYSQL_TYPE_TINY = 1
    MYSQL_TYPE_SHORT = 2
    MYSQL_TYPE_LONG = 3
    MYSQL_TYPE_FLOAT = 4
    MYSQL_TYPE_DOUBLE = 5
    MYSQL_TYPE_NULL = 6
    MYSQL_TYPE_TIMESTAMP = 7
    MYSQL_TYPE_LONGLONG = 8
    MYSQL_TYPE_INT24 = 9
    MYSQL_TYPE_DATE = 0x0A
    MYSQL_TYPE_TIME = 0x0B
    MYSQL_TYPE_DATETIME = 0x0C
    MYSQL_TYPE_YEAR = 0x0D
    MYSQL_TYPE_NEWDATE = 0x0E
    MYSQL_TYPE_VARCHAR = 0x0F
    MYSQL_TYPE_BIT = 0x10
    MYSQL_TYPE_TIMESTAMP2 = 0x11
    MYSQL_TYPE_DATETIME2 = 0x12
    MYSQL_TYPE_TIME2 = 0x13
    MYSQL_TYPE_TYPED_ARRAY = 0x14
    MYSQL_TYPE_BLOB_COMPRESSED = 0x8C
    MYSQL_TYPE_VARCHAR_COMPRESSED = 0x8D
    MYSQL_TYPE_VECTOR = 0xF2
    MYSQL_TYPE_INVALID = 0xF3
    MYSQL_TYPE_BOOL = 0xF4
    MYSQL_TYPE_JSON = 0xF5
    MYSQL_TYPE_NEWDECIMAL = 0xF6
    MYSQL_TYPE_ENUM = 0xF7
    MYSQL_TYPE_SET = 0xF8
    MYSQL_TYPE_TINY_BLOB = 0xF9
    MYSQL_TYPE_MEDIUM_BLOB = 0xFA
    MYSQL_TYPE_LONG_BLOB = 0xFB
    MYSQL_TYPE_BLOB = 0xFC
    MYSQL_TYPE_VAR_STRING = 0xFD
    MYSQL_TYPE_STRING = 0xFE
    MYSQL_TYPE_GEOMETRY = 0xFF


class ColumnFlag(enum.IntFlag):
    """Flags of a column definition."""

    NOT_NULL_FLAG = 1 << 0
    PRI_KEY_FLAG = 1 << 1
    UNIQUE_KEY_FLAG = 1 << 2
    MULTIPLE_KEY_FLAG = 1 << 3
    BLOB_FLAG = 1 << 4
    UNSIGNED_FLAG = 1 << 5
    ZEROFILL_FLAG = 1 << 6
    BINARY_FLAG = 1 << 7
    ENUM_FLAG = 1 << 8
    AUTO_INCREMENT_FLAG = 1 << 9
    TIMESTAMP_FLAG = 1 << 10
    SET_FLAG = 1 << 11
    NO_DEFAULT_VALUE_FLAG = 1 << 12
    ON_UPDATE_NOW_FLAG = 1 << 13
    PART_KEY_FLAG = 1 << 14
    NUM_FLAG = 1 << 15


class CursorType(enum.IntFlag):
    """The flags byte of COM_STMT_EXECUTE."""

    CURSOR_TYPE_NO_CURSOR = 0
    CURSOR_TYPE_READ_ONLY = 1 << 0
    CURSOR_TYPE_FOR_UPDATE = 1 << 1
    CURSOR_TYPE_SCROLLABLE = 1 << 2
    PARAMETER_COUNT_AVAILABLE = 1 << 3


class SetOption(enum.IntEnum):
    """The option of COM_SET_OPTION."""

    MYSQL_OPTION_MULTI_STATEMENTS_ON = 0
    MYSQL_OPTION_MULTI_STATEMENTS_OFF = 1


class SessionTrack(enum.IntEnum):
    """Types of the entries in an OK packet's session state information."""

    SESSION_TRACK_SYSTEM_VARIABLES = 0
    SESSION_TRACK_SCHEMA = 1
    SESSION_TRACK_STATE_CHANGE = 2
    SESSION_TRACK_GTIDS = 3
    SESSION_TRACK_TRANSACTION_CHARACTERISTICS = 4
    SESSION_TRACK_TRANSACTION_STATE = 5


# Byte widths of fixed-size binary-protocol values, by column type.
BINARY_VALUE_SIZES: Final[dict[int, int]] = {
    ColumnType.MYSQL_TYPE_NULL: 0,
    ColumnType.MYSQL_TYPE_TINY: 1,
    ColumnType.MYSQL_TYPE_SHORT: 2,
    ColumnType.MYSQL_TYPE_YEAR: 2,
    ColumnType.MYSQL_TYPE_LONG: 4,
    ColumnType.MYSQL_TYPE_INT24: 4,
    ColumnType.MYSQL_TYPE_FLOAT: 4,
    ColumnType.MYSQL_TYPE_LONGLONG: 8,
    ColumnType.MYSQL_TYPE_DOUBLE: 8,
}

# Binary-protocol temporal values: a 1-byte length, then that many bytes.
BINARY_TEMPORAL_TYPES: Final = frozenset(
    {
        ColumnType.MYSQL_TYPE_DATE,
        ColumnType.MYSQL_TYPE_DATETIME,
        ColumnType.MYSQL_TYPE_TIMESTAMP,
        ColumnType.MYSQL_TYPE_TIME,
    }
)
