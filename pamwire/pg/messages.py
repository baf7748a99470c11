"""Typed, immutable records for every PostgreSQL protocol 3.0 (and 3.2) message.

Names and fields follow the "Message Formats" section of the PostgreSQL manual;
strings are utf-8 with surrogateescape, so encoding restores the exact bytes.
"""

# Counts and lengths that only frame the data (the Int16 before an array, the
# Int32 length of a message) are not stored: codec.py derives them on encoding.

from __future__ import annotations

from typing import ClassVar, TypeAlias

import attrs

from pamwire.errors import ClientProtocolError, ProtocolError
from pamwire.pg.cursor import Cursor

# Codes in the first Int32 of an untyped startup-phase packet.
PROTOCOL_3_0 = 3 << 16
PROTOCOL_3_2 = (3 << 16) | 2
CANCEL_REQUEST_CODE = (1234 << 16) | 5678
SSL_REQUEST_CODE = (1234 << 16) | 5679
GSSENC_REQUEST_CODE = (1234 << 16) | 5680

# The Int32 that tells the Authentication* messages (all type 'R') apart.
AUTH_OK = 0
AUTH_KERBEROS_V5 = 2
AUTH_CLEARTEXT_PASSWORD = 3
AUTH_MD5_PASSWORD = 5
AUTH_GSS = 7
AUTH_GSS_CONTINUE = 8
AUTH_SSPI = 9
AUTH_SASL = 10
AUTH_SASL_CONTINUE = 11
AUTH_SASL_FINAL = 12

# Protocol 3.0 cancel keys are 4 bytes; 3.2 lets the server choose up to 256.
MIN_CANCEL_KEY_LENGTH = 4
MAX_CANCEL_KEY_LENGTH = 256


# Startup-phase packets (frontend, no type byte) ---------------------------------


@attrs.frozen
class StartupMessage:
    type_code: ClassVar[bytes] = b""
    protocol_version: int
    parameters: tuple[tuple[str, str], ...] = ()

    @property
    def params(self) -> dict[str, str]:
        """The parameters as a dict; a repeated name keeps its last value."""
        return dict(self.parameters)

    @property
    def major(self) -> int:
        return self.protocol_version >> 16

    @property
    def minor(self) -> int:
        return self.protocol_version & 0xFFFF


@attrs.frozen
class SSLRequest:
    type_code: ClassVar[bytes] = b""


@attrs.frozen
class GSSENCRequest:
    type_code: ClassVar[bytes] = b""


@attrs.frozen
class CancelRequest:
    type_code: ClassVar[bytes] = b""
    process_id: int
    secret_key: bytes


# Frontend messages ---------------------------------------------------------------


@attrs.frozen
class Query:
    type_code: ClassVar[bytes] = b"Q"
    query: str


@attrs.frozen
class Parse:
    type_code: ClassVar[bytes] = b"P"
    name: str
    query: str
    param_types: tuple[int, ...] = ()


@attrs.frozen
class Bind:
    type_code: ClassVar[bytes] = b"B"
    portal: str
    statement: str
    param_formats: tuple[int, ...] = ()
    params: tuple[bytes | None, ...] = ()
    result_formats: tuple[int, ...] = ()


@attrs.frozen
class Describe:
    type_code: ClassVar[bytes] = b"D"
    kind: bytes  # b"S" for a prepared statement, b"P" for a portal
    name: str


@attrs.frozen
class Execute:
    type_code: ClassVar[bytes] = b"E"
    portal: str
    max_rows: int = 0  # zero means no limit


@attrs.frozen
class Close:
    type_code: ClassVar[bytes] = b"C"
    kind: bytes  # b"S" for a prepared statement, b"P" for a portal
    name: str


@attrs.frozen
class Sync:
    type_code: ClassVar[bytes] = b"S"


@attrs.frozen
class Flush:
    type_code: ClassVar[bytes] = b"H"


@attrs.frozen
class Terminate:
    type_code: ClassVar[bytes] = b"X"


@attrs.frozen
class CopyFail:
    type_code: ClassVar[bytes] = b"f"
    message: str


@attrs.frozen
class FunctionCall:
    type_code: ClassVar[bytes] = b"F"
    function_oid: int
    arg_formats: tuple[int, ...] = ()
    args: tuple[bytes | None, ...] = ()
    result_format: int = 0


