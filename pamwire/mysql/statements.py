"""Words a MySQL session must act on itself, read from statement text.

pamwire answers KILL, USE and LOAD DATA LOCAL itself, reads the server's version
from its greeting, and cuts passwords from statement text for the audit trail.
These helpers do that on plain text; the rule engine's analysis lives in
pamwire/sql/mysql.py.
"""

from __future__ import annotations

import re


def parse_server_version(version: str) -> tuple[str, tuple[int, int, int]]:
    """("mariadb" or "mysql", (major, minor, patch)) from a handshake's version.

    MariaDB servers may prefix "5.5.5-" for old replication clients.
    """
    flavor = "mariadb" if "mariadb" in version.lower() else "mysql"
    if version.startswith("5.5.5-"):
        version = version[len("5.5.5-") :]
    found = re.match(r"(\d+)\.(\d+)\.(\d+)", version)
    if found is None:
        return flavor, (10, 11, 0) if flavor == "mariadb" else (8, 0, 0)
    major, minor, patch = (int(g) for g in found.groups())
    return flavor, (major, minor, patch)


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*|\d+|`(?:[^`]|``)*`|'(?:[^'\\]|\\.|'')*'")


def leading_words(text: str, limit: int) -> list[str]:
    """The first words of a statement, skipping comments and white space.

    Executable comments (/*! ... */, /*M! ... */) count as text, as the server
    runs them. Used only to recognise KILL, USE and LOAD ... LOCAL, which
    pamwire itself must act on.
    """
    words: list[str] = []
    i, size = 0, len(text)
    while i < size and len(words) < limit:
        if text.startswith("/*", i):
            if text.startswith(("/*!", "/*M!"), i):
                i += 3 if text[i + 2] == "!" else 4
                while i < size and text[i].isdigit():
                    i += 1
                continue
            end = text.find("*/", i + 2)
            i = size if end < 0 else end + 2
            continue
        if text.startswith("*/", i):
            i += 2
            continue
        char = text[i]
        if char == "#" or (
            text.startswith("--", i)
            and text[i + 2 : i + 3] in ("", " ", "\t", "\n", "\r")
        ):
            end = text.find("\n", i)
            i = size if end < 0 else end + 1
            continue
        if char.isspace() or char in "(;":
            i += 1
            continue
        found = _WORD.match(text, i)
        if found is None:
            words.append(char)
            i += 1
        else:
            words.append(found.group())
            i = found.end()
    return words


def parse_kill(words: list[str]) -> tuple[int, bool] | None:
    """(connection id, query only) of `KILL [HARD|SOFT] [CONNECTION|QUERY] n`.

    None for any other form (KILL USER, KILL QUERY ID, an expression).
    """
    rest = [w.upper() for w in words[1:]]
    if rest[:1] in (["HARD"], ["SOFT"]):
        rest = rest[1:]
    query = False
    if rest[:1] == ["QUERY"]:
        query, rest = True, rest[1:]
    elif rest[:1] == ["CONNECTION"]:
        rest = rest[1:]
    if len(rest) != 1 or not rest[0].isdigit():
        return None
    number = int(rest[0])
    return (number, query) if number < 1 << 64 else None


def unquote(word: str) -> str | None:
    """An identifier word without its backticks; None for anything else."""
    if word.startswith("`"):
        return word[1:-1].replace("``", "`")
    if word[:1].isalpha() or word[:1] == "_":
        return word
    return None


# A password keyword may end a longer option name (MASTER_PASSWORD, SOURCE_PASSWORD),
# so only a letter or digit before it makes it part of another word.
_SECRET_WORD = re.compile(r"(?<![a-z0-9$])(identified|password)\b", re.IGNORECASE)


# A FEDERATED or CONNECT table's CONNECTION='mysql://user:password@host/...' (or an
# ODBC 'DSN=...;PWD=...') carries a password in a string of its own.
# In CREATE or ALTER (a table, a server) the word stands alone before it, however
# spelled around (`CONNECTION = _utf8mb4'...'`, comments, backticks, hex).
_CONNECTION_STRING = re.compile(r"(?<![a-z0-9_$])(connection)(?![a-z0-9_$])", re.I)
_CREATE_OR_ALTER = re.compile(r"\s*(?:/\*.*?\*/\s*)*(create|alter)\b", re.I | re.S)


def redact_mysql(text: str) -> str:
    """Statement text for the audit trail, cut after IDENTIFIED or PASSWORD.

    MySQL puts passwords after those words (CREATE USER ... IDENTIFIED BY,
    SET PASSWORD = PASSWORD(...), MASTER_PASSWORD=...); the rest of such a
    statement is dropped. Bytes that are not UTF-8 are replaced.
    """
    found = _SECRET_WORD.search(text)
    if found is None and _CREATE_OR_ALTER.match(text):
        found = _CONNECTION_STRING.search(text)
    if found is not None:
        text = text[: found.end(1)] + " <redacted>"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text
