"""Values read from recipes, run records and `--set` flags, checked against the dataclass they fill:
a value of the wrong type is an error naming the key and the type expected, before anything runs."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from helixlab.errors import HelixError


def matches(value: Any, hint: Any) -> bool:
    """Whether `value` (as TOML/JSON gives it) fits the type hint (ints count as floats, bools as neither)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(matches(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is list:
        return isinstance(value, list) and all(matches(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(matches(k, args[0]) and matches(v, args[1]) for k, v in value.items())
    return True


def describe(hint: Any) -> str:
    """A type hint in words: 'an integer', 'a list of strings or none', ..."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    if origin is list:
        return f"a list of {describe(args[0]).removeprefix('a ').removeprefix('an ')}s"
    if origin is dict:
        return f"a table of {describe(args[1]).removeprefix('a ').removeprefix('an ')} values"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string",
            type(None): "none (left out)"}.get(hint, str(hint))


def check_fields(cls: type, values: dict[str, Any], where: str, source: str | None) -> None:
    """Refuse values of `values` whose type does not fit the field of dataclass `cls` they set.
    `where`: the section's name for messages (e.g. 'train', 'model.params')."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in values and not matches(values[f.name], hints[f.name]):
            key = f"{where}.{f.name}" if where else f.name
            raise HelixError(f"{key} must be {describe(hints[f.name])}, got {values[f.name]!r}", path=source,
                             record=key)
