"""Turn MySQL/MariaDB statement text into StatementFacts, as the server reads it.

Theory of operation: our own lexer (mysql_split) reads the text with the
server's rules (flavour and version for executable comments, ``sql_mode``) and
cuts it into statements. Each statement is classified by its leading keywords;
queries and DML go to sqlglot's MySQL parser as canonical text (comments gone,
executable comments opened, strings re-quoted for the default mode), the other
statement kinds are read from the tokens directly. Anything else (an unknown
statement kind, sqlglot's opaque Command, a parse error) fails closed:
``Analysis((), error=...)``. Results are cached by exact text and settings.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

import attrs
import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

from pamwire.sql.facts import Analysis, StatementFacts
from pamwire.sql.mysql_modes import decode_sql_mode
from pamwire.sql.mysql_split import Lexer, LexError, Token, version_number
from pamwire.sql.mysql_tree import Walk

__all__ = ["Analysis", "StatementFacts", "analyze", "cache_clear"]

logger = logging.getLogger("pamwire.sql")

#: Analyses kept, by exact text and session settings.
CACHE_SIZE = 4096

#: The value recorded in ``assignments`` when a SET assigns a non-constant.
UNKNOWN_VALUE = "?"

# Storage engines that keep rows across restarts; converting to any other
# engine (BLACKHOLE, MEMORY...) loses them.
_DURABLE_ENGINES = frozenset({"innodb", "aria", "myisam", "rocksdb", "myrocks"})

# Character sets in which no multi-byte character hides a quote or backslash:
# ASCII bytes always mean ASCII, so the server splits the text where pamwire does.
# big5, cp932, gbk, gb18030 and sjis are not (a second byte may be 0x5c or 0x27),
# nor is anything else: a collation number (`= 28` is gbk), a hex string, or a
# name pamwire does not know is refused rather than guessed.
_ASCII_SAFE_CHARSETS = frozenset(
    {
        "armscii8", "ascii", "binary", "cp1250", "cp1251", "cp1256", "cp1257",
        "cp850", "cp852", "cp866", "dec8", "eucjpms", "euckr", "gb2312", "geostd8",
        "greek", "hebrew", "hp8", "keybcs2", "koi8r", "koi8u", "latin1", "latin2",
        "latin5", "latin7", "macce", "macroman", "swe7", "tis620", "ujis", "utf8",
        "utf8mb3", "utf8mb4",
    }
)  # fmt: skip

_READ_ONLY_SETTINGS = frozenset({"transaction_read_only", "tx_read_only", "read_only"})

_Key = tuple[str, str, tuple[int, int, int], bool, bool, str | None]
_exact: dict[_Key, Analysis] = {}

# Facts by token shape (literals replaced) and current database, for statements
# whose facts depend on no literal value; see _literal_free.
_shapes: dict[tuple[str | None, tuple[str, ...]], StatementFacts] = {}

_DIALECT = Dialect.get_or_raise("mysql")


class _Refused(Exception):
    """A statement pamwire cannot analyse; the message becomes the error."""


def analyze(
    sql: str,
    *,
    flavor: str = "mariadb",
    server_version: tuple[int, int, int] = (10, 11, 0),
    ansi_quotes: bool = False,
    no_backslash_escapes: bool = False,
    database: str | None = None,
) -> Analysis:
    """Analyse every statement of ``sql`` as a MySQL or MariaDB server would read it.

    ``flavor`` is "mariadb" or "mysql"; with ``server_version`` it decides which
    executable comments run. ``ansi_quotes`` and ``no_backslash_escapes`` are the
    session's sql_mode flags; ``database`` the current database (None: none
    selected, tables without a database are "?.table", which the server itself
    refuses). A SET of sql_mode or a USE inside the text applies to the
    statements after it, as on the server. Never raises: text that cannot be
    trusted gives ``Analysis((), error=...)``.
    """
    key: _Key = (
        sql,
        flavor,
        tuple(server_version),  # type: ignore[assignment]
        ansi_quotes,
        no_backslash_escapes,
        database,
    )
    hit = _exact.get(key)
    if hit is not None:
        return hit
    analysis = _analyze_guarded(*key)
    if len(_exact) >= CACHE_SIZE:
        del _exact[next(iter(_exact))]
    _exact[key] = analysis
    return analysis


def cache_clear() -> None:
    """Forget every cached analysis (for tests and benchmarks)."""
    _exact.clear()
    _shapes.clear()


def _analyze_guarded(
    sql: str,
    flavor: str,
    version: tuple[int, int, int],
    ansi_quotes: bool,
    no_backslash_escapes: bool,
    database: str | None,
) -> Analysis:
    if flavor not in ("mariadb", "mysql"):
        return Analysis((), error=f"unknown server flavor {flavor!r}")
    if "\x00" in sql:
        return Analysis((), error="nul byte in statement text")
    try:
        sql.encode("utf-8")
    except UnicodeEncodeError:
        return Analysis((), error="statement text is not valid utf-8")
    lexer = Lexer(
        sql,
        mariadb=flavor == "mariadb",
        version=version_number(version),
        ansi_quotes=ansi_quotes,
        no_backslash_escapes=no_backslash_escapes,
    )
    session = _Session(lexer, database)
    try:
        return session.run()
    except LexError as exc:
        return Analysis((), error=f"cannot read statement: {exc}")
    except _Refused as exc:
        return Analysis((), error=str(exc))
    except RecursionError:
        return Analysis((), error="statement nested too deeply")
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        logger.warning("cannot analyze statement", exc_info=True)
        return Analysis((), error="statement has a shape the analyser does not know")


class _Session:
    """The settings that change how the rest of one message is read."""

    def __init__(self, lexer: Lexer, database: str | None) -> None:
        self.lexer = lexer
        self.database = database
        # User variables assigned constants earlier in the message.
        self.variables: dict[str, str | None] = {}

    def run(self) -> Analysis:
        statements: list[StatementFacts] = []
        while True:
            tokens = self.lexer.statement()
            if tokens is None:
                break
            if not tokens:
                continue
            facts = _statement(tokens, self)
            statements.append(facts)
            self.apply(facts)
        if not statements:
            empty = StatementFacts(
                text=self.lexer.sql,
                kind="empty",
                tables_read=frozenset(),
                tables_written=frozenset(),
                functions=frozenset(),
                unscoped_write=False,
                fingerprint=_digest(""),
                empty=True,
            )
            return Analysis((empty,))
        return Analysis(tuple(statements))

    def apply(self, facts: StatementFacts) -> None:
        """Carry a statement's effect on lexing and name resolution forward."""
        for name, value in facts.assignments:
            if name == "database" and value is not None:
                self.database = value
            elif name.startswith("@"):
                self.variables[name.lower()] = value
            elif name == "sql_mode":
                self.sql_mode(value)
            elif name.startswith("character_set_client") and not self.lexer.at_end():
                charset = (value or "").lower()
                # DEFAULT is the server's default, which may be gbk: unknown here.
                if charset not in _ASCII_SAFE_CHARSETS:
                    raise _Refused(
                        f"character set {value!r} changed with more statements after it"
                    )

    def sql_mode(self, value: str | None) -> None:
        if value is None or value == UNKNOWN_VALUE:
            if not self.lexer.at_end():
                raise _Refused("sql_mode changed to an unknown value mid-message")
            return
        legacy = self.lexer.mariadb or self.lexer.version < 80000
        modes = decode_sql_mode(value, legacy_combinations=legacy)
        if modes is None:
            if not self.lexer.at_end():
                raise _Refused(f"sql_mode {value!r} with more statements after it")
            return
        self.lexer.ansi_quotes = modes.ansi_quotes
        self.lexer.no_backslash_escapes = modes.no_backslash_escapes


