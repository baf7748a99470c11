"""What an audit event keeps of a statement's bound parameters, per target.

Three modes, set per target with `audit_params`:

- "redacted" (the default): one "?" per parameter, None for a NULL, so the trail
  shows how many values were bound and which were NULL, and no value;
- "values": each value as text (binary-format values as \\x hex), cut after
  MAX_CHARS characters; still "?" for every parameter of a statement whose text
  could carry a secret (a password, a connection string), whatever its values;
- "none": no parameters at all (the event's `params` is null).
"""

from __future__ import annotations

import re
import struct
import uuid
from collections.abc import Callable, Sequence

MODES = ("redacted", "values", "none")

# Words that, anywhere in a statement's text (identifiers, comments, function
# names), make every bound value of it be kept as "?" even in "values" mode. The
# text is compared with case, spaces, punctuation and U&"\0061" escapes removed,
# so `"Pass Word"`, `pass-word` and `U&"p\0061ssword"` all read as "password".
# Erring towards redaction costs only detail in the trail.
SECRET_WORDS = (
    "passw",
    "passwd",
    "pwd",
    "secret",
    "token",
    "credential",
    "apikey",
    "privatekey",
    "identified",
    "dblink",
    "mapping",
    "conninfo",
    "setconfig",
    "crypt",
    "md5",
    "sha1",
    "sha2",
    "sha256",
    "sha512",
    "hmac",
    "digest",
    "hash",
    "salt",
)
_UNICODE_ESCAPE = re.compile(r"\\(?:\+([0-9a-fA-F]{6})|([0-9a-fA-F]{4}))")
_NOT_WORD = re.compile(r"[^0-9a-z]+")


def names_a_secret(text: str) -> bool:
    """True if the statement text hints at a secret (see SECRET_WORDS)."""
    unescaped = _UNICODE_ESCAPE.sub(_unescape, text)
    flat = _NOT_WORD.sub("", unescaped.casefold())
    return any(word in flat for word in SECRET_WORDS)


def _unescape(match: re.Match[str]) -> str:
    code = int(match.group(1) or match.group(2), 16)
    return chr(code) if code < 0x110000 else ""


REDACTED = "?"

# Long enough for ids, names and timestamps; a bulk value is cut, its length noted.
MAX_CHARS = 256

Params = tuple[str | None, ...]


def without_literals(
    params: Params | None, redact: Callable[[str], str] | None
) -> Params | None:
    """params with redact (the configured literal classes) applied to each value."""
    if not params or redact is None:
        return params
    return tuple(None if value is None else redact(value) for value in params)


def redacted(values: Sequence[bytes | None]) -> Params:
    """One "?" per value, None for NULL."""
    return tuple(None if value is None else REDACTED for value in values)


def redacted_params(nulls: int, count: int) -> Params:
    """redacted() of count values whose NULLs are the bits set in nulls."""
    return tuple(None if nulls >> i & 1 else REDACTED for i in range(count))


def pg_params(
    mode: str,
    values: Sequence[bytes | None],
    formats: Sequence[int],
    *,
    secret: bool,
    types: Sequence[int] = (),
) -> Params | None:
    """The params of a PostgreSQL Bind in the given mode.

    formats is the Bind's parameter format codes: none (all text), one (for all) or
    one per value; 1 is binary. types are the type oids Parse declared, which say
    how to read a binary value (an undeclared or other type is shown as hex).
    """
    if mode == "none":
        return None
    if mode != "values" or secret:
        return redacted(values)
    out: list[str | None] = []
    for index, value in enumerate(values):
        if value is None:
            out.append(None)
            continue
        code = formats[0] if len(formats) == 1 else (formats[index] if formats else 0)
        if code != 1:
            out.append(_text(value))
        else:
            oid = types[index] if index < len(types) else 0
            out.append(_binary(value, oid))
    return tuple(out)


def _text(value: bytes) -> str:
    # Undecodable bytes stay as lone surrogates, which the trail stores escaped.
    text = value[: MAX_CHARS * 4].decode("utf-8", "surrogateescape")
    if len(text) <= MAX_CHARS and len(value) <= MAX_CHARS * 4:
        return text
    return f"{text[:MAX_CHARS]}…({len(value)} bytes)"


_INTEGERS = {21: 2, 23: 4, 20: 8, 26: 4}  # int2, int4, int8, oid: width
_FLOATS = {700: ">f", 701: ">d"}  # float4, float8
_TEXTS = frozenset({25, 1043, 1042, 19, 705, 114, 3802})  # text, varchar, ..., jsonb
_BOOL, _UUID, _JSONB = 16, 2950, 3802


