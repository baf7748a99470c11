"""Replace password literals in PostgreSQL statement text before it reaches the trail.

Theory of operation: pglast's C parser gives the byte location of each secret-bearing
literal (a DefElem option named like *password*, a string constant under a dblink*
call), pglast's scanner gives each literal token's extent, and the token is replaced
by '<redacted>' while every other character stays as sent. Text that does not parse
but mentions a password is cut after that word (fail closed). Text that names none of
"password", "dblink" or "mapping" is returned at once, with no parse.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from pglast import parser

REDACTED = "'<redacted>'"

_FAST_PATH = re.compile(
    r"password|dblink|mapping|subscription|conninfo|://", re.IGNORECASE
)
# CREATE/ALTER SUBSCRIPTION ... CONNECTION 'conninfo': its password is redacted.
_SUBSCRIPTIONS = ("CreateSubscriptionStmt", "AlterSubscriptionStmt")
_PASSWORD_WORD = re.compile(r"password", re.IGNORECASE)
# A password word followed by what may be its value, inside one string.
_PASSWORD_VALUE = re.compile(r"password[\s=:'\"]+[^\s'\"]", re.IGNORECASE)
_STRING_TOKENS = frozenset({"SCONST", "USCONST"})

# libpq connection strings: `password = value` (value unquoted up to white space, or
# single-quoted with backslash escapes), sslpassword too, and the password of a URI's
# user info or query.
_CONNINFO_KEYWORD = re.compile(
    r"(\w*password\s*=\s*)('(?:[^'\\]|\\.)*'?|[^\s&#]*)", re.IGNORECASE
)
_CONNINFO_URI = re.compile(r"(://[^/?#@:]*:)([^@]*)(@)")


def redact_pg(sql: str) -> str:
    """The statement text with password literals replaced by '<redacted>'.

    Never raises: text pglast cannot parse (or that holds a NUL byte, where the
    parser stops) keeps only what comes before its first "password", if any.
    """
    if _FAST_PATH.search(sql) is None:
        return sql
    if "\x00" in sql:
        return _cut_after_password(sql)
    try:
        tree = json.loads(parser.parse_sql_json(sql))
        tokens = {token.start: token for token in parser.scan(sql)}
    except (parser.ParseError, UnicodeError, ValueError):
        return redact_conninfo(_cut_after_password(sql))

    encoded = sql.encode("utf-8")
    edits: dict[int, tuple[int, str]] = {}
    for location, replace in _secrets(tree):
        start = location if sql.isascii() else len(encoded[:location].decode())
        token = tokens.get(start)
        if token is None or token.name not in _STRING_TOKENS:
            # A secret we cannot place exactly: give up on precision, not on secrecy.
            return _cut_after_password(sql) if _has_password(sql) else REDACTED
        raw = sql[token.start : token.end + 1]
        text = REDACTED if replace is None else replace
        if text != raw:
            edits[token.start] = (token.end + 1, text)

    for token in tokens.values():
        # A password inside a string no rule placed (a DO body, a function body,
        # EXECUTE's text): fail closed.
        if (
            token.name in _STRING_TOKENS
            and token.start not in edits
            and _PASSWORD_VALUE.search(sql[token.start : token.end + 1])
        ):
            return _cut_after_password(sql)

    pieces: list[str] = []
    done = 0
    for start in sorted(edits):
        end, text = edits[start]
        if start < done:
            continue
        pieces += [sql[done:start], text]
        done = end
    pieces.append(sql[done:])
    return "".join(pieces)


def _secrets(node: object) -> Iterator[tuple[int, str | None]]:
    """(byte location, replacement) of each secret literal; None means REDACTED."""
    if isinstance(node, list):
        for item in node:
            yield from _secrets(item)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key == "DefElem" and isinstance(value, dict):
            name = str(value.get("defname", "")).lower()
            if "password" in name and "String" in (value.get("arg") or {}):
                yield int(value.get("arg_location", -1)), None
                continue
        if key == "FuncCall" and isinstance(value, dict) and _is_dblink(value):
            for arg in value.get("args", []):
                if isinstance(arg, dict) and "A_Const" in arg:
                    yield from _conninfo_literals(arg)
                else:
                    # Built from pieces ('password=' || 'x', concat, format): each
                    # piece as a connection string, and whatever follows a piece
                    # that ends at `password=` is the password itself.
                    yield from _pieces_after_password(arg)
        const = (
            value.get("sval") if key == "A_Const" and isinstance(value, dict) else None
        )
        if isinstance(const, dict) and isinstance(const.get("sval"), str):
            # Any string holding a connection string's password (ALTER SYSTEM SET
            # primary_conninfo, set_config(...), a URI): that value goes.
            text = const["sval"]
            if redact_conninfo(text) != text:
                yield int(value.get("location", -1)), _quote(redact_conninfo(text))
        if key in _SUBSCRIPTIONS and isinstance(value, dict):
            conninfo = value.get("conninfo")
            if isinstance(conninfo, str) and redact_conninfo(conninfo) != conninfo:
                where = int(value.get("conninfo_location", -1))
                yield where, _quote(redact_conninfo(conninfo))
        yield from _secrets(value)


_OPEN_PASSWORD = re.compile(r"(password\s*=\s*|://[^/?#@:]*:)$", re.IGNORECASE)


def _pieces_after_password(node: object) -> Iterator[tuple[int, str | None]]:
    """String constants of an expression, in order: those after a piece that ends
    where a password begins are replaced whole."""
    opened = False
    for location, text in _string_constants(node):
        if opened:
            yield location, None
        opened = opened or _OPEN_PASSWORD.search(text) is not None


def _string_constants(node: object) -> Iterator[tuple[int, str]]:
    """(location, text) of every string constant in node, in the text's order."""
    found: list[tuple[int, str]] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            const = item.get("A_Const")
            if isinstance(const, dict) and "sval" in const:
                text = const["sval"].get("sval", "")
                found.append((int(const.get("location", -1)), str(text)))
            else:
                stack.extend(item.values())
    return iter(sorted(found))


def _is_dblink(call: dict[str, object]) -> bool:
    names = call.get("funcname")
    if not isinstance(names, list) or not names:
        return False
    last = names[-1].get("String", {}).get("sval", "")
    return isinstance(last, str) and last.lower().startswith("dblink")


def _conninfo_literals(node: object) -> Iterator[tuple[int, str | None]]:
    """Every string constant under a dblink call, with its password value redacted."""
    if isinstance(node, list):
        for item in node:
            yield from _conninfo_literals(item)
        return
    if not isinstance(node, dict):
        return
    const = node.get("A_Const")
    if isinstance(const, dict) and "sval" in const:
        value = const["sval"].get("sval", "")
        redacted = redact_conninfo(value)
        if redacted != value:
            yield int(const.get("location", -1)), _quote(redacted)
        return
    for value in node.values():
        yield from _conninfo_literals(value)


def redact_conninfo(conninfo: str) -> str:
    """A libpq connection string or URI with its password values redacted."""
    text = _CONNINFO_URI.sub(r"\1<redacted>\3", conninfo)
    return _CONNINFO_KEYWORD.sub(r"\1<redacted>", text)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _has_password(sql: str) -> bool:
    return _PASSWORD_WORD.search(sql) is not None


def _cut_after_password(sql: str) -> str:
    found = _PASSWORD_WORD.search(sql)
    if found is None:
        return sql
    return sql[: found.end()] + " " + REDACTED