# --- building facts ------------------------------------------------------------


class _Facts:
    """Facts of one statement while they are gathered."""

    def __init__(self, tokens: list[Token], session: _Session) -> None:
        self.tokens = tokens
        self.session = session
        self.walk = Walk(session.database)
        self.kind = "other"
        self.object_type: str | None = None
        self.prepare_name: str | None = None
        self.inner: StatementFacts | None = None
        self.settings: set[str] = set()
        self.assignments: list[tuple[str, str | None]] = []
        self.copy_target: str | None = None
        self.destructive = False
        self.server_code = False
        self.unsafe_client_encoding = False

    def build(self) -> StatementFacts:
        sql = self.session.lexer.sql
        text = sql[self.tokens[0].start : self.tokens[-1].end]
        walk = self.walk
        return StatementFacts(
            text=text,
            kind=self.kind,
            tables_read=frozenset(walk.read),
            tables_written=frozenset(walk.written),
            functions=frozenset(walk.functions),
            unscoped_write=walk.unscoped,
            fingerprint=_fingerprint(self.tokens),
            prepare_name=self.prepare_name,
            object_type=self.object_type,
            inner=self.inner,
            columns=frozenset(walk.columns),
            settings=frozenset(self.settings),
            assignments=tuple(self.assignments),
            copy_target=self.copy_target,
            destructive=self.destructive,
            server_code=self.server_code,
            calls=frozenset(walk.calls),
            unsafe_client_encoding=self.unsafe_client_encoding,
        )

    def table_at(self, i: int, *, written: bool) -> int:
        """Record the table named at token ``i``; the index after the name."""
        name, i = _name(self.tokens, i)
        db, _, table = name.rpartition(".")
        node = exp.Table(
            this=exp.to_identifier(table), db=exp.to_identifier(db) if db else None
        )
        tables = self.walk.table(node, written=written)
        self.walk.columns.update(f"{t}.*" for t in tables)
        return i

    def expression(self, tokens: list[Token]) -> None:
        """Walk an expression (functions, sub-selects) read from the tokens."""
        if tokens:
            self.walk.visit(_parse("SELECT " + _canonical(tokens)))

    def merge(self, inner: StatementFacts, *, effects: bool) -> None:
        """Take the tables and functions of a nested statement (and its effects)."""
        walk = self.walk
        walk.read |= inner.tables_read
        if effects:
            walk.written |= inner.tables_written
        else:
            walk.read |= inner.tables_written  # named, not changed
        walk.functions |= inner.functions
        walk.calls |= inner.calls
        walk.columns |= inner.columns
        self.settings |= inner.settings
        self.server_code = self.server_code or inner.server_code
        if effects:
            walk.unscoped = walk.unscoped or inner.unscoped_write
            self.destructive = self.destructive or inner.destructive
            self.copy_target = self.copy_target or inner.copy_target


