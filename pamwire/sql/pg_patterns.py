"""Two questions the scope judge asks about simple predicates, answered without data.

Does a LIKE, regular-expression or starts-with pattern match every string? Do
comparisons of one column with constants (``id > 0 OR id <= 0``) together cover
every non-NULL value? Both answers err towards "yes": a "yes" makes a write
unscoped, and pamwire would rather refuse a strange WHERE than let one through.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from decimal import Decimal

# Strings a pattern must match to count as matching everything. They mix case,
# digits, spaces, newlines, wildcard characters and non-ASCII, and are short, so a
# pattern with catastrophic backtracking still finishes quickly on them.
_PROBES = ("a", "Z", "0", " ", "\n", "%", "_", "-", "é", "ab1", "Hello world", "x\ty")

#: Patterns longer than this are not probed: they count as matching everything.
MAX_PATTERN = 512

LIKE_OPS = frozenset({"~~", "~~*"})
NOT_LIKE_OPS = frozenset({"!~~", "!~~*"})
REGEX_OPS = frozenset({"~", "~*"})
NOT_REGEX_OPS = frozenset({"!~", "!~*"})
PREFIX_OP = "^@"
#: Operators whose right side is a pattern (or prefix) matched against the left.
PATTERN_OPS = LIKE_OPS | NOT_LIKE_OPS | REGEX_OPS | NOT_REGEX_OPS | {PREFIX_OP}

NEGATED_PATTERN_OPS = {
    "~~": "!~~",
    "!~~": "~~",
    "~~*": "!~~*",
    "!~~*": "~~*",
    "~": "!~",
    "!~": "~",
    "~*": "!~*",
    "!~*": "~*",
}


def matches_everything(op: str, pattern: str, *, escape: str = "\\") -> bool:
    """Whether ``value op pattern`` holds for every non-empty string ``value``.

    ``op`` is a positive pattern operator (``~~``, ``~~*``, ``~``, ``~*``, ``^@``),
    or ``similar`` for SIMILAR TO. A pattern that cannot be read, or is too long
    to probe, counts as matching everything.
    """
    if op == PREFIX_OP:
        return pattern == ""
    if len(pattern) > MAX_PATTERN:
        return True
    flags = re.DOTALL | (re.IGNORECASE if op.endswith("*") else 0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if op in LIKE_OPS:
                regex = re.compile(_like_regex(pattern, escape), flags)
                return all(regex.fullmatch(probe) for probe in _PROBES)
            if op == "similar":
                regex = re.compile(_similar_regex(pattern), flags)
                return all(regex.fullmatch(probe) for probe in _PROBES)
            regex = re.compile(pattern, flags)
            return all(regex.search(probe) for probe in _PROBES)
    except (re.error, RecursionError, OverflowError):
        # Python's regular expressions are not PostgreSQL's (\m, \y, (?b)...):
        # what this one matches is unknown.
        return True


def _like_regex(pattern: str, escape: str) -> str:
    out = []
    chars = iter(pattern)
    for ch in chars:
        if escape and ch == escape:
            out.append(re.escape(next(chars, "")))
        elif ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return "".join(out)


def _similar_regex(pattern: str) -> str:
    # SIMILAR TO is a regular expression matched whole, with LIKE's wildcards.
    out = []
    escaped = False
    for ch in pattern:
        if escaped:
            out.append(re.escape(ch))
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        elif ch == ".":
            out.append(r"\.")
        else:
            out.append(ch)
    return "".join(out)


# --- covering the values of one column ---------------------------------------------

#: A value a column is compared with: a number, or the canonical text of any
#: other constant expression (equal texts are equal values; order unknown).
Point = Decimal | str


class Atom:
    """``column op points`` where op is a comparison, IN, NOT IN, BETWEEN, NOT BETWEEN.

    ``op`` is one of ``= <> < <= > >=`` (one point), ``in``/``not in`` (several
    points) or ``between``/``not between`` (two points, low first).
    """

    __slots__ = ("column", "op", "points")

    def __init__(self, column: str, op: str, points: tuple[Point, ...]) -> None:
        self.column = column
        self.op = op
        self.points = points


def covers_every_value(atoms: Iterable[Atom]) -> bool:
    """Whether the OR of ``atoms`` holds for every non-NULL value of some column.

    Numbers are ordered; any other point is only known to equal itself, so it is
    compared only with atoms on that same point. ``id > 0 OR id <= 0``, ``id = 1
    OR id <> 1`` and ``id < 10 OR id > 5`` cover; ``id > 5 OR id < 5`` does not.
    """
    groups: dict[tuple[str, str], list[Atom]] = {}
    for atom in atoms:
        kinds = {"num" if isinstance(p, Decimal) else f"v:{p}" for p in atom.points}
        if len(kinds) == 1:
            groups.setdefault((atom.column, kinds.pop()), []).append(atom)
    return any(_covers(group) for group in groups.values())


def _covers(atoms: list[Atom]) -> bool:
    points = sorted({p for atom in atoms for p in atom.points}, key=_order)
    index = {p: 2 * i + 1 for i, p in enumerate(points)}
    last = 2 * len(points)
    everything = set(range(last + 1))
    covered: set[int] = set()
    for atom in atoms:
        cells = {index[p] for p in atom.points}
        first = index[atom.points[0]]
        if atom.op in ("=", "in"):
            covered |= cells
        elif atom.op in ("<>", "not in"):
            covered |= everything - cells
        elif atom.op == "<":
            covered |= set(range(first))
        elif atom.op == "<=":
            covered |= set(range(first + 1))
        elif atom.op == ">":
            covered |= set(range(first + 1, last + 1))
        elif atom.op == ">=":
            covered |= set(range(first, last + 1))
        elif atom.op in ("between", "not between"):
            low, high = first, index[atom.points[-1]]
            inside = set(range(low, high + 1))
            covered |= inside if atom.op == "between" else everything - inside
    return covered >= everything


def _order(point: Point) -> Decimal:
    return point if isinstance(point, Decimal) else Decimal(0)