@attrs.frozen
class PasswordMessage:
    """Any 'p' message as received: the payload alone cannot say which one it is.

    Only the authentication exchange knows whether it holds a password, a SASL
    initial response, a SASL response or GSSAPI data; use parse_password or
    parse_sasl_initial_response once the method is known.
    """

    type_code: ClassVar[bytes] = b"p"
    data: bytes

    @classmethod
    def from_password(cls, password: str) -> PasswordMessage:
        """A cleartext or MD5 password message (the string plus its nul)."""
        return cls(password.encode("utf-8", "surrogateescape") + b"\0")


@attrs.frozen
class SASLInitialResponse:
    type_code: ClassVar[bytes] = b"p"
    mechanism: str
    data: bytes | None  # None is sent as length -1: no initial response


@attrs.frozen
class SASLResponse:
    type_code: ClassVar[bytes] = b"p"
    data: bytes


@attrs.frozen
class GSSResponse:
    type_code: ClassVar[bytes] = b"p"
    data: bytes


# Sent in both directions ---------------------------------------------------------


@attrs.frozen
class CopyData:
    type_code: ClassVar[bytes] = b"d"
    data: bytes


@attrs.frozen
class CopyDone:
    type_code: ClassVar[bytes] = b"c"


# Backend messages ----------------------------------------------------------------


@attrs.frozen
class AuthenticationOk:
    type_code: ClassVar[bytes] = b"R"


@attrs.frozen
class AuthenticationKerberosV5:
    type_code: ClassVar[bytes] = b"R"


@attrs.frozen
class AuthenticationCleartextPassword:
    type_code: ClassVar[bytes] = b"R"


@attrs.frozen
class AuthenticationMD5Password:
    type_code: ClassVar[bytes] = b"R"
    salt: bytes  # exactly 4 bytes


@attrs.frozen
class AuthenticationGSS:
    type_code: ClassVar[bytes] = b"R"


@attrs.frozen
class AuthenticationGSSContinue:
    type_code: ClassVar[bytes] = b"R"
    data: bytes


@attrs.frozen
class AuthenticationSSPI:
    type_code: ClassVar[bytes] = b"R"


@attrs.frozen
class AuthenticationSASL:
    type_code: ClassVar[bytes] = b"R"
    mechanisms: tuple[str, ...]


@attrs.frozen
class AuthenticationSASLContinue:
    type_code: ClassVar[bytes] = b"R"
    data: bytes


@attrs.frozen
class AuthenticationSASLFinal:
    type_code: ClassVar[bytes] = b"R"
    data: bytes


@attrs.frozen
class BackendKeyData:
    type_code: ClassVar[bytes] = b"K"
    process_id: int
    secret_key: bytes  # 4 bytes in protocol 3.0, up to 256 in 3.2


@attrs.frozen
class BindComplete:
    type_code: ClassVar[bytes] = b"2"


@attrs.frozen
class CloseComplete:
    type_code: ClassVar[bytes] = b"3"


@attrs.frozen
class CommandComplete:
    type_code: ClassVar[bytes] = b"C"
    tag: str


@attrs.frozen
class CopyInResponse:
    type_code: ClassVar[bytes] = b"G"
    format: int  # 0 text, 1 binary
    column_formats: tuple[int, ...] = ()


@attrs.frozen
class CopyOutResponse:
    type_code: ClassVar[bytes] = b"H"
    format: int
    column_formats: tuple[int, ...] = ()


@attrs.frozen
class CopyBothResponse:
    type_code: ClassVar[bytes] = b"W"
    format: int
    column_formats: tuple[int, ...] = ()


@attrs.frozen
class DataRow:
    type_code: ClassVar[bytes] = b"D"
    values: tuple[bytes | None, ...]


@attrs.frozen
class EmptyQueryResponse:
    type_code: ClassVar[bytes] = b"I"


@attrs.frozen
class _ReportFields:
    """The shared body of ErrorResponse and NoticeResponse.

    fields holds (code, value) pairs in wire order; code is the one-letter field
    type of the "Error and Notice Message Fields" section ('S', 'C', 'M', ...).
    """

    fields: tuple[tuple[str, str], ...]

    def get(self, code: str) -> str | None:
        """The value of the first field with this code, or None."""
        for key, value in self.fields:
            if key == code:
                return value
        return None

    @property
    def severity(self) -> str:
        """The non-localized severity ('V', since 9.6), else the localized 'S'."""
        value = self.get("V")
        if value is None:
            value = self.get("S")
        return value or ""

    @property
    def code(self) -> str:
        """The SQLSTATE ('C'), or "" when the server sent none."""
        return self.get("C") or ""

    @property
    def message(self) -> str:
        """The primary message ('M'), or "" when the server sent none."""
        return self.get("M") or ""