def _statement(tokens: list[Token], session: _Session) -> StatementFacts:
    """The facts of one statement, reused from an earlier one of the same shape.

    OLTP clients send one statement with new constants each time, so the
    exact-text cache rarely hits; a SELECT or INSERT whose facts depend on no
    literal (no function, no setting, no file) is remembered by its tokens with
    literals replaced. UPDATE and DELETE never are: ``OR 1 = 1`` changes scope.
    """
    shape = (session.database, tuple(_shape_token(token) for token in tokens))
    template = _shapes.get(shape)
    if template is not None:
        sql = session.lexer.sql
        text = sql[tokens[0].start : tokens[-1].end]
        return attrs.evolve(template, text=text)
    facts = _analyze_statement(tokens, session)
    if _literal_free(facts):
        if len(_shapes) >= CACHE_SIZE:
            del _shapes[next(iter(_shapes))]
        _shapes[shape] = facts
    return facts


def _shape_token(token: Token) -> str:
    if token.kind == "string" or (token.kind == "word" and token.value[0].isdigit()):
        return "?"
    return token.sql


def _literal_free(facts: StatementFacts) -> bool:
    return (
        facts.kind in ("select", "insert")
        and not facts.functions
        and not facts.settings
        and not facts.assignments
        and facts.inner is None
        and facts.copy_target is None
        and not facts.server_code
        and not facts.unscoped_write
        and not facts.unsafe_client_encoding
    )


def _analyze_statement(tokens: list[Token], session: _Session) -> StatementFacts:
    facts = _Facts(tokens, session)
    first = tokens[0].upper or tokens[0].value
    handler = _HANDLERS.get(first)
    if handler is None:
        raise _Refused(f"statement kind not analysed: {tokens[0].value[:40]}")
    handler(facts)
    return facts.build()


def _digest(text: str) -> str:
    return hashlib.blake2b(
        text.encode("utf-8", "surrogatepass"), digest_size=8
    ).hexdigest()


def _fingerprint(tokens: list[Token]) -> str:
    parts = []
    for token in tokens:
        if token.kind == "string" or (
            token.kind == "word" and token.value[0].isdigit()
        ):
            parts.append("?")
        else:
            parts.append(token.upper or token.value)
    return _digest(" ".join(parts))


def _canonical(tokens: list[Token]) -> str:
    parts = []
    for i, token in enumerate(tokens):
        if i and token.spaced:
            parts.append(" ")
        parts.append(token.sql)
    return "".join(parts)


def _parse(text: str) -> exp.Expression:
    try:
        trees = _DIALECT.parse(text)
    except sqlglot.errors.SqlglotError as exc:
        raise _Refused(f"syntax error: {str(exc).splitlines()[0][:200]}") from None
    trees = [tree for tree in trees if tree is not None]
    if len(trees) != 1:
        raise _Refused("statement did not parse to one tree")
    tree = trees[0]
    if not isinstance(tree, exp.Expression):
        raise _Refused("statement did not parse to one tree")
    if isinstance(tree, exp.Command):
        raise _Refused(f"statement kind not analysed: {tree.this}")
    return tree


def _words(tokens: list[Token], start: int = 0) -> list[str]:
    return [token.upper or token.value for token in tokens[start:]]


def _name(tokens: list[Token], i: int) -> tuple[str, int]:
    """A possibly qualified name at token ``i``: ``(db.name or name, next index)``."""
    parts = []
    while i < len(tokens) and tokens[i].kind in ("word", "qident", "string"):
        parts.append(tokens[i].value)
        i += 1
        if i < len(tokens) and tokens[i].value == "." and not tokens[i].spaced:
            i += 1
            continue
        break
    if not parts:
        raise _Refused("expected a name")
    return ".".join(parts[-2:]), i


def _depth0(tokens: list[Token], words: set[str], start: int = 0) -> int:
    """The index of the first of ``words`` outside parentheses, or -1."""
    depth = 0
    for i in range(start, len(tokens)):
        value = tokens[i].value
        if tokens[i].kind == "op":
            if value == "(":
                depth += 1
            elif value == ")":
                depth -= 1
        elif depth == 0 and tokens[i].upper in words:
            return i
    return -1


def _split_commas(tokens: list[Token]) -> list[list[Token]]:
    parts: list[list[Token]] = [[]]
    depth = 0
    for token in tokens:
        if token.kind == "op" and token.value in "()":
            depth += 1 if token.value == "(" else -1
        if depth == 0 and token.kind == "op" and token.value == ",":
            parts.append([])
        else:
            parts[-1].append(token)
    return parts


def _constant(tokens: list[Token]) -> str | None:
    """The value of a constant: one word or number, or adjacent strings."""
    if tokens and all(t.kind == "string" for t in tokens):
        return "".join(t.value for t in tokens)
    if len(tokens) == 1 and tokens[0].kind in ("word", "qident"):
        return tokens[0].value
    if (
        len(tokens) == 2
        and tokens[0].value.startswith("_")
        and tokens[1].kind == "string"
    ):
        return tokens[1].value  # _utf8mb4'...'
    return None


# --- queries and DML through sqlglot ----------------------------------------------

_QUERY_ROOTS = (exp.Select, exp.SetOperation, exp.Values)
_DML_ROOTS = (exp.Insert, exp.Update, exp.Delete)


