"""Text from clients and servers made safe and measurable for a terminal.

Everything that replay prints from a recording passes through `clean`, so a
recorded value cannot drive the terminal of the person reading it; `display_width`
counts the columns a string takes, for tables.
"""

from __future__ import annotations

import unicodedata

# Every control character but the line break becomes a visible \xNN escape.
_ESCAPE = {code: f"\\x{code:02x}" for code in [*range(0x20), *range(0x7F, 0xA0)]}
del _ESCAPE[ord("\n")]
_ESCAPE.update({0x2028: "\\u2028", 0x2029: "\\u2029"})


def clean(text: str) -> str:
    """Text with control characters (except line breaks) shown as escapes."""
    return text.translate(_ESCAPE)


def display_width(text: str) -> int:
    """Terminal columns of text: wide East Asian characters take two, combining
    marks none."""
    width = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width
