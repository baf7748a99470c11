"""Client encodings whose bytes pamwire cannot read as the server does."""

from __future__ import annotations

import pytest

from pamwire.sql.encodings import clean_encoding_name, is_unsafe_client_encoding


@pytest.mark.parametrize(
    "name",
    [
        "SJIS",
        "sjis",
        "Shift_JIS",
        "shift-jis",
        "ShiftJIS",
        "MSKANJI",
        "WIN932",
        "windows932",
        "CP932",
        "SHIFT_JIS_2004",
        "BIG5",
        "win950",
        "GBK",
        "WIN936",
        "GB18030",
        "gb-18030",
        "JOHAB",
        "UHC",
        "WIN949",
        " sjis ",
    ],
)
def test_is_unsafe_client_encoding_spellings(name: str) -> None:
    assert is_unsafe_client_encoding(name)


@pytest.mark.parametrize(
    "name",
    [
        "UTF8",
        "utf-8",
        "UNICODE",
        "LATIN1",
        "EUC_JP",
        "EUC_KR",
        "SQL_ASCII",
        "TCVN",
        "WIN1258",
        "",
        "no-such-encoding",
    ],
)
def test_is_unsafe_client_encoding_allows_ascii_safe(name: str) -> None:
    assert not is_unsafe_client_encoding(name)


def test_clean_encoding_name_keeps_ascii_letters_and_digits() -> None:
    assert clean_encoding_name("Shift_JIS-2004") == "shiftjis2004"
    # A non-ASCII letter is not a letter to PostgreSQL's isalnum in C.
    assert clean_encoding_name("sjİs") == "sjs"
