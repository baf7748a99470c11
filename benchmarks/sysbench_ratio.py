"""sysbench OLTP through pamwire beside a direct connection and a trio relay.

Theory of operation: one throwaway MariaDB 10.11 serves the setups on 127.0.0.1
(direct, the byte relay of trio_relay.py, pamwire with its rules and audit trail on,
and ProxySQL when it is installed). Each round runs every workload against every
setup, one after the other, with the setup order rotated per round, so drift on a
shared machine hits all setups alike. Results are reported as ratios of mean
transactions per second, as microseconds added per round trip at one thread, and as
the proxy's own CPU time per transaction (from /proc, so other load on the machine
does not count). Every process and folder is cleaned up, also on Ctrl+C.

Process handling is shared with pgbench_ratio.py (same folder).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import logging
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pgbench_ratio import (
    HOST,
    BenchError,
    _interrupt_on_signals,
    _positive,
    _tail,
    audit_counts,
    machine,
    rotated,
    serve_pamwire,
    start_process,
    temp_folder,
    wait_for_port,
)

from pamwire.localserver import free_port
from pamwire.mariadbcluster import QUICK_SETTINGS, MariaDBServer, find_mariadb

log = logging.getLogger("pamwire.bench")

WORKLOADS = ("oltp_point_select", "oltp_read_only", "oltp_read_write")
DEFAULT_WORKLOADS = ("oltp_point_select", "oltp_read_only")

DB_NAME = "sbtest"
DB_USER = "sbtest"
PERSON = "bench_person"
TARGET = "sbtest"

# Errors sysbench may skip and retry in a read-write run (deadlock, lock wait
# timeout); any other error ends the run. Read-only runs tolerate none.
RW_IGNORED_ERRORS = "1213,1205,1020"

# Bounds that only keep a wedged process from hanging the benchmark.
SYSBENCH_SLACK = 60.0

MARIADB_SETTINGS = {
    **QUICK_SETTINGS,
    "innodb-buffer-pool-size": "128M",
    "max-connections": "200",
}

_NUMBER = r"([0-9.]+)"
_TRANSACTIONS = re.compile(
    rf"^\s*transactions:\s+(\d+)\s+\({_NUMBER} per sec\.\)", re.M
)
_QUERIES = re.compile(rf"^\s*queries:\s+(\d+)\s+\({_NUMBER} per sec\.\)", re.M)
_IGNORED = re.compile(r"^\s*ignored errors:\s+(\d+)", re.M)
_RECONNECTS = re.compile(r"^\s*reconnects:\s+(\d+)", re.M)
_LATENCY_AVG = re.compile(rf"^\s*avg:\s+{_NUMBER}$", re.M)

_PAMWIRE_CONFIG = """\
# written by benchmarks/sysbench_ratio.py
[[listener]]
protocol = "mysql"
host = "127.0.0.1"
port = {port}

[target.{target}]
protocol = "mysql"
host = "127.0.0.1"
port = {db_port}
database = "{database}"
credential.user = "{user}"
credential.password_file = "secret.pw"

[audit]
path = "audit.db"

[users]
path = "users.db"

[rules]
files = ["pack:baseline"]
"""


@dataclass(frozen=True)
class Endpoint:
    """Where sysbench connects for one setup, and as whom."""

    name: str
    port: int
    user: str
    password: str
    database: str
    pid: int | None = None  # the proxy process whose CPU time is measured
    log_path: Path | None = None
    audit_path: Path | None = None


@dataclass(frozen=True)
class Run:
    """What one sysbench run reported, and the proxy's CPU time during it."""

    tps: float
    qps: float
    latency_ms: float
    transactions: int
    queries: int
    ignored_errors: int
    proxy_cpu_s: float | None


# -- the setups -------------------------------------------------------------------