def _query(facts: _Facts) -> None:
    tokens = facts.tokens
    into = _depth0(tokens, {"INTO"})
    if (
        into >= 0
        and into + 1 < len(tokens)
        and tokens[into + 1].upper
        in (
            "OUTFILE",
            "DUMPFILE",
        )
    ):
        # SELECT ... INTO OUTFILE/DUMPFILE writes a file on the database host.
        facts.copy_target = "file"
        end = _depth0(
            tokens,
            {
                "FROM",
                "WHERE",
                "GROUP",
                "HAVING",
                "ORDER",
                "LIMIT",
                "FOR",
                "LOCK",
                "UNION",
            },
            into + 2,
        )
        tokens = tokens[:into] + (tokens[end:] if end >= 0 else [])
    tree = _parse(_canonical(tokens))
    if not isinstance(tree, _QUERY_ROOTS + _DML_ROOTS):
        raise _Refused("statement kind not analysed: not a query")
    _tree_facts(facts, tree)


def _dml(facts: _Facts) -> None:
    tokens = facts.tokens
    text = _canonical(tokens)
    if tokens[0].upper == "REPLACE":
        # REPLACE is INSERT that first deletes rows with the same key.
        text = "INSERT" + text[len(tokens[0].sql) :]
        facts.walk.replacing = True
    tree = _parse(text)
    if not isinstance(tree, _DML_ROOTS):
        raise _Refused("statement kind not analysed: not a data change")
    _tree_facts(facts, tree)


def _tree_facts(facts: _Facts, tree: exp.Expression) -> None:
    walk = facts.walk
    walk.visit(tree)
    into = tree.args.get("into")
    if isinstance(into, exp.Into) and isinstance(into.this, exp.Table):
        walk.written.add(f"{walk.database}.{into.this.name.lower()}")
    facts.kind = _promote("select", walk.writes)


_RANK = {"select": 0, "lock": 1, "insert": 2, "update": 3, "delete": 4}


def _promote(kind: str, writes: set[str]) -> str:
    for write in writes:
        if _RANK.get(write, 0) > _RANK.get(kind, 0):
            kind = write
    return kind


# --- statements read from the tokens ----------------------------------------------


def _set(facts: _Facts) -> None:
    facts.kind = "set"
    tokens = facts.tokens
    words = _words(tokens, 1)
    if words[:1] == ["STATEMENT"]:
        _set_statement(facts)
        return
    if words[:1] == ["PASSWORD"]:
        facts.kind, facts.object_type = "alter", "role"
        return
    if words[:1] == ["ROLE"]:
        facts.settings.add("role")
        return
    if words[:2] == ["DEFAULT", "ROLE"]:
        facts.kind, facts.object_type = "alter", "role"
        return
    scope = ""
    body = tokens[1:]
    if body and body[0].upper in (
        "GLOBAL",
        "SESSION",
        "LOCAL",
        "PERSIST",
        "PERSIST_ONLY",
    ):
        scope = body[0].upper
        if body[1:2] and body[1].upper == "TRANSACTION":
            body = body[1:]
    if body and body[0].upper == "TRANSACTION":
        _set_transaction(facts, body[1:], global_=scope in ("GLOBAL", "PERSIST"))
        return
    for item in _split_commas(tokens[1:]):
        _set_item(facts, item)


def _set_item(facts: _Facts, item: list[Token]) -> None:
    scope = "SESSION"
    if item and item[0].upper in (
        "GLOBAL",
        "SESSION",
        "LOCAL",
        "PERSIST",
        "PERSIST_ONLY",
    ):
        scope = item[0].upper
        item = item[1:]
    if not item:
        raise _Refused("empty SET item")
    head = item[0]
    if head.upper == "NAMES" or head.upper in ("CHARSET", "CHARACTER"):
        rest = item[2:] if head.upper == "CHARACTER" else item[1:]
        charset = _constant(rest[:1]) if rest else None
        if rest and charset is None and rest[0].upper != "DEFAULT":
            charset = UNKNOWN_VALUE  # `SET NAMES @x`: not a name pamwire can read
        _charset(facts, charset)
        for name in ("character_set_client", "character_set_results"):
            facts.settings.add(name)
            facts.assignments.append((name, charset))
        if head.upper == "NAMES":
            facts.settings.add("character_set_connection")
            facts.assignments.append(("character_set_connection", charset))
        return
    equals = next(
        (i for i, t in enumerate(item) if t.kind == "op" and t.value in ("=", ":=")), -1
    )
    if equals < 1:
        raise _Refused("cannot read SET item")
    target, value_tokens = item[:equals], item[equals + 1 :]
    bare_word = len(value_tokens) == 1 and value_tokens[0].value.isidentifier()
    value: str | None
    if bare_word:
        # `SET autocommit = ON`: the server reads a bare word as the value's name
        # (ON, OFF, a collation, ...), not as an expression to evaluate.
        value = value_tokens[0].value
    else:
        facts.expression(value_tokens)
        value = _constant(value_tokens)
    if value_tokens and len(value_tokens) == 1 and value_tokens[0].upper == "DEFAULT":
        value = None
    elif value is None:
        value = UNKNOWN_VALUE
    spelled = "".join(t.value for t in target)
    if spelled.startswith("@") and not spelled.startswith("@@"):
        facts.assignments.append((spelled.lower(), value))
        return
    name = spelled
    if name.startswith("@@"):
        name = name[2:]
        prefix, dot, bare = name.partition(".")
        if dot and prefix.upper() in (
            "GLOBAL",
            "SESSION",
            "LOCAL",
            "PERSIST",
            "PERSIST_ONLY",
        ):
            scope, name = prefix.upper(), bare
    name = name.lower()
    if name == "character_set_client":
        _charset(facts, value)
    _record_setting(
        facts, name, value, global_=scope in ("GLOBAL", "PERSIST", "PERSIST_ONLY")
    )