@attrs.frozen
class ErrorResponse(_ReportFields):
    type_code: ClassVar[bytes] = b"E"


@attrs.frozen
class NoticeResponse(_ReportFields):
    type_code: ClassVar[bytes] = b"N"


@attrs.frozen
class FunctionCallResponse:
    type_code: ClassVar[bytes] = b"V"
    value: bytes | None


@attrs.frozen
class NegotiateProtocolVersion:
    type_code: ClassVar[bytes] = b"v"
    newest_minor: int
    unrecognized: tuple[str, ...] = ()


@attrs.frozen
class NoData:
    type_code: ClassVar[bytes] = b"n"


@attrs.frozen
class NotificationResponse:
    type_code: ClassVar[bytes] = b"A"
    process_id: int
    channel: str
    payload: str


@attrs.frozen
class ParameterDescription:
    type_code: ClassVar[bytes] = b"t"
    type_oids: tuple[int, ...]


@attrs.frozen
class ParameterStatus:
    type_code: ClassVar[bytes] = b"S"
    name: str
    value: str


@attrs.frozen
class ParseComplete:
    type_code: ClassVar[bytes] = b"1"


@attrs.frozen
class PortalSuspended:
    type_code: ClassVar[bytes] = b"s"


@attrs.frozen
class ReadyForQuery:
    type_code: ClassVar[bytes] = b"Z"
    status: bytes  # b"I" idle, b"T" in a transaction, b"E" in a failed transaction


@attrs.frozen
class FieldDescription:
    """One column of a RowDescription."""

    name: str
    table_oid: int = 0
    column_number: int = 0
    type_oid: int = 0
    type_size: int = -1
    type_modifier: int = -1
    format: int = 0


@attrs.frozen
class RowDescription:
    type_code: ClassVar[bytes] = b"T"
    fields: tuple[FieldDescription, ...]


StartupPacket: TypeAlias = StartupMessage | SSLRequest | GSSENCRequest | CancelRequest

FrontendMessage: TypeAlias = (
    StartupPacket
    | Query
    | Parse
    | Bind
    | Describe
    | Execute
    | Close
    | Sync
    | Flush
    | Terminate
    | CopyData
    | CopyDone
    | CopyFail
    | FunctionCall
    | PasswordMessage
    | SASLInitialResponse
    | SASLResponse
    | GSSResponse
)

BackendMessage: TypeAlias = (
    AuthenticationOk
    | AuthenticationKerberosV5
    | AuthenticationCleartextPassword
    | AuthenticationMD5Password
    | AuthenticationGSS
    | AuthenticationGSSContinue
    | AuthenticationSSPI
    | AuthenticationSASL
    | AuthenticationSASLContinue
    | AuthenticationSASLFinal
    | BackendKeyData
    | BindComplete
    | CloseComplete
    | CommandComplete
    | CopyInResponse
    | CopyOutResponse
    | CopyBothResponse
    | CopyData
    | CopyDone
    | DataRow
    | EmptyQueryResponse
    | ErrorResponse
    | NoticeResponse
    | FunctionCallResponse
    | NegotiateProtocolVersion
    | NoData
    | NotificationResponse
    | ParameterDescription
    | ParameterStatus
    | ParseComplete
    | PortalSuspended
    | ReadyForQuery
    | RowDescription
)


# Reading the ambiguous 'p' payload once the authentication method is known -------


def parse_password(payload: bytes | bytearray | memoryview) -> str:
    """The password of a cleartext or MD5 PasswordMessage payload.

    Raises ClientProtocolError if the payload is not one nul-terminated string.
    """
    cur = Cursor(payload)
    try:
        password = cur.cstring()
        cur.expect_end()
    except ProtocolError as exc:
        raise ClientProtocolError(f"bad PasswordMessage: {exc}") from None
    return password


def parse_sasl_initial_response(
    payload: bytes | bytearray | memoryview,
) -> SASLInitialResponse:
    """Read a 'p' payload as SASLInitialResponse (mechanism, Int32 length, data).

    Raises ClientProtocolError on a short, overlong or malformed payload.
    """
    cur = Cursor(payload)
    try:
        mechanism = cur.cstring()
        length = cur.int32()
        if length < -1:
            raise ProtocolError(f"bad response length {length}")
        data = None if length == -1 else cur.bytes(length)
        cur.expect_end()
    except ProtocolError as exc:
        raise ClientProtocolError(f"bad SASLInitialResponse: {exc}") from None
    return SASLInitialResponse(mechanism, data)