def start_mariadb(stack: contextlib.ExitStack, password: str) -> MariaDBServer:
    if find_mariadb() is None:
        raise BenchError("mariadb is not installed (apt-get install mariadb-server)")
    folder = temp_folder(stack, "pamwire-bench-mariadb-")
    folder.chmod(0o755)
    server = MariaDBServer(
        folder,
        port=free_port(),
        root_password=secrets.token_urlsafe(24),
        settings=MARIADB_SETTINGS,
    )
    stack.callback(server.stop)
    server.init()
    server.start()
    server.create_database(DB_NAME)
    server.create_user(DB_USER, password, grant_database=DB_NAME)
    log.info("mariadb on port %s", server.port)
    return server


def start_pamwire(
    stack: contextlib.ExitStack, db_port: int, db_password: str
) -> Endpoint:
    folder = temp_folder(stack, "pamwire-bench-pw-")
    secret = folder / "secret.pw"
    secret.touch(mode=0o600)
    secret.write_text(db_password + "\n", encoding="utf-8")
    port = free_port()
    config = folder / "pamwire.toml"
    config.write_text(
        _PAMWIRE_CONFIG.format(
            port=port, db_port=db_port, database=DB_NAME, user=DB_USER, target=TARGET
        ),
        encoding="utf-8",
    )

    person_password, logp, proc = serve_pamwire(stack, config, port)
    return Endpoint(
        "pamwire",
        port,
        PERSON,
        person_password,
        TARGET,
        proc.pid,
        logp,
        folder / "audit.db",
    )


def start_relay(stack: contextlib.ExitStack, db_port: int, password: str) -> Endpoint:
    folder = temp_folder(stack, "pamwire-bench-relay-")
    port = free_port()
    logp = folder / "relay.log"
    relay = Path(__file__).with_name("trio_relay.py")
    argv = [sys.executable, str(relay), "--listen-port", str(port)]
    proc = start_process(
        stack,
        "trio relay",
        [*argv, "--target-port", str(db_port)],
        logp,
        stop_signal=signal.SIGINT,
    )
    wait_for_port("trio relay", port, proc, logp)
    log.info("trio relay on port %s", port)
    return Endpoint("relay", port, DB_USER, password, DB_NAME, proc.pid, logp)


def proxysql_missing_reason() -> str | None:
    """Why ProxySQL is not measured (None when it is installed).

    TODO(bench): a ProxySQL setup is not written yet; Debian 12 does not package
    ProxySQL, so it would come from the vendor's repository, which the benchmark
    does not add by itself.
    """
    if shutil.which("proxysql") is None:
        return "proxysql is not installed (Debian 12 does not package it): skipped"
    return "proxysql is installed but this benchmark has no proxysql setup yet"


# -- sysbench ---------------------------------------------------------------------


def _sysbench_argv(
    endpoint: Endpoint, workload: str, args: argparse.Namespace
) -> list[str]:
    return [
        "sysbench",
        workload,
        "--db-driver=mysql",
        f"--mysql-host={HOST}",
        f"--mysql-port={endpoint.port}",
        f"--mysql-user={endpoint.user}",
        f"--mysql-password={endpoint.password}",
        f"--mysql-db={endpoint.database}",
        "--mysql-ssl=off",
        f"--tables={args.tables}",
        f"--table-size={args.table_size}",
    ]


