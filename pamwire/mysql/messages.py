"""Typed, immutable records for the packets of the MySQL/MariaDB client/server protocol.

Names and fields follow the MySQL Source Code Documentation ("Connection
Phase", "Text Protocol", "Prepared Statements") and MariaDB's protocol pages.
Strings are utf-8 with surrogateescape, so re-encoding restores the exact bytes
whatever the connection's character set. Counts and lengths that only frame the
data are not stored: codec.py derives them on encoding.
"""

from __future__ import annotations

from typing import ClassVar, TypeAlias

import attrs

from pamwire.mysql.constants import Capability, Command

# Payload header bytes of the generic server responses.
OK_HEADER = 0x00
EOF_HEADER = 0xFE
ERR_HEADER = 0xFF
LOCAL_INFILE_HEADER = 0xFB
AUTH_MORE_DATA_HEADER = 0x01
AUTH_SWITCH_HEADER = 0xFE

# Length of the scramble (nonce) that mysql_native_password and
# caching_sha2_password use, and of an SSLRequest payload.
SCRAMBLE_LENGTH = 20
SSL_REQUEST_LENGTH = 32

_MARIADB_EXTENDED = Capability.CLIENT_LONG_PASSWORD  # "CLIENT_MYSQL" when set


# Connection phase -----------------------------------------------------------------


@attrs.frozen
class HandshakeV10:
    """Protocol::HandshakeV10, the server's first packet.

    auth_plugin_data_part_2 is kept as on the wire, usually 12 random bytes and
    a NUL; scramble joins both parts without that NUL. reserved holds the 6
    filler bytes before MariaDB's 4 bytes of extended capabilities.
    """

    server_version: str
    connection_id: int
    auth_plugin_data_part_1: bytes
    capability_flags: int
    character_set: int
    status_flags: int
    auth_plugin_data_len: int
    auth_plugin_data_part_2: bytes
    auth_plugin_name: str
    reserved: bytes = bytes(6)
    extended_capabilities: int = 0
    protocol_version: int = 10

    @property
    def capabilities(self) -> int:
        """All capabilities, MariaDB's extended ones (if any) as bits 32 and up."""
        if self.capability_flags & _MARIADB_EXTENDED:
            return self.capability_flags
        return self.capability_flags | self.extended_capabilities << 32

    @property
    def scramble(self) -> bytes:
        """The nonce of the authentication plugins (usually 20 bytes)."""
        data = self.auth_plugin_data_part_1 + self.auth_plugin_data_part_2
        return data[:-1] if data.endswith(b"\0") else data

    @classmethod
    def build(
        cls,
        *,
        server_version: str,
        connection_id: int,
        scramble: bytes,
        capabilities: int,
        character_set: int,
        status_flags: int,
        auth_plugin_name: str,
    ) -> HandshakeV10:
        """A handshake the way MySQL and MariaDB lay one out for a 20-byte scramble."""
        part_2 = scramble[8:] + b"\0"
        return cls(
            server_version=server_version,
            connection_id=connection_id,
            auth_plugin_data_part_1=scramble[:8],
            capability_flags=capabilities & 0xFFFFFFFF,
            character_set=character_set,
            status_flags=status_flags,
            auth_plugin_data_len=8 + len(part_2),
            auth_plugin_data_part_2=part_2.ljust(13, b"\0"),
            auth_plugin_name=auth_plugin_name,
            extended_capabilities=capabilities >> 32,
        )


@attrs.frozen
class SSLRequest:
    """Protocol::SSLRequest: the first 32 bytes of a response, then TLS starts."""

    capability_flags: int
    max_packet_size: int
    character_set: int
    reserved: bytes = bytes(19)
    extended_capabilities: int = 0


@attrs.frozen
class HandshakeResponse41:
    """Protocol::HandshakeResponse41. Optional fields are None when absent.

    The capability flags of the response itself say which fields are present.
    extended_capabilities are MariaDB's, in the last 4 of the 23 reserved bytes.
    """

    capability_flags: int
    max_packet_size: int
    character_set: int
    username: str
    auth_response: bytes
    database: str | None = None
    auth_plugin_name: str | None = None
    connect_attrs: tuple[tuple[str, str], ...] | None = None
    zstd_compression_level: int | None = None
    reserved: bytes = bytes(19)
    extended_capabilities: int = 0

    @property
    def capabilities(self) -> int:
        """All capabilities; MariaDB's extended ones count if CLIENT_MYSQL is clear."""
        if self.capability_flags & _MARIADB_EXTENDED:
            return self.capability_flags
        return self.capability_flags | self.extended_capabilities << 32