def ascii_safe_charset(name: str) -> bool:
    """True for a character set whose multi-byte characters never hold an ASCII
    byte, so that the server splits statement text where pamwire does."""
    return name.lower() in _ASCII_SAFE_CHARSETS


def _charset(facts: _Facts, charset: str | None) -> None:
    if charset is None or charset.upper() == "DEFAULT":
        return
    if charset.lower() not in _ASCII_SAFE_CHARSETS:
        facts.unsafe_client_encoding = True


def _record_setting(
    facts: _Facts, name: str, value: str | None, *, global_: bool
) -> None:
    facts.assignments.append((f"global.{name}" if global_ else name, value))
    if name in _READ_ONLY_SETTINGS and (value or "").upper() in ("1", "ON", "TRUE"):
        return  # turning read-only on only narrows the session
    facts.settings.add(name)
    if global_:
        facts.settings.add(f"global.{name}")


def _set_transaction(facts: _Facts, tokens: list[Token], *, global_: bool) -> None:
    words = _words(tokens)
    text = " ".join(words)
    if "READ WRITE" in text:
        _record_setting(facts, "transaction_read_only", "0", global_=global_)
    if "ISOLATION" in words:
        _record_setting(facts, "transaction_isolation", UNKNOWN_VALUE, global_=global_)


def _set_statement(facts: _Facts) -> None:
    # MariaDB: SET STATEMENT var = value [, ...] FOR statement runs the statement.
    tokens = facts.tokens
    cut = _depth0(tokens, {"FOR"}, 2)
    if cut < 0 or cut + 1 >= len(tokens):
        raise _Refused("SET STATEMENT without FOR")
    for item in _split_commas(tokens[2:cut]):
        _set_item(facts, item)
    inner = _statement(tokens[cut + 1 :], facts.session)
    facts.kind = inner.kind
    facts.object_type = inner.object_type
    facts.merge(inner, effects=True)


def _use(facts: _Facts) -> None:
    facts.kind = "use"
    name, _ = _name(facts.tokens, 1)
    facts.assignments.append(("database", name))


def _show(facts: _Facts) -> None:
    facts.kind = "show"
    where = _depth0(facts.tokens, {"WHERE"})
    if where >= 0:
        facts.expression(facts.tokens[where + 1 :])


def _explain(facts: _Facts) -> None:
    tokens = facts.tokens
    i = 1
    runs = False
    while i < len(tokens) and (
        tokens[i].upper in _EXPLAIN_OPTIONS or tokens[i].value == "="
    ):
        runs = runs or tokens[i].upper == "ANALYZE"
        i += 1
    if tokens[0].upper == "ANALYZE":
        runs = True
    rest = tokens[i:]
    if not rest or rest[0].upper not in _EXPLAINABLE:
        # EXPLAIN t / DESCRIBE t [col]: the table's columns.
        facts.kind = "show"
        if rest and rest[0].upper != "FOR":
            facts.table_at(i, written=False)
        return
    inner = _statement(rest, facts.session)
    if runs:
        facts.kind = inner.kind
        facts.merge(inner, effects=True)
    else:
        facts.kind = "explain"
        facts.merge(inner, effects=False)


_EXPLAIN_OPTIONS = frozenset(
    {"EXTENDED", "PARTITIONS", "FORMAT", "JSON", "TREE", "TRADITIONAL", "ANALYZE"}
)
_EXPLAINABLE = frozenset(
    {"SELECT", "WITH", "(", "INSERT", "REPLACE", "UPDATE", "DELETE", "TABLE", "VALUES"}
)


def _analyze_stmt(facts: _Facts) -> None:
    words = _words(facts.tokens, 1)
    if words[:1] in (["TABLE"], ["NO_WRITE_TO_BINLOG"], ["LOCAL"]):
        facts.kind = "analyze"
        i = _depth0(facts.tokens, {"TABLE"}) + 1
        while i < len(facts.tokens) and facts.tokens[i].upper not in (
            "PERSISTENT",
            "UPDATE",
            "DROP",
        ):
            i = facts.table_at(i, written=False)
            if i < len(facts.tokens) and facts.tokens[i].value == ",":
                i += 1
            else:
                break
        return
    _explain(facts)  # MariaDB ANALYZE statement: runs it and reports


def _begin(facts: _Facts) -> None:
    words = _words(facts.tokens, 1)
    if words[:1] == ["NOT"]:
        facts.kind, facts.server_code = "do", True  # BEGIN NOT ATOMIC ... END
        return
    if words[:1] not in ([], ["WORK"]):
        raise _Refused("cannot read BEGIN")
    facts.kind = "begin"


def _start(facts: _Facts) -> None:
    words = _words(facts.tokens, 1)
    if words[:1] != ["TRANSACTION"]:
        raise _Refused(f"statement kind not analysed: START {' '.join(words[:1])}")
    facts.kind = "begin"
    if "WRITE" in words:
        _record_setting(facts, "transaction_read_only", "0", global_=False)


