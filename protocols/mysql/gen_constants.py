"""Generate pamwire/mysql/constants.py from protocols/mysql/constants.toml.

Run from the repository root: python protocols/mysql/gen_constants.py. The test
suite calls render() and compares the result with the committed module.
"""

from __future__ import annotations

import ast
import operator
import pathlib
import sys
import tomllib
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent
SOURCE = HERE / "constants.toml"
TARGET = HERE.parent.parent / "pamwire" / "mysql" / "constants.py"

HEADER = '''\
"""Numeric tables of the MySQL/MariaDB protocol: capabilities, status, commands, types.

GENERATED from protocols/mysql/constants.toml by protocols/mysql/gen_constants.py;
do not edit by hand. A test checks that this module is current.
"""

from __future__ import annotations

import enum
from typing import Final
'''

_OPS = {ast.LShift: operator.lshift, ast.BitOr: operator.or_}


def _value(text: str) -> int:
    """Evaluate an integer literal or a shift/or expression of literals."""

    def walk(node: ast.AST) -> int:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return int(_OPS[type(node.op)](walk(node.left), walk(node.right)))
        raise ValueError(f"unsupported value {text!r}")

    return walk(ast.parse(text, mode="eval").body)


def _literal(value: int, flag: bool) -> str:
    if flag and value and value & (value - 1) == 0:
        return f"1 << {value.bit_length() - 1}"
    return f"0x{value:02X}" if not flag and value > 9 else str(value)


def render(data: dict[str, Any]) -> str:
    """Return the text of constants.py for the parsed toml data."""
    parts = [HEADER]
    tables = {k: v for k, v in data.items() if isinstance(v, dict) and "kind" in v}
    for name, table in tables.items():
        flag = table["kind"] == "flag"
        base = "enum.IntFlag" if flag else "enum.IntEnum"
        lines = [f"\n\nclass {name}({base}):", f'    """{table["doc"]}"""', ""]
        for member, text in table["values"].items():
            lines.append(f"    {member} = {_literal(_value(text), flag)}")
        parts.append("\n".join(lines) + "\n")

    types = tables["ColumnType"]["values"]
    sizes = data["binary_value_sizes"]
    temporal = data["binary_temporal"]["types"]
    for member in [*sizes, *temporal]:
        if member not in types:
            raise ValueError(f"unknown column type {member!r}")
    lines = [
        "",
        "",
        "# Byte widths of fixed-size binary-protocol values, by column type.",
        "BINARY_VALUE_SIZES: Final[dict[int, int]] = {",
    ]
    lines += [f"    ColumnType.{k}: {v}," for k, v in sizes.items()]
    lines += [
        "}",
        "",
        "# Binary-protocol temporal values: a 1-byte length, then that many bytes.",
        "BINARY_TEMPORAL_TYPES: Final = frozenset(",
        "    {",
    ]
    lines += [f"        ColumnType.{k}," for k in temporal]
    lines += ["    }", ")"]
    parts.append("\n".join(lines) + "\n")
    return "".join(parts)


def main() -> int:
    text = render(tomllib.loads(SOURCE.read_text("utf-8")))
    TARGET.write_text(text, "utf-8")
    print(f"wrote {TARGET.relative_to(HERE.parent.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
