"""Every PostgreSQL message pamwire writes on its own behalf is built here.

Denials, login failures and startup answers go through these functions, so their
shape (severity, SQLSTATE, wording) is decided in one place.
"""

from __future__ import annotations

from pamwire.pg.codec import encode
from pamwire.pg.messages import (
    AuthenticationOk,
    AuthenticationSASL,
    AuthenticationSASLContinue,
    AuthenticationSASLFinal,
    BackendKeyData,
    ErrorResponse,
    NegotiateProtocolVersion,
    ReadyForQuery,
)

# SQLSTATE codes pamwire itself reports (PostgreSQL Appendix A).
INSUFFICIENT_PRIVILEGE = "42501"
INVALID_PASSWORD = "28P01"
INVALID_AUTHORIZATION = "28000"
PROTOCOL_VIOLATION = "08P01"
CANNOT_CONNECT = "08001"
FEATURE_NOT_SUPPORTED = "0A000"
INVALID_CATALOG_NAME = "3D000"
ADMIN_SHUTDOWN = "57P01"
IO_ERROR = "58030"
TOO_MANY_CONNECTIONS = "53300"

# The one-byte answers to SSLRequest and GSSENCRequest.
SSL_NOT_SUPPORTED = b"N"
SSL_ACCEPTED = b"S"


def error(
    code: str,
    message: str,
    *,
    severity: str = "ERROR",
    detail: str | None = None,
    hint: str | None = None,
) -> bytes:
    """An ErrorResponse: severity, SQLSTATE, message, optional detail and hint."""
    fields: list[tuple[str, str]] = [("S", severity), ("V", severity), ("C", code)]
    fields.append(("M", message))
    if detail:
        fields.append(("D", detail))
    if hint:
        fields.append(("H", hint))
    return encode(ErrorResponse(fields=tuple(fields)))


def fatal(code: str, message: str, *, hint: str | None = None) -> bytes:
    """An ErrorResponse that ends the connection."""
    return error(code, message, severity="FATAL", hint=hint)


def denial(rule: str | None, message: str | None, statement_kind: str | None) -> bytes:
    """The error a client sees when a rule refuses a statement."""
    rule_name = rule or "unnamed rule"
    text = f'pamwire: statement denied by rule "{rule_name}"'
    if message:
        text += f": {message}"
    detail = f"Statement kind: {statement_kind}." if statement_kind else None
    return error(
        INSUFFICIENT_PRIVILEGE,
        text,
        detail=detail,
        hint="Ask a DBA about the rule, "
        "or run `pamwire rules explain` on the statement.",
    )


def password_failed(user: str) -> bytes:
    """The login failure, worded like PostgreSQL's so clients recognise it."""
    return fatal(INVALID_PASSWORD, f'password authentication failed for user "{user}"')


def sasl_start() -> bytes:
    return encode(AuthenticationSASL(mechanisms=("SCRAM-SHA-256",)))


def sasl_continue(data: bytes) -> bytes:
    return encode(AuthenticationSASLContinue(data=data))


def sasl_final(data: bytes) -> bytes:
    return encode(AuthenticationSASLFinal(data=data))


def auth_ok() -> bytes:
    return encode(AuthenticationOk())


def backend_key(process_id: int, secret_key: bytes) -> bytes:
    return encode(BackendKeyData(process_id=process_id, secret_key=secret_key))


def ready(status: bytes) -> bytes:
    return encode(ReadyForQuery(status=status))


def negotiate_version(unrecognized: tuple[str, ...]) -> bytes:
    """Tell a client that asked for 3.x (x > 0) that pamwire speaks 3.0.

    The version field carries the whole version code (3 << 16 | 0), as the
    PostgreSQL server sends it and libpq reads it.
    """
    message = NegotiateProtocolVersion(newest_minor=3 << 16, unrecognized=unrecognized)
    return encode(message)