def _binary(value: bytes, oid: int) -> str:
    """A binary-format value of type oid as text, or as hex when not understood."""
    if _INTEGERS.get(oid) == len(value):
        return str(int.from_bytes(value, "big", signed=oid != 26))
    if oid in _FLOATS and len(value) == struct.calcsize(_FLOATS[oid]):
        return repr(struct.unpack(_FLOATS[oid], value)[0])
    if oid == _BOOL and len(value) == 1:
        return "true" if value[0] else "false"
    if oid == _UUID and len(value) == 16:
        return str(uuid.UUID(bytes=value))
    if oid in _TEXTS:
        # jsonb's binary form is a version byte (1) and the JSON text.
        return _text(value[1:] if oid == _JSONB and value[:1] == b"\x01" else value)
    return _hex(value)


def _hex(value: bytes) -> str:
    shown = value[: MAX_CHARS // 2]
    text = "\\x" + shown.hex()
    return text if len(shown) == len(value) else f"{text}…({len(value)} bytes)"


# MySQL binary-protocol types (the type byte of COM_STMT_EXECUTE's parameter types).
_MY_INTEGERS = {1: 1, 2: 2, 13: 2, 3: 4, 9: 4, 8: 8}  # TINY, SHORT, YEAR, LONG, ...
_MY_FLOATS = {4: "<f", 5: "<d"}
_MY_DATES = frozenset({7, 10, 12})  # TIMESTAMP, DATE, DATETIME
_MY_TIME = 11
_MY_UNSIGNED = 0x80


def mysql_params(
    mode: str,
    values: Sequence[bytes | None],
    types: Sequence[tuple[int, int]],
    *,
    secret: bool,
    long_data: Sequence[int] = (),
) -> Params | None:
    """The params of a MySQL COM_STMT_EXECUTE in the given mode.

    values are the binary-protocol fields as on the wire (length prefix included);
    types the (type, flags) pairs that apply; long_data the parameters whose value
    came by COM_STMT_SEND_LONG_DATA (kept as "(long data)").
    """
    if mode == "none":
        return None
    if mode != "values" or secret:
        return redacted(values)
    out: list[str | None] = []
    for index, value in enumerate(values):
        if value is None:
            out.append(None)
        elif index in long_data:
            out.append("(long data)")
        else:
            kind, flags = types[index] if index < len(types) else (-1, 0)
            out.append(_mysql_value(value, kind, flags))
    return tuple(out)


def _mysql_value(value: bytes, kind: int, flags: int) -> str:
    if _MY_INTEGERS.get(kind) == len(value):
        return str(int.from_bytes(value, "little", signed=not flags & _MY_UNSIGNED))
    if kind in _MY_FLOATS and len(value) == struct.calcsize(_MY_FLOATS[kind]):
        return repr(struct.unpack(_MY_FLOATS[kind], value)[0])
    if kind in _MY_DATES and value and value[0] == len(value) - 1:
        return _mysql_datetime(value[1:])
    if kind == _MY_TIME and value and value[0] == len(value) - 1:
        return _mysql_time(value[1:])
    body = _lenenc_body(value)
    return _hex(value) if body is None else _text(body)


def _lenenc_body(value: bytes) -> bytes | None:
    """The bytes after a length-encoded integer prefix, if it says their length."""
    if not value:
        return None
    first = value[0]
    width = {0xFC: 2, 0xFD: 3, 0xFE: 8}.get(first, 0)
    if first == 0xFF or (width == 0 and first > 0xFA):
        return None
    size = first if width == 0 else int.from_bytes(value[1 : 1 + width], "little")
    body = value[1 + width :]
    return body if len(body) == size else None


def _mysql_datetime(body: bytes) -> str:
    if not body:
        return "0000-00-00 00:00:00"
    year = int.from_bytes(body[:2], "little")
    text = f"{year:04d}-{body[2]:02d}-{body[3]:02d}"
    if len(body) >= 7:
        text += f" {body[4]:02d}:{body[5]:02d}:{body[6]:02d}"
    if len(body) == 11:
        text += f".{int.from_bytes(body[7:], 'little'):06d}"
    return text


def _mysql_time(body: bytes) -> str:
    if not body:
        return "00:00:00"
    sign = "-" if body[0] else ""
    hours = int.from_bytes(body[1:5], "little") * 24 + body[5]
    text = f"{sign}{hours:02d}:{body[6]:02d}:{body[7]:02d}"
    if len(body) == 12:
        text += f".{int.from_bytes(body[8:], 'little'):06d}"
    return text