def _cpu_seconds(pid: int | None) -> float | None:
    """utime + stime of a process and all its threads, in seconds."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError as exc:
        raise BenchError(f"cannot read the cpu time of pid {pid}: {exc}") from exc
    # Fields 14 and 15 of proc(5); the split above starts at field 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def prepare(endpoint: Endpoint, args: argparse.Namespace) -> None:
    argv = [*_sysbench_argv(endpoint, "oltp_read_only", args), "prepare"]
    log.info("sysbench prepare: %d table(s) of %d rows", args.tables, args.table_size)
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=900, check=False
    )
    if result.returncode != 0 or "FATAL" in result.stdout + result.stderr:
        raise BenchError(
            f"sysbench prepare failed:\n{result.stdout.strip()}\n{result.stderr}"
        )


def sysbench(
    endpoint: Endpoint,
    workload: str,
    args: argparse.Namespace,
    *,
    threads: int,
    duration: int,
) -> Run:
    """Run sysbench once; raises BenchError on any error sysbench did not ignore."""
    argv = _sysbench_argv(endpoint, workload, args)
    argv += [f"--threads={threads}", f"--time={duration}", "--report-interval=0"]
    if workload == "oltp_read_write":
        argv.append(f"--mysql-ignore-errors={RW_IGNORED_ERRORS}")
    else:
        argv.append("--mysql-ignore-errors=none")
    argv.append("run")

    cpu_before = _cpu_seconds(endpoint.pid)
    try:
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=duration + SYSBENCH_SLACK,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(
            f"sysbench {workload} against {endpoint.name} timed out"
        ) from exc
    cpu_after = _cpu_seconds(endpoint.pid)

    out, err = result.stdout, result.stderr
    transactions = _TRANSACTIONS.search(out)
    queries = _QUERIES.search(out)
    ignored = _IGNORED.search(out)
    reconnects = _RECONNECTS.search(out)
    latency = _LATENCY_AVG.search(out)
    problems = []
    if result.returncode != 0:
        problems.append(f"exit code {result.returncode}")
    if re.search(r"FATAL|ALERT", out + err):
        problems.append("FATAL in the output")
    if transactions is None or int(transactions.group(1)) == 0:
        problems.append("no transactions")
    if queries is None or latency is None or ignored is None:
        problems.append("no queries, latency or error count")
    if ignored is not None and int(ignored.group(1)) and workload != "oltp_read_write":
        problems.append(f"{ignored.group(1)} ignored errors")
    if reconnects is not None and int(reconnects.group(1)):
        problems.append(f"{reconnects.group(1)} reconnects")
    if problems or transactions is None or queries is None or latency is None:
        shown = " ".join(a for a in argv if not a.startswith("--mysql-password"))
        raise BenchError(
            f"sysbench {workload} against {endpoint.name}: {', '.join(problems)}\n"
            f"$ {shown}\n{out.strip()}\n{err.strip()}\n"
            f"{_tail(endpoint.log_path)}"
        )
    proxy_cpu = None
    if cpu_before is not None and cpu_after is not None:
        proxy_cpu = cpu_after - cpu_before
    return Run(
        tps=float(transactions.group(2)),
        qps=float(queries.group(2)),
        latency_ms=float(latency.group(1)),
        transactions=int(transactions.group(1)),
        queries=int(queries.group(1)),
        ignored_errors=int(ignored.group(1)) if ignored else 0,
        proxy_cpu_s=proxy_cpu,
    )


Results = dict[str, dict[str, dict[str, list[Run]]]]


def measure(endpoints: Sequence[Endpoint], args: argparse.Namespace) -> Results:
    """Run all rounds: results[kind][workload][setup] -> runs.

    kind is throughput (--threads N), one_thread (--threads 1) or warmup.
    """
    results: Results = {
        kind: {w: {e.name: [] for e in endpoints} for w in args.workloads}
        for kind in ("throughput", "one_thread", "warmup")
    }
    if args.warmup > 0:
        for endpoint in endpoints:
            log.info("warm-up: %s", endpoint.name)
            results["warmup"][args.workloads[0]][endpoint.name].append(
                sysbench(
                    endpoint,
                    args.workloads[0],
                    args,
                    threads=args.threads,
                    duration=args.warmup,
                )
            )

    for round_no in range(args.rounds):
        for workload in args.workloads:
            for endpoint in rotated(endpoints, round_no):
                for kind, threads in (("throughput", args.threads), ("one_thread", 1)):
                    run = sysbench(
                        endpoint,
                        workload,
                        args,
                        threads=threads,
                        duration=args.duration,
                    )
                    results[kind][workload][endpoint.name].append(run)
                    cpu = _cpu_per_tx_us([run])
                    log.info(
                        "round %d/%d %-17s %-8s t=%-2d %8.0f tps %7.3f ms%s",
                        round_no + 1,
                        args.rounds,
                        workload,
                        endpoint.name,
                        threads,
                        run.tps,
                        run.latency_ms,
                        "" if cpu is None else f" {cpu:6.0f} cpu-us/tx",
                    )
    return results


# -- report -----------------------------------------------------------------------


def _cpu_per_tx_us(runs: Sequence[Run]) -> float | None:
    cpu = [r.proxy_cpu_s for r in runs]
    if not runs or any(c is None for c in cpu):
        return None
    transactions = sum(r.transactions for r in runs)
    return sum(c for c in cpu if c is not None) / transactions * 1e6


def summarise(results: Results, setups: Sequence[str]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for workload, per_setup in results["throughput"].items():
        one = results["one_thread"][workload]
        tps = {s: statistics.fmean(r.tps for r in per_setup[s]) for s in setups}
        latency = {s: statistics.fmean(r.latency_ms for r in one[s]) for s in setups}
        # Round trips per transaction: sysbench's queries per transaction (BEGIN
        # and COMMIT included); each is one command and its whole reply.
        trips = sum(r.queries for r in one["direct"]) / sum(
            r.transactions for r in one["direct"]
        )
        entry: dict[str, Any] = {
            "tps": tps,
            "tps_runs": {s: [r.tps for r in per_setup[s]] for s in setups},
            "one_thread_latency_ms": latency,
            "round_trips_per_tx": trips,
            "ratios": {},
            "added_us_per_round_trip": {},
            "proxy_cpu_us_per_tx": {},
        }
        for proxy in setups:
            if proxy == "direct":
                continue
            entry["ratios"][f"{proxy}/direct"] = tps[proxy] / tps["direct"]
            added = (latency[proxy] - latency["direct"]) * 1000.0 / trips
            entry["added_us_per_round_trip"][proxy] = added
            cpu = _cpu_per_tx_us(per_setup[proxy])
            if cpu is not None:
                entry["proxy_cpu_us_per_tx"][proxy] = cpu
        if "pamwire" in setups and "relay" in setups:
            entry["ratios"]["pamwire/relay"] = tps["pamwire"] / tps["relay"]
        summary[workload] = entry
    return summary


def markdown(summary: dict[str, Any], setups: Sequence[str], threads: int) -> str:
    proxies = [s for s in setups if s != "direct"]
    ratio_names = [f"{p}/direct" for p in proxies]
    if "pamwire" in setups and "relay" in setups:
        ratio_names.append("pamwire/relay")
    lines = [f"Mean TPS at {threads} threads:", ""]
    header = ["workload", *setups, *ratio_names]
    lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for workload, entry in summary.items():
        cells = [workload]
        cells += [f"{entry['tps'][s]:,.0f}" for s in setups]
        cells += [f"{entry['ratios'][r]:.2f}" for r in ratio_names]
        lines.append("| " + " | ".join(cells) + " |")

    lines += [
        "",
        "One thread: average latency per transaction direct, and µs each proxy adds "
        "per round trip; the proxy's CPU time per transaction at "
        f"{threads} threads:",
        "",
    ]
    header = ["workload", "trips/tx", "direct ms"]
    header += [f"{p} +µs/trip" for p in proxies]
    header += [f"{p} cpu µs/tx" for p in proxies]
    lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for workload, entry in summary.items():
        cells = [
            workload,
            f"{entry['round_trips_per_tx']:.0f}",
            f"{entry['one_thread_latency_ms']['direct']:.3f}",
        ]
        cells += [f"{entry['added_us_per_round_trip'][p]:+.0f}" for p in proxies]
        cells += [
            f"{entry['proxy_cpu_us_per_tx'][p]:.0f}"
            if p in entry["proxy_cpu_us_per_tx"]
            else "-"
            for p in proxies
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def tool_versions() -> dict[str, str]:
    binaries = find_mariadb()
    argvs = {"sysbench": ["sysbench", "--version"]}
    if binaries is not None:
        argvs["mariadbd"] = [str(binaries.server), "--version"]
    versions = {}
    for name, argv in argvs.items():
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            versions[name] = out.stdout.strip().splitlines()[0] if out.stdout else ""
    return versions


# -- main -------------------------------------------------------------------------


def _workloads(text: str) -> list[str]:
    chosen = [w.strip() for w in text.split(",") if w.strip()]
    for workload in chosen:
        if workload not in WORKLOADS:
            raise argparse.ArgumentTypeError(
                f"unknown workload {workload!r}; expected {', '.join(WORKLOADS)}"
            )
    if not chosen:
        raise argparse.ArgumentTypeError("no workload given")
    return chosen


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="sysbench OLTP through pamwire beside direct and a bare trio "
        "relay, interleaved per round; prints ratios, µs per round trip and proxy "
        "CPU per transaction."
    )
    parser.add_argument("--duration", type=_positive, default=10, help="s per run")
    parser.add_argument("--rounds", type=_positive, default=3)
    parser.add_argument("--threads", type=_positive, default=8)
    parser.add_argument(
        "--workloads",
        type=_workloads,
        default=list(DEFAULT_WORKLOADS),
        help=f"comma list of {', '.join(WORKLOADS)}",
    )
    parser.add_argument("--tables", type=_positive, default=1)
    parser.add_argument("--table-size", type=_positive, default=10000)
    parser.add_argument("--warmup", type=int, default=2, help="s per setup, 0: none")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--skip-relay", action="store_true")
    parser.add_argument(
        "--skip-pamwire",
        action="store_true",
        help="measure only the reference setups (to check the harness)",
    )
    return parser.parse_args(argv)


@contextlib.contextmanager
def setups(args: argparse.Namespace) -> Iterator[list[Endpoint]]:
    """Start every setup; stop them all (and remove their folders) on exit."""
    with contextlib.ExitStack() as stack:
        password = secrets.token_urlsafe(18)
        server = start_mariadb(stack, password)
        direct = Endpoint("direct", server.port, DB_USER, password, DB_NAME)
        prepare(direct, args)
        endpoints = [direct]
        if not args.skip_relay:
            endpoints.append(start_relay(stack, server.port, password))
        if not args.skip_pamwire:
            endpoints.append(start_pamwire(stack, server.port, password))
        reason = proxysql_missing_reason()
        if reason is not None:
            print(f"sysbench_ratio: {reason}", file=sys.stderr)
        yield endpoints


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr
    )
    _interrupt_on_signals()
    if os.geteuid() != 0:
        print("sysbench_ratio: run as root (mariadb runs as the mysql user)")
        return 2
    if shutil.which("sysbench") is None:
        print("sysbench_ratio: sysbench is not installed (apt-get install sysbench)")
        return 2
    started = datetime.datetime.now(datetime.UTC)
    try:
        with setups(args) as endpoints:
            results = measure(endpoints, args)
            audit = {
                e.name: audit_counts(e.audit_path) for e in endpoints if e.audit_path
            }
    except BenchError as exc:
        print(f"sysbench_ratio: FAILED: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("sysbench_ratio: interrupted; everything stopped", file=sys.stderr)
        return 130

    names = [e.name for e in endpoints]
    summary = summarise(results, names)
    print(markdown(summary, names, args.threads))
    print()
    for name, counts in audit.items():
        queries = sum(
            run.queries
            for by_workload in results.values()
            for runs in by_workload.values()
            for run in runs[name]
        )
        shown = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "none"
        print(
            f"{name} audit trail: statement events by verdict {shown}; "
            f"sysbench queries through {name}: {queries}"
        )

    if args.json is not None:
        report = {
            "date": started.isoformat(timespec="seconds"),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "machine": {**machine(), "versions": tool_versions()},
            "settings": {
                "duration": args.duration,
                "rounds": args.rounds,
                "threads": args.threads,
                "workloads": args.workloads,
                "tables": args.tables,
                "table_size": args.table_size,
                "mariadb": MARIADB_SETTINGS,
            },
            "summary": summary,
            "audit_statement_events": audit,
            "runs": {
                kind: {
                    w: {s: [vars(r) for r in runs] for s, runs in per.items()}
                    for w, per in by_workload.items()
                }
                for kind, by_workload in results.items()
            },
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
