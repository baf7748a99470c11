"""Tell which PostgreSQL client encodings would make the server read other statements.

pamwire reads statement text as UTF-8. BIG5, GB18030, GBK, JOHAB, SJIS,
SHIFT_JIS_2004 and UHC are client-only encodings whose multibyte characters can
have an ASCII byte (a quote, a backslash) as their second byte, so the server
would split the same bytes into different tokens than pamwire does. Names are
read the way PostgreSQL reads them (encnames.c, ``clean_encoding_name``): only
ASCII letters and digits count, case-insensitively.
"""

from __future__ import annotations

# The names PostgreSQL 15 accepts for the client-only encodings (its encnames.c
# table, cleaned), plus the Windows code page spellings the server itself does
# not accept (cp932 ...): refusing those costs nothing and guards a server that
# learns them.
_UNSAFE = frozenset(
    {
        # BIG5
        "big5",
        "win950",
        "windows950",
        "cp950",
        # GB18030
        "gb18030",
        # GBK
        "gbk",
        "win936",
        "windows936",
        "cp936",
        # JOHAB
        "johab",
        # SJIS
        "sjis",
        "shiftjis",
        "mskanji",
        "win932",
        "windows932",
        "cp932",
        # SHIFT_JIS_2004
        "shiftjis2004",
        # UHC
        "uhc",
        "win949",
        "windows949",
        "cp949",
    }
)


def clean_encoding_name(name: str) -> str:
    """``name`` as PostgreSQL compares it: ASCII letters and digits, lowercased."""
    return "".join(ch for ch in name if ch.isascii() and ch.isalnum()).lower()


def is_unsafe_client_encoding(name: str) -> bool:
    """Whether ``name`` spells a client encoding whose bytes pamwire cannot read.

    ``Shift_JIS``, ``sjis``, ``SJIS`` and ``shift-jis`` are one encoding. A name
    PostgreSQL does not know is not unsafe here: the server refuses it.
    """
    return clean_encoding_name(name) in _UNSAFE
