"""psql through pamwire: reads, writes, denials, transactions, \\d, \\copy, cancel."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from tests.integration.conftest import Proxy

pytestmark = pytest.mark.integration


def test_psql_reads_through_pamwire(proxy: Proxy) -> None:
    out = proxy.psql("-At", "-c", "select count(*) from t").stdout
    assert out.strip() == "10"


def test_psql_unscoped_delete_is_denied_with_42501_naming_the_rule(
    proxy: Proxy,
) -> None:
    result = proxy.psql(
        "-v", "VERBOSITY=verbose", "-c", "DELETE FROM delete_log", check=False
    )
    assert result.returncode != 0
    assert "42501" in result.stderr
    assert "no-unscoped-write" in result.stderr or "unscoped" in result.stderr


def test_psql_session_stays_usable_after_a_denial(proxy: Proxy) -> None:
    script = "DELETE FROM delete_log;\nselect 'still here' as x;\n"
    result = proxy.psql("-At", "-v", "ON_ERROR_STOP=0", input=script, check=False)
    assert "still here" in result.stdout
    assert "denied" in result.stderr


def test_psql_denied_statement_in_transaction_makes_commit_roll_back(
    proxy: Proxy,
) -> None:
    proxy.pg.psql("delete from t where id = 101", database="app")
    script = (
        "begin;\n"
        "insert into t values (101, 'x', 1);\n"
        "drop table t;\n"
        "commit;\n"
        "select count(*) from t where id = 101;\n"
    )
    result = proxy.psql("-At", "-v", "ON_ERROR_STOP=0", input=script, check=False)
    assert "ROLLBACK" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "0"
    assert (
        proxy.pg.psql("select count(*) from t where id = 101", database="app").strip()
        == "0"
    )


def test_psql_multi_statement_query_is_checked_before_any_runs(proxy: Proxy) -> None:
    proxy.pg.psql("delete from delete_log where note = 'multi'", database="app")
    result = proxy.psql(
        "-c",
        "insert into delete_log(id, note) values (9001, 'multi'); drop table t",
        check=False,
    )
    assert result.returncode != 0
    count = proxy.pg.psql(
        "select count(*) from delete_log where note = 'multi'", database="app"
    )
    assert count.strip() == "0"


def test_psql_describe_and_copy(proxy: Proxy, tmp_path) -> None:  # type: ignore[no-untyped-def]
    described = proxy.psql("-c", r"\d t").stdout
    assert 'Table "public.t"' in described
    out_file = tmp_path / "t.csv"
    proxy.psql("-c", rf"\copy (select id, a from t order by id) to '{out_file}' csv")
    assert out_file.read_text().splitlines()[0].startswith("1,")
    proxy.pg.psql("drop table if exists copy_in", database="app")
    proxy.pg.psql("create table copy_in(id int, a text)", database="app", user="app")
    in_file = tmp_path / "in.csv"
    in_file.write_text("".join(f"{i},row{i}\n" for i in range(500)))
    proxy.psql("-c", rf"\copy copy_in from '{in_file}' csv")
    assert (
        proxy.pg.psql("select count(*) from copy_in", database="app").strip() == "500"
    )


def test_psql_ctrl_c_cancels_the_running_query(open_proxy: Proxy) -> None:
    # pg_sleep is a dangerous function for the baseline pack: use the open proxy.
    proxy = open_proxy
    process = subprocess.Popen(
        ["psql", "-X", proxy.dsn(), "-c", "select pg_sleep(30)"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=proxy.env,
    )
    time.sleep(1.0)
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=10)
    assert time.monotonic() - started < 5
    assert "canceling statement due to user request" in err
    active = proxy.pg.psql(
        "select count(*) from pg_stat_activity where query like 'select pg_sleep(30)%'"
    )
    assert active.strip() == "0"


def test_psql_wrong_password_is_refused(proxy: Proxy) -> None:
    dsn = proxy.dsn().replace("password=alice-pw", "password=wrong")
    result = proxy.psql("-c", "select 1", dsn=dsn, check=False)
    assert result.returncode != 0
    assert 'password authentication failed for user "alice"' in result.stderr


def test_psql_unknown_target_gets_a_clear_error(proxy: Proxy) -> None:
    result = proxy.psql("-c", "select 1", dsn=proxy.dsn(database="nope"), check=False)
    assert result.returncode != 0
    assert 'no target named "nope"' in result.stderr


def test_psql_target_down_fails_fast(proxy: Proxy) -> None:
    started = time.monotonic()
    result = proxy.psql("-c", "select 1", dsn=proxy.dsn(database="down"), check=False)
    assert result.returncode != 0
    assert time.monotonic() - started < 5
    assert 'target "down" is unavailable' in result.stderr


def test_psql_upstream_login_refusal_is_forwarded(proxy: Proxy) -> None:
    result = proxy.psql(
        "-c", "select 1", dsn=proxy.dsn(database="wrongpw"), check=False
    )
    assert result.returncode != 0
    assert 'password authentication failed for user "app"' in result.stderr


def test_psql_md5_upstream_works(proxy: Proxy) -> None:
    out = proxy.psql("-At", "-c", "select current_user", dsn=proxy.dsn(database="md5"))
    assert out.stdout.strip() == "app"


def test_psql_statements_reach_the_audit_trail(proxy: Proxy) -> None:
    marker = f"select 'audit-marker-{time.time_ns()}'"
    proxy.psql("-c", marker)
    proxy.psql("-c", "DELETE FROM delete_log", check=False)
    events = proxy.log_events("--user", "alice")
    allowed = [e for e in events if e["statement"] == marker]
    assert len(allowed) == 1 and allowed[0]["verdict"] == "allow"
    assert allowed[0]["target"] == "app" and allowed[0]["session"]
    denied = [e for e in events if e["statement"] == "DELETE FROM delete_log"]
    assert denied and all(e["verdict"] == "deny" and e["rule"] for e in denied)


def test_psql_application_name_reaches_the_server(proxy: Proxy) -> None:
    dsn = proxy.dsn(application_name="pamwire-test-app")
    out = proxy.psql("-At", "-c", "show application_name", dsn=dsn).stdout
    assert out.strip() == "pamwire-test-app"
    options = proxy.dsn(options="'-c work_mem=7MB'")
    out = proxy.psql("-At", "-c", "show work_mem", dsn=options).stdout
    assert out.strip() == "7MB"


def test_psql_sql_level_prepare_and_execute(proxy: Proxy) -> None:
    script = (
        "PREPARE p1 AS select count(*) from t;\n"
        "EXECUTE p1;\n"
        "DEALLOCATE p1;\n"
        "EXECUTE p1;\n"
        "PREPARE wipe AS DELETE FROM delete_log;\n"
        "select 'end';\n"
    )
    result = proxy.psql("-At", "-v", "ON_ERROR_STOP=0", input=script, check=False)
    lines = result.stdout.split()
    assert "10" in lines and "end" in lines
    assert '"unknown-prepared-statement"' in result.stderr
    assert "unscoped" in result.stderr  # the PREPARE of an unscoped DELETE is denied


def test_psql_startup_setting_that_lifts_read_only_is_refused(proxy: Proxy) -> None:
    dsn = proxy.dsn(options="'-c default_transaction_read_only=off'")
    result = proxy.psql("-c", "select 1", dsn=dsn, check=False)
    assert result.returncode != 0
    assert (
        "startup setting default_transaction_read_only is not allowed" in result.stderr
    )


def test_psql_startup_search_path_is_passed_on_and_followed(proxy: Proxy) -> None:
    dsn = proxy.dsn(options="'-c search_path=hr'")
    assert proxy.psql("-At", "-c", "show search_path", dsn=dsn).stdout.strip() == "hr"
    # Unqualified `salaries` now means hr.salaries, which the sensitive-data pack
    # refuses: pamwire resolved the name with the startup search_path.
    result = proxy.psql("-c", "select count(*) from salaries", dsn=dsn, check=False)
    assert result.returncode != 0 and "denied-tables" in result.stderr
