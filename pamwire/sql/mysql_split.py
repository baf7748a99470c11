"""Lex MySQL/MariaDB text the way the server does and cut it into statements.

Theory of operation: one pass over the text yields tokens; comments vanish,
executable comments (``/*! */``, ``/*!NNNNN */``, ``/*M! */``) are opened as
code when the server's flavour and version would run them and skipped as
comments otherwise, exactly as the server's lexer decides. Strings are decoded
with the session's ``sql_mode`` (backslash escapes unless NO_BACKSLASH_ESCAPES,
``"..."`` an identifier under ANSI_QUOTES) and re-emitted in one canonical
spelling, so a later parser that only knows the default mode reads the same
tokens. A ``;`` ends a statement except inside the BEGIN...END (or IF, CASE,
LOOP, WHILE, REPEAT) blocks of stored-program bodies, as the server's grammar
(not a client's DELIMITER) decides.
"""

from __future__ import annotations

import re

__all__ = ["LexError", "Lexer", "Token", "version_number"]

# Words that open and close the blocks of stored-program bodies.
_BLOCK_OPENERS = frozenset({"BEGIN", "CASE", "IF", "LOOP", "WHILE", "REPEAT"})
_END_FOLLOWERS = frozenset({"IF", "CASE", "LOOP", "WHILE", "REPEAT", "FOR"})
# Tokens after which a word starts a statement inside a stored-program body.
_STATEMENT_STARTS = frozenset({";", ":", "BEGIN", "THEN", "ELSE", "DO"})
_ROUTINES = frozenset({"PROCEDURE", "FUNCTION", "TRIGGER", "EVENT", "PACKAGE"})

_WS = re.compile(r"[ \t\n\r\f\v]+")
_NUMBER = re.compile(
    r"(?:0x[0-9a-fA-F]+|0b[01]+|(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)"
    r"(?![\w$\u0080-\U0010ffff])"
)
_WORD = re.compile(r"[\w$\u0080-\U0010ffff]+")
_SYSVAR = re.compile(r"@@[\w$]+(?:\.[\w$]+)?")
_USERVAR = re.compile(r"@[\w$.]+")
_SIMPLE_NAME = re.compile(r"[\w$.]+")
_OPERATORS = (
    "<=>",
    "->>",
    "<=",
    ">=",
    "<>",
    "!=",
    "||",
    "&&",
    ":=",
    "<<",
    ">>",
    "->",
)
_ESCAPES = {
    "0": "\x00",
    "b": "\b",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "Z": "\x1a",
    "%": "\\%",
    "_": "\\_",
}


class LexError(ValueError):
    """The text cannot be read as the server would (the message says why)."""


def version_number(version: tuple[int, int, int]) -> int:
    """The server version as executable comments write it: 10.11.0 -> 101100."""
    major, minor, patch = version
    return major * 10000 + minor * 100 + patch


class Token:
    """One token: ``kind`` is word, qident, string, var, op or semi.

    ``value`` is the decoded text (a string's contents, an identifier's name, a
    word as written); ``sql`` the canonical spelling handed to the parser;
    ``start``/``end`` the offsets in the original text; ``spaced`` whether
    whitespace or a comment came before it.
    """

    __slots__ = ("end", "kind", "spaced", "sql", "start", "upper", "value")

    def __init__(
        self, kind: str, value: str, sql: str, start: int, end: int, spaced: bool
    ) -> None:
        self.kind = kind
        self.value = value
        self.sql = sql
        self.start = start
        self.end = end
        self.spaced = spaced
        self.upper = value.upper() if kind == "word" else ""

    def __repr__(self) -> str:
        return f"Token({self.kind}, {self.value!r})"