def _commit(facts: _Facts) -> None:
    facts.kind = "commit"


def _rollback(facts: _Facts) -> None:
    facts.kind = "rollback"


def _savepoint(facts: _Facts) -> None:
    facts.kind = "savepoint"


def _release(facts: _Facts) -> None:
    if _words(facts.tokens, 1)[:1] != ["SAVEPOINT"]:
        raise _Refused("cannot read RELEASE")
    facts.kind = "release"


def _xa(facts: _Facts) -> None:
    verb = (_words(facts.tokens, 1) or [""])[0]
    kinds = {
        "START": "begin",
        "BEGIN": "begin",
        "END": "savepoint",
        "PREPARE": "prepare_transaction",
        "COMMIT": "commit_prepared",
        "ROLLBACK": "rollback_prepared",
        "RECOVER": "show",
    }
    if verb not in kinds:
        raise _Refused("cannot read XA")
    facts.kind = kinds[verb]


def _lock(facts: _Facts) -> None:
    tokens = facts.tokens
    if _words(tokens, 1)[:1] not in (["TABLES"], ["TABLE"]):
        raise _Refused("statement kind not analysed: LOCK")
    facts.kind = "lock"
    for item in _split_commas(tokens[2:]):
        if item:
            sub = _Facts(item, facts.session)
            sub.table_at(0, written=False)
            facts.walk.read |= sub.walk.read


def _unlock(facts: _Facts) -> None:
    if _words(facts.tokens, 1)[:1] not in (["TABLES"], ["TABLE"]):
        raise _Refused("statement kind not analysed: UNLOCK")
    facts.kind = "unlock"


def _call(facts: _Facts) -> None:
    facts.kind = "call"
    facts.server_code = True
    name, i = _name(facts.tokens, 1)
    bare = name.rpartition(".")[2].lower()
    facts.walk.functions.add(bare)
    facts.walk.functions.add(name.lower())
    facts.walk.calls.add(name.lower())
    rest = facts.tokens[i:]
    if rest and rest[0].value == "(":
        facts.expression(rest)


def _do(facts: _Facts) -> None:
    facts.kind = "do"
    facts.expression(facts.tokens[1:])


def _kill(facts: _Facts) -> None:
    facts.kind = "kill"
    rest = facts.tokens[1:]
    while rest and rest[0].upper in ("HARD", "SOFT", "CONNECTION", "QUERY", "USER"):
        rest = rest[1:]
    if rest and rest[0].upper == "ID":
        rest = rest[1:]
    facts.expression(rest)


def _handler(facts: _Facts) -> None:
    # HANDLER t OPEN / READ / CLOSE reads rows of t past the SQL layer.
    facts.kind = "select"
    facts.table_at(1, written=False)
    where = _depth0(facts.tokens, {"WHERE"})
    if where >= 0:
        end = _depth0(facts.tokens, {"LIMIT"}, where)
        facts.expression(facts.tokens[where + 1 : end if end >= 0 else None])


def _load(facts: _Facts) -> None:
    tokens = facts.tokens
    words = _words(tokens, 1)
    if words[:1] not in (["DATA"], ["XML"]):
        raise _Refused("statement kind not analysed: LOAD")
    facts.kind = "load"
    infile = _depth0(tokens, {"INFILE"})
    local = _depth0(tokens, {"LOCAL"})
    # LOCAL: the client sends the file (like COPY FROM STDIN); else a server file.
    facts.copy_target = "stdio" if 0 <= local < infile else "file"
    table = _depth0(tokens, {"TABLE"}, infile)
    if infile < 0 or table < 0:
        raise _Refused("cannot read LOAD DATA")
    facts.table_at(table + 1, written=True)
    set_clause = _depth0(tokens, {"SET"}, table)
    if set_clause >= 0:
        for item in _split_commas(tokens[set_clause + 1 :]):
            equals = next((i for i, t in enumerate(item) if t.value == "="), -1)
            facts.expression(item[equals + 1 :])


def _prepare(facts: _Facts) -> None:
    tokens = facts.tokens
    facts.kind = "prepare"
    name, i = _name(tokens, 1)
    facts.prepare_name = name.lower()
    if i >= len(tokens) or tokens[i].upper != "FROM":
        raise _Refused("cannot read PREPARE")
    inner = _prepared_text(facts, tokens[i + 1 :])
    facts.inner = inner
    facts.merge(inner, effects=True)


def _prepared_text(facts: _Facts, tokens: list[Token]) -> StatementFacts:
    """The facts of the one statement a PREPARE or EXECUTE IMMEDIATE text holds."""
    text = _constant(tokens)
    if text is None and len(tokens) == 1 and tokens[0].kind == "var":
        text = facts.session.variables.get(tokens[0].value.lower())
    if text is None or text == UNKNOWN_VALUE:
        raise _Refused("prepared statement text is not a constant")
    lexer = facts.session.lexer
    session = _Session(
        Lexer(
            text,
            mariadb=lexer.mariadb,
            version=lexer.version,
            ansi_quotes=lexer.ansi_quotes,
            no_backslash_escapes=lexer.no_backslash_escapes,
        ),
        facts.session.database,
    )
    analysis = session.run()
    if len(analysis.statements) != 1 or analysis.statements[0].empty:
        raise _Refused("prepared statement text is not exactly one statement")
    return analysis.statements[0]


