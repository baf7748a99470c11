"""Startup settings: options parsing, refused settings, search_path."""

from __future__ import annotations

import pytest

from pamwire.errors import ProtocolError
from pamwire.pg.startup import (
    option_settings,
    parse_search_path,
    refused_settings,
    requested_settings,
    split_options,
)


def test_split_options_honours_backslash_escapes() -> None:
    assert split_options(r"-c a=b\ c  --x=y") == ["-c", "a=b c", "--x=y"]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ("-c work_mem=7MB", [("work_mem", "7MB")]),
        ("-cwork_mem=7MB", [("work_mem", "7MB")]),
        ("--work-mem=7MB", [("work_mem", "7MB")]),
        ("-c DateStyle=ISO -c geqo=off", [("datestyle", "ISO"), ("geqo", "off")]),
    ],
)
def test_option_settings_reads_each_form(
    options: str, expected: list[tuple[str, str]]
) -> None:
    assert option_settings(options) == expected


@pytest.mark.parametrize("options", ["-c", "-D /tmp", "-c novalue", "-c a=b\\"])
def test_option_settings_refuses_what_it_cannot_vouch_for(options: str) -> None:
    with pytest.raises(ProtocolError):
        option_settings(options)


def test_requested_settings_combines_parameters_and_options() -> None:
    params = {
        "user": "alice",
        "database": "app",
        "application_name": "psql",
        "options": "-c default_transaction_read_only=off",
        "_pq_.x": "1",
    }
    settings = requested_settings(params)
    assert ("application_name", "psql") in settings
    assert ("default_transaction_read_only", "off") in settings
    assert all(name not in ("user", "database", "options") for name, _ in settings)
    assert refused_settings(settings) == ["default_transaction_read_only"]


def test_refused_settings_catches_top_level_parameters_too() -> None:
    settings = requested_settings({"user": "a", "ROLE": "postgres"})
    assert refused_settings(settings) == ["role"]


def test_parse_search_path_folds_and_quotes() -> None:
    assert parse_search_path('"$user", HR, "Mixed"', user="app") == (
        "app",
        "hr",
        "Mixed",
    )
    assert parse_search_path("", user="app") == ()


def test_refused_settings_allows_turning_read_only_on() -> None:
    on = requested_settings(
        {"user": "a", "options": "-c default_transaction_read_only=on"}
    )
    assert refused_settings(on) == []
    off = requested_settings({"user": "a", "options": "-c transaction_read_only=off"})
    assert refused_settings(off) == ["transaction_read_only"]
