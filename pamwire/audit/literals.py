"""Classes of values that the audit trail must not keep: card numbers, e-mail
addresses and the like, replaced in stored statement text and bound values.

A class is a pattern searched anywhere in a statement's text (inside string
literals, numbers, comments alike: erring towards redaction), with an optional
check that a match really is one (the Luhn digit of a card number). Matches are
replaced by `<redacted:CLASS>`. Shipped classes are named in BUILTIN; a
configuration adds its own as name = regular expression. The fingerprint of a
statement is taken from the original text, so redacted statements still group.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

import attrs

from pamwire.audit.recording import RecordingChunk, ReportFields


@attrs.frozen
class LiteralClass:
    """A named pattern; `check` (if any) must accept a match for it to count."""

    name: str
    pattern: re.Pattern[str]
    check: Callable[[str], bool] | None = None


def luhn(text: str) -> bool:
    """True if the digits of text pass the Luhn check (card numbers)."""
    digits = [int(c) for c in text if c.isdigit()]
    total = 0
    for index, digit in enumerate(reversed(digits)):
        if index % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def iban(text: str) -> bool:
    """True if text is an IBAN whose check digits are right (mod 97)."""
    compact = text.replace(" ", "").upper()
    moved = compact[4:] + compact[:4]
    number = "".join(str(int(c, 36)) for c in moved)
    return int(number) % 97 == 1


BUILTIN: Mapping[str, LiteralClass] = {
    "card-number": LiteralClass(
        "card-number",
        # 13 to 19 digits, grouped by single spaces or dashes, not part of a
        # longer run of digits.
        re.compile(r"(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])"),
        luhn,
    ),
    "email": LiteralClass(
        "email",
        re.compile(
            r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
        ),
    ),
    "us-ssn": LiteralClass(
        "us-ssn", re.compile(r"(?<![0-9-])[0-9]{3}-[0-9]{2}-[0-9]{4}(?![0-9-])")
    ),
    "iban": LiteralClass(
        "iban",
        re.compile(r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b"),
        iban,
    ),
}


def compile_classes(
    names: Sequence[str], patterns: Mapping[str, str]
) -> tuple[LiteralClass, ...]:
    """The classes a configuration names; ValueError naming an unknown class or a
    pattern that does not compile."""
    classes = []
    for name in names:
        if name not in BUILTIN:
            known = ", ".join(sorted(BUILTIN))
            raise ValueError(f"unknown literal class {name!r}; known: {known}")
        classes.append(BUILTIN[name])
    for name, source in patterns.items():
        if name in BUILTIN:
            raise ValueError(f"pattern {name!r} has the name of a shipped class")
        try:
            classes.append(LiteralClass(name, re.compile(source)))
        except re.error as exc:
            raise ValueError(f"pattern {name!r} does not compile: {exc}") from None
    return tuple(classes)


class LiteralRedactor:
    """Replaces the classes' matches in text; does nothing without classes."""

    def __init__(self, classes: Sequence[LiteralClass] = ()) -> None:
        self.classes = tuple(classes)

    def __bool__(self) -> bool:
        return bool(self.classes)

    def __call__(self, text: str) -> str:
        for cls in self.classes:
            text = cls.pattern.sub(_replacer(cls), text)
        return text

    def then(self, redact: Callable[[str], str]) -> Callable[[str], str]:
        """redact followed by this redactor (itself if it has no classes)."""
        if not self.classes:
            return redact
        return lambda text: self(redact(text))


def _replacer(cls: LiteralClass) -> Callable[[re.Match[str]], str]:
    mark = f"<redacted:{cls.name}>"

    def replace(match: re.Match[str]) -> str:
        found = match.group(0)
        if cls.check is not None and not cls.check(found):
            return found
        return mark

    return replace


def scrub_chunk(chunk: RecordingChunk, redact: LiteralRedactor) -> RecordingChunk:
    """A recording chunk with the classes' matches replaced in its column names,
    rows, errors and notices (a server's error quotes values: `Key (b)=(4111...)
    already exists`)."""

    def fields(report: ReportFields) -> ReportFields:
        return tuple((code, redact(text)) for code, text in report)

    return attrs.evolve(
        chunk,
        # A server names an unaliased column by its expression, values included.
        columns=None
        if chunk.columns is None
        else tuple(redact(name) for name in chunk.columns),
        rows=tuple(
            tuple(None if value is None else redact(value) for value in row)
            for row in chunk.rows
        ),
        error=None if chunk.error is None else fields(chunk.error),
        notices=tuple(fields(notice) for notice in chunk.notices),
    )