def _execute(facts: _Facts) -> None:
    tokens = facts.tokens
    if _words(tokens, 1)[:1] == ["IMMEDIATE"]:
        using = _depth0(tokens, {"USING"}, 2)
        inner = _prepared_text(facts, tokens[2 : using if using >= 0 else None])
        facts.kind = inner.kind
        facts.object_type = inner.object_type
        facts.merge(inner, effects=True)
        return
    facts.kind = "execute"
    name, _ = _name(tokens, 1)
    facts.prepare_name = name.lower()


def _deallocate(facts: _Facts) -> None:
    facts.kind = "deallocate"
    name, _ = _name(facts.tokens, 2)
    facts.prepare_name = name.lower()


def _grant(facts: _Facts) -> None:
    tokens = facts.tokens
    facts.kind = tokens[0].upper.lower()
    on = _depth0(tokens, {"ON"})
    if on < 0 or _words(tokens, 1)[:1] == ["PROXY"]:
        facts.object_type = "role"
        return
    following = tokens[on + 1].upper if on + 1 < len(tokens) else ""
    facts.object_type = {"PROCEDURE": "procedure", "FUNCTION": "function"}.get(
        following, "table"
    )


# Object words after CREATE/ALTER/DROP, and the object type each names.
_OBJECTS = {
    "TABLE": "table",
    "VIEW": "view",
    "INDEX": "index",
    "DATABASE": "database",
    "SCHEMA": "database",
    "USER": "role",
    "ROLE": "role",
    "PROCEDURE": "procedure",
    "FUNCTION": "function",
    "TRIGGER": "trigger",
    "EVENT": "event",
    "SEQUENCE": "sequence",
    "SERVER": "foreign_server",
    "TABLESPACE": "tablespace",
    "PACKAGE": "procedure",
}
_CODE_OBJECTS = frozenset({"procedure", "function", "trigger", "event"})
# Words between CREATE and the object word.
_CREATE_OPTIONS = frozenset(
    {
        "OR",
        "REPLACE",
        "TEMPORARY",
        "UNIQUE",
        "FULLTEXT",
        "SPATIAL",
        "ONLINE",
        "OFFLINE",
        "AGGREGATE",
        "UNDEFINED",
        "MERGE",
        "TEMPTABLE",
        "INVOKER",
        "DEFINER",
        "SQL",
        "SECURITY",
        "ALGORITHM",
        "IGNORE",
        "BODY",
    }
)


def _object(facts: _Facts) -> int:
    """Find the object word after CREATE/ALTER/DROP; set object_type; its index."""
    tokens = facts.tokens
    i = 1
    while i < len(tokens):
        word = tokens[i].upper
        if word in _OBJECTS:
            facts.object_type = _OBJECTS[word]
            return i
        if word == "DEFINER" or tokens[i].value == "=" or word in _CREATE_OPTIONS:
            i += 1
            continue
        if tokens[i].kind in ("string", "var", "qident") or tokens[i].value in (
            "@",
            "(",
            ")",
        ):
            i += 1  # DEFINER = 'user'@'host', CURRENT_USER()
            continue
        if word == "CURRENT_USER":
            i += 1
            continue
        break
    raise _Refused(f"statement kind not analysed: {' '.join(_words(tokens[:3]))}")


def _skip_if_exists(tokens: list[Token], i: int) -> int:
    while i < len(tokens) and tokens[i].upper in ("IF", "NOT", "EXISTS"):
        i += 1
    return i


def _create(facts: _Facts) -> None:
    facts.kind = "create"
    at = _object(facts)
    kind = facts.object_type
    tokens = facts.tokens
    if kind in ("table", "database", "sequence") and "REPLACE" in _words(tokens[1:at]):
        # MariaDB's CREATE OR REPLACE TABLE/DATABASE/SEQUENCE drops the existing
        # one (a sequence replaces a table of its name), with its rows, first: its
        # most consequential effect is a DROP.
        facts.kind = "drop"
    if kind in _CODE_OBJECTS:
        # TODO(bodies): the body's tables and calls are not walked; creating
        # server-side code is denied by the baseline pack whatever it holds.
        facts.server_code = True
        return
    if kind in ("table", "view"):
        tree = _parse(_canonical(tokens))
        if not isinstance(tree, exp.Create):
            raise _Refused("cannot read CREATE")
        target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
        if isinstance(target, exp.Table):
            facts.walk.table(target, written=True)
        query = tree.args.get("expression")
        if isinstance(query, exp.Expression):
            facts.walk.visit(query)
        return
    if kind == "index":
        on = _depth0(tokens, {"ON"}, at)
        if on < 0:
            raise _Refused("cannot read CREATE INDEX")
        facts.table_at(on + 1, written=True)
        return
    if kind == "database":
        name, _ = _name(tokens, _skip_if_exists(tokens, at + 1))
        facts.walk.written.add(f"{name.lower()}.*")


