"""Typed configuration tables: attrs records declared once, read from TOML.

A field with help text is a key of its table; `build` checks a TOML table against
the record, so an unknown key, a missing required key or a value of the wrong type
is a ConfigError naming the file and the dotted key (with the nearest valid key
for a typo). A field may carry its own parser (durations, templates).
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from pamwire.errors import ConfigError

T = typing.TypeVar("T")


def field(
    text: str,
    default: Any = attrs.NOTHING,
    *,
    parse: Callable[[Any], Any] | None = None,
    **kw: Any,
) -> Any:
    """A configuration key: its help text, default, and optional parser."""
    return attrs.field(default=default, metadata=metadata(text, parse), **kw)


def metadata(text: str, parse: Callable[[Any], Any] | None = None) -> dict[str, Any]:
    """The metadata of a key declared with attrs.field directly (factories)."""
    meta: dict[str, Any] = {"help": text}
    if parse is not None:
        meta["parse"] = parse
    return meta


def table(raw: Any, key: str, fpath: str) -> dict[str, Any]:
    """`raw` as a TOML table; ConfigError if it is something else."""
    if not isinstance(raw, dict):
        raise ConfigError("must be a table", path=fpath, key=key)
    return raw


def check_keys(
    raw: dict[str, Any], allowed: Iterable[str], prefix: str, fpath: str
) -> None:
    """Refuse keys not in `allowed`, suggesting the nearest one."""
    names = list(allowed)
    for name in raw:
        if name not in names:
            near = difflib.get_close_matches(name, names, n=1)
            hint = (
                f"; did you mean {near[0]!r}?"
                if near
                else f"; valid keys: {', '.join(names)}"
            )
            raise ConfigError(f"unknown key{hint}", path=fpath, key=f"{prefix}{name}")


def build(
    cls: type[T],
    raw: Any,
    key: str,
    fpath: str,
    *,
    extra: dict[str, Any] | None = None,
) -> T:
    """Build an attrs record from a TOML table; fields without help are not keys
    (pass them in `extra`)."""
    raw = table(raw, key, fpath)
    fields = [f for f in attrs.fields(cls) if "help" in f.metadata]  # type: ignore[arg-type]
    check_keys(raw, [f.name for f in fields], f"{key}.", fpath)
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = dict(extra or {})
    for f in fields:
        if f.name not in raw:
            if f.default is attrs.NOTHING:
                raise ConfigError(
                    "required key is missing", path=fpath, key=f"{key}.{f.name}"
                )
            continue
        field_key = f"{key}.{f.name}"
        parse = f.metadata.get("parse")
        if parse is not None:
            try:
                kwargs[f.name] = parse(raw[f.name])
            except ValueError as error:
                raise ConfigError(str(error), path=fpath, key=field_key) from None
        else:
            kwargs[f.name] = coerce(raw[f.name], hints[f.name], field_key, fpath)
    return cls(**kwargs)


def coerce(value: Any, hint: Any, key: str, fpath: str) -> Any:
    """Check (and where TOML allows, convert) a value against a type hint."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return coerce(value, inner[0], key, fpath)
    if attrs.has(hint):
        return build(hint, value, key, fpath)
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError("must be a list", path=fpath, key=key)
        return tuple(
            coerce(v, args[0], f"{key}[{i}]", fpath) for i, v in enumerate(value)
        )
    if origin is dict:
        return {
            name: coerce(item, args[1], f"{key}.{name}", fpath)
            for name, item in table(value, key, fpath).items()
        }
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (str, int, float, bool):
        if type(value) is not hint:
            raise ConfigError(
                f"must be {type_name(hint)}, not {type_name(type(value))}",
                path=fpath,
                key=key,
            )
        return value
    raise ConfigError(
        f"unsupported value {value!r}", path=fpath, key=key
    )  # pragma: no cover


_TYPE_NAMES: dict[Any, str] = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "a table",
}


def type_name(t: Any) -> str:
    """How an error message names a value's type."""
    return _TYPE_NAMES.get(t, getattr(t, "__name__", str(t)))
