"""Tests of the literal classes the audit trail does not keep."""

from __future__ import annotations

import pytest

from pamwire.audit import literals
from pamwire.audit.literals import LiteralRedactor, compile_classes


def _redactor(*names: str, **patterns: str) -> LiteralRedactor:
    return LiteralRedactor(compile_classes(names, patterns))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "INSERT INTO pay VALUES ('4111 1111 1111 1111')",
            "INSERT INTO pay VALUES ('<redacted:card-number>')",
        ),
        (
            "SELECT * FROM pay WHERE pan = 4111111111111111",
            "SELECT * FROM pay WHERE pan = <redacted:card-number>",
        ),
        (
            "UPDATE t SET c = '5500-0000-0000-0004'",
            "UPDATE t SET c = '<redacted:card-number>'",
        ),
        # Not a card: the Luhn digit is wrong, or the run is part of a longer one.
        ("SELECT 4111111111111112", "SELECT 4111111111111112"),
        ("SELECT 41111111111111110000000", "SELECT 41111111111111110000000"),
    ],
)
def test_literals_card_numbers_pass_luhn(text: str, expected: str) -> None:
    assert _redactor("card-number")(text) == expected


def test_literals_email_ssn_iban() -> None:
    redact = _redactor("email", "us-ssn", "iban")
    text = (
        "SELECT 1 FROM p WHERE mail = 'ann.lee+x@example.co.uk' AND ssn = '078-05-1120'"
        " AND acct = 'GB82 WEST 1234 5698 7654 32' AND other = 'GB00WEST12345698765432'"
    )
    assert redact(text) == (
        "SELECT 1 FROM p WHERE mail = '<redacted:email>' AND ssn = '<redacted:us-ssn>'"
        " AND acct = '<redacted:iban>' AND other = 'GB00WEST12345698765432'"
    )


def test_literals_own_patterns() -> None:
    redact = _redactor(**{"employee-id": r"EMP-[0-9]{6}"})
    assert redact("SELECT * FROM hr WHERE id = 'EMP-123456'") == (
        "SELECT * FROM hr WHERE id = '<redacted:employee-id>'"
    )


def test_literals_config_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="unknown literal class 'cards'"):
        compile_classes(["cards"], {})
    with pytest.raises(ValueError, match="does not compile"):
        compile_classes([], {"bad": "("})
    with pytest.raises(ValueError, match="name of a shipped class"):
        compile_classes([], {"email": "x"})


def test_literals_without_classes_change_nothing() -> None:
    redact = LiteralRedactor()
    assert not redact
    assert redact.then(str.upper) is str.upper


def test_literals_luhn_and_iban_checks() -> None:
    assert literals.luhn("4111 1111 1111 1111")
    assert not literals.luhn("4111 1111 1111 1112")
    assert literals.iban("DE89 3704 0044 0532 0130 00")
    assert not literals.iban("DE88 3704 0044 0532 0130 00")


def test_literals_scrub_recorded_rows_errors_and_notices() -> None:
    from pamwire.audit.recording import RecordingChunk

    chunk = RecordingChunk(
        session="s",
        seq=1,
        event_id="e",
        statement="INSERT INTO u VALUES (9, '<redacted:card-number>')",
        started=1.0,
        finished=2.0,
        status="error",
        columns=("b", "CONCAT('ann@example.com')"),
        rows=(("4111111111111111", "x"), (None, "y")),
        error=(("C", "23505"), ("D", "Key (b)=(4111111111111111) already exists.")),
        notices=((("M", "mail ann@example.com"),),),
    )
    scrubbed = literals.scrub_chunk(chunk, _redactor("card-number", "email"))
    assert "4111111111111111" not in repr(scrubbed)
    assert "ann@example.com" not in repr(scrubbed)
    assert scrubbed.rows == (("<redacted:card-number>", "x"), (None, "y"))
    assert scrubbed.columns == ("b", "CONCAT('<redacted:email>')")
    assert dict(scrubbed.error or ())["C"] == "23505"