def _alter(facts: _Facts) -> None:
    facts.kind = "alter"
    at = _object(facts)
    kind = facts.object_type
    tokens = facts.tokens
    if kind in _CODE_OBJECTS:
        facts.server_code = True
        return
    if kind == "table":
        i = facts.table_at(_skip_if_exists(tokens, at + 1), written=True)
        if "IGNORE" in _words(tokens[1:at]):
            # ALTER IGNORE TABLE drops the rows a new unique key or a stricter
            # column would reject, silently.
            facts.destructive = True
        for action in _split_commas(tokens[i:]):
            if _destroys(_words(action)):
                facts.destructive = True
        return
    if kind == "view":
        query = _depth0(tokens, {"AS"}, at)
        if query >= 0:
            facts.walk.visit(_parse(_canonical(tokens[query + 1 :])))
        facts.table_at(at + 1, written=True)


def _destroys(words: list[str]) -> bool:
    """Whether one ALTER TABLE action throws stored data away."""
    if not words:
        return False
    head = words[0]
    if head == "DROP":
        second = words[1] if len(words) > 1 else ""
        return second not in (
            "INDEX",
            "KEY",
            "PRIMARY",
            "FOREIGN",
            "CONSTRAINT",
            "CHECK",
            "UNIQUE",
            "PERIOD",
            "SYSTEM",
            "DEFAULT",
        )
    if head in ("MODIFY", "CHANGE"):
        return True  # a new column type can truncate or convert every value
    if head == "ALTER" and "TYPE" in words:
        return True
    if head in ("TRUNCATE", "DISCARD", "REMOVE", "EXCHANGE", "COALESCE", "REORGANIZE"):
        return True
    if head == "CONVERT":
        return True  # CONVERT TO CHARACTER SET ascii: values become '?'
    for i, word in enumerate(words):
        if word == "ENGINE":
            rest = [w for w in words[i + 1 :] if w != "="]
            return not rest or rest[0].lower() not in _DURABLE_ENGINES
    return False


def _drop(facts: _Facts) -> None:
    tokens = facts.tokens
    if _words(tokens, 1)[:1] == ["PREPARE"]:
        _deallocate(facts)
        return
    facts.kind = "drop"
    at = _object(facts)
    if facts.object_type in ("table", "view", "sequence"):
        i = _skip_if_exists(tokens, at + 1)
        for item in _split_commas(tokens[i:]):
            if item and item[0].upper not in ("RESTRICT", "CASCADE"):
                sub = _Facts(item, facts.session)
                sub.table_at(0, written=True)
                facts.walk.written |= sub.walk.written
    elif facts.object_type == "index":
        on = _depth0(tokens, {"ON"}, at)
        if on >= 0:
            facts.table_at(on + 1, written=True)
    elif facts.object_type == "database":
        name, _ = _name(tokens, _skip_if_exists(tokens, at + 1))
        facts.walk.written.add(f"{name.lower()}.*")


def _rename(facts: _Facts) -> None:
    tokens = facts.tokens
    facts.kind = "alter"
    word = (_words(tokens, 1) or [""])[0]
    if word == "USER":
        facts.object_type = "role"
        return
    if word not in ("TABLE", "TABLES"):
        raise _Refused("statement kind not analysed: RENAME")
    facts.object_type = "table"
    for item in _split_commas(tokens[2:]):
        names = [t for t in item if t.upper != "TO"]
        to = next((i for i, t in enumerate(item) if t.upper == "TO"), -1)
        if to < 0 or not names:
            raise _Refused("cannot read RENAME TABLE")
        for part in (item[:to], item[to + 1 :]):
            sub = _Facts(part, facts.session)
            sub.table_at(0, written=True)
            facts.walk.written |= sub.walk.written


def _truncate(facts: _Facts) -> None:
    facts.kind = "truncate"
    i = 2 if _words(facts.tokens, 1)[:1] == ["TABLE"] else 1
    facts.table_at(i, written=True)


def _help(facts: _Facts) -> None:
    facts.kind = "show"


def _compound(facts: _Facts) -> None:
    # MariaDB runs IF/CASE/WHILE/LOOP/REPEAT blocks outside stored programs.
    facts.kind, facts.server_code = "do", True


_Handler = Callable[[_Facts], None]

_HANDLERS: dict[str, _Handler] = {
    "SELECT": _query,
    "WITH": _query,
    "(": _query,
    "VALUES": _query,
    "TABLE": _query,
    "INSERT": _dml,
    "REPLACE": _dml,
    "UPDATE": _dml,
    "DELETE": _dml,
    "SET": _set,
    "USE": _use,
    "SHOW": _show,
    "EXPLAIN": _explain,
    "DESCRIBE": _explain,
    "DESC": _explain,
    "ANALYZE": _analyze_stmt,
    "BEGIN": _begin,
    "START": _start,
    "COMMIT": _commit,
    "ROLLBACK": _rollback,
    "SAVEPOINT": _savepoint,
    "RELEASE": _release,
    "XA": _xa,
    "LOCK": _lock,
    "UNLOCK": _unlock,
    "CALL": _call,
    "DO": _do,
    "KILL": _kill,
    "HANDLER": _handler,
    "LOAD": _load,
    "PREPARE": _prepare,
    "EXECUTE": _execute,
    "DEALLOCATE": _deallocate,
    "GRANT": _grant,
    "REVOKE": _grant,
    "CREATE": _create,
    "ALTER": _alter,
    "DROP": _drop,
    "RENAME": _rename,
    "TRUNCATE": _truncate,
    "HELP": _help,
    "IF": _compound,
    "CASE": _compound,
    "WHILE": _compound,
    "LOOP": _compound,
    "REPEAT": _compound,
}
