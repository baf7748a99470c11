"""The shipped packs decide live sessions: read-only, sensitive data, search_path."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.integration.conftest import Proxy

pytestmark = pytest.mark.integration


def test_read_only_target_allows_reads_and_denies_writes(proxy: Proxy) -> None:
    dsn = proxy.dsn(database="app_ro")
    assert (
        proxy.psql("-At", "-c", "select count(*) from t", dsn=dsn).stdout.strip()
        == "10"
    )
    result = proxy.psql("-c", "update t set b = b where id = 1", dsn=dsn, check=False)
    assert (
        result.returncode != 0
        and "42501"
        in proxy.psql(
            "-v",
            "VERBOSITY=verbose",
            "-c",
            "update t set b = b where id = 1",
            dsn=dsn,
            check=False,
        ).stderr
    )
    # A write hidden in a CTE of a SELECT is still a write.
    hidden = proxy.psql(
        "-c",
        "with x as (update t set b = b where id = 1 returning *) select * from x",
        dsn=dsn,
        check=False,
    )
    assert hidden.returncode != 0 and "denied" in hidden.stderr


def test_read_only_target_allows_psql_describe(proxy: Proxy) -> None:
    out = proxy.psql("-c", r"\d t", dsn=proxy.dsn(database="app_ro")).stdout
    assert 'Table "public.t"' in out


def test_sensitive_table_denied_through_a_changed_search_path(proxy: Proxy) -> None:
    # The SET and the SELECT arrive in separate messages: the session must carry
    # the search_path over, or `salaries` would look like public.salaries.
    script = "SET search_path = hr, public;\nselect count(*) from salaries;\n"
    result = proxy.psql("-v", "ON_ERROR_STOP=0", input=script, check=False)
    assert "denied" in result.stderr and "salaries" not in result.stdout
    direct = proxy.psql("-c", "select count(*) from hr.salaries", check=False)
    assert direct.returncode != 0 and "denied" in direct.stderr


def test_sensitive_column_denied_even_through_star(proxy: Proxy) -> None:
    result = proxy.psql("-c", "select * from users", check=False)
    assert result.returncode != 0 and "denied" in result.stderr
    allowed = proxy.psql("-At", "-c", "select count(email) from users")
    assert allowed.stdout.strip().isdigit()


def test_unreadable_search_path_change_is_denied(proxy: Proxy) -> None:
    result = proxy.psql(
        "-c", "select set_config('search_path', a, false) from t limit 1", check=False
    )
    assert result.returncode != 0 and "unknown-search-path" in result.stderr


def test_rules_replay_reports_what_candidate_rules_would_change(
    proxy: Proxy, tmp_path: Path
) -> None:
    marker = f"select 'replay-candidate-{time.time_ns()}'"
    proxy.psql("-c", marker)
    candidate = tmp_path / "candidate.toml"
    candidate.write_text(
        '[[rule]]\nid = "no-selects"\ndescription = "x"\naction = "deny"\n'
        'message = "reads are off today"\nwhen.kind = ["select"]\n'
    )
    result = proxy.pamwire(
        "rules", "replay", "--since", "1h", "--format", "json", str(candidate)
    )
    assert result.returncode == 0, result.stderr
    assert marker in result.stdout and "no-selects" in result.stdout