@attrs.frozen
class AuthSwitchRequest:
    """Protocol::AuthSwitchRequest: 0xFE, the plugin name, its data (a scramble)."""

    plugin_name: str
    plugin_data: bytes


@attrs.frozen
class AuthSwitchResponse:
    """The client's raw authentication data after a switch or more data."""

    data: bytes


@attrs.frozen
class AuthMoreData:
    """Protocol::AuthMoreData: 0x01 then plugin data (caching_sha2: 3, 4 or a key)."""

    data: bytes


# Generic responses ----------------------------------------------------------------


@attrs.frozen
class OkPacket:
    """OK_Packet. header is 0x00, or 0xFE where it ends a result set (DEPRECATE_EOF).

    With CLIENT_SESSION_TRACK, info is None when the packet ends after the
    warnings; session_state_info is the raw list of changes (None if absent).
    """

    affected_rows: int = 0
    last_insert_id: int = 0
    status_flags: int = 0
    warnings: int = 0
    info: str | None = ""
    session_state_info: bytes | None = None
    header: int = OK_HEADER


@attrs.frozen
class ErrPacket:
    """ERR_Packet; sql_state is None when the '#' marker is absent."""

    error_code: int
    sql_state: str | None
    error_message: str


@attrs.frozen
class EofPacket:
    """EOF_Packet (without CLIENT_DEPRECATE_EOF)."""

    warnings: int = 0
    status_flags: int = 0


@attrs.frozen
class SessionStateChange:
    """One entry of an OK packet's session state information (type, raw data)."""

    type: int
    data: bytes


# Result sets ----------------------------------------------------------------------


@attrs.frozen
class ColumnCount:
    """The first packet of a result set: the number of columns.

    metadata_follows is the byte that MariaDB's CACHE_METADATA and MySQL's
    OPTIONAL_RESULTSET_METADATA add (0: no column definitions follow); None
    when neither is negotiated.
    """

    column_count: int
    metadata_follows: int | None = None


@attrs.frozen
class ColumnDefinition41:
    """Protocol::ColumnDefinition41. default_value is only on the wire in
    COM_FIELD_LIST replies (field_list True); None there means NULL.
    extended_metadata is MariaDB's raw type information (with
    MARIADB_CLIENT_EXTENDED_METADATA), None when not negotiated."""

    schema: str
    table: str
    org_table: str
    name: str
    org_name: str
    character_set: int
    column_length: int
    column_type: int
    flags: int
    decimals: int
    catalog: str = "def"
    field_list: bool = False
    default_value: bytes | None = None
    extended_metadata: bytes | None = None


@attrs.frozen
class TextResultsetRow:
    """A row of a text result set; None is SQL NULL."""

    values: tuple[bytes | None, ...]


@attrs.frozen
class BinaryResultsetRow:
    """A row of a binary result set; values are raw binary-protocol fields."""

    values: tuple[bytes | None, ...]


@attrs.frozen
class LocalInfileRequest:
    """0xFB then a file name: the server asks the client for a local file."""

    filename: str


@attrs.frozen
class ComStmtPrepareOk:
    """COM_STMT_PREPARE_OK, the first packet of a successful prepare."""

    statement_id: int
    num_columns: int
    num_params: int
    warning_count: int


# Commands -------------------------------------------------------------------------


@attrs.frozen
class ComQuery:
    command: ClassVar[int] = Command.COM_QUERY
    query: str


@attrs.frozen
class ComQuit:
    command: ClassVar[int] = Command.COM_QUIT


@attrs.frozen
class ComInitDb:
    command: ClassVar[int] = Command.COM_INIT_DB
    schema: str


@attrs.frozen
class ComPing:
    command: ClassVar[int] = Command.COM_PING


@attrs.frozen
class ComFieldList:
    command: ClassVar[int] = Command.COM_FIELD_LIST
    table: str
    wildcard: str = ""


