"""Decision time per statement: analysis plus the shipped packs, cached and cold.

Run with ``python benchmarks/rule_decisions.py``. Cold clears both caches (the
analysis by text, the decisions by facts) before every decision; cached repeats
the same text. Prints one row per workload with the median and the 95th
percentile; it asserts nothing, since timings depend on the machine.
"""

from __future__ import annotations

import json
import pathlib
import statistics
import time

from pamwire.rules.engine import RuleContext, RuleSet, strongest
from pamwire.rules.loader import builtin_pack, load_rules
from pamwire.sql import pg

REPO = pathlib.Path(__file__).parents[1]
CORPUS = REPO / "fixtures" / "sql" / "corpus-sql-cases.jsonl"

# The statements pgbench's built-in scripts send (tpcb-like and select-only).
PGBENCH = [
    "UPDATE pgbench_accounts SET abalance = abalance + -4321 WHERE aid = 87213;",
    "SELECT abalance FROM pgbench_accounts WHERE aid = 87213;",
    "UPDATE pgbench_tellers SET tbalance = tbalance + -4321 WHERE tid = 7;",
    "UPDATE pgbench_branches SET bbalance = bbalance + -4321 WHERE bid = 1;",
    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) "
    "VALUES (7, 1, 87213, -4321, CURRENT_TIMESTAMP);",
    "BEGIN;",
    "END;",
]

JOIN_10 = (
    "SELECT t0.id, t9.name FROM t0 "
    + " ".join(
        f"JOIN t{n} ON t{n}.id = t{n - 1}.ref_id AND t{n}.active" for n in range(1, 10)
    )
    + " WHERE t0.id = 42 ORDER BY t9.name LIMIT 10"
)

CONTEXTS = [
    RuleContext(user="bench", target="bench", role="read-write"),
    RuleContext(user="bench", target="bench", role="read-only"),
]

#: Rounds per statement; each round times one decision.
ROUNDS = 200


def decide(ruleset: RuleSet, sql: str, ctx: RuleContext) -> str:
    analysis = pg.analyze(sql)
    return strongest(ruleset.decide_all(analysis, ctx)).verdict


def timings(ruleset: RuleSet, sql: str, ctx: RuleContext, *, cold: bool) -> list[float]:
    samples = []
    decide(ruleset, sql, ctx)
    for _ in range(ROUNDS):
        if cold:
            pg.cache_clear()
            ruleset.cache_clear()
        started = time.perf_counter()
        decide(ruleset, sql, ctx)
        samples.append(time.perf_counter() - started)
    return samples


def row(name: str, ruleset: RuleSet, statements: list[str]) -> str:
    cells = [f"{name:<22}", f"{len(statements):>5}"]
    for cold in (True, False):
        samples = []
        for sql in statements:
            for ctx in CONTEXTS:
                samples.extend(timings(ruleset, sql, ctx, cold=cold))
        samples.sort()
        p50 = statistics.median(samples) * 1e6
        p95 = samples[int(len(samples) * 0.95)] * 1e6
        cells += [f"{p50:>9.1f}", f"{p95:>9.1f}"]
    return " ".join(cells)


def main() -> None:
    ruleset = load_rules(
        [builtin_pack(name) for name in ("baseline", "read-only", "sensitive-data")]
    )
    corpus = [
        json.loads(line)["sql"]
        for line in CORPUS.read_text("utf-8").splitlines()
        if json.loads(line)["dialect"] == "postgres"
    ]
    workloads = {
        "pgbench": PGBENCH,
        "pgbench UPDATE": PGBENCH[:1],
        "10-table join": [JOIN_10],
        "corpus (postgres)": corpus,
    }
    print(f"{len(ruleset.rules)} rules, {ROUNDS} rounds, times in µs")
    header = ["workload", "stmts", "cold p50", "cold p95", "cached p50", "p95"]
    print(f"{header[0]:<22} {header[1]:>5} " + " ".join(f"{h:>9}" for h in header[2:]))
    for name, statements in workloads.items():
        print(row(name, ruleset, statements))


if __name__ == "__main__":
    main()