def quote_string(value: str) -> str:
    """A literal the default-mode parser reads back as ``value``."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def quote_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


class Lexer:
    """Reads statements one by one; ``sql_mode`` may change between them."""

    def __init__(
        self,
        sql: str,
        *,
        mariadb: bool,
        version: int,
        ansi_quotes: bool = False,
        no_backslash_escapes: bool = False,
    ) -> None:
        self.sql = sql
        self.pos = 0
        self.mariadb = mariadb
        self.version = version
        self.ansi_quotes = ansi_quotes
        self.no_backslash_escapes = no_backslash_escapes
        # Inside the body of an executable comment that runs as code.
        self.in_code_comment = False

    def at_end(self) -> bool:
        """Whether only whitespace and comments remain."""
        saved = (self.pos, self.in_code_comment)
        try:
            return self._token() is None
        finally:
            self.pos, self.in_code_comment = saved

    def statement(self) -> list[Token] | None:
        """The tokens of the next statement (without its ``;``); None at the end.

        An empty list is a statement with no tokens (``;;``).
        """
        tokens: list[Token] = []
        depth = 0
        compound = False
        while True:
            token = self._token()
            if token is None:
                if not tokens and self.pos >= len(self.sql):
                    return None
                return tokens
            if token.kind == "semi" and (not compound or depth <= 0):
                return tokens
            if token.kind == "word":
                depth += _depth_change(tokens, token, self)
            tokens.append(token)
            if not compound and len(tokens) <= 12:
                compound = _is_compound(tokens)

    # --- single tokens --------------------------------------------------------

    def _token(self) -> Token | None:
        sql = self.sql
        spaced = False
        while True:
            match = _WS.match(sql, self.pos)
            if match:
                self.pos = match.end()
                spaced = True
            if self.pos >= len(sql):
                if self.in_code_comment:
                    raise LexError("executable comment is not closed")
                return None
            if not self._comment():
                break
            spaced = True
        start = self.pos
        char = sql[start]

        if char == "*" and self.in_code_comment and sql.startswith("*/", start):
            self.in_code_comment = False
            self.pos += 2
            return self._token_after_comment()
        if char in "'\"":
            if char == '"' and self.ansi_quotes:
                name = self._quoted(char, escapes=False)
                return Token("qident", name, quote_ident(name), start, self.pos, spaced)
            value = self._quoted(char, escapes=not self.no_backslash_escapes)
            return Token("string", value, quote_string(value), start, self.pos, spaced)
        if char == "`":
            name = self._quoted("`", escapes=False)
            return Token("qident", name, quote_ident(name), start, self.pos, spaced)
        if char == ";":
            self.pos += 1
            return Token("semi", ";", ";", start, self.pos, spaced)
        if char == "@":
            return self._variable(start, spaced)
        match = _NUMBER.match(sql, start)
        if match:
            self.pos = match.end()
            text = match.group()
            return Token("word", text, text, start, self.pos, spaced)
        match = _WORD.match(sql, start)
        if match:
            self.pos = match.end()
            text = match.group()
            if text[0].isdigit():
                # MySQL reads 1abc as an identifier; say so to the parser.
                return Token("qident", text, quote_ident(text), start, self.pos, spaced)
            return Token("word", text, text, start, self.pos, spaced)
        if char == "\\" and sql.startswith("\\N", start):
            self.pos += 2
            return Token("word", "NULL", "NULL", start, self.pos, spaced)
        for op in _OPERATORS:
            if sql.startswith(op, start):
                self.pos += len(op)
                return Token("op", op, op, start, self.pos, spaced)
        self.pos += 1
        return Token("op", char, char, start, self.pos, spaced)

    def _token_after_comment(self) -> Token | None:
        token = self._token()
        if token is not None:
            token.spaced = True
        return token

    def _variable(self, start: int, spaced: bool) -> Token:
        sql = self.sql
        match = _SYSVAR.match(sql, start)
        if match:
            self.pos = match.end()
            text = match.group()
            return Token("var", text, text, start, self.pos, spaced)
        nxt = sql[start + 1 : start + 2]
        if nxt and nxt in "'\"`":
            self.pos = start + 1
            name = self._quoted(
                nxt, escapes=nxt != "`" and not self.no_backslash_escapes
            )
        else:
            match = _USERVAR.match(sql, start)
            if not match:
                self.pos = start + 1
                return Token("op", "@", "@", start, self.pos, spaced)
            self.pos = match.end()
            name = match.group()[1:]
        text = "@" + (name if _SIMPLE_NAME.fullmatch(name) else quote_ident(name))
        return Token("var", "@" + name, text, start, self.pos, spaced)

    def _quoted(self, quote: str, *, escapes: bool) -> str:
        """Read a quoted string or identifier starting at ``self.pos``."""
        sql = self.sql
        pos = self.pos + 1
        parts: list[str] = []
        stops = quote + "\\" if escapes else quote
        while True:
            nxt = _find_any(sql, stops, pos)
            if nxt < 0:
                raise LexError(f"unterminated quoted text at offset {self.pos}")
            parts.append(sql[pos:nxt])
            if sql[nxt] == "\\":
                if nxt + 1 >= len(sql):
                    raise LexError(f"unterminated quoted text at offset {self.pos}")
                escaped = sql[nxt + 1]
                parts.append(_ESCAPES.get(escaped, escaped))
                pos = nxt + 2
                continue
            if sql.startswith(quote * 2, nxt):
                parts.append(quote)
                pos = nxt + 2
                continue
            self.pos = nxt + 1
            return "".join(parts)

    def _comment(self) -> bool:
        """Skip one comment at ``self.pos`` (or open a code comment); False if none."""
        sql = self.sql
        pos = self.pos
        char = sql[pos]
        if char == "#" or (
            sql.startswith("--", pos)
            and (
                pos + 2 >= len(sql) or ord(sql[pos + 2]) <= 32 or sql[pos + 2] == "\x7f"
            )
        ):
            # Only LF ends these comments; a bare CR does not.
            end = sql.find("\n", pos)
            self.pos = len(sql) if end < 0 else end + 1
            return True
        if not sql.startswith("/*", pos):
            return False
        if self.in_code_comment:
            # TODO(comments): the server allows a comment inside a running
            # executable comment; rare enough to refuse rather than model.
            raise LexError("comment inside an executable comment")
        marker = None
        if sql.startswith("/*!", pos):
            marker = pos + 3
        elif sql.startswith("/*M!", pos) and self.mariadb:
            marker = pos + 4
        if marker is None:
            end = sql.find("*/", pos + 2)
            if end < 0:
                raise LexError("comment is not closed")
            self.pos = end + 2
            return True
        return self._code_comment(pos, marker, maria_syntax=marker == pos + 4)

    def _code_comment(self, pos: int, marker: int, *, maria_syntax: bool) -> bool:
        sql = self.sql
        digits = 0
        while (
            digits < 6 and marker + digits < len(sql) and sql[marker + digits].isdigit()
        ):
            digits += 1
        if digits < 5:
            # Not a versioned comment: its body is code on every server.
            self.pos = marker
            self.in_code_comment = True
            return True
        if digits == 6 and not self.mariadb:
            # TODO(comments): MySQL's reading of six-digit versions differs
            # between releases; refuse rather than guess.
            raise LexError("six-digit version in an executable comment")
        version = int(sql[marker : marker + digits])
        runs = version <= self.version
        if self.mariadb and not maria_syntax and 50700 <= version <= 99999:
            # MariaDB skips MySQL-5.7+ comments (sql_lex.cc, MY_LEX_LONG_COMMENT).
            runs = False
        if runs:
            self.pos = marker + digits
            self.in_code_comment = True
            return True
        end = sql.find("*/", marker)
        if end < 0:
            raise LexError("comment is not closed")
        if "/*" in sql[marker:end]:
            # TODO(comments): the server allows one nested comment here.
            raise LexError("comment inside a versioned comment")
        self.pos = end + 2
        return True


def _find_any(text: str, chars: str, pos: int) -> int:
    best = -1
    for char in chars:
        found = text.find(char, pos)
        if found >= 0 and (best < 0 or found < best):
            best = found
    return best


def _is_compound(tokens: list[Token]) -> bool:
    """Whether a statement can hold ``;`` inside blocks (stored programs)."""
    first = tokens[0].upper
    if first in ("CREATE", "ALTER"):
        return any(token.upper in _ROUTINES for token in tokens[1:])
    if first == "BEGIN":
        return len(tokens) > 1 and tokens[1].upper == "NOT"
    if first in ("IF", "CASE", "WHILE", "LOOP", "REPEAT", "FOR"):
        return first != "REPEAT" or len(tokens) < 2 or tokens[1].value != "("
    return len(tokens) > 1 and tokens[1].value == ":"


def _depth_change(before: list[Token], token: Token, lexer: Lexer) -> int:
    """How a word changes the block depth of a stored-program body."""
    word = token.upper
    prev = before[-1] if before else None
    if word == "END":
        return -1
    if word not in _BLOCK_OPENERS:
        return 0
    if prev is not None and prev.upper == "END":
        return 0  # END IF, END LOOP ...: the END already closed the block
    if word in ("BEGIN", "CASE"):
        return 1
    at_start = (
        prev is None
        or prev.value in _STATEMENT_STARTS
        or prev.upper in (_STATEMENT_STARTS)
    )
    if at_start:
        return 1
    following = _peek_word(lexer)
    if word == "IF":
        # IF(a, b, c) is a function and IF [NOT] EXISTS part of DDL.
        return 0 if following in ("(", "EXISTS", "NOT") else 1
    return 0 if following == "(" else 1


def _peek_word(lexer: Lexer) -> str:
    saved = (lexer.pos, lexer.in_code_comment)
    try:
        token = lexer._token()
    except LexError:
        return ""
    finally:
        lexer.pos, lexer.in_code_comment = saved
    if token is None:
        return ""
    return token.upper or token.value