@attrs.frozen
class ComStatistics:
    command: ClassVar[int] = Command.COM_STATISTICS


@attrs.frozen
class ComSetOption:
    command: ClassVar[int] = Command.COM_SET_OPTION
    option: int


@attrs.frozen
class ComResetConnection:
    command: ClassVar[int] = Command.COM_RESET_CONNECTION


@attrs.frozen
class ComChangeUser:
    """COM_CHANGE_USER; the trailing fields are None when the client left them out."""

    command: ClassVar[int] = Command.COM_CHANGE_USER
    user: str
    auth_response: bytes
    schema: str
    character_set: int | None = None
    auth_plugin_name: str | None = None
    connect_attrs: tuple[tuple[str, str], ...] | None = None


@attrs.frozen
class ComStmtPrepare:
    command: ClassVar[int] = Command.COM_STMT_PREPARE
    query: str


@attrs.frozen
class ComStmtExecute:
    """COM_STMT_EXECUTE with its parameter values as raw binary-protocol fields.

    parameter_types is what the packet carries: (type, flags) pairs when
    new_params_bound_flag is 1, else empty (the previous types apply).
    values has one entry per parameter: None for NULL, b"" for a parameter
    listed in long_data (sent with COM_STMT_SEND_LONG_DATA, not in this packet).
    """

    command: ClassVar[int] = Command.COM_STMT_EXECUTE
    statement_id: int
    flags: int = 0
    iteration_count: int = 1
    new_params_bound_flag: int = 0
    parameter_types: tuple[tuple[int, int], ...] = ()
    values: tuple[bytes | None, ...] = ()
    long_data: tuple[int, ...] = ()


@attrs.frozen
class ComStmtSendLongData:
    command: ClassVar[int] = Command.COM_STMT_SEND_LONG_DATA
    statement_id: int
    param_id: int
    data: bytes


@attrs.frozen
class ComStmtClose:
    command: ClassVar[int] = Command.COM_STMT_CLOSE
    statement_id: int


@attrs.frozen
class ComStmtReset:
    command: ClassVar[int] = Command.COM_STMT_RESET
    statement_id: int


@attrs.frozen
class ComStmtFetch:
    command: ClassVar[int] = Command.COM_STMT_FETCH
    statement_id: int
    num_rows: int


@attrs.frozen
class ComProcessKill:
    """COM_PROCESS_KILL (deprecated, still sent by old clients): kill a connection."""

    command: ClassVar[int] = Command.COM_PROCESS_KILL
    connection_id: int


@attrs.frozen
class ComOther:
    """A command pamwire does not decode (COM_BINLOG_DUMP, COM_PROCESS_KILL, ...)."""

    command_byte: int
    data: bytes

    @property
    def command(self) -> int:
        return self.command_byte


@attrs.frozen
class StatementParams:
    """What decoding a COM_STMT_EXECUTE needs to know of its statement.

    num_params comes from COM_STMT_PREPARE_OK; types are the (type, flags) pairs
    of the last execute that bound them; long_data the parameters sent with
    COM_STMT_SEND_LONG_DATA since.
    """

    num_params: int
    types: tuple[tuple[int, int], ...] = ()
    long_data: frozenset[int] = frozenset()


ClientCommand: TypeAlias = (
    ComQuery
    | ComQuit
    | ComInitDb
    | ComPing
    | ComFieldList
    | ComStatistics
    | ComSetOption
    | ComResetConnection
    | ComChangeUser
    | ComStmtPrepare
    | ComStmtExecute
    | ComStmtSendLongData
    | ComStmtClose
    | ComStmtReset
    | ComStmtFetch
    | ComProcessKill
    | ComOther
)

ServerMessage: TypeAlias = (
    HandshakeV10
    | AuthSwitchRequest
    | AuthMoreData
    | OkPacket
    | ErrPacket
    | EofPacket
    | ColumnCount
    | ColumnDefinition41
    | TextResultsetRow
    | BinaryResultsetRow
    | LocalInfileRequest
    | ComStmtPrepareOk
)

ClientMessage: TypeAlias = (
    SSLRequest | HandshakeResponse41 | AuthSwitchResponse | ClientCommand
)
